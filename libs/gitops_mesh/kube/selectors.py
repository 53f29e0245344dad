"""Kube access, label selectors: a ``metav1.LabelSelector`` evaluated against labels as Kubernetes does (pure).

Mirrors apimachinery's ``metav1.LabelSelectorAsSelector`` and ``labels.Requirement.Matches``:

* ``matchLabels`` and ``matchExpressions`` are ANDed; a selector with neither selects everything (a nil
  selector selects nothing in Kubernetes: that is the caller's ``None``);
* ``In`` needs the key with one of the values, ``NotIn`` takes an absent key or a value not listed,
  ``Exists`` / ``DoesNotExist`` look at the key only;
* a selector Kubernetes would refuse (an invalid key or value, an unknown operator, ``In`` / ``NotIn``
  without values, ``Exists`` / ``DoesNotExist`` with values) raises :class:`InvalidSpec` when the
  selector is built, before anything is matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.kube.objects import KubeObject, metadata

# apimachinery's util/validation: a qualified name's name part, a label value, a DNS-1123 subdomain.
_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_MAX = 63
_PREFIX_MAX = 253


class Operator(StrEnum):
    """The operators of a ``matchExpressions`` entry (``metav1.LabelSelectorOperator``)."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one key; build with :func:`requirement` (validated)."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case Operator.IN:
                return self.key in labels and labels[self.key] in self.values
            case Operator.NOT_IN:
                return self.key not in labels or labels[self.key] not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """Requirements that must all hold; no requirement selects every object."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def selects(self, obj: KubeObject) -> bool:
        """Whether the object's ``metadata.labels`` match."""
        return self.matches(labels_of(obj))


def labels_of(obj: KubeObject) -> Mapping[str, str]:
    """``obj.metadata.labels``, or no labels when absent."""
    labels = metadata(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A validated requirement (``labels.NewRequirement``); raises InvalidSpec as Kubernetes refuses one."""
    problem = _key_problem(key)
    if problem is not None:
        raise InvalidSpec(f"key: Invalid value: {key!r}: {problem}")
    try:
        op = Operator(operator)
    except ValueError:
        raise InvalidSpec(f"{operator!r} is not a valid label selector operator") from None
    wanted = frozenset(values)
    if op in (Operator.IN, Operator.NOT_IN) and not wanted:
        raise InvalidSpec("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and wanted:
        raise InvalidSpec("values: Invalid value: values set must be empty for exists and does not exist")
    for value in sorted(wanted):
        problem = _value_problem(value)
        if problem is not None:
            raise InvalidSpec(f"values: Invalid value: {value!r}: {problem}")
    return Requirement(key, op, wanted)


def from_match_labels(labels: Mapping[str, str]) -> LabelSelector:
    """A selector of ``matchLabels`` only: every key present with the same value (each one an ``In``)."""
    return LabelSelector(tuple(requirement(k, Operator.IN, (v,)) for k, v in sorted(labels.items())))


def parse_selector(selector: Mapping[str, Any]) -> LabelSelector:
    """A ``metav1.LabelSelector`` as JSON (``matchLabels``, ``matchExpressions``) → LabelSelector.

    Raises InvalidSpec for a selector Kubernetes would refuse, or one whose fields have the wrong shape.
    """
    labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise InvalidSpec("matchLabels must map label keys to string values")
    if not isinstance(expressions, list):
        raise InvalidSpec("matchExpressions must be a list")
    requirements = list(from_match_labels(labels).requirements)
    for expression in expressions:
        if not isinstance(expression, Mapping):
            raise InvalidSpec("a matchExpressions entry must be an object with key, operator and values")
        values = expression.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidSpec("a matchExpressions entry's values must be a list of strings")
        requirements.append(
            requirement(str(expression.get("key") or ""), str(expression.get("operator") or ""), values)
        )
    return LabelSelector(tuple(requirements))


def _name_problem(name: str) -> str | None:
    if not name:
        return "name part must be non-empty"
    if len(name) > _NAME_MAX:
        return f"name part must be no more than {_NAME_MAX} characters"
    if not _NAME.fullmatch(name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    return None


def _key_problem(key: str) -> str | None:
    """``validation.IsQualifiedName``: an optional DNS-1123 subdomain prefix and ``/``, then a name."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if "/" in prefix:
            return "a qualified name must consist of an optional prefix and a name separated by '/'"
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > _PREFIX_MAX or not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain"
    return _name_problem(name)


def _value_problem(value: str) -> str | None:
    """``validation.IsValidLabelValue``: empty, or a name of at most 63 characters."""
    if len(value) > _NAME_MAX:
        return f"must be no more than {_NAME_MAX} characters"
    if value and not _NAME.fullmatch(value):
        return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    return None
