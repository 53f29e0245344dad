"""Offline checks of deploy/crds: names, structural schemas, Flux's defaults, and the CRD test samples.

The stack tests (tests/integration/test_crds.py) prove the same CRDs against the real kube-apiserver; these
catch the mistakes that make an apiserver refuse a CRD, or a sample test meaningless, without a stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
SAMPLES = ROOT / "tests" / "integration" / "crds" / "samples"
VALID_SAMPLES = sorted((SAMPLES / "valid").glob("*.yaml"))
INVALID_SAMPLES = sorted((SAMPLES / "invalid").glob("*.yaml"))

Schema = dict[str, Any]


@dataclass(frozen=True)
class Expected:
    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    revision_path: str | None  # the Revision printer column, where the kind has one

    @property
    def file(self) -> Path:
        return CRD_DIR / f"{self.group}_{self.plural}.yaml"


_SRC = "source.toolkit.fluxcd.io"
_NOTE = "notification.toolkit.fluxcd.io"
_ARTIFACT_REVISION = ".status.artifact.revision"
EXPECTED = [
    Expected(_SRC, "v1", "GitRepository", "gitrepositories", ("gitrepo",), _ARTIFACT_REVISION),
    Expected(_SRC, "v1", "HelmRepository", "helmrepositories", ("helmrepo",), _ARTIFACT_REVISION),
    Expected(_SRC, "v1", "HelmChart", "helmcharts", ("hc",), _ARTIFACT_REVISION),
    Expected(_SRC, "v1", "Bucket", "buckets", (), _ARTIFACT_REVISION),
    Expected(_SRC, "v1", "OCIRepository", "ocirepositories", ("ocirepo",), _ARTIFACT_REVISION),
    Expected(_SRC, "v1", "ExternalArtifact", "externalartifacts", ("ea",), _ARTIFACT_REVISION),
    Expected("source.extensions.fluxcd.io", "v1beta1", "ArtifactGenerator", "artifactgenerators", ("ag",), None),
    Expected(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
        ("ks",),
        ".status.lastAppliedRevision",
    ),
    Expected("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases", ("hr",), ".status.lastAttemptedRevision"),
    Expected(_NOTE, "v1beta3", "Provider", "providers", (), None),
    Expected(_NOTE, "v1beta3", "Alert", "alerts", (), None),
    Expected(_NOTE, "v1", "Receiver", "receivers", (), None),
    Expected(
        "clusterconfig.azure.com",
        "v1alpha1",
        "FluxConfig",
        "fluxconfigs",
        (),
        ".status.sourceSyncedCommitId",
    ),
]
BY_KIND = {e.kind: e for e in EXPECTED}

# Keywords an apiextensions.k8s.io/v1 schema may not use (or that make it non-structural).
FORBIDDEN_KEYWORDS = ("$ref", "definitions", "dependencies", "patternProperties", "additionalItems", "$schema")
TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "object": dict,
    "array": list,
}


def load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


def load_crd(kind: str) -> dict[str, Any]:
    crd = load_yaml(BY_KIND[kind].file)
    assert isinstance(crd, dict), f"{BY_KIND[kind].file} is not one YAML mapping"
    return crd


def versions_of(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    versions = crd["spec"]["versions"]
    assert isinstance(versions, list)
    by_name = {v["name"]: v for v in versions}
    assert len(by_name) == len(versions), "a version listed twice"
    return by_name


def version_of(crd: dict[str, Any]) -> dict[str, Any]:
    """The storage version: the one our controllers read and write (any other is a deprecated old one)."""
    stored = [v for v in versions_of(crd).values() if v.get("storage") is True]
    assert len(stored) == 1, "exactly one storage version per CRD"
    return stored[0]


def root_schema(kind: str) -> Schema:
    schema = version_of(load_crd(kind))["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def at(schema: Schema, *path: str) -> Schema:
    """The sub-schema at a field path; "[]" steps into array items, "*" into map values."""
    node = schema
    for step in path:
        if step == "[]":
            node = node["items"]
        elif step == "*":
            node = node["additionalProperties"]
        else:
            node = node["properties"][step]
    return node


def type_ok(schema: Schema, value: Any) -> bool:
    expected = schema.get("type")
    if expected is None:
        return True
    if isinstance(value, bool) and expected in ("integer", "number"):
        return False
    return isinstance(value, TYPES[expected])


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")


def structural_problems(schema: Schema) -> list[str]:
    problems: list[str] = []
    for path, node in walk(schema):
        where = path or "<root>"
        if not (
            "type" in node
            or node.get("x-kubernetes-preserve-unknown-fields") is True
            or node.get("x-kubernetes-int-or-string") is True
        ):
            problems.append(f"{where}: no type")
        if node.get("type") not in (None, *TYPES):
            problems.append(f"{where}: unknown type {node.get('type')!r}")
        problems += [f"{where}: uses {kw}" for kw in FORBIDDEN_KEYWORDS if kw in node]
        if node.get("x-kubernetes-preserve-unknown-fields") is False:
            problems.append(f"{where}: x-kubernetes-preserve-unknown-fields: false")
        if node.get("uniqueItems") is True:
            problems.append(f"{where}: uniqueItems")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: both properties and additionalProperties")
        if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
            problems.append(f"{where}: additionalProperties must be a schema")
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            problems.append(f"{where}: array without an items schema")
        missing = [r for r in node.get("required", []) if r not in node.get("properties", {})]
        if missing:
            problems.append(f"{where}: required {missing} not among properties")
        problems += [f"{where}: {p}" for p in default_problems(node)]
        for rule in node.get("x-kubernetes-validations", []):
            if not (isinstance(rule.get("rule"), str) and isinstance(rule.get("message"), str)):
                problems.append(f"{where}: x-kubernetes-validations entry needs rule and message")
    return problems


def default_problems(node: Schema) -> list[str]:
    if "default" not in node:
        return []
    default = node["default"]
    if node.get("type") == "object":
        return validate(node, default, "default")
    problems = []
    if not type_ok(node, default):
        problems.append(f"default {default!r} is not a {node.get('type')}")
    if "enum" in node and default not in node["enum"]:
        problems.append(f"default {default!r} not in enum")
    if "pattern" in node and isinstance(default, str) and not re.search(node["pattern"], default):
        problems.append(f"default {default!r} does not match {node['pattern']}")
    return problems


def validate(schema: Schema, value: Any, path: str) -> list[str]:
    """A small subset of the apiserver's validation (types, unknown fields, required, enum, pattern, lengths),
    enough to catch a typo in a sample before the stack tests run. CEL rules are left to the apiserver."""
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return []
    if not type_ok(schema, value):
        return [f"{path}: {value!r} is not a {schema['type']}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: length {len(value)} out of bounds")
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in properties:
                problems += validate(properties[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                problems += validate(extra, sub, f"{path}.{key}")
            elif properties:
                problems.append(f"{path}.{key}: unknown field")
        problems += [f"{path}.{r}: required" for r in schema.get("required", []) if r not in value]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += validate(schema["items"], item, f"{path}[{i}]")
    return problems


kinds = pytest.mark.parametrize("kind", [e.kind for e in EXPECTED])


def test_deploy_crds_holds_exactly_the_expected_files() -> None:
    assert sorted(CRD_DIR.glob("*.yaml")) == sorted(e.file for e in EXPECTED)


@kinds
def test_crd_names_group_and_scope(kind: str) -> None:
    expected = BY_KIND[kind]
    crd = load_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{expected.plural}.{expected.group}"
    spec = crd["spec"]
    assert spec["group"] == expected.group
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == kind
    assert names["listKind"] == f"{kind}List"
    assert names["plural"] == expected.plural
    assert names["singular"] == kind.lower()
    assert tuple(names.get("shortNames", ())) == expected.short_names
    assert "flux" in names["categories"]


@kinds
def test_one_served_storage_version_with_status_subresource(kind: str) -> None:
    version = version_of(load_crd(kind))
    assert version["name"] == BY_KIND[kind].version
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


# The versions Flux served as deprecated before removing them, still served here so old manifests keep working
# (schemas from Flux's config/crd/bases at the last release that had each). Conversion is None: the apiserver
# only rewrites apiVersion, so an old version must not hold what the storage version cannot.
DEPRECATED: dict[str, tuple[str, ...]] = {
    "GitRepository": ("v1beta1", "v1beta2"),
    "HelmRepository": ("v1beta1", "v1beta2"),
    "HelmChart": ("v1beta1", "v1beta2"),
    "Bucket": ("v1beta1", "v1beta2"),
    "OCIRepository": ("v1beta2",),
    "HelmRelease": ("v2beta1", "v2beta2"),
}
# What an object written at an old version loses when stored: exactly the fields Flux removed in the stable
# version (Flux's own CRDs dropped them the same way, conversion None). Anything else would be a silent loss.
LOST_ON_STORAGE: dict[str, list[str]] = {
    "GitRepository": [".spec.accessFrom", ".spec.gitImplementation"],
    "HelmChart": [".spec.accessFrom", ".spec.valuesFile"],
    "Bucket": [".spec.accessFrom"],
    "HelmRelease": [
        ".spec.chart.spec.valuesFile",
        ".spec.postRenderers[].kustomize.patchesJson6902",
        ".spec.postRenderers[].kustomize.patchesStrategicMerge",
    ],
}
deprecated_versions = pytest.mark.parametrize(
    ("kind", "name"), [(k, v) for k, names in DEPRECATED.items() for v in names], ids=lambda x: str(x)
)


def unheld_fields(old: Schema, stored: Schema, path: str = "") -> list[str]:
    """Fields ``old`` accepts that ``stored`` would prune: the outermost such path of each."""
    if stored.get("x-kubernetes-preserve-unknown-fields") is True:
        return []
    lost: list[str] = []
    for name, sub in old.get("properties", {}).items():
        if name in stored.get("properties", {}):
            lost += unheld_fields(sub, stored["properties"][name], f"{path}.{name}")
        elif not isinstance(stored.get("additionalProperties"), dict):
            lost.append(f"{path}.{name}")
    for key, step in (("items", "[]"), ("additionalProperties", ".*")):
        if isinstance(old.get(key), dict) and isinstance(stored.get(key), dict):
            lost += unheld_fields(old[key], stored[key], path + step)
    return lost


@kinds
def test_served_versions_are_the_storage_one_and_flux_deprecated_ones(kind: str) -> None:
    crd = load_crd(kind)
    assert set(versions_of(crd)) == {BY_KIND[kind].version, *DEPRECATED.get(kind, ())}
    assert crd["spec"].get("conversion", {"strategy": "None"}) == {"strategy": "None"}


@deprecated_versions
def test_deprecated_version_is_served_with_flux_warning(kind: str, name: str) -> None:
    version = versions_of(load_crd(kind))[name]
    assert version["served"] is True
    assert version["storage"] is False
    assert version["deprecated"] is True
    assert version["deprecationWarning"] == f"{name} {kind} is deprecated, upgrade to {BY_KIND[kind].version}"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'


@deprecated_versions
def test_deprecated_version_schema_is_structural(kind: str, name: str) -> None:
    schema = versions_of(load_crd(kind))[name]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema) == []
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])


@deprecated_versions
def test_deprecated_version_loses_only_what_flux_removed(kind: str, name: str) -> None:
    versions = versions_of(load_crd(kind))
    old = versions[name]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    stored = version_of(load_crd(kind))["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert unheld_fields(old, stored, ".spec") == LOST_ON_STORAGE.get(kind, [])


@kinds
def test_schema_is_structural(kind: str) -> None:
    schema = root_schema(kind)
    assert structural_problems(schema) == []
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}


@kinds
def test_printer_columns(kind: str) -> None:
    columns = {c["name"]: c for c in version_of(load_crd(kind))["additionalPrinterColumns"]}
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Status"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].message'
    revision = BY_KIND[kind].revision_path
    if revision is None:
        assert "Revision" not in columns
    else:
        assert columns["Revision"]["jsonPath"] == revision
    for column in columns.values():
        assert column["type"] in ("string", "date", "integer", "number", "boolean")


# Nothing reconciles an ExternalArtifact: its producer writes the status, which in Flux's schema has neither.
PRODUCER_WRITTEN_STATUS = {"ExternalArtifact"}


@kinds
def test_status_has_conditions_and_observed_generation(kind: str) -> None:
    status = at(root_schema(kind), "status")
    if kind in PRODUCER_WRITTEN_STATUS:
        assert "default" not in status
        assert "observedGeneration" not in status["properties"]
    else:
        assert status["default"] == {"observedGeneration": -1}
        assert at(status, "observedGeneration") == {"type": "integer", "format": "int64"}
        assert at(status, "lastHandledReconcileAt") == {"type": "string"}
    condition = at(status, "conditions", "[]")
    assert sorted(condition["required"]) == ["lastTransitionTime", "message", "reason", "status", "type"]
    assert at(condition, "status")["enum"] == ["True", "False", "Unknown"]
    assert at(condition, "lastTransitionTime")["format"] == "date-time"
    assert at(condition, "observedGeneration")["format"] == "int64"


@pytest.mark.parametrize(
    ("kind", "required"),
    [
        ("GitRepository", ["interval", "url"]),
        ("HelmRepository", ["url"]),
        ("HelmChart", ["chart", "interval", "sourceRef"]),
        ("Bucket", ["bucketName", "endpoint", "interval"]),
        ("OCIRepository", ["interval", "url"]),
        ("Kustomization", ["interval", "prune", "sourceRef"]),
        ("HelmRelease", ["interval"]),
        ("Provider", ["type"]),
        ("Alert", ["eventSources", "providerRef"]),
        ("Receiver", ["resources", "secretRef", "type"]),
        ("ArtifactGenerator", ["artifacts", "sources"]),
    ],
)
def test_spec_required_fields_as_flux(kind: str, required: list[str]) -> None:
    assert at(root_schema(kind), "spec")["required"] == required


@pytest.mark.parametrize(
    ("kind", "path", "default"),
    [
        ("GitRepository", ("spec", "timeout"), "60s"),
        ("GitRepository", ("spec", "verify", "mode"), "HEAD"),
        ("HelmRepository", ("spec", "provider"), "generic"),
        ("HelmChart", ("spec", "version"), "*"),
        ("HelmChart", ("spec", "reconcileStrategy"), "ChartVersion"),
        ("Bucket", ("spec", "timeout"), "60s"),
        ("OCIRepository", ("spec", "timeout"), "60s"),
        ("Kustomization", ("spec", "force"), False),
        ("HelmRelease", ("spec", "chart", "spec", "version"), "*"),
        ("HelmRelease", ("spec", "uninstall", "deletionPropagation"), "background"),
        ("Alert", ("spec", "eventSeverity"), "info"),
        ("Receiver", ("spec", "interval"), "10m"),
        ("FluxConfig", ("spec", "scope"), "cluster"),
        ("FluxConfig", ("spec", "kustomizations", "*", "wait"), True),
    ],
)
def test_defaults_as_flux(kind: str, path: tuple[str, ...], default: object) -> None:
    assert at(root_schema(kind), *path)["default"] == default


@pytest.mark.parametrize(
    ("kind", "path", "values"),
    [
        ("GitRepository", ("spec", "verify", "mode"), ["head", "HEAD", "Tag", "TagAndHEAD"]),
        ("HelmChart", ("spec", "sourceRef", "kind"), ["HelmRepository", "GitRepository", "Bucket"]),
        (
            "Kustomization",
            ("spec", "sourceRef", "kind"),
            ["OCIRepository", "GitRepository", "Bucket", "ExternalArtifact"],
        ),
        (
            "ArtifactGenerator",
            ("spec", "sources", "[]", "kind"),
            ["Bucket", "GitRepository", "OCIRepository", "HelmChart", "ExternalArtifact"],
        ),
        ("ArtifactGenerator", ("spec", "artifacts", "[]", "copy", "[]", "strategy"), ["Overwrite", "Merge", "Extract"]),
        ("Alert", ("spec", "eventSeverity"), ["info", "error"]),
        ("FluxConfig", ("spec", "sourceKind"), ["GitRepository", "Bucket", "AzureBlob", "OCIRepository"]),
    ],
)
def test_enums_as_flux(kind: str, path: tuple[str, ...], values: list[str]) -> None:
    assert at(root_schema(kind), *path)["enum"] == values


def test_helmrelease_values_keep_unknown_fields() -> None:
    assert at(root_schema("HelmRelease"), "spec", "values") == {"x-kubernetes-preserve-unknown-fields": True}


def test_every_kind_has_a_valid_sample_and_an_invalid_one() -> None:
    def kinds_in(paths: list[Path]) -> set[str]:
        return {load_yaml(p)["kind"] for p in paths}

    assert kinds_in(VALID_SAMPLES) == set(BY_KIND)
    assert kinds_in(INVALID_SAMPLES) == set(BY_KIND)


@pytest.mark.parametrize("path", VALID_SAMPLES, ids=lambda p: p.stem)
def test_valid_sample_matches_schema_offline(path: Path) -> None:
    sample = load_yaml(path)
    expected = BY_KIND[sample["kind"]]
    assert sample["apiVersion"] == f"{expected.group}/{expected.version}"
    assert "namespace" not in sample["metadata"], "the stack tests choose the namespace"
    assert validate(at(root_schema(sample["kind"]), "spec"), sample["spec"], "spec") == []


@pytest.mark.parametrize("path", INVALID_SAMPLES, ids=lambda p: p.stem)
def test_invalid_sample_names_its_expected_error(path: Path) -> None:
    match = re.fullmatch(r"# expect: (\S.*)", path.read_text().splitlines()[0])
    assert match, f"{path.name} must start with '# expect: <error substring>'"
    expect = match[1]
    sample = load_yaml(path)
    assert "namespace" not in sample["metadata"]
    schema = root_schema(sample["kind"])
    problems = validate(at(schema, "spec"), sample.get("spec", {}), "spec")
    if problems:  # the offline validator sees it too, at the field the sample names
        assert any(expect in p for p in problems), problems
    else:  # only a CEL rule catches it, and the expectation is that rule's message
        messages = [r["message"] for _, node in walk(schema) for r in node.get("x-kubernetes-validations", [])]
        assert any(expect in m for m in messages), f"{expect!r} is neither an offline error nor a CEL message"
