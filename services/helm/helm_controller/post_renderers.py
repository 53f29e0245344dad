"""A HelmRelease's postRenderers and commonMetadata as data (pure): the kustomizations, Flux's digests, the plugin.

Where it sits: :mod:`.action_requests` turns the spec into a :class:`PostRender`; :mod:`.actions` writes the
plugin (:func:`plugin_manifest`) and its request (:func:`request_document`) into the private HELM_PLUGINS
directory of one helm call; helm 4 runs the plugin (:mod:`helm_controller.postrender`), which runs
kustomize over each step below.

What follows Flux's ``internal/postrender`` (the facts, not the code):

* each ``postRenderers[].kustomize`` is its own kustomize build, in the order written, over the previous
  one's output as the only resource (``patches``: ``patch`` + ``target``; ``images``: name, newName, newTag,
  digest); then ``commonMetadata`` as kustomize's LabelTransformer / AnnotationsTransformer confined to
  ``metadata/labels`` and ``metadata/annotations`` (no selectors, no pod templates), overriding existing keys.
* the v2 API cannot hold ``patchesStrategicMerge`` / ``patchesJson6902`` (v2beta1's; Flux dropped them with
  v2beta2, so the served CRD prunes them); ``patches`` takes both kinds of patch.
* ``status.observedPostRenderersDigest`` / ``observedCommonMetadataDigest``: sha256 of Go's
  ``json.Encoder`` output of the field (struct field order, omitempty, maps sorted, HTML escaped, a newline);
  empty when the field is absent.
* ``postRenderStrategy`` nohooks|combined|separate: helm 4.3's CLI has no flag for it (it always sends hooks
  and templates together), so the plugin applies it itself: nohooks passes hook documents through untouched,
  separate builds hooks and templates apart.

Tenant input: kustomizations are built as data and written as JSON; the only resource is the local file of
rendered manifests, so kustomize has nothing remote to fetch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from gitops_mesh.errors import InvalidSpec

#: The plugin's name (``helm --post-renderer``) and its directory under HELM_PLUGINS.
PLUGIN_NAME: Final = "gitops-mesh-postrender"
#: Beside plugin.yaml: what to do (JSON), and the plugin's own complaint (helm drops a plugin's stderr).
REQUEST_FILE: Final = "request.json"
ERROR_FILE: Final = "error.txt"
#: Flux's API group, the origin labels' prefix.
GROUP: Final = "helm.toolkit.fluxcd.io"
#: The rendered manifests' file in each build directory.
INPUT_FILE: Final = "helm-output.yaml"
KUSTOMIZE_API_VERSION: Final = "kustomize.config.k8s.io/v1beta1"
#: Caps: how many steps, patches and images, and the bytes of the spec's post-render part.
MAX_POST_RENDERERS: Final = 32
MAX_ENTRIES: Final = 256
MAX_SPEC_BYTES: Final = 1 << 20
#: The most manifests the plugin reads or prints (helm's own release limit is far below).
MAX_MANIFEST_BYTES: Final = 64 << 20

_SELECTOR_FIELDS: Final = ("group", "version", "kind", "namespace", "name", "annotationSelector", "labelSelector")
_IMAGE_FIELDS: Final = ("name", "newName", "newTag", "digest")
_GO_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE: Final = re.compile("[<>&\u2028\u2029]")


class Strategy(StrEnum):
    """Flux's PostRenderStrategy: how hooks meet the post-renderers (Helm 4's default is combined)."""

    NO_HOOKS = "nohooks"
    COMBINED = "combined"
    SEPARATE = "separate"


@dataclass(frozen=True, slots=True)
class PostRender:
    """The kustomize builds to run over the rendered manifests, in order, and how hooks take part; then the
    origin labels, set on every object the strategy sends (over commonMetadata's, as Flux's last renderer)."""

    kustomizations: tuple[dict[str, Any], ...]
    strategy: Strategy = Strategy.COMBINED
    labels: Mapping[str, str] = field(default_factory=dict)


class PostRenderFailed(Exception):
    """The plugin could not post-render (kustomize refused, timed out, printed too much; unreadable YAML);
    the message is for the HelmRelease's status."""


# --- the spec, as Go decodes it ---------------------------------------------------------------------------------


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidSpec(f"{where} must be a string")
    return value


def _list(value: Any, where: str, cap: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidSpec(f"{where} must be a list")
    if len(value) > cap:
        raise InvalidSpec(f"{where} has {len(value)} entries, more than {cap}")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{where} must be an object")
    return value


def _fields(value: Mapping[str, Any], names: Sequence[str], where: str) -> dict[str, str]:
    """The string fields of a Go struct with omitempty, in struct order."""
    out: dict[str, str] = {}
    for name in names:
        text = _string(value.get(name), f"{where}.{name}")
        if text:
            out[name] = text
    return out


def _patch(value: Any, where: str) -> dict[str, Any]:
    patch = _object(value, where)
    out: dict[str, Any] = {"patch": _string(patch.get("patch"), f"{where}.patch")}
    if patch.get("target") is not None:  # a pointer: {} is kept, absent is omitted
        out["target"] = _fields(_object(patch["target"], f"{where}.target"), _SELECTOR_FIELDS, f"{where}.target")
    return out


def _kustomize(value: Any, where: str) -> dict[str, Any]:
    kus = _object(value, where)
    out: dict[str, Any] = {}
    patches = [
        _patch(p, f"{where}.patches[{i}]")
        for i, p in enumerate(_list(kus.get("patches"), f"{where}.patches", MAX_ENTRIES))
    ]
    if patches:
        out["patches"] = patches
    images = []
    for i, image in enumerate(_list(kus.get("images"), f"{where}.images", MAX_ENTRIES)):
        fields = _fields(_object(image, f"{where}.images[{i}]"), _IMAGE_FIELDS, f"{where}.images[{i}]")
        images.append({"name": fields.pop("name", ""), **fields})  # name has no omitempty
    if images:
        out["images"] = images
    return out


def post_renderers(spec: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """``spec.postRenderers`` as Go's ``[]PostRenderer`` holds it (None when absent). Raises InvalidSpec."""
    raw = spec.get("postRenderers")
    if raw is None:
        return None
    entries = []
    for i, entry in enumerate(_list(raw, "postRenderers", MAX_POST_RENDERERS)):
        obj = _object(entry, f"postRenderers[{i}]")
        kus = obj.get("kustomize")
        entries.append({} if kus is None else {"kustomize": _kustomize(kus, f"postRenderers[{i}].kustomize")})
    return entries


def common_metadata(spec: Mapping[str, Any]) -> dict[str, dict[str, str]] | None:
    """``spec.commonMetadata`` as Go's ``*CommonMetadata`` (None when absent): annotations, labels."""
    raw = spec.get("commonMetadata")
    if raw is None:
        return None
    meta = _object(raw, "commonMetadata")
    out: dict[str, dict[str, str]] = {}
    for key in ("annotations", "labels"):
        values = _object(meta.get(key), f"commonMetadata.{key}")
        if len(values) > MAX_ENTRIES:
            raise InvalidSpec(f"commonMetadata.{key} has {len(values)} entries, more than {MAX_ENTRIES}")
        if values:
            out[key] = {str(k): _string(v, f"commonMetadata.{key}.{k}") for k, v in values.items()}
    return out


def strategy(spec: Mapping[str, Any]) -> Strategy:
    raw = spec.get("postRenderStrategy") or Strategy.COMBINED.value
    try:
        return Strategy(raw)
    except ValueError:
        raise InvalidSpec(f"postRenderStrategy {raw!r} is not one of {', '.join(s.value for s in Strategy)}") from None


# --- Flux's digests ----------------------------------------------------------------------------------------------


def go_json(value: Any) -> str:
    """Go's ``json.Encoder.Encode`` of strings, lists and objects: compact, HTML escaped, a newline.

    Objects keep the order given (a struct's field order); Go maps are sorted by the caller.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # These characters occur only inside strings, where Go escapes them.
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text) + "\n"


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(go_json(value).encode()).hexdigest()


def post_renderers_digest(spec: Mapping[str, Any]) -> str:
    """Flux's ``status.observedPostRenderersDigest`` of the spec ("" without postRenderers)."""
    entries = post_renderers(spec)
    return "" if entries is None else _digest(entries)


def common_metadata_digest(spec: Mapping[str, Any]) -> str:
    """Flux's ``status.observedCommonMetadataDigest`` of the spec ("" without commonMetadata)."""
    meta = common_metadata(spec)
    if meta is None:
        return ""
    return _digest({field: dict(sorted(values.items())) for field, values in meta.items()})


def stamp_observed(status: dict[str, Any], spec: Mapping[str, Any]) -> None:
    """The observed digests follow the spec, as Flux's ``summarize`` writes them after every release step."""
    for key, digest in (
        ("observedPostRenderersDigest", post_renderers_digest(spec)),
        ("observedCommonMetadataDigest", common_metadata_digest(spec)),
    ):
        if digest:
            status[key] = digest
        else:
            status.pop(key, None)


# --- the kustomizations ------------------------------------------------------------------------------------------


def _kustomization(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": KUSTOMIZE_API_VERSION, "kind": "Kustomization", "resources": [INPUT_FILE], **fields}


def kustomize_step(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ``postRenderers[].kustomize`` (as :func:`post_renderers` holds it) as a kustomization; None: nothing."""
    kus = entry.get("kustomize") or {}
    fields: dict[str, Any] = {}
    if kus.get("images"):
        fields["images"] = [dict(image) for image in kus["images"]]
    if kus.get("patches"):
        fields["patches"] = [dict(patch) for patch in kus["patches"]]
    return _kustomization(**fields) if fields else None


def _transformer(kind: str, name: str, field: str, values: Mapping[str, str]) -> str:
    config = {
        "apiVersion": "builtin",
        "kind": kind,
        "metadata": {"name": name},
        field: dict(values),
        "fieldSpecs": [{"path": f"metadata/{field}", "create": True}],
    }
    return json.dumps(config, separators=(",", ":"))  # kustomize reads an inline transformer config as YAML


def common_metadata_step(meta: Mapping[str, Mapping[str, str]]) -> dict[str, Any] | None:
    """commonMetadata as a kustomization of inline transformers confined to the objects' own metadata."""
    transformers = []
    if meta.get("labels"):
        transformers.append(_transformer("LabelTransformer", "common-labels", "labels", meta["labels"]))
    if meta.get("annotations"):
        transformers.append(
            _transformer("AnnotationsTransformer", "common-annotations", "annotations", meta["annotations"])
        )
    return _kustomization(transformers=transformers) if transformers else None


def origin_labels(namespace: str, name: str) -> dict[str, str]:
    """Flux's origin labels: which HelmRelease an object came from (``flux trace`` and selectors read them)."""
    return {f"{GROUP}/name": name, f"{GROUP}/namespace": namespace}


def post_render_of(spec: Mapping[str, Any], *, namespace: str, name: str) -> PostRender:
    """The post-rendering of a HelmRelease ``namespace/name``: its steps, then the origin labels, which Flux
    sets on every release (so helm always runs the plugin). Raises InvalidSpec."""
    if len(json.dumps({k: spec.get(k) for k in ("postRenderers", "commonMetadata")})) > MAX_SPEC_BYTES:
        raise InvalidSpec(f"postRenderers and commonMetadata are larger than {MAX_SPEC_BYTES} bytes")
    steps = [step for entry in post_renderers(spec) or [] if (step := kustomize_step(entry)) is not None]
    meta = common_metadata(spec)
    if meta is not None and (step := common_metadata_step(meta)) is not None:
        steps.append(step)
    return PostRender(tuple(steps), strategy(spec), origin_labels(namespace, name))


# --- the plugin --------------------------------------------------------------------------------------------------


def plugin_manifest(python: str) -> dict[str, Any]:
    """Helm 4's plugin.yaml (apiVersion v1, type postrenderer/v1, subprocess runtime) running our module.

    ``-P``: the work directory helm runs in is not put on the module path; ``-m``: the controller's own
    interpreter and packages, whatever PATH helm passes on.
    """
    return {
        "apiVersion": "v1",
        "name": PLUGIN_NAME,
        "version": "1.0.0",
        "type": "postrenderer/v1",
        "runtime": "subprocess",
        "runtimeConfig": {"platformCommand": [{"command": python, "args": ["-P", "-m", "helm_controller.postrender"]}]},
    }


def request_document(post: PostRender, *, kustomize: str | None, deadline: float) -> dict[str, Any]:
    """What the plugin reads from its directory: the kustomize binary, the steps, the strategy, a wall-clock deadline."""
    return {
        "kustomize": kustomize,
        "kustomizations": list(post.kustomizations),
        "strategy": post.strategy.value,
        "labels": dict(post.labels),
        "deadline": deadline,
    }
