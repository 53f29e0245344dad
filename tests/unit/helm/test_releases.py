"""Helm's storage read directly: Flux's release names, the Secret driver's format, snapshots, caps."""

from __future__ import annotations

import base64
import gzip
import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from helm_controller import releases
from helm_controller.releases import CorruptRelease, decode_release, decode_secret, history_entry, pending

# Flux's own table (internal/release/name_test.go).
FLUX_SHORT_NAMES = [
    ("release-name", "release-name"),
    (
        "release-name-with-very-long-name-which-is-longer-than-53-characters",
        "release-name-with-very-long-name-which-i-788ca0d0d7b0",
    ),
    (
        "another-release-name-with-very-long-name-which-is-longer-than-53-characters",
        "another-release-name-with-very-long-name-7e72150d5a36",
    ),
    ("", ""),
]


@pytest.mark.parametrize(("name", "expected"), FLUX_SHORT_NAMES)
def test_shorten_name_matches_flux(name: str, expected: str) -> None:
    assert releases.shorten_name(name) == expected
    assert len(releases.shorten_name(name)) <= 53


def hr(name: str = "podinfo", namespace: str = "apps", **spec: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_release_name_rules() -> None:
    assert releases.release_name(hr()) == "podinfo"
    assert releases.release_name(hr(targetNamespace="prod")) == "prod-podinfo"
    assert releases.release_name(hr(releaseName="mine", targetNamespace="prod")) == "mine"
    long_ns = "a-target-namespace-that-is-quite-long"
    name = releases.release_name(hr(name="and-a-long-release-name", targetNamespace=long_ns))
    full = f"{long_ns}-and-a-long-release-name"
    assert name == full[:40] + "-" + hashlib.sha256(full.encode()).hexdigest()[:12]
    assert len(name) == 53
    # exactly 53 stays as written
    assert releases.release_name(hr(releaseName="x" * 53)) == "x" * 53


def test_namespaces() -> None:
    assert releases.target_namespace(hr()) == "apps"
    assert releases.target_namespace(hr(targetNamespace="prod")) == "prod"
    # Not Flux's default (the HelmRelease's namespace): the helm CLI stores a release where it installs it.
    assert releases.storage_namespace(hr(targetNamespace="prod")) == "prod"
    assert releases.storage_namespace(hr(storageNamespace="helm")) == "helm"


def helm_release(**over: Any) -> dict[str, Any]:
    """A release record as Helm's Go structs write it (field order included)."""
    rel: dict[str, Any] = {
        "name": "podinfo",
        "info": {
            "first_deployed": "2026-01-02T03:04:05.123456789Z",
            "last_deployed": "2026-01-02T03:05:06.5+01:00",
            "deleted": "",
            "description": "Install complete",
            "status": "deployed",
            "notes": "thanks <3 & enjoy",
        },
        "chart": {
            "metadata": {"name": "podinfo", "version": "6.5.0", "appVersion": "6.5.0", "apiVersion": "v2"},
            "templates": [{"name": "templates/x.yaml", "data": base64.b64encode(b"kind: X").decode()}],
            "values": {"replicaCount": 1},
        },
        "config": {"replicaCount": 2, "ui": {"message": "hi"}, "ratio": 0.5},
        "manifest": "---\nkind: ConfigMap\n",
        "hooks": [
            {
                "name": "podinfo-test",
                "kind": "Pod",
                "path": "podinfo/templates/tests/t.yaml",
                "manifest": "kind: Pod",
                "events": ["test"],
                "last_run": {
                    "started_at": "2026-01-02T03:06:00Z",
                    "completed_at": "2026-01-02T03:06:09.9Z",
                    "phase": "Succeeded",
                },
            },
            {
                "name": "podinfo-pre",
                "kind": "Job",
                "path": "podinfo/templates/pre.yaml",
                "manifest": "kind: Job",
                "events": ["pre-install"],
                "last_run": {"started_at": "", "completed_at": "", "phase": ""},
            },
        ],
        "version": 3,
        "namespace": "apps",
        "apply_method": "ssa",
    }
    rel.update(over)
    return rel


def secret_data(rel: dict[str, Any], *, api_layer: bool = True, compress: bool = True) -> bytes:
    """The Secret driver's data.release: base64(gzip(json)), and the API's base64 around it."""
    body = orjson.dumps(rel)
    helm = base64.b64encode(gzip.compress(body, 9) if compress else body)
    return base64.b64encode(helm) if api_layer else helm


def test_decode_release_fields() -> None:
    r = decode_release(secret_data(helm_release()), storage_namespace="apps")
    assert (r.name, r.namespace, r.version, r.status) == ("podinfo", "apps", 3, "deployed")
    assert (r.chart_name, r.chart_version, r.app_version) == ("podinfo", "6.5.0", "6.5.0")
    assert r.config == {"replicaCount": 2, "ui": {"message": "hi"}, "ratio": 0.5}
    assert r.first_deployed == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert r.last_deployed is not None
    assert r.last_deployed.utcoffset() is not None
    assert r.deleted is None
    assert r.description == "Install complete"
    assert r.test_hooks == {
        "podinfo-test": {
            "lastStarted": "2026-01-02T03:06:00Z",
            "lastCompleted": "2026-01-02T03:06:09Z",
            "phase": "Succeeded",
        }
    }
    assert r.manifest_digest == "sha256:" + hashlib.sha256(b"---\nkind: ConfigMap\n").hexdigest()
    assert r.apply_method == "ssa"
    assert r.secret_name == "sh.helm.release.v1.podinfo.v3"
    assert not pending(r)


def test_decode_with_or_without_the_api_layer_and_gzip() -> None:
    rel = helm_release()
    expected = decode_release(secret_data(rel))
    assert decode_release(secret_data(rel, api_layer=False)) == expected
    assert decode_release(secret_data(rel, compress=False)) == expected
    assert decode_release(secret_data(rel).decode()) == expected


def test_decode_secret_reads_namespace_and_custom_labels() -> None:
    secret = {
        "metadata": {
            "name": "sh.helm.release.v1.podinfo.v3",
            "namespace": "apps",
            "labels": {"owner": "helm", "name": "podinfo", "status": "deployed", "version": "3", "team": "a"},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": secret_data(helm_release()).decode()},
    }
    r = decode_secret(secret)
    assert r.storage_namespace == "apps"
    assert r.labels == {"team": "a"}


@pytest.mark.parametrize("status", ["pending-install", "pending-upgrade", "pending-rollback"])
def test_pending(status: str) -> None:
    rel = helm_release(info={"status": status})
    assert pending(decode_release(secret_data(rel)))


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"{" + b" " * (releases.MAX_RELEASE_BYTES + 10) + b"}", 9)
    data = base64.b64encode(base64.b64encode(bomb))
    assert len(data) < releases.MAX_ENCODED_BYTES
    with pytest.raises(CorruptRelease, match="inflates past"):
        decode_release(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not base64!", "not base64"),
        (base64.b64encode(base64.b64encode(b"\x1f\x8b\x08broken")), "gzip"),
        (base64.b64encode(base64.b64encode(gzip.compress(b"[1, 2]"))), "not a JSON object"),
        (base64.b64encode(base64.b64encode(gzip.compress(b"{nope"))), "not JSON"),
        (b"A" * (releases.MAX_ENCODED_BYTES + 4), "over"),
    ],
)
def test_corrupt_release_data(data: bytes, match: str) -> None:
    with pytest.raises(CorruptRelease, match=match):
        decode_release(data)


def test_history_entry_is_flux_snapshot() -> None:
    r = decode_release(secret_data(helm_release()))
    entry = history_entry(r, "sha256:cfg")
    assert entry == {
        "apiVersion": "v2",
        "digest": r.digest(),
        "name": "podinfo",
        "namespace": "apps",
        "version": 3,
        "status": "deployed",
        "chartName": "podinfo",
        "chartVersion": "6.5.0",
        "appVersion": "6.5.0",
        "configDigest": "sha256:cfg",
        "firstDeployed": "2026-01-02T03:04:05Z",
        "lastDeployed": "2026-01-02T02:05:06Z",
        "testHooks": {
            "podinfo-test": {
                "lastStarted": "2026-01-02T03:06:00Z",
                "lastCompleted": "2026-01-02T03:06:09Z",
                "phase": "Succeeded",
            }
        },
    }
    with_oci = history_entry(r, "sha256:cfg", oci_digest="sha256:abc", action="upgrade")
    assert with_oci["ociDigest"] == "sha256:abc"
    assert with_oci["action"] == "upgrade"
    assert with_oci["digest"] != entry["digest"]


def test_digest_ignores_test_hook_runs_and_follows_the_release() -> None:
    """Flux filters test hooks out of the digest, so running tests by hand does not change it."""
    base = helm_release()
    tested = helm_release()
    tested["hooks"][0]["last_run"] = {"started_at": "2027-01-01T00:00:00Z", "phase": "Failed"}
    assert decode_release(secret_data(base)).digest() == decode_release(secret_data(tested)).digest()
    changed = helm_release(config={"replicaCount": 3})
    assert decode_release(secret_data(base)).digest() != decode_release(secret_data(changed)).digest()
    # Helm 3 wrote zero times as "", Helm 4 leaves them out: the same release, the same digest.
    v4 = helm_release()
    del v4["info"]["deleted"]
    v4["hooks"][1]["last_run"] = {"phase": ""}
    assert decode_release(secret_data(base)).digest() == decode_release(secret_data(v4)).digest()


@pytest.mark.parametrize(
    ("value", "go"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (1e-7, "1e-7"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123456789.125, "123456789.125"),
        (0.000001, "0.000001"),
        (-2.5e-9, "-2.5e-9"),
    ],
)
def test_go_float_format(value: float, go: str) -> None:
    assert releases._go_float(value) == go


def test_go_string_escapes_html() -> None:
    assert releases._go_string('a<b>&\u2028\n"é') == '"a\\u003cb\\u003e\\u0026\\u2028\\n\\"é"'


def test_digest_is_flux_byte_for_byte() -> None:
    """Expected values from Go: encoding/json over Flux's Observation with helm v4's Info/Hook/Metadata
    shapes (computed once with go1.2x on this very release; HTML escaping, float forms, map order)."""
    rel = helm_release(
        config={
            "replicaCount": 2,
            "ui": {"message": "hi <b>&", "n": 1e-7, "big": 1e21, "f": 123456789.125},
            "ratio": 0.5,
            "a": [1, None, True, "x\u2028"],
        }
    )
    rel["chart"]["metadata"]["annotations"] = {"z": "1", "a": "<2>"}
    r = decode_release(secret_data(rel))
    assert r.digest() == "sha256:94fc9a1cc2be3767a26ee14a922f62032112dbf3a386d1b2e64615c32691a0e7"
    assert r.digest("sha256:abc") == "sha256:961770b4f1fb58991f4c9d5d2da6002ada8fea8046a79145fbdbe767de87b745"
