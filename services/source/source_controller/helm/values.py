"""HelmChart valuesFiles, pure step: read values documents and deep-merge them the way Flux's MergeMaps does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from gitops_mesh import tenant_yaml
from source_controller.helm.errors import ValuesFilesError

try:
    _Base: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader

try:
    _Dumper: type[Any] = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Dumper = yaml.SafeDumper


class _ValuesLoader(_Base):  # type: ignore[misc]
    """Safe loading, but timestamps are left as the strings they were written as."""


_ValuesLoader.add_constructor("tag:yaml.org,2002:timestamp", _ValuesLoader.construct_yaml_str)

Values = dict[str, Any]


def parse_values(data: bytes | str, *, source: str) -> Values:
    """One values document as a map (empty or null is ``{}``); anything but a map is an error."""
    try:
        loaded = tenant_yaml.load(data, what=source, loader=_ValuesLoader)
    except yaml.YAMLError as e:
        raise ValuesFilesError(f"unmarshaling values from '{source}' failed: {tenant_yaml.problem(e)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValuesFilesError(f"values file '{source}' must hold a map, not a {type(loaded).__name__}")
    try:
        normalised: Values = _string_keys(loaded, {})
    except RecursionError as e:
        raise ValuesFilesError(f"values file '{source}' nests too deeply") from e
    return normalised


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> Values:
    """``override`` on top of ``base``: maps merge recursively, every other value replaces."""
    merged: Values = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = value
    return merged


def merge_all(documents: list[Values]) -> Values:
    """Merge in order: the last document wins."""
    merged: Values = {}
    try:
        for doc in documents:
            merged = merge_values(merged, doc)
    except RecursionError as e:
        raise ValuesFilesError("values files nest too deeply to merge") from e
    return merged


def dump_values(values: Mapping[str, Any]) -> str:
    """The merged values as a YAML document, keys sorted."""
    text: str = yaml.dump(dict(values), Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text


def _string_keys(value: Any, seen: dict[int, Any]) -> Any:
    # Aliases make shared (even cyclic) structures: convert each object once.
    done = seen.get(id(value))
    if done is not None:
        return done
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        seen[id(value)] = out
        for k, v in value.items():
            out[_key(k)] = _string_keys(v, seen)
        return out
    if isinstance(value, list):
        items: list[Any] = []
        seen[id(value)] = items
        items.extend(_string_keys(v, seen) for v in value)
        return items
    return value


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
