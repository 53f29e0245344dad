"""A HelmRelease's spec as one Helm action's inputs (pure): Flux's per-action options and defaults."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from gitops_mesh.settings import parse_duration
from helm_controller.actions import ActionRequest, CRDsPolicy, KubeAccess
from helm_controller.post_renderers import post_render_of
from helm_controller.releases import release_name, storage_namespace, target_namespace

#: Flux's defaults: spec.timeout 5m, spec.maxHistory 5.
DEFAULT_TIMEOUT: Final = 300.0
DEFAULT_MAX_HISTORY: Final = 5
#: Where a HelmRelease's own spec says nothing, the action's section of it (install, upgrade, ...).
SECTIONS: Final = frozenset({"install", "upgrade", "rollback", "uninstall", "test"})


def _section(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = spec.get(name)
    return value if isinstance(value, Mapping) else {}


def timeout_of(spec: Mapping[str, Any], action: str) -> float:
    """The action's own timeout, else spec.timeout, else 5m."""
    raw = _section(spec, action).get("timeout") or spec.get("timeout")
    return parse_duration(raw) if isinstance(raw, str) and raw else DEFAULT_TIMEOUT


def _server_side(section: Mapping[str, Any], action: str) -> bool | None:
    value = section.get("serverSideApply")
    if action == "install":
        return None if value is None else bool(value)
    return {"enabled": True, "disabled": False}.get(str(value)) if value is not None else None


def _crds(section: Mapping[str, Any]) -> CRDsPolicy | None:
    if section.get("crds"):
        return CRDsPolicy(str(section["crds"]))
    return CRDsPolicy.SKIP if section.get("skipCRDs") else None


def action_request(
    obj: Mapping[str, Any],
    action: str,
    *,
    kube: KubeAccess,
    chart_path: Path | None = None,
    values: Mapping[str, Any] | None = None,
    secrets: frozenset[str] = frozenset(),
    description: str = "",
) -> ActionRequest:
    """The inputs of ``action`` (install, upgrade, rollback, uninstall, test) for the HelmRelease ``obj``."""
    if action not in SECTIONS:
        raise ValueError(f"unknown helm action {action!r}")
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    section = _section(spec, action)
    test = _section(spec, "test")
    max_history = spec.get("maxHistory")
    return ActionRequest(
        release_name=release_name(obj),
        target_namespace=target_namespace(obj),
        storage_namespace=storage_namespace(obj),
        chart_path=chart_path or Path(),
        values=values or {},
        timeout=timeout_of(spec, action),
        max_history=DEFAULT_MAX_HISTORY if max_history is None else int(max_history),
        kube=kube,
        create_namespace=action == "install" and bool(section.get("createNamespace")),
        crds=_crds(section) if action in ("install", "upgrade") else None,
        force=bool(section.get("force")),
        disable_wait=bool(section.get("disableWait")),
        disable_wait_for_jobs=bool(section.get("disableWaitForJobs")),
        disable_hooks=bool(section.get("disableHooks")),
        disable_openapi_validation=bool(section.get("disableOpenAPIValidation")),
        disable_schema_validation=bool(section.get("disableSchemaValidation")),
        cleanup_on_fail=bool(section.get("cleanupOnFail")),
        description=description,
        server_side=_server_side(section, action),
        take_ownership=not section.get("disableTakeOwnership"),
        replace=action == "install" and bool(section.get("replace")),
        test_filters=tuple(
            (str(f["name"]), bool(f.get("exclude")))
            for f in test.get("filters") or []
            if isinstance(f, Mapping) and f.get("name")
        )
        if action == "test"
        else (),
        secrets=secrets,
        # Only install and upgrade render; Flux sets its post-renderers on those two actions alone.
        post_render=post_render_of(spec, namespace=meta.get("namespace", ""), name=meta.get("name", ""))
        if action in ("install", "upgrade")
        else None,
    )


def uninstall_options(spec: Mapping[str, Any]) -> tuple[bool, str]:
    """(uninstall.keepHistory, uninstall.deletionPropagation with Flux's default background)."""
    section = _section(spec, "uninstall")
    return bool(section.get("keepHistory")), str(section.get("deletionPropagation") or "background")
