"""The chart artifact's Chart.yaml: name, version and appVersion, read from the archive without unpacking it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import yaml

from gitops_mesh.artifacts.errors import ArtifactError
from gitops_mesh.artifacts.untar import ArchiveEntry, ExtractLimits, read_members
from gitops_mesh.errors import TransientError
from gitops_mesh.tenant_yaml import load

#: A chart archive as Flux caps it (--helm-chart-max-size, --helm-chart-file-max-size).
CHART_LIMITS: Final = ExtractLimits(max_total_bytes=50 << 20, max_file_bytes=5 << 20, skip_symlinks=True)


class ChartUnreadable(TransientError):
    """The artifact is not a chart we can read (ArtifactFailed: the source may publish a fixed one)."""

    reason = "ArtifactFailed"


def _is_chart_yaml(entry: ArchiveEntry) -> bool:
    return len(entry.parts) == 2 and entry.parts[1] == "Chart.yaml"


def _read(path: Path) -> tuple[str, str, str]:
    found = read_members(path, _is_chart_yaml, CHART_LIMITS)
    if len(found) != 1:
        raise ChartUnreadable(f"chart artifact has {len(found)} top-level Chart.yaml files, not one")
    meta = load(next(iter(found.values())), what="Chart.yaml")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("version"):
        raise ChartUnreadable("Chart.yaml has no name or version")
    return meta["name"], str(meta["version"]), str(meta.get("appVersion") or "")


async def chart_metadata(path: Path) -> tuple[str, str, str]:
    """(name, version, appVersion) of the chart archive at ``path`` (read in a thread: it inflates)."""
    try:
        return await asyncio.to_thread(_read, path)
    except ChartUnreadable:
        raise
    except (ArtifactError, yaml.YAMLError, ValueError) as e:  # the archive reader's and the YAML loader's refusals
        raise ChartUnreadable(f"chart artifact is unreadable: {e}") from None
