"""Ready conditions on Alerts and Providers: Flux v1beta3 has none; ours say whether one can be used.

The checks are pure and spec-level (:func:`provider_problem`, :func:`alert_problem`): an unsupported
Provider type, an address that is not a URL, a type that needs a token without a ``secretRef``; an Alert
with regexes that do not compile or a ``providerRef`` naming no Provider. Secrets are not read here (a
missing Secret shows on the deliveries: logs, metrics, Events). :class:`ProviderReconciler` and
:class:`AlertReconciler` turn a check into an outcome for the shared runner (KindRunner), which writes
the one status patch: a spec problem stalls the object until it is edited; a missing Provider is
retried, and the Provider's arrival or deletion wakes the Alerts naming it (:func:`follow_providers`).
"""

from __future__ import annotations

from typing import Protocol

from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import Outcome
from gitops_mesh.runner import KindRunner
from gitops_mesh.watches import appeared, ref_key
from notification_controller.matching import ALERT_API_VERSION, ALERT_KIND, alert_from_object
from notification_controller.providers import BUILDERS, PROVIDER_API_VERSION, PROVIDER_KIND, provider_from_object
from notification_controller.providers.base import ProviderConfigError, check_url

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

Problem = tuple[str, str]


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


def verdict(obj: KubeObject, problem: Problem | None) -> Outcome:
    """The outcome of a check: Ready=True, a failure retried (:data:`NOT_YET`), or a stalled spec."""
    if problem is None:
        # Nothing to do on a timer: a change of the object, or of its Provider, brings the next look.
        return Outcome.succeeded(requeue_after=None, reason=c.Reason.SUCCEEDED, message=INITIALIZED)
    reason, message = problem
    if reason in NOT_YET:
        # The verdict on this generation is complete (Flux's v1beta2 Alert reported a missing Provider
        # without an error): say so, though the runner stamps observedGeneration only on Ready or Stalled.
        obj.setdefault("status", {})["observedGeneration"] = c.generation_of(obj)
        return Outcome.failed(TransientError(message, reason=reason))
    return Outcome.failed(InvalidSpec(message, reason=reason))


class Lookup(Protocol):
    """A cache of objects by key (an :class:`Informer`)."""

    def get(self, namespace: str | None, name: str) -> KubeObject | None: ...


class ProviderReconciler:
    """Ready on a Provider from :func:`provider_problem`."""

    api_version = PROVIDER_API_VERSION
    kind = PROVIDER_KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        return verdict(obj, provider_problem(obj))

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


def follow_providers(alert_runner: KindRunner, providers: Informer) -> None:
    """Re-check the Alerts naming a Provider when it appears or is deleted (its edits change nothing here)."""
    alert_runner.watches.follow(providers, index=PROVIDER_REF_INDEX, refs=provider_ref, when=appeared, on_delete=True)
