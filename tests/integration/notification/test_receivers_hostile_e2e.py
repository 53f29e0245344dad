"""The Receiver server against hostile callers, over real HTTP on loopback: generic answers with the detail only
in the log, deeply nested CDEvents, and generic-hmac replay protection."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable

import pytest

from gitops_mesh.kube import KubeClient
from tests.integration.notification.conftest import Controller, make_secret
from tests.integration.notification.test_receivers_e2e import (
    BODY,
    TOKEN,
    make_receiver,
    make_repo,
    post,
    requested_at,
    wait_ready,
)

pytestmark = pytest.mark.stack

Factory = Callable[..., Awaitable[Controller]]


def refusals(ctl: Controller) -> list[str]:
    return [str(line.get("why")) for line in ctl.log_lines() if line.get("event") == "receiver request refused"]


async def test_errors_are_answered_with_the_code_and_a_generic_reason_only(
    kube: KubeClient, namespace: str, controller_factory: Factory
) -> None:
    await make_secret(kube, namespace, "token", {"token": TOKEN})
    # A target in a namespace the caller has no business learning about, and one that does not exist.
    hidden = f"{namespace}-elsewhere"
    path = await make_receiver(
        kube,
        namespace,
        "leaky",
        "generic",
        resources=[{"kind": "GitRepository", "name": "secret-repo", "namespace": hidden}],
    )
    cde = await make_receiver(kube, namespace, "cde", "cdevents")
    hmac_path = await make_receiver(kube, namespace, "hmac", "generic-hmac")
    ctl = await controller_factory()
    for name in ("leaky", "cde", "hmac"):
        await wait_ready(kube, namespace, name)

    assert await post(ctl.receiver_port, path) == (400, "Bad Request")
    assert await post(ctl.receiver_port, hmac_path, {"X-Signature": "sha256=00"}) == (400, "Bad Request")
    assert await post(ctl.receiver_port, "/hook/" + "0" * 64) == (404, "Not Found")
    # A body nested 100,000 deep: refused as not JSON (400), not a RecursionError (500).
    assert await post(ctl.receiver_port, cde, {"Ce-Type": "x"}, b"[" * 100_000) == (400, "Bad Request")
    # The detail — the apiserver's words about the other namespace — is in the log, with the Receiver.
    logged = refusals(ctl)
    assert any(hidden in why and "secret-repo" in why for why in logged), logged
    assert any("HMAC" in why for why in logged), logged
    assert any("not JSON" in why for why in logged), logged


def signed(stamp: str, body: bytes = BODY) -> dict[str, str]:
    """As the notification README shows a sender computing it."""
    digest = hmac.new(TOKEN.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "X-Signature-Timestamp": stamp}


async def test_generic_hmac_replay_protection(kube: KubeClient, namespace: str, controller_factory: Factory) -> None:
    await make_secret(kube, namespace, "token", {"token": TOKEN})
    await make_repo(kube, namespace, "app")
    path = await make_receiver(kube, namespace, "hmac", "generic-hmac")
    ctl = await controller_factory("--receiver-replay-window=5m")
    await wait_ready(kube, namespace, "hmac")
    port = ctl.receiver_port

    # Flux's body-only signature is not enough once the window is on.
    flux = {"X-Signature": "sha256=" + hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()}
    assert await post(port, path, flux) == (400, "Bad Request")
    # A request captured an hour ago, and the same with a fresh (unsigned) timestamp.
    old = signed(str(int(time.time()) - 3600))
    assert await post(port, path, old) == (400, "Bad Request")
    assert await post(port, path, {**old, "X-Signature-Timestamp": str(int(time.time()))}) == (400, "Bad Request")
    assert await requested_at(kube, namespace, "app") is None

    fresh = signed(str(int(time.time())))
    assert await post(port, path, fresh) == (200, "ok")
    first = await requested_at(kube, namespace, "app")
    assert first
    # The same request again, inside the window: a replay.
    assert await post(port, path, fresh) == (400, "Bad Request")
    assert await requested_at(kube, namespace, "app") == first
    assert any("replayed" in why for why in refusals(ctl))
