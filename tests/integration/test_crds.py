"""deploy/crds against the real kube-apiserver of the local stack.

Every valid sample is accepted, every invalid one is refused with the field its `# expect:` line names, the
defaults are Flux's, and `kubectl get` shows short names, the `flux` category and the printer columns the way
a Flux user expects. Objects are applied with kubectl (server-side apply, as our controllers apply).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh_dev.stack import ROOT, STACK_DIR, StackNotUp, read_stack_env
from tests.unit.test_crd_files import BY_KIND, DEPRECATED

pytestmark = pytest.mark.stack

CRD_DIR = ROOT / "deploy" / "crds"
SAMPLES = Path(__file__).resolve().parent / "crds" / "samples"
VALID = sorted((SAMPLES / "valid").glob("*.yaml"))
INVALID = sorted((SAMPLES / "invalid").glob("*.yaml"))
FIELD_MANAGER = "gitops-mesh-crd-tests"
REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"
READY_MESSAGE = f"stored artifact for revision '{REVISION}'"


@dataclass(frozen=True)
class Kubectl:
    binary: str
    kubeconfig: str
    cache_dir: str  # our own discovery cache, so a CRD changed a moment ago is never looked up stale

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [self.binary, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir, *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        proc = self.run(*args, stdin=stdin)
        assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}"
        return proc.stdout

    def apply(
        self,
        namespace: str,
        *,
        path: Path | None = None,
        manifest: Any = None,
        dry_run: bool = False,
        output: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace]
        if dry_run:
            args.append("--dry-run=server")
        if output:
            args += ["-o", output]
        if path is not None:
            return self.run(*args, "-f", str(path))
        return self.run(*args, "-f", "-", stdin=yaml.safe_dump(manifest))


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    env_file = STACK_DIR / "env"
    try:
        env = read_stack_env(env_file)
    except StackNotUp as e:
        pytest.fail(str(e), pytrace=False)
    k = Kubectl(env["KUBECTL"], env["KUBECONFIG"], str(tmp_path_factory.mktemp("kubectl-cache")))
    ready = k.run("get", "--raw", "/readyz")
    if ready.returncode != 0:
        pytest.fail(
            f"kube-apiserver of {env_file} is not ready ({ready.stderr.strip()}): run make stack-up", pytrace=False
        )
    # stack.sh installs the CRDs when it starts; apply them again so an edited CRD is what gets tested.
    k.ok("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    k.ok("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))
    return k


def new_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"crd-test-{uuid.uuid4().hex[:8]}"
    kubectl.ok("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def dry_run_namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from new_namespace(kubectl)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    yield from new_namespace(kubectl)


def expectation(path: Path) -> str:
    match = re.fullmatch(r"# expect: (.+)", path.read_text().splitlines()[0])
    assert match, f"{path} must start with '# expect: <substring of the apiserver error>'"
    return match[1].strip()


def load(path: Path) -> dict[str, Any]:
    manifest = yaml.safe_load(path.read_text())
    assert isinstance(manifest, dict)
    return manifest


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_sample_is_accepted(kubectl: Kubectl, dry_run_namespace: str, path: Path) -> None:
    proc = kubectl.apply(dry_run_namespace, path=path, dry_run=True)
    assert proc.returncode == 0, f"{path.name} was refused: {proc.stderr.strip()}"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_sample_is_refused_naming_the_field(kubectl: Kubectl, dry_run_namespace: str, path: Path) -> None:
    expect = expectation(path)
    proc = kubectl.apply(dry_run_namespace, path=path, dry_run=True)
    assert proc.returncode != 0, f"{path.name} was accepted"
    assert expect in proc.stderr, f"{expect!r} not in the apiserver's error: {proc.stderr.strip()}"


MINIMAL: dict[str, dict[str, Any]] = {
    "GitRepository": {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "spec": {"interval": "1m", "url": "https://example.com/repo.git", "verify": {"secretRef": {"name": "k"}}},
    },
    "HelmChart": {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "spec": {"interval": "1m", "chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "p"}},
    },
    "OCIRepository": {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "spec": {"interval": "1m", "url": "oci://ghcr.io/example/manifests"},
    },
    "Kustomization": {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "spec": {"interval": "1m", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "g"}},
    },
    "Alert": {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "spec": {"providerRef": {"name": "slack"}, "eventSources": [{"kind": "GitRepository", "name": "*"}]},
    },
    "Receiver": {
        "apiVersion": "notification.toolkit.fluxcd.io/v1",
        "spec": {
            "type": "generic",
            "secretRef": {"name": "token"},
            "resources": [{"kind": "GitRepository", "name": "g"}],
        },
    },
    "FluxConfig": {
        "apiVersion": "clusterconfig.azure.com/v1alpha1",
        # az requires exactly one repositoryRef (the CRD's CEL rule says so)
        "spec": {
            "gitRepository": {"url": "https://example.com/repo.git", "repositoryRef": {"branch": "main"}},
            "kustomizations": {"apps": {}},
        },
    },
}


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("GitRepository", "spec.timeout", "60s"),
        ("GitRepository", "spec.verify.mode", "HEAD"),
        ("HelmChart", "spec.version", "*"),
        ("HelmChart", "spec.reconcileStrategy", "ChartVersion"),
        ("OCIRepository", "spec.provider", "generic"),
        ("Kustomization", "spec.force", False),
        ("Alert", "spec.eventSeverity", "info"),
        ("Receiver", "spec.interval", "10m"),
        ("FluxConfig", "spec.scope", "cluster"),
        ("FluxConfig", "spec.sourceKind", "GitRepository"),
        ("FluxConfig", "spec.gitRepository.syncIntervalInSeconds", 600),
        ("FluxConfig", "spec.kustomizations.apps.wait", True),
    ],
)
def test_defaults_are_applied_by_the_apiserver(
    kubectl: Kubectl, dry_run_namespace: str, kind: str, path: str, value: object
) -> None:
    manifest = {"kind": kind, "metadata": {"name": "defaults"}, **MINIMAL[kind]}
    proc = kubectl.apply(dry_run_namespace, manifest=manifest, dry_run=True, output="json")
    assert proc.returncode == 0, proc.stderr
    node: Any = json.loads(proc.stdout)
    for key in path.split("."):
        node = node[key]
    assert node == value


@dataclass(frozen=True)
class Shown:
    """How one kind shows in `kubectl get`: the name a user types, and the status that fills its columns."""

    kind: str
    resource: str  # the short name where Flux has one
    sample: str
    status: dict[str, Any]  # what fills the kind's own columns
    revision_column: bool = True


def artifact(kind: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"{kind.lower()}/ns/name/0123456789abcdef.tar.gz"
    return {
        "artifact": {
            "path": path,
            "url": f"http://127.0.0.1:9090/{path}",
            "revision": REVISION,
            "digest": "sha256:" + "0" * 64,
            "lastUpdateTime": now,
            "size": 1024,
        }
    }


SHOWN = [
    Shown("GitRepository", "gitrepo", "gitrepository-https-branch", artifact("GitRepository")),
    Shown("HelmRepository", "helmrepo", "helmrepository-https", artifact("HelmRepository")),
    Shown("HelmChart", "hc", "helmchart-from-helmrepository", artifact("HelmChart")),
    Shown("Bucket", "buckets", "bucket-minio", artifact("Bucket")),
    Shown("OCIRepository", "ocirepo", "ocirepository-semver-cosign", artifact("OCIRepository")),
    Shown("Kustomization", "ks", "kustomization-full", {"lastAppliedRevision": REVISION}),
    Shown("HelmRelease", "hr", "helmrelease-chart-template", {"lastAttemptedRevision": REVISION}),
    Shown("Provider", "providers", "provider-slack", {}, revision_column=False),
    Shown("Alert", "alerts", "alert-errors-to-slack", {}, revision_column=False),
    Shown("Receiver", "receivers", "receiver-github", {"webhookPath": "/hook/" + "ab" * 32}, revision_column=False),
    Shown(
        "FluxConfig",
        "fluxconfigs",
        "fluxconfig-git",
        {"sourceSyncedCommitId": REVISION, "complianceState": "Compliant"},
    ),
]


def create_suspended(kubectl: Kubectl, namespace: str, sample: str) -> dict[str, Any]:
    """Create a sample for real, suspended so that no controller running on the stack reconciles it."""
    manifest = load(SAMPLES / "valid" / f"{sample}.yaml")
    manifest["spec"]["suspend"] = True
    proc = kubectl.apply(namespace, manifest=manifest)
    assert proc.returncode == 0, proc.stderr
    return manifest


def table(output: str) -> list[dict[str, str]]:
    """Rows of `kubectl get` output as dicts, cut at the header's column offsets (cells may be empty)."""
    header, *rows = output.rstrip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {name: row[a:b].strip() for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)} for row in rows
    ]


@pytest.mark.parametrize("shown", SHOWN, ids=lambda s: s.kind)
def test_kubectl_get_shows_ready_status_and_revision(kubectl: Kubectl, namespace: str, shown: Shown) -> None:
    manifest = create_suspended(kubectl, namespace, shown.sample)
    name = manifest["metadata"]["name"]

    created = json.loads(kubectl.ok("get", shown.resource, name, "-n", namespace, "-o", "json"))
    assert created["kind"] == shown.kind
    assert created["status"]["observedGeneration"] == -1, "the status default, as Flux's"

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Succeeded",
        "message": READY_MESSAGE,
        "lastTransitionTime": now,
        "observedGeneration": created["metadata"]["generation"],
    }
    status = {"observedGeneration": created["metadata"]["generation"], "conditions": [ready]}
    status |= shown.status
    kubectl.ok(
        "patch",
        shown.resource,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )

    rows = table(kubectl.ok("get", shown.resource, name, "-n", namespace))
    assert len(rows) == 1
    row = rows[0]
    assert row["NAME"] == name
    assert row["READY"] == "True"
    assert row["STATUS"] == READY_MESSAGE
    assert row["AGE"]
    assert ("REVISION" in row) == shown.revision_column
    if shown.revision_column:
        assert row["REVISION"] == REVISION


def test_short_names_resolve(kubectl: Kubectl) -> None:
    rows = table(kubectl.ok("api-resources", "--categories=flux"))
    assert {r["KIND"]: r["SHORTNAMES"] for r in rows} == {
        "GitRepository": "gitrepo",
        "HelmRepository": "helmrepo",
        "HelmChart": "hc",
        "Bucket": "",
        "OCIRepository": "ocirepo",
        "ExternalArtifact": "ea",
        "ArtifactGenerator": "ag",
        "Kustomization": "ks",
        "HelmRelease": "hr",
        "Provider": "",
        "Alert": "",
        "Receiver": "",
        "FluxConfig": "",
    }
    for name in ("gitrepo", "helmrepo", "hc", "ocirepo", "ks", "hr"):
        explained = kubectl.ok("explain", f"{name}.spec", "--recursive=false")
        assert "FIELDS:" in explained


def test_flux_category_lists_every_kind(kubectl: Kubectl, namespace: str) -> None:
    for shown in SHOWN:
        create_suspended(kubectl, namespace, shown.sample)
    listed = kubectl.ok("get", "flux", "-n", namespace, "-o", "name").split()
    kinds = {line.split("/")[0].split(".")[0] for line in listed}
    assert kinds == {s.kind.lower() for s in SHOWN}


# Deprecated versions (conversion None): the apiserver serves an object at every version, rewriting only
# apiVersion, and warns whoever uses an old one with Flux's text.
DEPRECATED_EXAMPLE = SAMPLES.parent / "deprecated" / "podinfo-v2beta1.yaml"
STABLE = {"HelmRepository": "source.toolkit.fluxcd.io/v1", "HelmRelease": "helm.toolkit.fluxcd.io/v2"}
# What the apiserver adds to the example when it stores it: schema defaults, no more.
EXAMPLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "HelmRepository": {"provider": "generic", "timeout": "60s"},
    "HelmRelease": {"chart": {"spec": {"reconcileStrategy": "ChartVersion"}}},
}
# Read back at the old version, fields that version has no schema for are pruned (v1beta1 has no provider).
EXAMPLE_DEFAULTS_OLD: dict[str, dict[str, Any]] = {
    "HelmRepository": {"timeout": "60s"},
    "HelmRelease": {"chart": {"spec": {"reconcileStrategy": "ChartVersion"}}},
}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resource_at(kind: str, api_version: str) -> str:
    """``plural.version.group``: what makes kubectl read an object at one version rather than the preferred."""
    group, version = api_version.split("/")
    return f"{BY_KIND[kind].plural}.{version}.{group}"


def test_mission_example_round_trips_through_the_deprecated_versions(kubectl: Kubectl, namespace: str) -> None:
    docs = list(yaml.safe_load_all(DEPRECATED_EXAMPLE.read_text()))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("source.toolkit.fluxcd.io/v1beta1", "HelmRepository"),
        ("helm.toolkit.fluxcd.io/v2beta1", "HelmRelease"),
    ]
    assert docs[1]["spec"]["install"]["remediation"]["retries"] == 3
    written = []
    for doc in docs:
        doc["spec"]["suspend"] = True  # no controller on the stack acts on it
        proc = kubectl.apply(namespace, manifest=doc)
        assert proc.returncode == 0, proc.stderr
        version = doc["apiVersion"].split("/")[1]
        assert f"{version} {doc['kind']} is deprecated, upgrade to {STABLE[doc['kind']].split('/')[1]}" in proc.stderr
        written.append(doc)

    for doc in written:
        kind, expected = doc["kind"], merged(doc["spec"], EXAMPLE_DEFAULTS[doc["kind"]])
        name = doc["metadata"]["name"]
        stable = json.loads(kubectl.ok("get", resource_at(kind, STABLE[kind]), name, "-n", namespace, "-o", "json"))
        assert stable["apiVersion"] == STABLE[kind]
        assert stable["spec"] == expected
        old = json.loads(kubectl.ok("get", resource_at(kind, doc["apiVersion"]), name, "-n", namespace, "-o", "json"))
        assert old["apiVersion"] == doc["apiVersion"]
        assert old["spec"] == merged(doc["spec"], EXAMPLE_DEFAULTS_OLD[kind])
        # The stable version is what a plain `kubectl get` (and our controllers) read.
        preferred = json.loads(kubectl.ok("get", BY_KIND[kind].plural, name, "-n", namespace, "-o", "json"))
        assert preferred["apiVersion"] == STABLE[kind]


@pytest.mark.parametrize(
    ("kind", "version"), [(k, v) for k, versions in DEPRECATED.items() for v in versions], ids=lambda x: str(x)
)
def test_an_object_is_served_at_each_deprecated_version(
    kubectl: Kubectl, namespace: str, kind: str, version: str
) -> None:
    shown = next(s for s in SHOWN if s.kind == kind)
    manifest = create_suspended(kubectl, namespace, shown.sample)
    group = manifest["apiVersion"].split("/")[0]
    proc = kubectl.run(
        "get", resource_at(kind, f"{group}/{version}"), manifest["metadata"]["name"], "-n", namespace, "-o", "json"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["apiVersion"] == f"{group}/{version}"
    assert f"{version} {kind} is deprecated, upgrade to {manifest['apiVersion'].split('/')[1]}" in proc.stderr


def test_fields_flux_removed_are_dropped_when_an_old_object_is_stored(kubectl: Kubectl, namespace: str) -> None:
    """As with Flux's own CRDs: what v2 has no field for is pruned on the way to storage, silently."""
    manifest = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2beta1",
        "kind": "HelmRelease",
        "metadata": {"name": "old-fields"},
        "spec": {
            "interval": "5m",
            "suspend": True,
            "chart": {
                "spec": {
                    "chart": "podinfo",
                    "valuesFile": "values-prod.yaml",
                    "sourceRef": {"kind": "HelmRepository", "name": "podinfo"},
                }
            },
            "postRenderers": [
                {
                    "kustomize": {
                        "images": [{"name": "podinfo", "newTag": "6.0.1"}],
                        "patchesStrategicMerge": [{"kind": "Deployment", "metadata": {"name": "podinfo"}}],
                    }
                }
            ],
        },
    }
    proc = kubectl.apply(namespace, manifest=manifest)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(
        kubectl.ok("get", "helmreleases.v2.helm.toolkit.fluxcd.io", "old-fields", "-n", namespace, "-o", "json")
    )
    assert "valuesFile" not in stored["spec"]["chart"]["spec"]
    assert stored["spec"]["postRenderers"] == [{"kustomize": {"images": [{"name": "podinfo", "newTag": "6.0.1"}]}}]
