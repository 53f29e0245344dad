"""YAML in and out of the build: manifests loaded as Go reads them (:mod:`gitops_mesh.kube_yaml`), kustomization files
as kustomize reads them, and the dumper substitution uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor

from gitops_mesh import tenant_yaml
from gitops_mesh.kube_yaml import ManifestLoader

try:
    _Dumper: type[Any] = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Dumper = yaml.SafeDumper

KubeObject = dict[str, Any]


class KustomizationLoader(ManifestLoader):
    """For kustomization files, which kustomize reads as YAML 1.2: ``on``, ``yes``, ``off``, ``no`` are strings."""


def _bool_or_string(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
    value = loader.construct_scalar(node)
    if isinstance(value, str) and value.lower() not in ("true", "false"):
        return value
    return loader.construct_yaml_bool(node)


KustomizationLoader.add_constructor("tag:yaml.org,2002:bool", _bool_or_string)


class ManifestDumper(_Dumper):  # type: ignore[misc]
    """Block style, keys in their order, no line folding, multi-line strings as literal blocks.

    Substitution runs on this text, so it should look like kustomize's: a ``${var}`` inside an embedded
    script stays on its own line in a ``|`` block rather than inside an escaped double-quoted string.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


ManifestDumper.add_representer(str, _represent_str)


#: A stream of manifests: a file of the source, or all kustomize printed (its output cap, commands'
#: DEFAULT_MAX_OUTPUT). Dense YAML takes about 4 bytes a node, so 16M nodes is what 64 MiB can honestly
#: hold; aliases may not push a whole build past it, however many documents they are spread over.
STREAM_LIMITS: Final = tenant_yaml.YamlLimits(max_bytes=64 << 20, max_nodes=16_000_000, max_depth=256)


def load_all(text: str | bytes, *, what: str = "manifests") -> Iterator[Any]:
    """Every document of a multi-document stream, ``None`` for empty ones. Raises yaml.YAMLError.

    Refusals (too big, aliases expanding too far, too deep) are tenant_yaml.UnsafeYaml, a yaml.YAMLError.
    """
    return iter(tenant_yaml.load_all(text, what=what, limits=STREAM_LIMITS, loader=ManifestLoader))


def load(text: str | bytes, *, what: str = "the YAML") -> Any:
    """A single document (one object): tenant_yaml's default caps. Raises yaml.YAMLError (UnsafeYaml included)."""
    return tenant_yaml.load(text, what=what, loader=ManifestLoader)


def load_kustomization(text: str | bytes, *, what: str = "kustomization") -> Any:
    """A kustomization file, read with YAML 1.2 booleans as kustomize does. Raises yaml.YAMLError (UnsafeYaml too)."""
    return tenant_yaml.load(text, what=what, loader=KustomizationLoader)


def dump(obj: Any) -> str:
    """One document, block style, keys in insertion order."""
    text: str = yaml.dump(
        obj, Dumper=ManifestDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 30
    )
    return text


def describe(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name`` (or ``Kind/name``) for messages."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    kind, name, namespace = obj.get("kind", "?"), metadata.get("name", "?"), metadata.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"
