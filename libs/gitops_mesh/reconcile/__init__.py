"""Reconciling, pure and looped: conditions, the result finaliser, guard clauses, the work queue and its workers."""
