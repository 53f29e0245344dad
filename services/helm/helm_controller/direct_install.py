"""A first install without helm's own apply: Helm 4 renders the release, we apply its objects and write its record.

Where it sits: :class:`helm_controller.actions.HelmActions` calls :func:`install` for an install that qualifies
(:func:`chart_qualifies`, :func:`release_qualifies`; the request's own in
:func:`helm_controller.actions.direct_request_refusal`); anything else — hooks to run, ``install.replace``,
client-side apply, kustomize post-renderers, an apiserver older than 1.27, a release name with history — goes
through ``helm install`` as before. A chart's ``crds/`` were applied before either (:mod:`.crds`, as Flux).
docs/helm-actions.md measures why: on two cores a helm process per install spends most of its CPU starting,
building its REST mapping and applying, and the 1000-release benchmark cannot fit in its budget that way.

What stays Helm's, byte for byte: ``helm install --dry-run=server -o json`` is Helm's own install up to the
point where it would write — chart loading, values and schema, the templates with the real apiserver's
capabilities and ``lookup``, NOTES, the REST mapping of every object (an unknown kind fails there), and its
check of objects that already exist (take-ownership or not). Its JSON is the release record helm would store:
chart, config, manifest, apply method and times are kept as helm gave them.

What is done here, as Helm 4.3.2's ``pkg/action/install.go`` and ``pkg/kube/client.go`` do it:

* the namespace with ``--create-namespace``: a Namespace labelled ``name: <ns>``, applied server-side;
* record v1 created first: status ``pending-install``, "Initial install underway", the Secret driver's labels
  (the release's own, then ``createdAt``, ``name``, ``owner``, ``status``, ``version``), type
  ``helm.sh/release.v1``, the JSON gzipped at best compression and base64'd;
* every object with Helm's ownership metadata (``app.kubernetes.io/managed-by: Helm``, ``meta.helm.sh/release-name``
  and ``-namespace``), a namespaced kind without a namespace put in the release's, applied server-side as field
  manager ``helm`` with ``fieldValidation=Strict`` and conflicts forced (Flux forces them; a conflict the
  ownership check allows is one helm's adoption forces too), in the manifest's install order, one kind after the
  other with the objects of a kind at once, and every object attempted even after one fails (batchPerform);
* then the record updated: ``deployed`` with "Install complete" (or the requested description), or ``failed``
  with ``Release "<name>" failed: <error>``; the update replaces the labels with ``modifiedAt`` in place of
  ``createdAt``, as the driver's Update does.

Flux's origin labels are set here on the rendered objects (the plugin's job on the helm path), with the same
node-graph labelling (:func:`helm_controller.postrender.label_documents`), so the stored manifest carries them.

One known difference: when an install adopts objects that a client-side-apply helm managed before, Helm first
moves that manager's ``Update`` managedFields entry into its apply entry (``csaupgrade``); this path does not,
so such a field the chart later drops stays with the old entry. Helm 3 releases adopted by a fresh install are
the only case.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from gitops_mesh.artifacts.errors import ArtifactError
from gitops_mesh.artifacts.untar import ArchiveEntry, read_members
from gitops_mesh.errors import GitopsMeshError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.objects import KubeObject
from helm_controller.chart_meta import CHART_LIMITS
from helm_controller.post_renderers import PostRenderFailed
from helm_controller.postrender import label_documents
from helm_controller.releases import (
    MAX_DESCRIPTION,
    OWNER,
    SECRET_TYPE,
    Release,
    Status,
    decode_secret,
    encode_release,
    manifest_documents,
    secret_name,
)

#: Helm's field manager: the base name of its binary (pkg/kube getManagedFieldsManager), so the helm CLI's later
#: upgrades and this path own the same fields.
FIELD_MANAGER: Final = "helm"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
RELEASE_NAME_ANNOTATION: Final = "meta.helm.sh/release-name"
RELEASE_NAMESPACE_ANNOTATION: Final = "meta.helm.sh/release-namespace"
INSTALL_UNDERWAY: Final = "Initial install underway"
INSTALL_COMPLETE: Final = "Install complete"
#: What a chart template mentions when it renders a hook; such a chart goes to helm, which runs hooks.
_HOOK_MARK: Final = b"helm.sh/hook"
#: Helm writes each manifest as ``---\n# Source: <path>\n<document>\n`` (pkg/action renderResources).
_SOURCE: Final = re.compile(r"^---\n# Source: ([^\n]*)\n", re.MULTILINE)


class NotDirect(Exception):
    """This install goes to helm: the reason is for the log."""


# --- which installs qualify, pure ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChartShape:
    """What of a chart archive decides the install path, found without rendering it."""

    #: a ``crds/`` directory anywhere, or a subchart still packed (its crds cannot be seen)
    may_have_crds: bool
    #: a template mentions ``helm.sh/hook``
    may_have_hooks: bool


def in_crds_dir(parts: Sequence[str]) -> bool:
    """A chart path (``<chart>/.../crds/<file>``) inside a ``crds/`` directory, of the chart or a subchart."""
    return "crds" in parts[1:-1]


def _packed_subchart(parts: Sequence[str]) -> bool:
    return len(parts) > 2 and parts[-2] == "charts" and parts[-1].endswith((".tgz", ".tar.gz"))


def _shape_entry(entry: ArchiveEntry) -> bool:
    parts = entry.parts
    return in_crds_dir(parts) or _packed_subchart(parts) or "templates" in parts[1:-1]


def _read_shape(path: Path) -> ChartShape:
    members = read_members(path, _shape_entry, CHART_LIMITS)
    crds = hooks = False
    for path_name, data in members.items():
        parts = tuple(path_name.split("/"))
        if in_crds_dir(parts) or _packed_subchart(parts):
            crds = True
        else:  # a template
            hooks = hooks or _HOOK_MARK in data
    return ChartShape(may_have_crds=crds, may_have_hooks=hooks)


async def chart_shape(path: Path) -> ChartShape:
    """The chart archive's :class:`ChartShape` (read in a thread: it inflates); unreadable → goes to helm."""
    try:
        return await asyncio.to_thread(_read_shape, path)
    except (ArtifactError, ValueError) as e:
        raise NotDirect(f"chart archive not inspected: {e}") from None


def chart_qualifies(shape: ChartShape, *, skip_crds: bool, disable_hooks: bool) -> None:
    """Raise :class:`NotDirect` when the chart needs helm's own install: CRDs to create or hooks to run."""
    if shape.may_have_crds and not skip_crds:
        raise NotDirect("the chart may carry CRDs")
    if shape.may_have_hooks and not disable_hooks:
        raise NotDirect("the chart may render hooks")


def release_qualifies(rendered: Mapping[str, Any], *, disable_hooks: bool) -> None:
    """Raise :class:`NotDirect` when the rendered release needs helm: hooks to run, or not server-side apply."""
    if rendered.get("hooks") and not disable_hooks:
        raise NotDirect("the release has hooks")
    if rendered.get("apply_method") != "ssa":
        raise NotDirect("the release applies client-side")
    if rendered.get("version") != 1:
        raise NotDirect("the render is not a first version")


# --- the rendered release, pure ---------------------------------------------------------------------------------


def split_manifest(manifest: str) -> list[tuple[str, str]]:
    """(source path, document) of each manifest entry as Helm writes them."""
    starts = list(_SOURCE.finditer(manifest))
    out: list[tuple[str, str]] = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(manifest)
        out.append((m.group(1), manifest[m.end() : end].rstrip("\n")))
    return out


def labelled_manifest(manifest: str, labels: Mapping[str, str]) -> str:
    """The manifest with ``labels`` on every object, each entry still under its ``# Source:`` line."""
    if not labels:
        return manifest
    parts: list[str] = []
    for source, document in split_manifest(manifest):
        labelled = label_documents(document.encode(), labels).decode().removeprefix("---\n")
        # A post-rendered document keeps the newline it ends with, and Helm adds its own after it.
        parts.append(f"---\n# Source: {source}\n{labelled}\n")
    return "".join(parts)


def helm_object(obj: Mapping[str, Any], *, release: str, namespace: str, namespaced: bool) -> dict[str, Any]:
    """``obj`` as Helm sends it: ownership metadata merged over the chart's, the release's namespace by default."""
    meta = dict(obj.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY_LABEL: "Helm"}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        RELEASE_NAME_ANNOTATION: release,
        RELEASE_NAMESPACE_ANNOTATION: namespace,
    }
    if namespaced and not meta.get("namespace"):
        meta["namespace"] = namespace
    return {**obj, "metadata": meta}


def kind_batches(objects: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive objects of one kind together, in order (Helm applies a kind's objects at once, kinds in turn)."""
    batches: list[list[dict[str, Any]]] = []
    for obj in objects:
        if batches and batches[-1][0].get("kind") == obj.get("kind"):
            batches[-1].append(obj)
        else:
            batches.append([obj])
    return batches


def gvk(obj: Mapping[str, Any]) -> str:
    """Go's GroupVersionKind.String(): ``apps/v1, Kind=Deployment``, ``/v1, Kind=Service``."""
    api_version = str(obj.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={obj.get('kind')}"


def apply_failure(obj: Mapping[str, Any], error: BaseException) -> str:
    """Helm's words for an object the apiserver refused (pkg/kube patchResourceServerSide)."""
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    return f"server-side apply failed for object {where} {gvk(obj)}: {error}"


def record(
    rendered: Mapping[str, Any], *, status: Status, description: str, labels: Mapping[str, str], created: bool
) -> KubeObject:
    """The Secret driver's object for version 1 of the release in ``status`` (Create: ``createdAt``; Update: ``modifiedAt``)."""
    info = {k: v for k, v in dict(rendered.get("info") or {}).items() if k != "resources"}
    info |= {"status": status.value, "description": description}
    rel = {**rendered, "info": info}
    name = str(rel.get("name") or "")
    stamp = {"createdAt" if created else "modifiedAt": str(int(time.time()))}
    system = {"name": name, "owner": OWNER, "status": status.value, "version": str(rel.get("version") or 1)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(name, int(rel.get("version") or 1)),
            "namespace": str(rel.get("namespace") or ""),
            "labels": {**labels, **stamp, **system},
        },
        "type": SECRET_TYPE,
        "data": {"release": encode_release(rel)},
    }


# --- acting -----------------------------------------------------------------------------------------------------


class InstallFailed(GitopsMeshError):
    """The install was recorded failed; ``release`` is the record as written (None when even that failed)."""

    def __init__(self, message: str, release: Release | None) -> None:
        super().__init__(message)
        self.message = message
        self.release = release


async def _apply_one(kube: KubeClient, obj: dict[str, Any], release: str, namespace: str) -> str | None:
    try:
        info = await kube.resource(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    except GitopsMeshError as e:  # the dry run mapped every kind; one gone since is refused like the apply
        return apply_failure(obj, e)
    target = helm_object(obj, release=release, namespace=namespace, namespaced=info.namespaced)
    try:
        await kube.apply(target, field_manager=FIELD_MANAGER, force=True, field_validation="Strict")
    except GitopsMeshError as e:
        return apply_failure(target, e)
    return None


async def apply_objects(kube: KubeClient, objects: Sequence[dict[str, Any]], release: str, namespace: str) -> list[str]:
    """Apply every object, kind by kind; the failures in Helm's words (empty when all were taken)."""
    failures: list[str] = []
    for batch in kind_batches(objects):
        results = await asyncio.gather(*(_apply_one(kube, obj, release, namespace) for obj in batch))
        failures += [r for r in results if r]
    return failures


async def create_namespace(kube: KubeClient, namespace: str) -> None:
    """``--create-namespace``: Helm's Namespace, applied server-side without forcing."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"name": namespace}}}
    await kube.apply(ns, field_manager=FIELD_MANAGER, force=False, field_validation="Strict")


async def install(
    kube: KubeClient,
    rendered: Mapping[str, Any],
    *,
    origin_labels: Mapping[str, str],
    release_labels: Mapping[str, str],
    description: str,
    create_ns: bool,
) -> Release:
    """Record, apply and conclude a first install Helm rendered (see the module's text).

    Raises :class:`InstallFailed` with Helm's message (``INSTALLATION FAILED: ...``) when an object was refused
    (the record then says failed); an error before the record exists propagates as it is.
    """
    name = str(rendered.get("name") or "")
    namespace = str(rendered.get("namespace") or "")
    try:
        manifest = labelled_manifest(str(rendered.get("manifest") or ""), origin_labels)
    except PostRenderFailed as e:
        raise InstallFailed(f"INSTALLATION FAILED: error while running post render on files: {e}", None) from None
    except yaml.YAMLError as e:  # pragma: no cover - label_documents maps these to PostRenderFailed
        raise InstallFailed(f"INSTALLATION FAILED: {e}", None) from None
    rendered = {**rendered, "manifest": manifest}
    objects = manifest_documents(manifest)
    if create_ns:
        await create_namespace(kube, namespace)
    created = await kube.create(
        record(
            rendered, status=Status.PENDING_INSTALL, description=INSTALL_UNDERWAY, labels=release_labels, created=True
        )
    )
    failures = await apply_objects(kube, objects, name, namespace)
    if failures:
        error = "\n".join(failures)
        final = record(
            rendered,
            status=Status.FAILED,
            description=f'Release "{name}" failed: {error}',
            labels=release_labels,
            created=False,
        )
    else:
        final = record(
            rendered,
            status=Status.DEPLOYED,
            description=(description[:MAX_DESCRIPTION] or INSTALL_COMPLETE),
            labels=release_labels,
            created=False,
        )
    final["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    written = decode_secret(await kube.replace(final))
    if failures:
        raise InstallFailed(f"INSTALLATION FAILED: {error}", written)
    return written
