"""Spec fields a controller does not implement, refused when set: checked first thing in a reconcile, pure.

A field the CRD accepts but the controller ignores is worse than an error: a Kustomization's
``spec.kubeConfig`` silently dropped applies (and prunes) a remote cluster's manifests on this one. Each
controller declares the fields it lacks in a table of :class:`Unsupported` rows, and its reconciler calls
:func:`refuse_unsupported` before any work: a field that is set raises :class:`InvalidSpec` with reason
``UnsupportedField``, which the runner turns into Stalled and Ready=False (with a Warning event, a
``failed`` bus event and an error log) until the spec changes. Absent, null, empty and false values are
not set: they are every CRD's defaults here, and mean "not used".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_mesh.errors import InvalidSpec

#: The Ready/Stalled reason of a refused field.
UNSUPPORTED_FIELD = "UnsupportedField"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """One field the controller lacks.

    ``path`` is under ``spec``: keys joined by dots, ``[]`` after a list's key to look into each item
    (``dependsOn[].readyExpr``). Without ``allowed`` any set value is refused; with it, only values outside
    it (an enum the controller implements in part, e.g. ``provider`` beyond ``generic``).
    """

    path: str
    why: str
    allowed: frozenset[str] = frozenset()

    def problems(self, spec: Mapping[str, Any]) -> Iterator[str]:
        """A message per place in ``spec`` where this field is set to what is refused."""
        for where, value in _values(spec, self.path.split("."), "spec"):
            if not value:
                continue
            if not self.allowed:
                yield f"{where} is not supported by this controller: {self.why}"
            elif not isinstance(value, str) or value not in self.allowed:
                supported = ", ".join(sorted(self.allowed))
                yield f"{where} {value!r} is not supported by this controller (supported: {supported}): {self.why}"


def _values(node: Any, parts: Sequence[str], where: str) -> Iterator[tuple[str, Any]]:
    """The values at ``parts`` below ``node``, each with its path (list items numbered)."""
    if not parts:
        yield where, node
        return
    if not isinstance(node, Mapping):
        return
    head, rest = parts[0], parts[1:]
    key = head.removesuffix("[]")
    child, here = node.get(key), f"{where}.{key}"
    if head.endswith("[]"):
        for index, item in enumerate(child if isinstance(child, list) else ()):
            yield from _values(item, rest, f"{here}[{index}]")
    else:
        yield from _values(child, rest, here)


def unsupported_fields(spec: Mapping[str, Any], table: Sequence[Unsupported]) -> list[str]:
    """Every refusal ``table`` finds in ``spec``, in the table's order."""
    return [problem for row in table for problem in row.problems(spec)]


def refuse_unsupported(spec: Mapping[str, Any], table: Sequence[Unsupported]) -> None:
    """Raise InvalidSpec (reason ``UnsupportedField``) naming every field of ``table`` that ``spec`` sets."""
    problems = unsupported_fields(spec, table)
    if problems:
        raise InvalidSpec("; ".join(problems), reason=UNSUPPORTED_FIELD)
