"""FluxConfig: check → read Secrets → (generate key) → plan → apply → collect stale objects → status.

The whole plan is made before anything is written: a spec, protected parameter or key that is wrong
stops the reconcile with nothing created. Every object is server-side applied by the field manager
``fluxconfig-controller`` (forcing: these objects are ours), so a SIGKILL at any point is repaired by the
next reconcile, which applies the same plan again. Status is assembled in one place
(:func:`assemble_status`), the hook the compliance view fills in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fluxconfig_controller import model as m
from fluxconfig_controller.plan import (
    AuthProblem,
    Plan,
    decode_protected,
    plan,
    protected_needed_by,
    rbac_plan,
    source_block,
    stale,
    wanted_key_algorithm,
)
from fluxconfig_controller.settings import FluxConfigSettings
from fluxconfig_controller.sshkeys import KeyAlgorithm, KeyPair, generate, parse_private_key
from fluxconfig_controller.unsupported import FLUXCONFIG, refuse_unsupported
from fluxconfig_controller.validation import auth_problems, spec_problems
from gitops_mesh.errors import GitopsMeshError, InvalidSpec, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.informer import Informer
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube.secrets import secret_data
from gitops_mesh.observability.logging import get_logger
from gitops_mesh.reconcile.result import Outcome

log = get_logger(__name__)


class ProvisioningState:
    """ARM's provisioningState values the controller writes."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETING = "Deleting"


def assemble_status(status: dict[str, Any], *, error: str | None, public_key: str | None) -> None:
    """The one place the controller writes its part of ``status`` (provisioningState, errorMessage,
    repositoryPublicKey); conditions and observedGeneration are the runner's. statuses[] and
    complianceState are left to the compliance view."""
    status["provisioningState"] = ProvisioningState.FAILED if error else ProvisioningState.SUCCEEDED
    if error:
        status["errorMessage"] = error
    else:
        status.pop("errorMessage", None)
    if public_key:
        status["repositoryPublicKey"] = public_key
    else:
        status.pop("repositoryPublicKey", None)


@dataclass
class FluxConfigReconciler:
    """FluxConfig's inner work; ``configs`` is the process's FluxConfig cache (the namespace's shared RBAC
    is planned from every config in it)."""

    kube: KubeClient
    settings: FluxConfigSettings
    configs: Informer

    api_version: str = m.API_VERSION
    kind: str = m.KIND

    async def reconcile(self, obj: KubeObject) -> Outcome:
        status: dict[str, Any] = obj.setdefault("status", {})
        try:
            wanted = await self._plan(obj)
            await self._apply(obj, wanted)
        except GitopsMeshError as e:
            assemble_status(status, error=str(e), public_key=status.get("repositoryPublicKey"))
            raise
        assemble_status(status, error=None, public_key=wanted.public_key)
        # No `applied` here: the objects being written is not yet the state a user is told about. The status
        # feed announces the config's one state change that is (Compliant: everything it made is Ready, at
        # which revision), as Flux sends one event per state change; two `applied` for the same config would
        # reach every Alert twice. A refusal is still the runner's `failed` (the feed does not repeat it).
        return Outcome.succeeded(
            requeue_after=self.settings.resync_interval,
            message=f"Applied the configuration's {len(wanted.objects)} objects",
        )

    # --- planning: reads only ----------------------------------------------------------------------------

    async def _plan(self, obj: KubeObject) -> Plan:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        name, ns = meta["name"], meta["namespace"]
        refuse_unsupported(spec, FLUXCONFIG)
        problems = spec_problems(name, ns, spec)
        if problems:
            raise InvalidSpec("; ".join(problems))
        protected = await self._protected(ns, name, spec)
        problems = auth_problems(spec, protected)
        if problems:
            raise TransientError("; ".join(problems), reason=InvalidSpec.reason)
        check_credentials(spec, protected)
        await self._check_local_auth(ns, spec)
        key = await self._key_pair(ns, name, spec, protected)
        return plan(obj, protected, key, impersonate=self.settings.multi_tenancy_enforce)

    async def _protected(self, ns: str, name: str, spec: m.Spec) -> dict[str, bytes]:
        secret = m.protected_secret_name(name)
        try:
            data = await secret_data(self.kube, ns, secret)
        except NotFound:
            needed = protected_needed_by(spec)
            if needed:
                raise AuthProblem(
                    f"the protected parameters Secret '{ns}/{secret}' was not found; {needed} needs it"
                ) from None
            return {}
        except InvalidSpec as e:  # data that is not base64: the Secret is at fault, not the spec
            raise AuthProblem(str(e)) from None
        return decode_protected(secret, data)

    async def _check_local_auth(self, ns: str, spec: m.Spec) -> None:
        ref = source_block(spec).get("localAuthRef")
        if not ref:
            return
        try:
            await self.kube.get("v1", "Secret", str(ref), namespace=ns)
        except NotFound:
            raise AuthProblem(f"the Secret '{ns}/{ref}' named by localAuthRef was not found") from None

    async def _key_pair(self, ns: str, name: str, spec: m.Spec, protected: Mapping[str, bytes]) -> KeyPair | None:
        """The config's generated key pair: the one in its Secret, or a new one when the source needs one
        and there is none (or it has another algorithm than the one asked for)."""
        algorithm = wanted_key_algorithm(spec, protected)
        existing = await self._existing_key(ns, m.key_secret_name(name))
        if algorithm is None or (existing is not None and existing.algorithm is algorithm):
            return existing
        # RSA 4096 takes long enough to matter on a shared loop.
        return await asyncio.to_thread(generate, algorithm, f"fluxconfig-{ns}-{name}")

    async def _existing_key(self, ns: str, secret: str) -> KeyPair | None:
        try:
            obj = await self.kube.get("v1", "Secret", secret, namespace=ns)
        except NotFound:
            return None
        annotations = obj["metadata"].get("annotations") or {}
        try:
            algorithm = KeyAlgorithm(annotations.get(m.KEY_ALGORITHM_ANNOTATION, ""))
            data = await secret_data(self.kube, ns, secret)
        except (ValueError, NotFound, InvalidSpec):
            return None
        private, public = data.get("identity"), data.get("identity.pub")
        if not private or not public or not parse_private_key(private):
            return None  # damaged: a new one replaces it
        return KeyPair(algorithm, private, public.decode(errors="replace"))

    # --- acting --------------------------------------------------------------------------------------------

    async def _apply(self, obj: KubeObject, wanted: Plan) -> None:
        meta = obj["metadata"]
        ns = meta["namespace"]
        rbac = rbac_plan(ns, [*self._peers(ns, meta["name"]), obj])
        # RBAC first: a Kustomization created before its ServiceAccount's binding would fail its first apply.
        for item in [*rbac.apply, *wanted.objects]:
            await self.kube.apply(item, field_manager=m.FIELD_MANAGER, force=True)
        await self._collect(meta["name"], ns, wanted)
        await self._delete_all(rbac.delete)

    def _peers(self, ns: str, name: str) -> list[KubeObject]:
        return [
            cfg
            for cfg in self.configs.list()
            if cfg["metadata"].get("namespace") == ns and cfg["metadata"].get("name") != name
        ]

    async def _owned(self, name: str, ns: str) -> list[KubeObject]:
        found: list[KubeObject] = []
        for api, kind in m.OWNED_KINDS:
            listed = await self.kube.list(api, kind, namespace=ns, label_selector=m.own_selector(name, ns))
            found.extend(listed.items)
        return found

    async def _collect(self, name: str, ns: str, wanted: Plan) -> None:
        """Delete what an earlier plan of this config made and this one lacks (a removed entry, a changed source)."""
        for old in stale(await self._owned(name, ns), wanted):
            log.info(
                "deleting an object the configuration no longer has",
                kind=old["kind"],
                namespace=ns,
                name=old["metadata"]["name"],
            )
            await self._delete_all([(old["apiVersion"], old["kind"], ns, old["metadata"]["name"])])

    async def _delete_all(self, refs: list[tuple[str, str, str | None, str]]) -> None:
        for api, kind, ns, name in refs:
            with contextlib.suppress(NotFound):
                await self.kube.delete(api, kind, name, namespace=ns, propagation_policy="Background")

    async def finalize(self, obj: KubeObject) -> None:
        """Delete the Kustomizations first and wait for them to go (their own finalizers prune the workloads,
        as their spec.prune says, impersonating flux-applier), then the source, Secrets and the RBAC no other
        FluxConfig of the namespace still needs."""
        meta = obj["metadata"]
        name, ns = meta["name"], meta["namespace"]
        owned = await self._owned(name, ns)
        kustomizations = [o for o in owned if o["kind"] == "Kustomization"]
        if kustomizations:
            await self._delete_all(
                [
                    (o["apiVersion"], o["kind"], ns, o["metadata"]["name"])
                    for o in kustomizations
                    if not o["metadata"].get("deletionTimestamp")
                ]
            )
            raise TransientError(
                f"waiting for {len(kustomizations)} Kustomizations to be deleted",
                retry_after=self.settings.deletion_poll,
            )
        await self._delete_all([(o["apiVersion"], o["kind"], ns, o["metadata"]["name"]) for o in owned])
        await self._delete_all(rbac_plan(ns, self._peers(ns, name)).delete)


def check_credentials(spec: m.Spec, protected: Mapping[str, bytes]) -> None:
    """The private key parses (the CLI's check, made here because ARM takes the key as given)."""
    key = protected.get("sshPrivateKey")
    if key is not None and not parse_private_key(key):
        raise AuthProblem(
            "protected parameter 'sshPrivateKey': Error! --ssh-private-key provided in invalid format Verify the key "
            "provided is a valid PEM-formatted key of type RSA, ECC, DSA, or Ed25519 (unencrypted)"
        )


__all__ = ["FluxConfigReconciler", "assemble_status", "check_credentials"]
