"""The post-renderer helm runs (``python -P -m helm_controller.postrender``): the release's kustomize steps over
the rendered manifests, then Flux's origin labels on every object.

Where it sits: helm 4 starts this as the command of our postrenderer/v1 plugin (written per call by
:mod:`.actions` from :mod:`.post_renderers`), with the rendered manifests on stdin and HELM_PLUGIN_DIR
naming the plugin's private directory. It reads ``request.json`` there, runs the kustomize steps
(:mod:`.postrender_steps`, only when there are any), sets the origin labels and prints the result. Helm
keeps a plugin's stderr to itself, so a failure is also written to ``error.txt`` for the controller to quote.

Every install and upgrade runs this (Flux labels every release's objects), so its start-up is kept small:
the kustomize half, with asyncio and the command runner, is imported only when a release has steps.

The labels are set on PyYAML's node graph (:func:`gitops_mesh.tenant_yaml.compose_all`, under the tenant
caps), never on constructed values: every scalar is written back with the text, tag and style it came with,
so ``yes`` or ``0777`` mean to the apiserver what they meant before. Like kustomize's LabelTransformer,
which Flux uses, a label already there is overwritten and ``metadata.labels`` is made when missing.

Why a module of the controller run by its own interpreter (not a console script): helm passes its
environment on, whose PATH need not find our scripts; ``sys.executable`` always has our packages.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import orjson
import yaml

from gitops_mesh import tenant_yaml
from helm_controller.post_renderers import (
    ERROR_FILE,
    MAX_MANIFEST_BYTES,
    REQUEST_FILE,
    PostRenderFailed,
    Strategy,
)

HOOK_ANNOTATION: Final = "helm.sh/hook"
_SEPARATOR: Final = re.compile(rb"^---[ \t]*\r?$", re.MULTILINE)
_STR: Final = "tag:yaml.org,2002:str"
_MAP: Final = "tag:yaml.org,2002:map"
_NULL: Final = "tag:yaml.org,2002:null"
try:
    _DUMPER: type[Any] = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _DUMPER = yaml.SafeDumper


def split_documents(stream: bytes) -> list[bytes]:
    """The YAML documents of ``stream`` as written (``---`` lines apart), empty ones dropped."""
    return [doc for doc in _SEPARATOR.split(stream) if doc.strip()]


def is_hook(document: bytes) -> bool:
    """A document helm treats as a hook: it carries the ``helm.sh/hook`` annotation."""
    obj = tenant_yaml.load(document, what="a rendered manifest")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(annotations, dict) and HOOK_ANNOTATION in annotations


def join_documents(documents: list[bytes]) -> bytes:
    return b"\n---\n".join(doc.strip(b"\n") for doc in documents) + b"\n"


def _entry(mapping: yaml.MappingNode, key: str) -> int | None:
    return next(
        (i for i, (k, _) in enumerate(mapping.value) if isinstance(k, yaml.ScalarNode) and k.value == key), None
    )


def _child_mapping(mapping: yaml.MappingNode, key: str) -> yaml.MappingNode | None:
    """``mapping[key]`` as a mapping, made when absent or null; None when it is something else."""
    at = _entry(mapping, key)
    if at is None:
        child = yaml.MappingNode(_MAP, [])
        mapping.value.append((yaml.ScalarNode(_STR, key), child))
        return child
    value = mapping.value[at][1]
    if isinstance(value, yaml.ScalarNode) and value.tag == _NULL:
        child = yaml.MappingNode(_MAP, [])
        mapping.value[at] = (mapping.value[at][0], child)
        return child
    return value if isinstance(value, yaml.MappingNode) else None


def set_labels(node: yaml.Node, labels: Mapping[str, str]) -> None:
    """``metadata.labels`` of one object node gain ``labels`` (overwriting); other documents are left alone."""
    if not isinstance(node, yaml.MappingNode):
        return
    meta = _child_mapping(node, "metadata")
    target = _child_mapping(meta, "labels") if meta is not None else None
    if target is None:
        return
    for key, value in labels.items():
        entry = (yaml.ScalarNode(_STR, key), yaml.ScalarNode(_STR, value, style='"'))
        at = _entry(target, key)
        if at is None:
            target.value.append(entry)
        else:
            target.value[at] = entry


def label_documents(stream: bytes, labels: Mapping[str, str]) -> bytes:
    """Every object of ``stream`` labelled; the stream as it came when there are no labels."""
    if not labels or not stream.strip():
        return stream
    try:
        nodes = tenant_yaml.compose_all(stream, what="the rendered manifests")
    except yaml.YAMLError as e:
        raise PostRenderFailed(f"rendered manifests: {tenant_yaml.problem(e)}") from None
    for node in nodes:
        set_labels(node, labels)
    out: str = yaml.serialize_all(nodes, Dumper=_DUMPER, explicit_start=True, allow_unicode=True, width=1 << 16)
    return out.encode()


def render(manifests: bytes, request: Mapping[str, Any], *, work: Path) -> bytes:
    """The post-rendered manifests under the request's strategy (see :mod:`.post_renderers`)."""
    kustomizations = list(request["kustomizations"])
    labels = {str(k): str(v) for k, v in (request.get("labels") or {}).items()}
    strategy = Strategy(request.get("strategy") or Strategy.COMBINED)

    def post_render(stream: bytes) -> bytes:
        if kustomizations:
            # Imported here, not above: the asyncio/kustomize half costs start-up every release would pay.
            steps = importlib.import_module("helm_controller.postrender_steps")
            kustomize = request.get("kustomize")
            if not kustomize:
                raise PostRenderFailed("post-renderers need kustomize: no kustomize binary (--kustomize-path)")
            deadline = float(request["deadline"])
            stream = steps.run(stream, kustomizations, kustomize=str(kustomize), work=work, deadline=deadline)
        return label_documents(stream, labels)

    if strategy is Strategy.COMBINED:
        return post_render(manifests)
    try:
        documents = [(doc, is_hook(doc)) for doc in split_documents(manifests)]
    except yaml.YAMLError as e:
        raise PostRenderFailed(f"rendered manifests: {tenant_yaml.problem(e)}") from None
    hooks = [doc for doc, hook in documents if hook]
    templates = [doc for doc, hook in documents if not hook]
    out = []
    if templates:
        out.append(post_render(join_documents(templates)))
    if hooks and strategy is Strategy.SEPARATE:
        out.append(post_render(join_documents(hooks)))
    elif hooks:
        out.append(join_documents(hooks))  # nohooks: hooks go back to helm as they came
    return join_documents(out)


def read_manifests() -> bytes:
    manifests = sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1)
    if len(manifests) > MAX_MANIFEST_BYTES:
        raise PostRenderFailed(f"rendered manifests are larger than {MAX_MANIFEST_BYTES} bytes")
    return manifests


def main() -> int:
    plugin_dir = Path(os.environ["HELM_PLUGIN_DIR"])
    try:
        request = orjson.loads((plugin_dir / REQUEST_FILE).read_bytes())
        manifests = read_manifests()
        work = Path(tempfile.mkdtemp(prefix="run-", dir=plugin_dir))
        out = render(manifests, request, work=work)
    except PostRenderFailed as e:
        (plugin_dir / ERROR_FILE).write_text(str(e))
        print(e, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
