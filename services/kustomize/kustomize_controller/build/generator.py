"""Step 1 of a build: the kustomization.yaml of spec.path, generated when missing, with the spec's overlays written in.

What follows fluxcd/pkg ``kustomize.Generator`` (the facts, not the code):

* a directory without a kustomization file gets one listing, in walk (lexical) order, every ``*.yaml`` /
  ``*.yml`` file below it that decodes as Kubernetes objects, and every sub-directory that has its own
  kustomization file (as a directory resource, not descended into). A YAML file that does not decode
  fails the build naming the file. No kustomization file is listed (none exist below a listed path).
* the spec is then written into that kustomization: ``targetNamespace`` → ``namespace``;
  ``namePrefix`` / ``nameSuffix`` replace the kustomization's own; ``patches`` are appended;
  ``images`` replace the entry of the same name or are appended; ``components`` are appended
  (local relative paths only; missing ones dropped with ``ignoreMissingComponents`` — a path leaving the
  artifact is refused first, whether or not it exists, so the option tells nothing about the host).
* kustomize decodes the kustomization with Go's JSON rules: keys match fields case-insensitively (Unicode
  folding: ``name\\u017fpace`` is ``namespace``) and, of several, the last in byte order wins. A field the spec
  writes replaces every spelling of it, and a merged field starts from the value kustomize would have
  read, so no spelling in the tenant's file can override ``targetNamespace`` and the rest.
* ``commonMetadata`` is not a kustomize transformer in Flux: kustomize-controller sets those labels and
  annotations on every built object's metadata just before applying (``ssautil.SetCommonMetadata``), so
  they touch no selector or template and are not subject to substitution. :func:`set_common_metadata`
  does the same and the pipeline runs it last. Owner labels are the applier's.

An empty generated kustomization lists ``resources: []``: kustomize rejects one holding only its type.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gitops_mesh import tenant_yaml
from kustomize_controller.build import manifests
from kustomize_controller.build.errors import BuildFailed, InvalidManifest, UnsafeReference
from kustomize_controller.build.graph import load_kustomization, local_path, looks_remote
from kustomize_controller.build.workdir import find_kustomization, relative, replace_file

KUSTOMIZE_API_VERSION = "kustomize.config.k8s.io/v1beta1"
KUSTOMIZATION_KIND = "Kustomization"
#: Flux's kustomize Selector fields, which kustomize's patch target spells the same way.
_SELECTOR_FIELDS = ("group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector")
_IMAGE_FIELDS = ("name", "newName", "newTag", "digest")
_MANIFEST_SUFFIXES = (".yaml", ".yml")


def scan_manifests(root: Path, directory: Path) -> list[str]:
    """The resources a generated kustomization of ``directory`` lists, as ``./relative`` paths.

    ``root`` is the artifact root, for the paths in error messages. Raises InvalidManifest.
    """
    found: list[str] = []

    def walk(current: Path) -> None:
        for entry in sorted(os.scandir(current), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if find_kustomization(path) is not None:
                    found.append("./" + path.relative_to(directory).as_posix())
                else:
                    walk(path)
            elif entry.is_file() and path.suffix in _MANIFEST_SUFFIXES:
                check_manifest(path.read_bytes(), relative(root, path))
                found.append("./" + path.relative_to(directory).as_posix())

    walk(directory)
    return found


def check_manifest(data: bytes, name: str) -> None:
    """Raise InvalidManifest unless every document of ``data`` is a Kubernetes object (or empty)."""
    try:
        documents = list(manifests.load_all(data))
    except yaml.YAMLError as e:
        raise InvalidManifest(
            f"failed to decode Kubernetes YAML from '{name}': {tenant_yaml.problem(e)}", path=name
        ) from e
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        where = f"'{name}'" if len(documents) == 1 else f"'{name}' (document {index})"
        if not isinstance(doc, dict):
            raise InvalidManifest(
                f"failed to decode Kubernetes YAML from {where}: a {type(doc).__name__}, not an object", path=name
            )
        missing = [field for field in ("apiVersion", "kind") if not isinstance(doc.get(field), str) or not doc[field]]
        if missing:
            raise InvalidManifest(
                f"failed to decode Kubernetes YAML from {where}: missing {' and '.join(missing)}", path=name
            )


def generated(resources: Sequence[str]) -> dict[str, Any]:
    """The kustomization Flux writes for a directory of plain manifests."""
    return {"apiVersion": KUSTOMIZE_API_VERSION, "kind": KUSTOMIZATION_KIND, "resources": list(resources)}


def is_local_relative(path: str) -> bool:
    """A component reference Flux accepts: relative and local (``file://`` only when relative)."""
    if path.startswith("file://"):
        path = path.removeprefix("file://")
    elif looks_remote(path):
        return False
    return not path.startswith("/")


def apply_overlays(
    kustomization: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    component_exists: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """``kustomization`` with the Kustomization spec written in, as Flux's generator does. Pure.

    ``component_exists(path) -> bool`` decides ``ignoreMissingComponents``; without it nothing is dropped.
    Raises BuildFailed for spec fields of the wrong shape.
    """
    kus: dict[str, Any] = dict(kustomization)
    kus.setdefault("apiVersion", KUSTOMIZE_API_VERSION)
    kus.setdefault("kind", KUSTOMIZATION_KIND)

    target_namespace = spec.get("targetNamespace")
    if target_namespace:
        _take(kus, "namespace")
        kus["namespace"] = _string(target_namespace, "targetNamespace")
    for field in ("namePrefix", "nameSuffix"):
        value = spec.get(field)
        if value:
            _take(kus, field)
            kus[field] = _string(value, field)

    patches = _list(spec.get("patches"), "patches")
    if patches:
        existing = list(_take(kus, "patches") or [])
        for index, patch in enumerate(patches):
            existing.append(_patch(patch, index))
        kus["patches"] = existing

    images = _list(spec.get("images"), "images")
    if images:
        current: list[Any] = list(_take(kus, "images") or [])
        for index, image in enumerate(images):
            entry = _image(image, index)
            for position, old in enumerate(current):
                if isinstance(old, Mapping) and old.get("name") == entry["name"]:
                    current[position] = entry
                    break
            else:
                current.append(entry)
        kus["images"] = current

    components = _list(spec.get("components"), "components")
    if components:
        merged = list(_take(kus, "components") or [])
        for component in components:
            path = _string(component, "components[]")
            if not is_local_relative(path):
                raise BuildFailed(f"component '{path}' must be a local path relative to spec.path")
            if spec.get("ignoreMissingComponents") and component_exists is not None and not component_exists(path):
                continue
            merged.append(path)
        kus["components"] = merged

    if set(kus) <= {"apiVersion", "kind"}:
        kus["resources"] = []
    return kus


def set_common_metadata(
    objects: Iterable[dict[str, Any]], labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None
) -> None:
    """Set ``labels`` and ``annotations`` on every object's metadata, replacing keys already there. In place."""
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        if labels:
            metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
        if annotations:
            metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}


def write_kustomization(root: Path, directory: Path, spec: Mapping[str, Any]) -> Path:
    """Generate (if missing) and overlay the kustomization of ``directory`` in the work tree ``root``.

    Returns the file written. The file keeps its name when one exists (kustomize refuses two).
    """
    existing = find_kustomization(directory)
    if existing is None:
        kus = generated(scan_manifests(root, directory))
        target = directory / "kustomization.yaml"
    else:
        kus = load_kustomization(existing, relative(root, existing))
        target = existing

    def component_exists(path: str) -> bool:
        target = local_path(root, directory, path.removeprefix("file://"))
        if target is None:
            # Refused before any lookup: dropping only missing paths would tell what exists on the host.
            raise UnsafeReference(f"spec.components '{path}' points outside the source artifact")
        return target.exists()

    kus = apply_overlays(kus, spec, component_exists=component_exists)
    replace_file(target, manifests.dump(kus).encode())
    return target


def _take(kus: dict[str, Any], field: str) -> Any:
    """Remove every spelling of ``field`` from ``kus``; the value kustomize would have read (None if absent)."""
    want = field.casefold()
    keys = [key for key in kus if isinstance(key, str) and key.casefold() == want]
    if not keys:
        return None
    # Go turns the YAML into a JSON object with sorted keys and its decoder keeps the last match.
    value = kus[max(keys, key=lambda key: key.encode())]
    for key in keys:
        del kus[key]
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise BuildFailed(f"spec.{field} must be a string, not {type(value).__name__}")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BuildFailed(f"spec.{field} must be a list, not {type(value).__name__}")
    return value


def _patch(patch: Any, index: int) -> dict[str, Any]:
    if not isinstance(patch, Mapping) or not isinstance(patch.get("patch"), str):
        raise BuildFailed(f"spec.patches[{index}] must have a 'patch' string")
    out: dict[str, Any] = {"patch": patch["patch"]}
    target = patch.get("target")
    if target is not None:
        if not isinstance(target, Mapping):
            raise BuildFailed(f"spec.patches[{index}].target must be a map")
        out["target"] = {field: target[field] for field in _SELECTOR_FIELDS if target.get(field)}
    return out


def _image(image: Any, index: int) -> dict[str, Any]:
    if not isinstance(image, Mapping) or not isinstance(image.get("name"), str) or not image["name"]:
        raise BuildFailed(f"spec.images[{index}] must have a 'name'")
    return {field: image[field] for field in _IMAGE_FIELDS if image.get(field)}
