"""The Merge strategy: YAML values files deep-merged as Helm merges ``--values`` (maps merge, everything else is replaced).

As source-watcher: every document of a file is merged into one map first, then the copied file into the
existing one; lists are replaced whole; the result is written back as one YAML document with sorted keys
(Flux marshals through JSON, which sorts them too). Both files are tenant YAML, read through
:mod:`gitops_mesh.tenant_yaml` (size, node and depth caps, aliases measured, never expanded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from gitops_mesh import tenant_yaml


class MergeError(ValueError):
    """A file cannot be merged: not YAML, or a document that is not a map."""


def load_values(data: bytes, *, what: str) -> dict[str, Any]:
    """Every document of ``data`` merged into one map (empty documents count as empty maps)."""
    try:
        documents = tenant_yaml.load_all(data, what=what)
    except yaml.YAMLError as e:
        raise MergeError(f"cannot read YAML from {what}: {tenant_yaml.problem(e)}") from None
    out: dict[str, Any] = {}
    for doc in documents:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise MergeError(f"cannot merge {what}: a document is a {type(doc).__name__}, not a map")
        out = merge_maps(out, doc)
    return out


def merge_maps(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: nested maps merged key by key, any other value (lists too) replaced."""
    out = dict(base)
    for key, value in overlay.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge_maps(current, value)
        else:
            out[key] = value
    return out


def dump_values(values: Mapping[str, Any]) -> bytes:
    """One YAML document, keys sorted."""
    text: str = yaml.safe_dump(dict(values), sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text.encode()
