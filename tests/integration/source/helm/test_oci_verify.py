"""HelmChart spec.verify end to end: podinfo chart versions pushed with the real ``helm push`` to the stack's
registry, their manifest digests signed as ``cosign sign --key`` does (:mod:`tests.support.cosign`), source- and
helm-controller as processes (the helm tests' ``running`` mesh).

A signed version is verified (SourceVerified=True, Flux's message) and stored; an unsigned one, one signed by a
key the Secret does not hold, and a Secret with no ``*.pub`` key are refused with Flux's reasons, nothing stored,
a ``failed`` on the bus; a chart that was verified keeps its stored artifact when its next version does not verify.
A HelmRelease with ``chart.spec.verify`` installs the signed chart through the HelmChart it writes.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from gitops_mesh.bus.envelope import Event
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.oci import RegistryClient, Transport, parse_repository
from gitops_mesh.reconcile import conditions as c
from tests.integration.helm.test_chartref_oci import Charts
from tests.integration.helm.test_chartref_oci import registry as registry  # the fixture
from tests.integration.helm.test_helmrelease import HR, Running, condition, until
from tests.integration.helm.test_helmrelease import running as running  # the fixture
from tests.integration.source.controller.test_helm import get, helmchart, helmrepo, wait_failed, wait_ready
from tests.support.cosign import Signer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

VERIFY = {"provider": "cosign", "secretRef": {"name": "cosign-keys"}}


def keys_secret(name: str, namespace: str, **pems: bytes) -> KubeObject:
    data = {key: base64.b64encode(pem).decode() for key, pem in pems.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "data": data}


def verified_mark(obj: KubeObject) -> tuple[str, str, str]:
    mark = c.get((obj.get("status") or {}).get("conditions") or [], c.ConditionType.SOURCE_VERIFIED)
    assert mark is not None, obj.get("status")
    return mark["status"], mark["reason"], mark["message"]


async def test_oci_charts_are_verified_with_cosign_keys_and_a_helmrelease_installs_a_signed_one(
    kube: KubeClient, namespace: str, registry: str, running: Running, stack_env: dict[str, str], tmp_path: Path
) -> None:
    run = running
    charts = Charts(stack_env["HELM"], registry, namespace, tmp_path / "charts")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        await charts.push(version, "6.0.0")
    repo = parse_repository(f"{charts.url}/podinfo")
    signer, stranger = Signer(), Signer()
    async with aiohttp.ClientSession() as http:
        client = RegistryClient(http, registry, transport=Transport(insecure=True))
        digests = {v: (await client.resolve(repo, v)).digest for v in ("1.0.0", "1.1.0", "1.2.0")}
        await signer.sign(client, repo, digests["1.0.0"])
        await stranger.sign(client, repo, digests["1.2.0"])  # 1.1.0 stays unsigned
    await kube.create(keys_secret("cosign-keys", namespace, **{"cosign.pub": signer.public_pem}))
    await kube.create(keys_secret("no-keys", namespace, **{"readme.txt": b"no public key here"}))
    await kube.create(helmrepo("oci", namespace, charts.url, type="oci", insecure=True))

    # Signed by a trusted key: verified, pulled by the verified digest, stored.
    await kube.create(
        helmchart("signed", namespace, "podinfo", "HelmRepository", "oci", version="1.0.0", verify=VERIFY)
    )
    signed = await wait_ready(kube, "HelmChart", namespace, "signed", "1.0.0")
    assert verified_mark(signed) == ("True", "Succeeded", "verified signature of version 1.0.0")
    assert c.get_reason(signed, "Ready") == "ChartPullSucceeded"

    # Unsigned, or signed by a key the Secret does not hold: ChartVerificationError, nothing stored.
    for name, version in (("unsigned", "1.1.0"), ("stranger", "1.2.0")):
        await kube.create(
            helmchart(name, namespace, "podinfo", "HelmRepository", "oci", version=version, verify=VERIFY)
        )
        bad = await wait_failed(kube, "HelmChart", namespace, name, "ChartVerificationError")
        status, reason, message = verified_mark(bad)
        assert (status, reason) == ("False", "VerificationError")
        assert message.startswith(f"chart verification error: failed to verify oci://{repo}:{version}: ")
        assert c.get_reason(bad, "BuildFailed") == "ChartVerificationError"
        assert "artifact" not in bad["status"]
        failed = await until(run, f"failed on the bus for {name}", _failed(run, name))
        assert failed[-1].reason == "ChartVerificationError"

    # A Secret without '*.pub' keys: the verifier cannot be made (Flux's VerificationError).
    no_keys = {"provider": "cosign", "secretRef": {"name": "no-keys"}}
    await kube.create(
        helmchart("nokeys", namespace, "podinfo", "HelmRepository", "oci", version="1.0.0", verify=no_keys)
    )
    bad = await wait_failed(kube, "HelmChart", namespace, "nokeys", "VerificationError")
    assert verified_mark(bad)[2] == (
        f"failed to verify the signature using provider 'cosign': no public keys found in secret '{namespace}/no-keys'"
    )
    assert "artifact" not in bad["status"]

    # The verified chart moved to an unsigned version: refused, the verified 1.0.0 stays stored and served.
    await kube.patch(
        "source.toolkit.fluxcd.io/v1", "HelmChart", "signed", {"spec": {"version": "1.1.0"}}, namespace=namespace
    )
    kept = await wait_failed(kube, "HelmChart", namespace, "signed", "ChartVerificationError")
    assert kept["status"]["artifact"]["revision"] == "1.0.0"
    assert verified_mark(kept)[0] == "False"

    # A HelmRelease with chart.spec.verify: its HelmChart verifies, the signed chart is installed.
    spec = {"chart": "podinfo", "version": "1.0.0", "sourceRef": {"kind": "HelmRepository", "name": "oci"}}
    await kube.create(
        {
            "apiVersion": HR,
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"interval": "10m", "timeout": "1m", "chart": {"spec": {**spec, "verify": VERIFY}}},
        }
    )

    async def installed() -> KubeObject | None:
        obj = await kube.get(HR, "HelmRelease", "web", namespace=namespace)
        history = (obj.get("status") or {}).get("history") or []
        ready = condition(obj, "Ready").get("status") == "True"
        return obj if ready and history and history[0].get("chartVersion") == "1.0.0" else None

    await until(run, "installed the signed chart", installed, timeout=90)
    chart = await get(kube, "HelmChart", namespace, f"{namespace}-web")
    assert chart["spec"]["verify"] == VERIFY
    assert verified_mark(chart) == ("True", "Succeeded", "verified signature of version 1.0.0")
    [listed] = await run.helm("list", "-n", namespace)
    assert listed["chart"] == "podinfo-1.0.0"


def _failed(run: Running, name: str) -> Callable[[], Awaitable[list[Event]]]:
    """A check for ``until``: the ``failed`` bus events about the HelmChart ``name`` so far."""

    async def of() -> list[Event]:
        return run.bus.of("failed", name)

    return of
