"""A chart's ``crds/`` applied as Flux's helm-controller applies them, before helm installs or upgrades the release.

Where it sits: :class:`helm_controller.actions.HelmActions` calls :func:`apply_crds` before an install or upgrade
and always runs helm with ``--skip-crds``, as Flux sets ``SkipCRDs`` on Helm's install and applies the CRDs
itself (internal/action/crds.go): so ``install.crds`` and ``upgrade.crds`` mean what they mean in Flux —
``Skip``, ``Create`` (install's default) or ``CreateReplace`` — where helm's own upgrade never touches ``crds/``.

What Flux does, and so this module:

* the CRDs are the chart's ``CRDObjects()`` after its dependencies were processed with the release's values
  (a disabled subchart's CRDs are not applied). helm tells us which: ``helm template --include-crds`` prints
  exactly those, each under ``# Source: <chart>/.../crds/<file>``;
* only CustomResourceDefinitions are applied (anything else in ``crds/`` is dropped, as Flux warns and drops);
* each gets Flux's origin labels (``helm.toolkit.fluxcd.io/name`` and ``/namespace``);
* server-side apply (Flux's default): every CRD is applied as field manager ``helm`` with conflicts forced — for
  ``Create`` too, since Helm's create under server-side apply is an apply; client-side: ``Create`` creates the
  missing ones and leaves existing ones alone, ``CreateReplace`` replaces existing ones;
* then the applied CRDs are waited for until Established (60 s), and the error words are Flux's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.errors import GitopsMeshError
from gitops_mesh.kube import health
from gitops_mesh.kube.api_status import AlreadyExists
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.health import ObjectRef
from gitops_mesh.kube_yaml import ManifestLoader
from helm_controller.direct_install import FIELD_MANAGER, in_crds_dir, split_manifest

CRD_API_GROUP: Final = "apiextensions.k8s.io"
CRD_KIND: Final = "CustomResourceDefinition"
#: Flux's wait for the applied CRDs to be recognized.
ESTABLISHED_TIMEOUT: Final = 60.0
#: A chart's crds/ as printed (the chart archive itself is capped at 50 MiB; CRDs are schemas, not data).
CRD_LIMITS: Final = tenant_yaml.YamlLimits(max_bytes=32 << 20, max_nodes=4_000_000, max_depth=256)


class CRDsFailed(GitopsMeshError):
    """The CRDs could not be applied or did not become Established; the message is Flux's."""


def crds_of(rendered: str) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions among the ``crds/`` documents of ``helm template --include-crds`` output."""
    found: list[dict[str, Any]] = []
    for source, document in split_manifest(rendered):
        if not in_crds_dir(source.split("/")):
            continue
        try:
            docs = tenant_yaml.load_all(document, what=source, limits=CRD_LIMITS, loader=ManifestLoader)
        except yaml.YAMLError as e:
            raise CRDsFailed(
                f"failed to parse CustomResourceDefinitions from {source}: {tenant_yaml.problem(e)}"
            ) from None
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            group = str(doc.get("apiVersion") or "").partition("/")[0]
            if group == CRD_API_GROUP and doc.get("kind") == CRD_KIND:
                found.append(doc)
    return found


def with_origin(crd: Mapping[str, Any], origin: Mapping[str, str]) -> dict[str, Any]:
    """``crd`` with Flux's origin labels merged over its own."""
    meta = dict(crd.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **origin}
    return {**crd, "metadata": meta}


async def _apply_one(kube: KubeClient, crd: dict[str, Any], *, server_side: bool, replace: bool) -> bool:
    """Apply one CRD; True when it was written (a client-side Create of an existing one is not)."""
    name = str((crd.get("metadata") or {}).get("name") or "")
    if server_side:
        await kube.apply(crd, field_manager=FIELD_MANAGER, force=True, field_validation="Strict")
        return True
    try:
        await kube.create(crd, field_manager=FIELD_MANAGER)
        return True
    except AlreadyExists:
        if not replace:
            return False  # Flux: "is already present. Skipping."
    current = await kube.get(crd["apiVersion"], CRD_KIND, name)
    crd = {**crd, "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    await kube.replace(crd, field_manager=FIELD_MANAGER)
    return True


async def apply_crds(
    kube: KubeClient,
    crds: Sequence[dict[str, Any]],
    *,
    policy: str,
    origin: Mapping[str, str],
    server_side: bool,
    timeout: float = ESTABLISHED_TIMEOUT,
) -> int:
    """Apply ``crds`` under ``policy`` (Create or CreateReplace) and wait until they are Established.

    Returns how many were written. Raises :class:`CRDsFailed` with Flux's words.
    """
    written: list[ObjectRef] = []
    for crd in crds:
        name = str((crd.get("metadata") or {}).get("name") or "")
        try:
            if await _apply_one(
                kube, with_origin(crd, origin), server_side=server_side, replace=policy == "CreateReplace"
            ):
                written.append(ObjectRef(str(crd.get("apiVersion")), CRD_KIND, "", name))
        except GitopsMeshError as e:
            verb = "create" if policy == "Create" else "update"
            raise CRDsFailed(f"failed to {verb} CustomResourceDefinition {name}: {e}") from None
    if written:
        verdict, report = await health.wait(kube, written, timeout=timeout)
        if verdict is not health.Verdict.HEALTHY:
            raise CRDsFailed(f"failed to wait for CustomResourceDefinition(s): {report.message(verdict)}")
    return len(written)
