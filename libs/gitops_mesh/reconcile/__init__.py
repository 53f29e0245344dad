"""The reconcile engine: conditions, result finaliser, guard clauses, work queue, controller workers."""
