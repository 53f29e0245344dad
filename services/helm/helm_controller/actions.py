"""Helm actions, one ``helm`` (v4) subprocess each: install, upgrade, rollback, uninstall, test.

Where it sits: the reconciler decides which action to run; this module maps a HelmRelease's flags onto
Helm 4's command line as Flux's helm-controller sets them on Helm's SDK, runs helm with a deadline
(:mod:`gitops_mesh.helmcli`), and reads the release back from Helm's storage (:mod:`.releases`).

Decisions:
- ``--wait=hookOnly`` always: helm waits for its hooks (and tests), never for the release's resources to
  become ready; the reconciler polls their health, so a slow rollout never holds a worker or a process.
- Server-side apply as Flux: install with ``--server-side=true``; upgrade and rollback follow the method
  the release last used ("auto", resolved here from storage because ``--force-conflicts`` — which Flux
  always sets with server-side apply — is an error without it). ``--take-ownership`` unless disabled.
- Nothing secret on argv: values in a 0600 file in a private 0700 directory removed after the call,
  the cluster through a kubeconfig file the caller wrote (0600).
- Post-renderers (:mod:`.post_renderers`): our postrenderer/v1 plugin is written into the call's private
  HELM_PLUGINS with its request beside it, and named by ``--post-renderer``; helm drops a plugin's stderr,
  so the plugin's own complaint is read from its directory and quoted.
- ``--disable-openapi-validation`` whenever the apiserver validates fields itself (1.27+). Helm 4 sends
  every create, update and server-side apply with ``fieldValidation=Strict`` whatever this flag says; the
  flag only skips the client's check, which on such a server validates nothing — it fetches and parses the
  OpenAPI v3 documents to learn that the server supports the parameter (kubectl's ParamVerifyingSchema), and
  falls back to client-side schema validation only on older servers. That check is 60 % of an install's
  CPU (docs/helm-actions.md); an invalid object is refused by the apiserver at the same point either way.
- Helm's CLI keeps a release's records in the namespace it installs into, so a storage namespace other
  than the target namespace cannot be honoured on this path: such a request is refused (InvalidSpec).
- A chart's ``crds/`` are applied by :mod:`.crds` before helm runs (helm always gets ``--skip-crds``), as Flux.
- A first install that needs nothing but rendering and applying (no hooks to run, server-side apply, no
  kustomize post-renderer, a 1.27+ apiserver) is rendered by
  ``helm install --dry-run=server -o json`` and applied and recorded by :mod:`.direct_install`; every other
  install, and every other action, is helm's own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import dataclasses
import io
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import orjson

from gitops_mesh import commands
from gitops_mesh.errors import GitopsMeshError, InvalidSpec, TransientError
from gitops_mesh.helmcli import HelmResult, run_helm
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.observability.logging import get_logger
from helm_controller import crds, direct_install, post_renderers
from helm_controller.post_renderers import PostRender
from helm_controller.releases import Release, release_history

#: Past helm's own --timeout, how long helm may take to report it before the whole process group is killed.
DEADLINE_GRACE: Final = 30.0
#: How much of helm's complaint an error carries.
MESSAGE_CHARS: Final = 600
#: Helm's rollback/uninstall description limit (pkg/action MaxDescriptionLength).
MAX_DESCRIPTION: Final = 256
_SERVICE_ACCOUNT_USER: Final = "system:serviceaccount:"

log = get_logger(__name__)


class Action(StrEnum):
    """Flux's ReleaseAction names, and the reason each one's failure is reported with."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"
    UNINSTALL = "uninstall"
    TEST = "test"

    @property
    def failed_reason(self) -> str:
        return f"{self.value.capitalize()}Failed"


class CRDsPolicy(StrEnum):
    SKIP = "Skip"
    CREATE = "Create"
    CREATE_REPLACE = "CreateReplace"


class HelmActionFailed(TransientError):
    """helm refused or failed; ``message`` is helm's own line, bounded and redacted; ``reason`` Flux's."""

    def __init__(self, action: Action, message: str, *, release: Release | None = None) -> None:
        super().__init__(message, reason=action.failed_reason)
        self.action = action
        self.message = message
        #: the release as helm left it in storage (failed, pending after a kill), when there is one
        self.release = release


@dataclass(frozen=True, slots=True)
class KubeAccess:
    """How helm reaches the cluster: a kubeconfig file and, for serviceAccountName, the user it acts as."""

    #: None with ``kubeconfig_data``: a remote cluster's kubeconfig, written into each action's own directory
    kubeconfig: Path | None
    #: ``system:serviceaccount:<ns>:<sa>``, passed as --kube-as-user
    as_user: str | None = None
    #: reads Helm's storage for the same cluster and identity; without one a client is opened per action
    client: KubeClient | None = field(default=None, compare=False)
    #: spec.kubeConfig's checked kubeconfig (credentials: only ever in a 0600 file of the action's directory)
    kubeconfig_data: bytes | None = field(default=None, repr=False, compare=False)
    #: the apiserver validates every write strictly itself (Kubernetes >= 1.27): helm's own check is moot
    server_validates_fields: bool = False


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One release action's inputs, in the HelmRelease's terms (the action picks the flags it uses)."""

    release_name: str
    target_namespace: str
    storage_namespace: str
    #: a local chart archive (.tgz)
    chart_path: Path
    values: Mapping[str, Any]
    #: seconds helm may spend (hooks, tests, deletions)
    timeout: float
    max_history: int
    kube: KubeAccess
    create_namespace: bool = False
    #: None: Flux's default for the action (install Create, upgrade Skip)
    crds: CRDsPolicy | None = None
    force: bool = False
    #: the reconciler's health poll reads these; helm never waits for resources
    disable_wait: bool = False
    disable_wait_for_jobs: bool = False
    disable_hooks: bool = False
    disable_openapi_validation: bool = False
    disable_schema_validation: bool = False
    cleanup_on_fail: bool = False
    wait_strategy: str = "poller"
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Flux's install/upgrade/rollback serverSideApply: None = Flux's default (install on, else as last time)
    server_side: bool | None = None
    #: Flux's disableTakeOwnership, inverted
    take_ownership: bool = True
    #: install.replace: reuse the name of a release uninstalled with its history kept
    replace: bool = False
    #: test.filters: (name, exclude)
    test_filters: tuple[tuple[str, bool], ...] = ()
    #: strings never to appear in a message (values that came from Secrets)
    secrets: frozenset[str] = frozenset()
    #: postRenderers / commonMetadata (install and upgrade); None: helm runs no post-renderer
    post_render: PostRender | None = None
    #: the caller read Helm's storage for this release just before and found no record (a direct install need
    #: not read it again; its first write still fails if a record appeared since, as helm's own does)
    storage_empty: bool = False


# --- argv, pure -------------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def _labels(labels: Mapping[str, str]) -> str:
    """pflag's StringToString reads one CSV record of k=v fields."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(f"{k}={v}" for k, v in sorted(labels.items()))
    return out.getvalue()


def _cluster(req: ActionRequest) -> list[str]:
    args = ["--kubeconfig", str(req.kube.kubeconfig), "--namespace", req.target_namespace]
    if req.kube.as_user:
        args += ["--kube-as-user", req.kube.as_user]
    return args


def _common(req: ActionRequest, action: Action) -> list[str]:
    args = [*_cluster(req), "--timeout", _duration(req.timeout)]
    if action is not Action.TEST:
        args.append("--wait=hookOnly")
    if req.disable_hooks and action is not Action.TEST:
        args.append("--no-hooks")
    return args


def server_side_apply(req: ActionRequest, last_apply_method: str | None = None) -> bool:
    """Flux's serverSideApply: the request's when set; else on for an install (``last_apply_method`` None) and,
    for an upgrade or rollback, as the release's record was last applied ("ssa" or "csa")."""
    if req.server_side is not None:
        return req.server_side
    return last_apply_method is None or last_apply_method == "ssa"


def _apply_method(server_side: bool, force: bool) -> list[str]:
    # Flux always forces conflicts under server-side apply; Helm's replace-on-conflict is client-side only.
    if server_side:
        return ["--server-side=true", "--force-conflicts"]
    return ["--server-side=false", *(["--force-replace"] if force else [])]


def _render_flags(req: ActionRequest) -> list[str]:
    args: list[str] = []
    if req.disable_openapi_validation or req.kube.server_validates_fields:
        args.append("--disable-openapi-validation")
    if req.disable_schema_validation:
        args.append("--skip-schema-validation")
    if req.take_ownership:
        args.append("--take-ownership")
    if req.description:
        args += ["--description", req.description[:MAX_DESCRIPTION]]
    if req.labels:
        args += ["--labels", _labels(req.labels)]
    if req.post_render is not None:
        args += ["--post-renderer", post_renderers.PLUGIN_NAME]
    return args


def install_args(req: ActionRequest, values_file: Path) -> list[str]:
    """``helm install`` as Flux's Install action sets it up."""
    args = ["install", req.release_name, str(req.chart_path), *_common(req, Action.INSTALL)]
    args += ["--values", str(values_file)]
    args += _apply_method(server_side_apply(req), False)
    args += _render_flags(req)
    if req.create_namespace:
        args.append("--create-namespace")
    # Flux sets SkipCRDs and applies the chart's crds/ itself, by install.crds (:mod:`.crds`).
    args.append("--skip-crds")
    if req.replace:
        args.append("--replace")
    return args


def crds_policy(req: ActionRequest, action: Action) -> CRDsPolicy:
    """install.crds / upgrade.crds, Flux's defaults: Create on install, Skip on upgrade."""
    return req.crds or (CRDsPolicy.CREATE if action is Action.INSTALL else CRDsPolicy.SKIP)


def template_crds_args(req: ActionRequest, values_file: Path) -> list[str]:
    """``helm template --include-crds``: the chart's CRDObjects after its dependencies were processed with the
    release's values, each printed under its ``crds/`` source."""
    args = ["template", req.release_name, str(req.chart_path), "--include-crds", "--namespace", req.target_namespace]
    args += ["--values", str(values_file)]
    if req.disable_schema_validation:
        args.append("--skip-schema-validation")
    return args


def render_args(req: ActionRequest, values_file: Path) -> list[str]:
    """``helm install --dry-run=server -o json``: Helm's whole install short of writing, its release as JSON.
    No post-renderer: :mod:`.direct_install` sets the origin labels itself."""
    return [*install_args(dataclasses.replace(req, post_render=None), values_file), "--dry-run=server", "-o", "json"]


def direct_request_refusal(req: ActionRequest) -> str:
    """Why this install request must go to helm's own install ("" when :mod:`.direct_install` may take it)."""
    if not server_side_apply(req):
        return "client-side apply"
    if req.replace:
        return "install.replace"
    if req.post_render is not None and req.post_render.kustomizations:
        return "kustomize post-renderers"
    if not req.kube.server_validates_fields:
        return "the apiserver does not validate fields itself"
    return ""


def upgrade_args(req: ActionRequest, values_file: Path, *, last_apply_method: str) -> list[str]:
    """``helm upgrade``: values reset to the chart's and ours (Flux's default), history capped."""
    server_side = server_side_apply(req, last_apply_method)
    args = ["upgrade", req.release_name, str(req.chart_path), *_common(req, Action.UPGRADE)]
    args += ["--values", str(values_file), "--reset-values", "--history-max", str(req.max_history)]
    args += _apply_method(server_side, req.force)
    args += _render_flags(req)
    if req.cleanup_on_fail:
        args.append("--cleanup-on-fail")
    return args


def rollback_args(req: ActionRequest, to_version: int | None, *, target_apply_method: str) -> list[str]:
    """``helm rollback`` to ``to_version`` (None: the previous version, helm's 0)."""
    server_side = server_side_apply(req, target_apply_method)
    args = ["rollback", req.release_name, str(to_version or 0), *_common(req, Action.ROLLBACK)]
    args += ["--history-max", str(req.max_history), *_apply_method(server_side, req.force)]
    if req.cleanup_on_fail:
        args.append("--cleanup-on-fail")
    if req.description:
        args += ["--description", req.description[:MAX_DESCRIPTION]]
    return args


def uninstall_args(req: ActionRequest, *, keep_history: bool, deletion_propagation: str) -> list[str]:
    """``helm uninstall``; ``deletion_propagation`` is Flux's background|foreground|orphan."""
    cascade = deletion_propagation.lower() or "background"
    if cascade not in ("background", "foreground", "orphan"):
        raise InvalidSpec(f"uninstall.deletionPropagation {deletion_propagation!r} is not background|foreground|orphan")
    args = ["uninstall", req.release_name, *_common(req, Action.UNINSTALL), "--cascade", cascade]
    if keep_history:
        args.append("--keep-history")
    if req.description:
        args += ["--description", req.description[:MAX_DESCRIPTION]]
    return args


def test_args(req: ActionRequest) -> list[str]:
    """``helm test`` with Flux's test.filters (``name=`` to include, ``!name=`` to exclude)."""
    args = ["test", req.release_name, *_common(req, Action.TEST)]
    if req.test_filters:
        args += ["--filter", ",".join(f"{'!' if exclude else ''}name={name}" for name, exclude in req.test_filters)]
    return args


def redact(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every secret string replaced (longest first, so no fragment of one survives)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def helm_message(result: HelmResult, secrets: Iterable[str]) -> str:
    """helm's complaint on one bounded line, without secrets or URL credentials, "Error: " dropped."""
    text = redact(result.stderr or result.stdout, secrets)
    line = commands.one_line(text, MESSAGE_CHARS) or f"exit status {result.returncode}"
    return line.removeprefix("Error: ")


def check_storage(req: ActionRequest) -> None:
    """The CLI stores a release where it installs it; a different storage namespace is not possible here."""
    if req.storage_namespace and req.storage_namespace != req.target_namespace:
        raise InvalidSpec(
            f"storageNamespace {req.storage_namespace!r} differs from the target namespace "
            f"{req.target_namespace!r}: not supported",
            reason="UnsupportedField",
        )


# --- running ----------------------------------------------------------------------------------------------------


def _with_kubeconfig(req: ActionRequest, work: Path) -> ActionRequest:
    """``req`` pointing at a remote cluster's kubeconfig written 0600 into the action's private directory."""
    if req.kube.kubeconfig_data is None:
        return req
    path = work / "kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(req.kube.kubeconfig_data)
    return dataclasses.replace(req, kube=dataclasses.replace(req.kube, kubeconfig=path))


def _plugin_dir(work: Path) -> Path:
    """Where the post-renderer plugin lives in a call's work directory (helmcli's HELM_PLUGINS is home/plugins)."""
    return work / "home" / "plugins" / post_renderers.PLUGIN_NAME


async def _shape(chart: Path) -> direct_install.ChartShape | None:
    """What the chart archive carries (crds, hooks); None when it cannot be read here (helm will say why)."""
    try:
        return await direct_install.chart_shape(chart)
    except direct_install.NotDirect:
        return None


def _as_service_account(user: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:<ns>:<sa>``."""
    if not user.startswith(_SERVICE_ACCOUNT_USER):
        return None
    namespace, _, name = user.removeprefix(_SERVICE_ACCOUNT_USER).partition(":")
    return (namespace, name) if namespace and name else None


class HelmActions:
    """Runs helm actions; one private work directory per call under ``tmp_root``."""

    def __init__(
        self,
        helm: Path | str,
        tmp_root: Path,
        *,
        kustomize: Path | str | None = None,
        direct_installs: bool = True,
        max_processes: int = 0,
    ) -> None:
        self._helm = helm
        self._tmp_root = tmp_root
        #: the kustomize binary post-renderers run; without one a release asking for them fails
        self._kustomize = kustomize
        #: first installs that qualify are applied by :mod:`.direct_install` (False: helm does every install)
        self._direct_installs = direct_installs
        #: installs done so far by path, "direct" or "helm" (what the tests and the benchmark read)
        self.installs: collections.Counter[str] = collections.Counter()
        #: helm processes at once (0: no bound): the controller's memory grows by one helm for each
        self._slots = asyncio.Semaphore(max_processes) if max_processes > 0 else None

    @contextlib.asynccontextmanager
    async def _workdir(self) -> AsyncIterator[Path]:
        self._tmp_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="helm-action-", dir=self._tmp_root))  # 0700
        try:
            yield work
        finally:
            # In a thread: a directory helm wrote into is many files, and the event loop serves every release.
            await asyncio.to_thread(shutil.rmtree, work, True)

    @staticmethod
    def _write_values(work: Path, values: Mapping[str, Any]) -> Path:
        path = work / "values.yaml"
        # JSON is YAML; written 0600 from the first byte, never readable by anyone else.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(dict(values)))
        return path

    @contextlib.asynccontextmanager
    async def _client(self, req: ActionRequest) -> AsyncIterator[KubeClient]:
        if req.kube.client is not None:
            yield req.kube.client
            return
        if req.kube.kubeconfig is None:
            raise ValueError("a remote cluster's KubeAccess carries its client")
        async with await KubeClient.connect(str(req.kube.kubeconfig)) as root:
            sa = _as_service_account(req.kube.as_user or "")
            yield root.impersonate(sa[1], sa[0]) if sa else root

    def _kube_cache(self) -> Path:
        """client-go's discovery cache, shared by every helm this process runs (discovery is the same for every
        identity; a remote cluster's lands in its own host-named directory)."""
        cache = self._tmp_root / "kube-cache"
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cache

    async def history(self, req: ActionRequest) -> list[Release]:
        """The release's stored versions, newest first."""
        async with self._client(req) as kube:
            return await release_history(kube, req.target_namespace, req.release_name)

    async def _run(
        self, action: Action, req: ActionRequest, args: list[str], work: Path, *, fresh_discovery: bool = False
    ) -> HelmResult:
        """``fresh_discovery``: not the shared discovery cache (CRDs were just applied; a cached mapping lacks them)."""

        def stopped(message: str) -> TransientError:
            return HelmActionFailed(action, redact(message, req.secrets))

        home = work / "home"
        home.mkdir(mode=0o700, exist_ok=True)
        # A slot is held while helm runs, hooks and tests included: the bound is on resident helm processes.
        async with self._slots or contextlib.nullcontext():
            result = await run_helm(
                self._helm,
                args,
                home=home,
                timeout=req.timeout + DEADLINE_GRACE,
                cwd=work,
                on_stopped=stopped,
                kube_cache=None if fresh_discovery else self._kube_cache(),
            )
        if result.returncode != 0:
            message = helm_message(result, req.secrets)
            plugin_error = _plugin_dir(work) / post_renderers.ERROR_FILE
            if plugin_error.is_file():
                detail = plugin_error.read_text(errors="replace")[:MESSAGE_CHARS]
                message = f"{message}: {commands.one_line(redact(detail, req.secrets), MESSAGE_CHARS)}"
            raise HelmActionFailed(action, message)
        return result

    def _write_post_renderer(self, action: Action, req: ActionRequest, work: Path) -> None:
        """Our plugin and its request in this call's HELM_PLUGINS (install and upgrade: Flux's origin labels at
        least, kustomize for the release's own post-renderers)."""
        if req.post_render is None:
            return
        if self._kustomize is None and req.post_render.kustomizations:
            raise HelmActionFailed(action, "post-renderers need kustomize: no kustomize binary (--kustomize-path)")
        plugin = _plugin_dir(work)
        plugin.mkdir(mode=0o700, parents=True)
        (plugin / "plugin.yaml").write_bytes(orjson.dumps(post_renderers.plugin_manifest(sys.executable)))
        request = post_renderers.request_document(
            req.post_render,
            kustomize=str(self._kustomize) if self._kustomize else None,
            deadline=time.time() + req.timeout,
        )
        (plugin / post_renderers.REQUEST_FILE).write_bytes(orjson.dumps(request))

    async def _latest(self, req: ActionRequest) -> Release | None:
        history = await self.history(req)
        return history[0] if history else None

    async def _act(
        self, action: Action, req: ActionRequest, args: list[str], work: Path, *, fresh_discovery: bool = False
    ) -> Release:
        try:
            await self._run(action, req, args, work, fresh_discovery=fresh_discovery)
        except HelmActionFailed as e:
            with contextlib.suppress(GitopsMeshError):  # the failure is the news; a failed read-back must not hide it
                e.release = await self._latest(req)
            raise
        latest = await self._latest(req)
        if latest is None:
            raise HelmActionFailed(action, f"helm {action.value} left no release {req.release_name!r} in storage")
        return latest

    async def install(self, req: ActionRequest) -> Release:
        check_storage(req)
        async with self._workdir() as work:
            req = _with_kubeconfig(req, work)
            values = self._write_values(work, req.values)
            shape = await _shape(req.chart_path)
            fresh = await self._apply_crds(Action.INSTALL, req, values, work, shape, server_side=server_side_apply(req))
            if self._direct_installs and shape is not None:
                try:
                    installed = await self._install_directly(req, values, work, shape, fresh_discovery=fresh)
                except direct_install.NotDirect as e:
                    log.debug("install by helm", release=req.release_name, namespace=req.target_namespace, why=str(e))
                else:
                    self.installs["direct"] += 1
                    return installed
            args = install_args(req, values)
            self._write_post_renderer(Action.INSTALL, req, work)
            self.installs["helm"] += 1
            return await self._act(Action.INSTALL, req, args, work, fresh_discovery=fresh)

    async def _apply_crds(
        self,
        action: Action,
        req: ActionRequest,
        values: Path,
        work: Path,
        shape: direct_install.ChartShape | None,
        *,
        server_side: bool,
    ) -> bool:
        """The chart's crds/ by install.crds / upgrade.crds, as Flux applies them (:mod:`.crds`); True when any
        CRD was written (helm then needs fresh discovery)."""
        policy = crds_policy(req, action)
        if policy is CRDsPolicy.SKIP or (shape is not None and not shape.may_have_crds):
            return False
        result = await self._run(action, req, template_crds_args(req, values), work)
        try:
            found = crds.crds_of(result.stdout)
            if not found:
                return False
            async with self._client(req) as kube:
                origin = req.post_render.labels if req.post_render else {}
                written = await crds.apply_crds(
                    kube, found, policy=policy.value, origin=origin, server_side=server_side
                )
        except crds.CRDsFailed as e:
            message = f"failed to apply CustomResourceDefinitions: {e}"
            raise HelmActionFailed(action, commands.one_line(redact(message, req.secrets), MESSAGE_CHARS)) from None
        return written > 0

    async def _install_directly(
        self, req: ActionRequest, values: Path, work: Path, shape: direct_install.ChartShape, *, fresh_discovery: bool
    ) -> Release:
        """Helm renders, :mod:`.direct_install` applies and records; :class:`direct_install.NotDirect` when the
        install must be helm's own (decided before anything is written). The chart's CRDs were applied before."""
        refusal = direct_request_refusal(req)
        if refusal:
            raise direct_install.NotDirect(refusal)
        direct_install.chart_qualifies(shape, skip_crds=True, disable_hooks=req.disable_hooks)
        if not req.storage_empty and await self.history(req):
            raise direct_install.NotDirect("the release name has history")  # helm says it is in use, or replaces
        result = await self._run(Action.INSTALL, req, render_args(req, values), work, fresh_discovery=fresh_discovery)
        try:
            rendered = orjson.loads(result.stdout)
        except orjson.JSONDecodeError:
            raise direct_install.NotDirect("helm's dry run printed no release") from None
        if not isinstance(rendered, dict):
            raise direct_install.NotDirect("helm's dry run printed no release")
        direct_install.release_qualifies(rendered, disable_hooks=req.disable_hooks)
        async with self._client(req) as kube:
            try:
                return await direct_install.install(
                    kube,
                    rendered,
                    origin_labels=req.post_render.labels if req.post_render else {},
                    release_labels=req.labels,
                    description=req.description,
                    create_ns=req.create_namespace,
                )
            except direct_install.InstallFailed as e:
                message = commands.one_line(redact(e.message, req.secrets), MESSAGE_CHARS)
                raise HelmActionFailed(Action.INSTALL, message, release=e.release) from None

    async def upgrade(self, req: ActionRequest) -> Release:
        check_storage(req)
        last = await self._latest(req)
        if last is None:
            raise HelmActionFailed(Action.UPGRADE, f'"{req.release_name}" has no deployed releases')
        async with self._workdir() as work:
            req = _with_kubeconfig(req, work)
            values = self._write_values(work, req.values)
            server_side = server_side_apply(req, last.apply_method)
            shape = await _shape(req.chart_path)
            fresh = await self._apply_crds(Action.UPGRADE, req, values, work, shape, server_side=server_side)
            args = upgrade_args(req, values, last_apply_method=last.apply_method)
            self._write_post_renderer(Action.UPGRADE, req, work)
            return await self._act(Action.UPGRADE, req, args, work, fresh_discovery=fresh)

    async def rollback(self, req: ActionRequest, to_version: int | None) -> Release:
        check_storage(req)
        history = await self.history(req)
        if not history:
            raise HelmActionFailed(Action.ROLLBACK, f"release: not found: {req.release_name}")
        target_version = to_version or history[0].version - 1
        target = next((r for r in history if r.version == target_version), None)
        if target is None:
            raise HelmActionFailed(Action.ROLLBACK, f"release has no {target_version} version")
        async with self._workdir() as work:
            req = _with_kubeconfig(req, work)
            args = rollback_args(req, to_version, target_apply_method=target.apply_method)
            return await self._act(Action.ROLLBACK, req, args, work)

    async def uninstall(self, req: ActionRequest, keep_history: bool, deletion_propagation: str) -> None:
        check_storage(req)
        async with self._workdir() as work:
            req = _with_kubeconfig(req, work)
            args = uninstall_args(req, keep_history=keep_history, deletion_propagation=deletion_propagation)
            try:
                await self._run(Action.UNINSTALL, req, args, work)
            except HelmActionFailed as e:
                with contextlib.suppress(GitopsMeshError):
                    e.release = await self._latest(req)
                raise

    async def test(self, req: ActionRequest) -> Release:
        check_storage(req)
        async with self._workdir() as work:
            req = _with_kubeconfig(req, work)
            return await self._act(Action.TEST, req, test_args(req), work)
