"""A chart archive with another version in its Chart.yaml: the chart a ``chartRef`` to an OCI artifact releases.

Flux sets the digest-qualified version (:mod:`helm_controller.chart_revision`) on the chart it loaded in
memory before handing it to Helm; here Helm is the CLI, so the archive is unpacked by the project's capped
reader (:func:`gitops_mesh.artifacts.extract.safe_extract`, a chart's limits), the ``version`` scalar of
``<chart>/Chart.yaml`` replaced on PyYAML's node graph (tenant_yaml's caps; every other scalar keeps its
text, anchors and comments aside), and the tree packed again (:func:`gitops_mesh.artifacts.archive.pack`).
Blocking: run it in a thread.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from gitops_mesh.artifacts.archive import pack
from gitops_mesh.artifacts.errors import ArtifactError
from gitops_mesh.artifacts.extract import safe_extract
from gitops_mesh.tenant_yaml import compose_all
from helm_controller.chart_meta import CHART_LIMITS, ChartUnreadable


def set_version(text: bytes, version: str) -> str:
    """Chart.yaml's text with its top-level ``version`` set (added when absent); the rest as written."""
    docs = compose_all(text, what="Chart.yaml")
    if len(docs) != 1 or not isinstance(docs[0], yaml.MappingNode):
        raise ChartUnreadable("Chart.yaml is not one mapping")
    root = docs[0]
    value = yaml.ScalarNode("tag:yaml.org,2002:str", version, style='"')
    for i, (key, _) in enumerate(root.value):
        if isinstance(key, yaml.ScalarNode) and key.value == "version":
            root.value[i] = (key, value)
            break
    else:
        root.value.append((yaml.ScalarNode("tag:yaml.org,2002:str", "version"), value))
    return str(yaml.serialize(root))


def with_version(archive: Path, version: str, dest: Path) -> Path:
    """Write to ``dest`` the chart ``archive`` with Chart.yaml's version set to ``version``; ``dest``."""
    work = Path(tempfile.mkdtemp(prefix="repack-", dir=dest.parent))
    try:
        tree = work / "tree"
        try:
            safe_extract(archive, tree, CHART_LIMITS)
        except ArtifactError as e:
            raise ChartUnreadable(f"chart artifact is unreadable: {e}") from None
        tops = [p for p in tree.iterdir() if p.is_dir() and (p / "Chart.yaml").is_file()]
        if len(tops) != 1:
            raise ChartUnreadable(f"chart artifact has {len(tops)} top-level Chart.yaml files, not one")
        chart_yaml = tops[0] / "Chart.yaml"
        try:
            chart_yaml.write_text(set_version(chart_yaml.read_bytes(), version))
        except yaml.YAMLError as e:
            raise ChartUnreadable(f"chart artifact is unreadable: {e}") from None
        pack(tree, dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["set_version", "with_version"]
