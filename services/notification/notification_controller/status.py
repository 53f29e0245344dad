"""Ready conditions on Alerts and Providers: Flux v1beta3 has none; ours say whether one can be used.

The checks are pure and spec-level (:func:`provider_problem`, :func:`alert_problem`): an unsupported
Provider type, an address that is not a URL, a type that needs a token without a ``secretRef``; an Alert
with regexes that do not compile or a ``providerRef`` naming no Provider. A Provider's ``secretRef`` is
read too (:func:`secret_problem`): ``headers`` that are not a map of sendable header fields (tenant YAML,
parsed once per change and off the event loop) or a token that cannot go in a header make it not Ready —
retried, not Stalled, since an edit of the Secret fixes it, and woken at once by a Secret labelled
``reconcile.fluxcd.io/watch: Enabled`` (:func:`provider_secrets`). A Secret that is missing or cannot be
read shows on the deliveries (logs, metrics, Events), as before. :class:`ProviderReconciler` and
:class:`AlertReconciler` turn a check into an outcome for the shared runner (KindRunner), which writes
the one status patch: a spec problem stalls the object until it is edited; a missing Provider is
retried, and the Provider's arrival or deletion wakes the Alerts naming it (:func:`follow_providers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from gitops_mesh.errors import GitopsMeshError, InvalidSpec, TransientError
from gitops_mesh.http_headers import is_field_value
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.runner import KindRunner
from gitops_mesh.watches import appeared, ref_key
from notification_controller.matching import ALERT_API_VERSION, ALERT_KIND, alert_from_object
from notification_controller.providers import BUILDERS, PROVIDER_API_VERSION, PROVIDER_KIND, provider_from_object
from notification_controller.providers.base import ProviderConfigError, check_url
from notification_controller.providers.headers import HeadersCache, InvalidHeaders
from notification_controller.unsupported import PROVIDER, refuse_unsupported

#: The Alert cache's index of the Provider each Alert names: ``Provider/<namespace>/<name>``.
PROVIDER_REF_INDEX = "provider-ref"
#: Provider types that cannot work without a token from their Secret.
NEEDS_TOKEN = frozenset({"generic-hmac", "github", "gitlab"})
#: Provider types whose address is a repository (any git URL form), not a webhook URL.
REPOSITORY_ADDRESS = frozenset({"github", "gitlab"})
#: Problems the world can fix without an edit of the object: retried, never Stalled.
NOT_YET = frozenset({"ProviderNotFound"})
#: Ready's message on an Alert or Provider that can be used (Flux v1beta2's).
INITIALIZED = "Initialized"
#: The Provider cache's index of the Secret each Provider names: ``Secret/<namespace>/<name>``.
PROVIDER_SECRET_INDEX = "secret-ref"
#: Provider types whose token is only a signing key, never sent in a header.
TOKEN_NOT_SENT = frozenset({"generic-hmac"})

Problem = tuple[str, str]
#: Reads a Secret's data: ``(namespace, name) -> data`` (NotFound when it does not exist).
SecretReader = Callable[[str, str], Awaitable[Mapping[str, bytes]]]


def provider_problem(obj: KubeObject) -> Problem | None:
    spec = provider_from_object(obj)
    if spec.type not in BUILDERS:
        return "InvalidProviderConfig", f"provider type '{spec.type}' is not supported by this controller"
    if spec.type in NEEDS_TOKEN and not spec.secret_ref:
        return "InvalidProviderConfig", f"a {spec.type} provider needs a secretRef with a 'token'"
    if not spec.address and not spec.secret_ref:
        return "InvalidProviderConfig", "provider has no address (spec.address or the secret's 'address')"
    if spec.address and spec.type not in REPOSITORY_ADDRESS:
        try:
            check_url(spec.address)
        except ProviderConfigError as e:
            return "InvalidProviderConfig", str(e)
    return None


def secret_problem(ptype: str, data: Mapping[str, bytes], headers: HeadersCache) -> Problem | None:
    """What in a Provider's Secret makes it unusable: ``headers`` (see :mod:`.providers.headers`), or a token
    that would go into a header with a control character in it. ``headers`` must be warmed for ``data``."""
    if "headers" in data:
        try:
            headers.parse(data["headers"])
        except InvalidHeaders as e:
            return "InvalidProviderConfig", str(e)
    token = data.get("token", b"").decode("utf-8", "replace").strip()
    if ptype not in TOKEN_NOT_SENT and not is_field_value(token):
        return "InvalidProviderConfig", "the secret's token has a control character (CR, LF, ...): it cannot be sent"
    return None


def alert_problem(obj: KubeObject, *, provider_exists: bool) -> Problem | None:
    alert = alert_from_object(obj)
    if alert.invalid_patterns:
        return "InvalidConfig", "regexes that do not compile: " + ", ".join(repr(p) for p in alert.invalid_patterns)
    if not provider_exists:
        return "ProviderNotFound", f"Provider '{alert.namespace}/{alert.provider}' does not exist"
    return None


def provider_ref(obj: KubeObject) -> list[str]:
    """The index value of the Provider an Alert names (``Provider/<namespace>/<name>``)."""
    meta = obj.get("metadata") or {}
    name = ((obj.get("spec") or {}).get("providerRef") or {}).get("name")
    return [ref_key(PROVIDER_KIND, meta.get("namespace") or "", name)] if name else []


def verdict(obj: KubeObject, problem: Problem | None, *, retried: bool = False) -> Outcome:
    """The outcome of a check: Ready=True, a failure retried (:data:`NOT_YET`, or ``retried``: another
    object's problem, e.g. the Secret's), or a stalled spec."""
    if problem is None:
        # Nothing to do on a timer: a change of the object, or of its Provider, brings the next look.
        return Outcome.succeeded(requeue_after=None, reason=c.Reason.SUCCEEDED, message=INITIALIZED)
    reason, message = problem
    if reason in NOT_YET or retried:
        # The verdict on this generation is complete (Flux's v1beta2 Alert reported a missing Provider
        # without an error): say so, though the runner stamps observedGeneration only on Ready or Stalled.
        obj.setdefault("status", {})["observedGeneration"] = c.generation_of(obj)
        return Outcome.failed(TransientError(message, reason=reason))
    return Outcome.failed(InvalidSpec(message, reason=reason))


class Lookup(Protocol):
    """A cache of objects by key (an :class:`Informer`)."""

    def get(self, namespace: str | None, name: str) -> KubeObject | None: ...


class ProviderReconciler:
    """Ready on a Provider from :func:`provider_problem`, then :func:`secret_problem` on its ``secretRef``
    (read with ``secrets``; without a reader, only the spec is checked)."""

    api_version = PROVIDER_API_VERSION
    kind = PROVIDER_KIND

    def __init__(self, secrets: SecretReader | None = None, headers: HeadersCache | None = None) -> None:
        self.secrets = secrets
        self.headers = headers or HeadersCache()

    async def reconcile(self, obj: KubeObject) -> Outcome:
        refuse_unsupported(obj.get("spec") or {}, PROVIDER)
        problem = provider_problem(obj)
        if problem is not None:
            return verdict(obj, problem)
        spec = provider_from_object(obj)
        if self.secrets is None or not spec.secret_ref:
            return verdict(obj, None)
        try:
            data = await self.secrets(spec.namespace, spec.secret_ref)
        except GitopsMeshError:
            # Missing or unreadable: the deliveries say so (and wait for it within their retry budget).
            return verdict(obj, None)
        if "headers" in data:
            await self.headers.warm(data["headers"])
        return verdict(obj, secret_problem(spec.type, data, self.headers), retried=True)

    async def finalize(self, obj: KubeObject) -> None:
        return None


class AlertReconciler:
    """Ready on an Alert from :func:`alert_problem`, its Provider looked up in ``providers``."""

    api_version = ALERT_API_VERSION
    kind = ALERT_KIND

    def __init__(self, providers: Lookup) -> None:
        self.providers = providers

    async def reconcile(self, obj: KubeObject) -> Outcome:
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        provider = ((obj.get("spec") or {}).get("providerRef") or {}).get("name") or ""
        return verdict(obj, alert_problem(obj, provider_exists=self.providers.get(namespace, provider) is not None))

    async def finalize(self, obj: KubeObject) -> None:
        return None


def provider_secrets(obj: KubeObject) -> list[str]:
    """The index value of the Provider's ``secretRef`` (``Secret/<namespace>/<name>``)."""
    spec = provider_from_object(obj)
    return [ref_key("Secret", spec.namespace, spec.secret_ref)] if spec.secret_ref else []


def follow_providers(alert_runner: KindRunner, providers: Informer) -> None:
    """Re-check the Alerts naming a Provider when it appears or is deleted (its edits change nothing here)."""
    alert_runner.watches.follow(providers, index=PROVIDER_REF_INDEX, refs=provider_ref, when=appeared, on_delete=True)
