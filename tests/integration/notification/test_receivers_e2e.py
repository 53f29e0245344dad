"""Receivers against the real apiserver and Kafka: webhook paths, valid and forged requests, and Flux's answers."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gitops_mesh.bus.consumer import Consumer, RecordMeta
from gitops_mesh.bus.envelope import Event
from gitops_mesh.bus.topics import Topic
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import REQUESTED_AT
from notification_controller.receivers import webhook_path
from tests.integration.conftest import eventually
from tests.integration.notification.conftest import Bus, Controller, make_secret

pytestmark = pytest.mark.stack

RECEIVER_API = "notification.toolkit.fluxcd.io/v1"
GIT_API = "source.toolkit.fluxcd.io/v1"
TOKEN = "receiver-token-9f8e"
BODY = b'{"ref":"refs/heads/main","repository":{"full_name":"acme/app"}}'


async def make_repo(kube: KubeClient, namespace: str, name: str, labels: dict[str, str] | None = None) -> None:
    await kube.create(
        {
            "apiVersion": GIT_API,
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"url": "https://example.com/repo.git", "interval": "10m"},
        }
    )


async def make_receiver(kube: KubeClient, namespace: str, name: str, rtype: str, **spec: Any) -> str:
    spec.setdefault("resources", [{"kind": "GitRepository", "name": "app"}])
    await kube.create(
        {
            "apiVersion": RECEIVER_API,
            "kind": "Receiver",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": rtype, "secretRef": {"name": "token"}, **spec},
        }
    )
    return webhook_path(TOKEN, name, namespace)


async def requested_at(kube: KubeClient, namespace: str, name: str) -> str | None:
    obj = await kube.get(GIT_API, "GitRepository", name, namespace=namespace)
    return ((obj["metadata"].get("annotations")) or {}).get(REQUESTED_AT)


@pytest.fixture
async def requests_seen(bus: Bus, unique: str) -> AsyncIterator[list[Event]]:
    seen: list[Event] = []

    async def record(event: Event, _: RecordMeta) -> None:
        seen.append(event)

    consumer = Consumer(
        bootstrap=bus.bootstrap,
        group_id=f"{unique}-observer",
        topics=[Topic.RECONCILE_REQUESTS],
        names=bus.topics,
        handler=record,
        producer=bus.producer,
        offset_reset="earliest",
    )
    await consumer.start()
    yield seen
    await consumer.stop()


async def post(port: int, path: str, headers: dict[str, str] | None = None, body: bytes = BODY) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}{path}", data=body, headers=headers) as r,
    ):
        return r.status, await r.text()


async def wait_ready(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    found: list[KubeObject] = []

    async def ready() -> bool:
        obj = await kube.get(RECEIVER_API, "Receiver", name, namespace=namespace)
        found[:] = [obj]
        return c.is_ready(obj)

    await eventually(ready, timeout=30)
    return found[0]


async def test_receivers_validate_and_request_reconciles(
    kube: KubeClient,
    namespace: str,
    bus: Bus,
    controller_factory: Callable[..., Awaitable[Controller]],
    requests_seen: list[Event],
) -> None:
    await make_secret(kube, namespace, "token", {"token": TOKEN})
    await make_repo(kube, namespace, "app")
    await make_repo(kube, namespace, "labelled", {"team": "a"})
    await make_repo(kube, namespace, "unlabelled")
    hmac_path = await make_receiver(kube, namespace, "hmac", "generic-hmac")
    gh_path = await make_receiver(
        kube,
        namespace,
        "gh",
        "github",
        events=["push"],
        resources=[{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "a"}}],
    )
    gl_path = await make_receiver(kube, namespace, "gl", "gitlab", events=["Push Hook"])
    paused = await make_receiver(kube, namespace, "paused", "generic")
    ctl = await controller_factory()
    port = ctl.receiver_port
    receiver = await wait_ready(kube, namespace, "hmac")
    assert receiver["status"]["webhookPath"] == hmac_path
    assert c.get_message(receiver, "Ready") == f"Receiver initialized for path: {hmac_path}"
    for name in ("gh", "gl", "paused"):
        await wait_ready(kube, namespace, name)

    # Unknown path, forged signature, wrong token, event not allowed: refused, nothing annotated.
    assert (await post(port, "/hook/" + "0" * 64))[0] == 404
    forged = "sha256=" + hmac.new(b"guess", BODY, hashlib.sha256).hexdigest()
    assert (await post(port, hmac_path, {"X-Signature": forged}))[0] == 400
    assert (await post(port, hmac_path))[0] == 400
    assert (await post(port, gl_path, {"X-Gitlab-Token": "nope", "X-Gitlab-Event": "Push Hook"}))[0] == 400
    gh_sig = "sha256=" + hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()
    assert (await post(port, gh_path, {"X-Hub-Signature-256": gh_sig, "X-GitHub-Event": "issues"}))[0] == 400
    assert await requested_at(kube, namespace, "app") is None
    assert await requested_at(kube, namespace, "labelled") is None

    # GitHub's ping is answered without reconciling anything.
    assert (await post(port, gh_path, {"X-Hub-Signature-256": gh_sig, "X-GitHub-Event": "ping"}))[0] == 200
    assert await requested_at(kube, namespace, "labelled") is None

    # Valid requests annotate their targets and announce them on the bus.
    signed = "sha256=" + hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()
    assert await post(port, hmac_path, {"X-Signature": signed}) == (200, "ok")
    first = await requested_at(kube, namespace, "app")
    assert first
    assert (await post(port, gl_path, {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"}))[0] == 200
    assert await requested_at(kube, namespace, "app") != first
    assert (await post(port, gh_path, {"X-Hub-Signature-256": gh_sig, "X-GitHub-Event": "push"}))[0] == 200
    assert await requested_at(kube, namespace, "labelled")
    assert await requested_at(kube, namespace, "unlabelled") is None

    async def announced() -> bool:
        names = [e.involved_object.name for e in requests_seen]
        return names.count("app") >= 2 and "labelled" in names

    await eventually(announced, timeout=20)
    assert all(e.kind == "reconcile-requested" and e.involved_object.kind == "GitRepository" for e in requests_seen)

    # Suspended: 503 (a Receiver created suspended has no path yet: 404). Too large: 413.
    assert (await post(port, paused))[0] == 200
    await kube.patch(RECEIVER_API, "Receiver", "paused", {"spec": {"suspend": True}}, namespace=namespace)

    async def refused() -> bool:
        return (await post(port, paused))[0] == 503

    await eventually(refused, timeout=10)
    assert (await post(port, hmac_path, {"X-Signature": signed}, body=b"x" * (6 << 20)))[0] == 413
    assert await ctl.metric("gitops_notification_receiver_requests_total", type="generic-hmac", code="400") == 2


CDEVENT: dict[str, Any] = {
    "context": {
        "specversion": "0.4.1",
        "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
        "source": "/ci/pipelines/42",
        "type": "dev.cdevents.change.merged.0.2.0",
        "timestamp": "2023-03-20T14:27:05.315384Z",
    },
    "subject": {"id": "change-7", "source": "/ci/pipelines/42", "type": "change", "content": {}},
}


async def test_cdevents_receiver_validates_the_cdevent_and_filters_on_ce_type(
    kube: KubeClient,
    namespace: str,
    controller_factory: Callable[..., Awaitable[Controller]],
) -> None:
    await make_secret(kube, namespace, "token", {"token": TOKEN})
    await make_repo(kube, namespace, "app")
    path = await make_receiver(kube, namespace, "cde", "cdevents", events=["cd.change.merged.v1"])
    ctl = await controller_factory()
    port = ctl.receiver_port
    await wait_ready(kube, namespace, "cde")
    body = json.dumps(CDEVENT).encode()

    # Not a CDEvent, an unknown event type, a Ce-Type outside spec.events: 400, nothing annotated.
    assert (await post(port, path, {"Ce-Type": "cd.change.merged.v1"}))[0] == 400
    unknown = {**CDEVENT, "context": {**CDEVENT["context"], "type": "dev.cdevents.foo.bar.0.1.0"}}
    assert (await post(port, path, {"Ce-Type": "cd.change.merged.v1"}, json.dumps(unknown).encode()))[0] == 400
    assert (await post(port, path, {"Ce-Type": "cd.environment.modified.v1"}, body))[0] == 400
    assert (await post(port, path, {}, body))[0] == 400
    assert await requested_at(kube, namespace, "app") is None

    # A valid CDEvent whose Ce-Type is allowed (case-insensitively), with no token: the target reconciles.
    headers = {"Ce-Type": "CD.Change.Merged.v1", "Ce-Specversion": "1.0", "Content-Type": "application/json"}
    assert await post(port, path, headers, body) == (200, "ok")
    assert await requested_at(kube, namespace, "app")
    assert await ctl.metric("gitops_notification_receiver_requests_total", type="cdevents", code="400") == 4
    assert await ctl.metric("gitops_notification_receiver_requests_total", type="cdevents", code="200") == 1


WATCH_LABELS = {"reconcile.fluxcd.io/watch": "Enabled"}


async def make_token(kube: KubeClient, namespace: str, labels: dict[str, str] | None = None) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": namespace, "labels": labels or {}},
            "stringData": {"token": TOKEN},
        }
    )


def retries_logged(ctl: Controller, name: str) -> list[float]:
    """The delays the runner gave each failed reconcile of the Receiver ``name``, in order."""
    return [
        float(str(line.get("retry_in")))
        for line in ctl.log_lines()
        if line.get("event") == "reconcile failed; retrying" and f"'{name}'" in str(line.get("key"))
    ]


async def get_receiver(kube: KubeClient, namespace: str, name: str) -> KubeObject:
    return await kube.get(RECEIVER_API, "Receiver", name, namespace=namespace)


def waits_for_its_token(receiver: KubeObject) -> bool:
    """Flux's TokenNotFound: not Ready, no path, retried (never Stalled: a Secret fixes it, not an edit)."""
    return (
        c.is_false(receiver, "Ready")
        and c.get_reason(receiver, "Ready") == "TokenNotFound"
        and not c.is_stalled(receiver)
        and "webhookPath" not in (receiver.get("status") or {})
    )


async def test_a_labelled_token_secret_created_later_readies_the_receiver_at_once(
    kube: KubeClient, namespace: str, controller_factory: Callable[..., Awaitable[Controller]]
) -> None:
    await make_repo(kube, namespace, "app")
    path = await make_receiver(kube, namespace, "late", "generic")
    ctl = await controller_factory()

    async def backed_off() -> bool:
        retries = retries_logged(ctl, "late")
        return bool(retries) and retries[-1] >= 10

    # The queue's backoff doubles per failure: wait until the next retry is far away.
    await eventually(backed_off, timeout=60, interval=0.5)
    assert waits_for_its_token(await get_receiver(kube, namespace, "late"))
    assert (await post(ctl.receiver_port, path))[0] == 404
    await make_token(kube, namespace, WATCH_LABELS)

    async def ready() -> bool:
        return c.is_ready(await get_receiver(kube, namespace, "late"))

    await eventually(ready, timeout=5)  # well before the retry that was 10 s or more away
    receiver = await get_receiver(kube, namespace, "late")
    assert receiver["status"]["webhookPath"] == path
    assert await post(ctl.receiver_port, path) == (200, "ok")
    assert await requested_at(kube, namespace, "app")


async def test_an_unlabelled_token_secret_created_later_is_found_by_the_retry(
    kube: KubeClient, namespace: str, controller_factory: Callable[..., Awaitable[Controller]]
) -> None:
    path = await make_receiver(kube, namespace, "plain", "generic")
    ctl = await controller_factory()

    async def failed() -> bool:
        return waits_for_its_token(await get_receiver(kube, namespace, "plain")) and bool(retries_logged(ctl, "plain"))

    await eventually(failed, timeout=30)
    await make_token(kube, namespace)

    async def ready() -> bool:
        receiver = await get_receiver(kube, namespace, "plain")
        assert not c.is_stalled(receiver), receiver["status"]
        return c.is_ready(receiver)

    await eventually(ready, timeout=60, interval=0.2)
    assert (await get_receiver(kube, namespace, "plain"))["status"]["webhookPath"] == path
