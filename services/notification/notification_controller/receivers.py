"""Receivers: webhooks (GitHub, GitLab, generic, HMAC, ...) that make Flux objects reconcile at once.

A Receiver (notification.toolkit.fluxcd.io/v1) is reconciled like any Flux object (KindRunner): its
``status.webhookPath`` is ``/hook/`` + hex(sha256(token + name + namespace)) with the token from its
Secret, and it is Ready once that is known. A Secret missing or without a ``token`` is Flux's
TokenNotFound: the path is cleared and the Receiver retried (never Stalled: a Secret fixes it, no edit
of the Receiver needed); a Secret labelled ``reconcile.fluxcd.io/watch: Enabled`` wakes its Receivers at
once when it appears or changes (:func:`receiver_secrets`). The server on ``--receiver-addr`` answers ``POST
/hook/<digest>`` as Flux does:

* 404 when no Receiver has that path; 503 when it is suspended or not Ready;
* 400 when the request does not validate (a wrong signature or token is a 400 as in Flux, not a 401, so
  a prober learns nothing more from it), the event type is not in ``spec.events``, or a target could not
  be annotated; 413 for a body over ``--receiver-max-body``;
* 200 otherwise, after ``reconcile.fluxcd.io/requestedAt`` was set on every target (``name`` or ``*``
  with ``matchLabels``) and a ``reconcile-requested`` event went on ``<prefix>reconcile-requests``, so
  the owning controller reacts without waiting for the watch.

Callers are not authenticated until their request validates, and a target's error may be the apiserver's
about another namespace: an error is answered with its status code and the code's generic reason only
("Bad Request"); the detail is logged with the Receiver's name.

Signatures are compared in constant time (``hmac.compare_digest``). Validation is pure
(:func:`validate`); the handler does the I/O around it.

``cdevents`` (CDEvents over the CloudEvents HTTP binary binding) is validated as Flux does: no token is
checked (the secret path is the only credential), the body must be a valid CDEvent of the spec v0.4
vocabulary (:func:`check_cdevent`), and ``spec.events`` filters on the ``Ce-Type`` header, not on the
body's ``context.type``. The body is parsed by orjson, whose C parser refuses nesting past 1,024 levels
(a 400, where the standard library's recursion would fail the request with a 500); its size is capped by
``--receiver-max-body`` before it is read.

generic-hmac Receivers may require a signed timestamp (:mod:`.replay`, ``--receiver-replay-window``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from gitops_mesh.bus.envelope import EventKind, ObjectRef, Severity, build_event
from gitops_mesh.bus.producer import Publisher
from gitops_mesh.bus.topics import Topic
from gitops_mesh.errors import ApiError, GitopsMeshError, InvalidSpec, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.kube.selectors import parse_selector
from gitops_mesh.observability import metrics
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import REQUESTED_AT, Outcome
from gitops_mesh.runner import interval_of
from gitops_mesh.watches import ref_key
from notification_controller.replay import TIMESTAMP_HEADER, SeenSignatures, signed_payload, timestamp_problem
from notification_controller.resolver import SecretCache
from notification_controller.unsupported import RECEIVER, refuse_unsupported

log = get_logger(__name__)

RECEIVER_API_VERSION = "notification.toolkit.fluxcd.io/v1"
RECEIVER_KIND = "Receiver"
HOOK_PREFIX = "/hook/"
WEBHOOK_PATH_INDEX = "webhook-path"
#: The Receiver cache's index of the Secret each Receiver reads its token from: ``Secret/<ns>/<name>``.
SECRET_REF_INDEX = "secret-ref"
#: Flux's reason for a token that cannot be read.
TOKEN_NOT_FOUND = "TokenNotFound"
DEFAULT_MAX_BODY = 5 << 20

#: apiVersion of a target kind when the Receiver's resource names none (Flux's served versions).
DEFAULT_API_VERSIONS = {
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1",
    "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
    "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1beta2",
    "ImagePolicy": "image.toolkit.fluxcd.io/v1beta2",
    "ImageUpdateAutomation": "image.toolkit.fluxcd.io/v1beta2",
}

_HMAC_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}

#: The CDEvents spec v0.4 vocabulary (``<subject>.<predicate>`` -> the event's version), the one Flux
#: decodes a ``cdevents`` Receiver's body with. A body of another kind, or of another major version, is
#: refused.
CDEVENT_TYPES = {
    "artifact.deleted": "0.1.0",
    "artifact.downloaded": "0.1.0",
    "artifact.packaged": "0.2.0",
    "artifact.published": "0.2.0",
    "artifact.signed": "0.2.0",
    "branch.created": "0.2.0",
    "branch.deleted": "0.2.0",
    "build.finished": "0.2.0",
    "build.queued": "0.2.0",
    "build.started": "0.2.0",
    "change.abandoned": "0.2.0",
    "change.created": "0.3.0",
    "change.merged": "0.2.0",
    "change.reviewed": "0.2.0",
    "change.updated": "0.2.0",
    "environment.created": "0.2.0",
    "environment.deleted": "0.2.0",
    "environment.modified": "0.2.0",
    "incident.detected": "0.2.0",
    "incident.reported": "0.2.0",
    "incident.resolved": "0.2.0",
    "pipelinerun.finished": "0.2.0",
    "pipelinerun.queued": "0.2.0",
    "pipelinerun.started": "0.2.0",
    "repository.created": "0.2.0",
    "repository.deleted": "0.2.0",
    "repository.modified": "0.2.0",
    "service.deployed": "0.2.0",
    "service.published": "0.2.0",
    "service.removed": "0.2.0",
    "service.rolledback": "0.2.0",
    "service.upgraded": "0.2.0",
    "taskrun.finished": "0.2.0",
    "taskrun.started": "0.2.0",
    "testcaserun.finished": "0.2.0",
    "testcaserun.queued": "0.2.0",
    "testcaserun.skipped": "0.1.0",
    "testcaserun.started": "0.2.0",
    "testoutput.published": "0.2.0",
    "testsuiterun.finished": "0.2.0",
    "testsuiterun.queued": "0.2.0",
    "testsuiterun.started": "0.2.0",
    "ticket.closed": "0.1.0",
    "ticket.created": "0.1.0",
    "ticket.updated": "0.1.0",
}
_CDEVENT_TYPE = re.compile(r"^dev\.cdevents\.([a-z]+)\.([a-z]+)\.(\d+)\.(\d+)\.(\d+)(?:-\S+)?$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def webhook_path(token: str, name: str, namespace: str) -> str:
    return HOOK_PREFIX + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


# ---- validation (pure) ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a request to a Receiver amounts to: act (annotate), answer without acting (ping), or refuse."""

    valid: bool
    act: bool = True
    message: str = ""

    @classmethod
    def ok(cls, message: str = "") -> Verdict:
        return cls(True, True, message)

    @classmethod
    def pong(cls, message: str) -> Verdict:
        return cls(True, False, message)

    @classmethod
    def refuse(cls, message: str) -> Verdict:
        return cls(False, False, message)


def check_hmac(header: str, body: bytes, token: str) -> bool:
    """``<algo>=<hex>`` (sha1, sha256 or sha512) over the body with the token, compared in constant time."""
    algo, sep, given = header.partition("=")
    digest = _HMAC_ALGORITHMS.get(algo.strip().lower())
    if not sep or digest is None:
        return False
    expected = hmac.new(token.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def check_cdevent(body: bytes) -> str | None:
    """Why ``body`` is not a valid CDEvent (spec v0.4, as Flux's SDK decodes and validates it), else None.

    The envelope: a JSON object with ``context`` (non-empty ``specversion``, ``id``, ``source``, ``type``;
    an RFC 3339 ``timestamp``) and ``subject`` (non-empty ``id``, an object ``content``), optionally
    ``customData`` (an object or a string) and ``customDataContentType`` (a string). Unknown properties are
    ignored, as the SDK drops them when it decodes the event before validating it. ``context.type`` is
    ``dev.cdevents.<subject>.<predicate>.<semver>`` for an event of the v0.4 vocabulary with the same
    major version.
    """
    try:
        # orjson: nesting past 1,024 levels is a JSONDecodeError, never a RecursionError.
        event = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return f"the body is not JSON: {e}"
    if not isinstance(event, dict):
        return "the body is not a JSON object"
    context, subject = event.get("context"), event.get("subject")
    if not isinstance(context, dict):
        return "missing or invalid 'context'"
    ctype = context.get("type")
    parsed = _CDEVENT_TYPE.match(ctype) if isinstance(ctype, str) else None
    if parsed is None:
        return f"cannot parse event type {ctype!r}"
    known = CDEVENT_TYPES.get(f"{parsed[1]}.{parsed[2]}")
    if known is None:
        return f"unknown event type {ctype}"
    if known.split(".")[0] != parsed[3]:
        return f"sdk event version {known} not compatible with {ctype}"
    for name in ("specversion", "id", "source"):
        if not _nonempty(context.get(name)):
            return f"context.{name} is required"
    timestamp = context.get("timestamp")
    if not isinstance(timestamp, str) or not _RFC3339.match(timestamp):
        return "context.timestamp must be an RFC 3339 date-time"
    if not isinstance(subject, dict):
        return "missing or invalid 'subject'"
    if not _nonempty(subject.get("id")):
        return "subject.id is required"
    if not isinstance(subject.get("content"), dict):
        return "subject.content must be an object"
    for name in ("source", "type"):
        if name in subject and not isinstance(subject[name], str):
            return f"subject.{name} must be a string"
    if "customData" in event and not isinstance(event["customData"], dict | str):
        return "customData must be an object or a string"
    if "customDataContentType" in event and not isinstance(event["customDataContentType"], str):
        return "customDataContentType must be a string"
    return None


def _allowed(event: str, events: Iterable[str]) -> bool:
    wanted = [e.lower() for e in events]
    return not wanted or event.lower() in wanted


def validate(
    receiver_type: str,
    headers: Mapping[str, str],
    body: bytes,
    token: str,
    events: Iterable[str] = (),
    *,
    replay_window: float = 0.0,
    now: float = 0.0,
) -> Verdict:
    """Flux's checks for one Receiver type (headers looked up case-insensitively by the caller's mapping).

    ``replay_window`` > 0: a generic-hmac request signs ``<timestamp>.<body>`` and its timestamp must be
    within the window of ``now`` (see :mod:`.replay`).
    """
    match receiver_type:
        case "generic":
            return Verdict.ok()
        case "generic-hmac":
            stamp = headers.get(TIMESTAMP_HEADER, "")
            signed = signed_payload(stamp, body) if replay_window > 0 and stamp.isascii() else body
            if not check_hmac(headers.get("X-Signature", ""), signed, token):
                return Verdict.refuse("unable to validate HMAC signature")
            if replay_window > 0:
                problem = timestamp_problem(stamp, now=now, window=replay_window)
                if problem is not None:
                    return Verdict.refuse(problem)
            return Verdict.ok()
        case "github" | "bitbucket":
            sig256, sig1 = headers.get("X-Hub-Signature-256"), headers.get("X-Hub-Signature")
            signature = sig256 or sig1 or ""
            if sig256 is not None and not sig256.lower().startswith("sha256="):
                return Verdict.refuse("X-Hub-Signature-256 is not sha256=<hex>")
            if not check_hmac(signature, body, token):
                return Verdict.refuse(f"the {receiver_type} signature header is invalid")
            event = headers.get("X-GitHub-Event" if receiver_type == "github" else "X-Event-Key", "")
            if receiver_type == "github" and event == "ping":
                return Verdict.pong("pong")
            if not _allowed(event, events):
                return Verdict.refuse(f"the {receiver_type} event '{event}' is not authorised")
            return Verdict.ok(f"handling {receiver_type} event: {event}")
        case "gitlab":
            given = headers.get("X-Gitlab-Token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return Verdict.refuse("the X-Gitlab-Token header value does not match the receiver token")
            event = headers.get("X-Gitlab-Event", "")
            if not _allowed(event, events):
                return Verdict.refuse(f"the GitLab event '{event}' is not authorised")
            return Verdict.ok(f"handling GitLab event: {event}")
        case "cdevents":
            # As Flux: no token; the body must be a valid CDEvent, and the filter is on the Ce-Type header
            # (the CloudEvents binding's type), compared case-insensitively.
            problem = check_cdevent(body)
            if problem is not None:
                return Verdict.refuse(f"unable to validate CDEvent event: {problem}")
            event = headers.get("Ce-Type", "")
            if not _allowed(event, events):
                return Verdict.refuse(f"the CDEvent '{event}' is not authorised")
            return Verdict.ok(f"handling CDEvent: {event}")
        case "harbor":
            if not hmac.compare_digest(headers.get("Authorization", "").encode(), token.encode()):
                return Verdict.refuse("the Harbor Authorization header value does not match the receiver token")
            return Verdict.ok()
    return Verdict.refuse(f"receiver type '{receiver_type}' is not supported by this controller")


def matches_labels(obj: KubeObject, selector: Mapping[str, str]) -> bool:
    """A resource's ``matchLabels`` against the object; a selector the apiserver would refuse raises InvalidSpec
    (Flux's List with it fails, and the target is reported as not annotated)."""
    return parse_selector({"matchLabels": selector}).selects(obj)


# ---- the Receiver reconciler (status.webhookPath, Ready) -----------------------------------------------


class ReceiverReconciler:
    """Sets ``status.webhookPath`` from the token; Ready once the path is known.

    The Secret is read from the apiserver on every reconcile (not the server's short cache), so the wake
    of a labelled Secret's change, or the retry after a missing one, sees the Secret as it is now.
    """

    api_version = RECEIVER_API_VERSION
    kind = RECEIVER_KIND

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def reconcile(self, obj: KubeObject) -> Outcome:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        refuse_unsupported(spec, RECEIVER)
        secret = (spec.get("secretRef") or {}).get("name") or ""
        if not secret:
            # The only spec problem here: no Secret can fix an empty name, only an edit.
            return Outcome.failed(InvalidSpec("spec.secretRef.name is empty", reason=TOKEN_NOT_FOUND))
        try:
            data = await secret_data(self.kube, meta["namespace"], secret)
        except NotFound:
            return _no_token(obj, f"the receiver's secret '{secret}' does not exist")
        except (ApiError, InvalidSpec) as e:
            # Forbidden (RBAC not granted yet) or unreadable data: the Secret's problem, not the Receiver's.
            return _no_token(obj, f"unable to read token from secret '{meta['namespace']}/{secret}': {e}")
        token = data.get("token", b"").decode("utf-8", "replace").strip()
        if not token:
            return _no_token(obj, f"invalid '{secret}' secret data: required field 'token'")
        path = webhook_path(token, meta["name"], meta["namespace"])
        obj.setdefault("status", {})["webhookPath"] = path
        return Outcome.succeeded(requeue_after=interval_of(obj), message=f"Receiver initialized for path: {path}")

    async def finalize(self, obj: KubeObject) -> None:
        return None


def _no_token(obj: KubeObject, message: str) -> Outcome:
    """Flux's TokenNotFound: no path (the server answers 404 for the old one), retried until the Secret is right."""
    (obj.get("status") or {}).pop("webhookPath", None)
    return Outcome.failed(TransientError(message, reason=TOKEN_NOT_FOUND))


def receiver_secrets(obj: KubeObject) -> list[str]:
    """The index value of the Receiver's token Secret (``Secret/<namespace>/<name>``)."""
    name = ((obj.get("spec") or {}).get("secretRef") or {}).get("name")
    return [ref_key("Secret", (obj.get("metadata") or {}).get("namespace") or "", name)] if name else []


def receiver_paths(obj: KubeObject) -> Iterable[str]:
    path = (obj.get("status") or {}).get("webhookPath")
    return [path] if isinstance(path, str) and path else []


# ---- the server ----------------------------------------------------------------------------------------


@dataclass
class ReceiverServer:
    """The webhook endpoint; targets are annotated with ``kube`` and announced on the bus."""

    kube: KubeClient
    receivers: Informer
    secrets: SecretCache
    publisher: Publisher | None
    instance: str
    controller: str = "notification-controller"
    no_cross_namespace_refs: bool = False
    max_body: int = DEFAULT_MAX_BODY
    #: generic-hmac requests must sign a timestamp this close to now (0: off, as Flux).
    replay_window: float = 0.0
    clock: Callable[[], float] = time.time
    _seen: SeenSignatures = field(init=False)

    def __post_init__(self) -> None:
        self._seen = SeenSignatures(self.replay_window)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post("/hook/{digest}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        found = self.receivers.by_index(WEBHOOK_PATH_INDEX, request.path)
        if not found:
            return self._refuse(request, "unknown", "", 404, "no receiver has this path")
        receiver = found[0]
        meta, spec = receiver["metadata"], receiver.get("spec") or {}
        rtype, key = str(spec.get("type") or ""), f"{meta['namespace']}/{meta['name']}"
        if spec.get("suspend") or not c.is_ready(receiver):
            return self._refuse(request, rtype, key, 503, "receiver is suspended or not ready")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(request, rtype, key, 413, f"request body larger than {self.max_body} bytes")
        try:
            data = await self.secrets.get(meta["namespace"], str((spec.get("secretRef") or {}).get("name") or ""))
        except GitopsMeshError as e:
            return self._refuse(request, rtype, key, 400, f"unable to read token: {e}")
        token = data.get("token", b"").decode("utf-8", "replace").strip()
        now = self.clock()
        window = self.replay_window if rtype == "generic-hmac" else 0.0
        verdict = validate(rtype, request.headers, body, token, spec.get("events") or (), replay_window=window, now=now)
        if not verdict.valid:
            return self._refuse(request, rtype, key, 400, verdict.message)
        if window > 0 and not self._seen.first_time(request.headers.get("X-Signature", ""), now=now):
            return self._refuse(request, rtype, key, 400, "replayed request: this signature was accepted already")
        if not verdict.act:
            return self._answer(rtype, 200, verdict.message)
        errors = await self._request_reconciles(meta["namespace"], key, spec.get("resources") or ())
        if errors:
            return self._refuse(request, rtype, key, 400, "; ".join(errors))
        log.info("receiver handled", receiver=key, type=rtype, detail=verdict.message)
        return self._answer(rtype, 200, "ok")

    def _refuse(self, request: web.Request, rtype: str, key: str, status: int, why: str) -> web.Response:
        """The code and its generic reason to the (unauthenticated) caller; the detail to the log only."""
        # An unknown path is any scanner's first try: not worth a warning each.
        level = log.info if status == 404 else log.warning
        level("receiver request refused", receiver=key or None, code=status, why=why, remote=request.remote)
        return self._answer(rtype, status, HTTPStatus(status).phrase)

    def _answer(self, rtype: str, status: int, text: str) -> web.Response:
        metrics.notification_receiver_requests.labels(type=rtype, code=str(status)).inc()
        return web.Response(status=status, text=text)

    async def _request_reconciles(self, namespace: str, receiver: str, resources: Iterable[Any]) -> list[str]:
        errors: list[str] = []
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        for res in resources:
            kind, name = str(res.get("kind") or ""), str(res.get("name") or "")
            ns = str(res.get("namespace") or namespace)
            api_version = str(res.get("apiVersion") or DEFAULT_API_VERSIONS.get(kind, ""))
            if self.no_cross_namespace_refs and ns != namespace:
                errors.append(f"cross-namespace reference to {kind}/{ns}/{name} refused")
                continue
            if not api_version:
                errors.append(f"apiVersion must be specified for kind '{kind}'")
                continue
            try:
                for target in await self._targets(api_version, kind, ns, name, res.get("matchLabels")):
                    await self._annotate(api_version, kind, target, stamp, receiver)
            except GitopsMeshError as e:
                log.warning("unable to annotate", receiver=receiver, kind=kind, namespace=ns, name=name, error=str(e))
                errors.append(f"unable to annotate {kind} '{ns}/{name}': {e}")
        return errors

    async def _targets(
        self, api_version: str, kind: str, namespace: str, name: str, selector: Mapping[str, str] | None
    ) -> list[KubeObject]:
        if name == "*":
            listed = await self.kube.list(api_version, kind, namespace=namespace)
            return [o for o in listed.items if matches_labels(o, selector or {})]
        obj = await self.kube.get(api_version, kind, name, namespace=namespace)
        return [obj] if selector is None or matches_labels(obj, selector) else []

    async def _annotate(self, api_version: str, kind: str, obj: KubeObject, stamp: str, receiver: str) -> None:
        meta = obj["metadata"]
        await self.kube.patch(
            api_version,
            kind,
            meta["name"],
            {"metadata": {"annotations": {REQUESTED_AT: stamp}}},
            namespace=meta["namespace"],
        )
        log.info("reconcile requested", receiver=receiver, kind=kind, namespace=meta["namespace"], name=meta["name"])
        if self.publisher is None:
            return
        event = build_event(
            kind=EventKind.RECONCILE_REQUESTED,
            controller=self.controller,
            instance=self.instance,
            involved_object=ObjectRef(api_version, kind, meta["namespace"], meta["name"], uid=meta.get("uid", "")),
            severity=Severity.INFO,
            reason="ReconcileRequested",
            message=f"reconcile requested by Receiver {receiver}",
            metadata={REQUESTED_AT: stamp},
        )
        self.publisher.publish(Topic.RECONCILE_REQUESTS, event)
