"""The real distribution registry with TLS (a private CA) and htpasswd basic auth: `gitops-mesh push artifact`
with --ca-file and credentials from the environment, and OCIRepositories reading it through a docker-registry
secretRef or a ServiceAccount's imagePullSecrets, with the CA from certSecretRef. No password in status."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import TlsFiles, make_tls
from gitops_mesh_dev.ociregistry import OciRegistry
from tests.integration.conftest import eventually
from tests.integration.source.controller.conftest import Controller
from tests.integration.source.oci.conftest import push, write_tree

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

API = "source.toolkit.fluxcd.io/v1"
USER, PASSWORD = "robot", "s3cret-pw-7"


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls(tmp_path / "pki")


@pytest.fixture
async def private(tmp_path: Path, tls: TlsFiles) -> AsyncIterator[OciRegistry]:
    async with OciRegistry(tmp_path / "private", tls=tls, username=USER, password=PASSWORD) as running:
        yield running


def secret(name: str, namespace: str, data: dict[str, bytes], type: str = "Opaque") -> KubeObject:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": type,
        "metadata": {"name": name, "namespace": namespace},
        "data": encoded,
    }


def docker_config(address: str, user: str, password: str) -> dict[str, bytes]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {".dockerconfigjson": json.dumps({"auths": {address: {"auth": auth}}}).encode()}


async def wait_for(kube: KubeClient, namespace: str, name: str, check: Any, timeout: float = 60) -> KubeObject:
    async def done() -> bool:
        return bool(check(await kube.get(API, "OCIRepository", name, namespace=namespace)))

    await eventually(done, timeout=timeout)
    return await kube.get(API, "OCIRepository", name, namespace=namespace)


def ready_reason(reason: str) -> Any:
    def check(o: KubeObject) -> bool:
        ready = c.get(o, c.ConditionType.READY)
        return ready is not None and ready["status"] == "False" and ready["reason"] == reason

    return check


async def test_push_and_pull_over_tls_with_basic_auth(
    kube: KubeClient, namespace: str, controller: Controller, private: OciRegistry, tls: TlsFiles, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "src", {"app/cm.yaml": "kind: ConfigMap\n"})
    target = f"oci://{private.address}/apps/private:v1"
    tls_flags = [f"--ca-file={tls.ca_cert}"]
    digest = await push(target, src, extra=tls_flags, env={"GITOPS_MESH_REGISTRY_CREDS": f"{USER}:{PASSWORD}"})
    assert digest.startswith("sha256:")
    with pytest.raises(subprocess.CalledProcessError) as anonymous:
        await push(target, src, extra=tls_flags)
    assert b"HTTP 401" in anonymous.value.stderr
    with pytest.raises(subprocess.CalledProcessError) as untrusted:
        await push(target, src, extra=[], env={"GITOPS_MESH_REGISTRY_CREDS": f"{USER}:{PASSWORD}"})
    assert b"certificate" in untrusted.value.stderr.lower()

    await kube.create(
        secret("pull", namespace, docker_config(private.address, USER, PASSWORD), "kubernetes.io/dockerconfigjson")
    )
    await kube.create(
        secret("wrong", namespace, docker_config(private.address, USER, "nope"), "kubernetes.io/dockerconfigjson")
    )
    await kube.create(secret("ca", namespace, {"ca.crt": tls.ca_pem}))
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "puller", "namespace": namespace},
            "imagePullSecrets": [{"name": "absent-entry"}, {"name": "pull"}],
        }
    )
    await kube.create(secret("absent-entry", namespace, docker_config("other.example.com", "x", "y")))
    url = f"oci://{private.address}/apps/private"

    def ocirepo(name: str, **spec: Any) -> KubeObject:
        base = {"url": url, "interval": "10m", "ref": {"tag": "v1"}, "certSecretRef": {"name": "ca"}}
        return {
            "apiVersion": API,
            "kind": "OCIRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {**base, **spec},
        }

    await kube.create(ocirepo("by-secret", secretRef={"name": "pull"}))
    await kube.create(ocirepo("by-account", serviceAccountName="puller"))
    for name in ("by-secret", "by-account"):
        ok = await wait_for(kube, namespace, name, c.is_ready)
        assert ok["status"]["artifact"]["revision"] == f"v1@{digest}"

    await kube.create(ocirepo("wrong-password", secretRef={"name": "wrong"}))
    wrong = await wait_for(kube, namespace, "wrong-password", ready_reason("OCIArtifactPullFailed"))
    assert "HTTP 401" in c.get(wrong, "Ready")["message"]  # type: ignore[index]
    await kube.create(ocirepo("anonymous"))
    await wait_for(kube, namespace, "anonymous", ready_reason("OCIArtifactPullFailed"))
    no_ca_spec = {k: v for k, v in ocirepo("no-ca")["spec"].items() if k != "certSecretRef"}
    await kube.create({**ocirepo("no-ca"), "spec": {**no_ca_spec, "secretRef": {"name": "pull"}}})
    no_ca = await wait_for(kube, namespace, "no-ca", ready_reason("OCIArtifactPullFailed"))
    assert "certificate" in c.get(no_ca, "Ready")["message"].lower()  # type: ignore[index]
    await kube.create(ocirepo("bad-ca", certSecretRef={"name": "pull"}))
    await wait_for(kube, namespace, "bad-ca", ready_reason("OCIArtifactPullFailed"))

    everything = json.dumps((await kube.list(API, "OCIRepository", namespace=namespace)).items)
    assert "wrong-password" in everything
    events = json.dumps([e.message for e in controller.events], default=str)
    for text in (everything, events, controller.log.read_text()):
        assert PASSWORD not in text
        assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text
