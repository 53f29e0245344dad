"""Provider transport options against real servers: a CA from certSecretRef (HTTPS), a proxy from proxySecretRef."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import pytest

from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from gitops_mesh_dev.gitserver import TlsFiles
from tests.integration.conftest import eventually
from tests.integration.notification.conftest import (
    Bus,
    Controller,
    applied,
    make_alert,
    make_provider,
    make_secret,
    wait_for,
)
from tests.support.sink import Sink

pytestmark = pytest.mark.stack


async def test_https_with_the_ca_from_cert_secret_ref(
    kube: KubeClient,
    namespace: str,
    bus: Bus,
    sinks: Callable[..., Awaitable[Sink]],
    sink_tls: TlsFiles,
    controller_factory: Callable[..., Awaitable[Controller]],
) -> None:
    sink = await sinks(tls=sink_tls)
    await make_secret(kube, namespace, "ca", {"ca.crt": sink_tls.ca_pem.decode()})
    await make_provider(
        kube, namespace, "trusted", type="generic", address=f"{sink.url}/trusted", certSecretRef={"name": "ca"}
    )
    await make_alert(kube, namespace, "trusted", "trusted")
    await make_provider(kube, namespace, "untrusted", type="generic", address=f"{sink.url}/untrusted")
    await make_alert(kube, namespace, "untrusted", "untrusted")
    ctl = await controller_factory("--delivery-hold=2s")
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: len(sink.ok()) >= 1, 30, "the HTTPS delivery", ctl)

    async def tls_refused() -> bool:
        return await ctl.metric("gitops_notification_delivery_attempts_total", outcome="retry") >= 1

    await eventually(tls_refused, timeout=20)
    assert [r.path for r in sink.requests] == ["/trusted"]


async def test_proxy_from_proxy_secret_ref(
    kube: KubeClient,
    namespace: str,
    bus: Bus,
    sinks: Callable[..., Awaitable[Sink]],
    controller_factory: Callable[..., Awaitable[Controller]],
) -> None:
    proxy = await sinks()
    await make_secret(kube, namespace, "proxy", {"address": proxy.url, "username": "u", "password": "p"})
    await make_provider(
        kube,
        namespace,
        "via-proxy",
        type="generic",
        address="http://hooks.invalid/flux",
        proxySecretRef={"name": "proxy"},
    )
    await make_alert(kube, namespace, "via-proxy", "via-proxy")
    ctl = await controller_factory()
    await bus.publish(Topic.APPLIED, applied("podinfo", namespace))
    await wait_for(lambda: len(proxy.ok()) >= 1, 30, "the proxied delivery", ctl)
    got = proxy.requests[0]
    assert got.path == "/flux"
    assert got.headers["Host"] == "hooks.invalid"
    assert got.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert got.json()["involvedObject"]["name"] == "podinfo"
