"""Chart archives through the one archive reader: Helm's layout rules on top, Chart.yaml read in memory, the caps."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from gitops_mesh.artifacts.errors import ArchiveLimitExceeded, StorageError
from source_controller.helm.chart import (
    DEFAULT_MAX_CHART_FILE_SIZE,
    Dependency,
    extract_chart_archive,
    read_chart_archive,
)
from source_controller.helm.errors import ChartPackageError, CorruptChart
from tests.support.hostile_archives import TarGzStream

V1_CHART = b"apiVersion: v1\nname: legacy\nversion: 0.3.0\n"
REQUIREMENTS = b"dependencies:\n- name: redis\n  version: 1.x\n  repository: https://charts.example\n"


def chart_tgz(path: Path, files: dict[str, bytes]) -> Path:
    """A chart as ``helm package`` writes it: regular files only, no directory entries."""
    stream = TarGzStream(path)
    for name, data in files.items():
        stream.file(name, data)
    stream.close()
    return path


def test_chart_yaml_and_requirements_are_read_in_memory_and_nothing_is_written(tmp_path: Path) -> None:
    archive = chart_tgz(
        tmp_path / "legacy.tgz",
        {
            "legacy/Chart.yaml": V1_CHART,
            "legacy/requirements.yaml": REQUIREMENTS,
            "legacy/charts/sub/Chart.yaml": b"name: not-this-one\n",
            "legacy/templates/cm.yaml": b"kind: ConfigMap\n",
        },
    )
    meta = read_chart_archive(archive)
    assert (meta.name, meta.version, meta.api_version) == ("legacy", "0.3.0", "v1")
    assert meta.dependencies == (Dependency("redis", "1.x", "https://charts.example"),)
    assert os.listdir(tmp_path) == ["legacy.tgz"]


def test_extract_writes_the_chart_and_reads_its_metadata_from_it(tmp_path: Path) -> None:
    archive = chart_tgz(
        tmp_path / "legacy.tgz",
        {"legacy/Chart.yaml": V1_CHART, "legacy/requirements.yaml": REQUIREMENTS, "legacy/values.yaml": b"a: 1\n"},
    )
    meta, chart_dir = extract_chart_archive(archive, tmp_path / "out")
    assert chart_dir == tmp_path / "out" / "legacy"
    assert sorted(os.listdir(chart_dir)) == ["Chart.yaml", "requirements.yaml", "values.yaml"]
    assert (chart_dir / "values.yaml").read_bytes() == b"a: 1\n"
    assert meta.dependencies[0].name == "redis"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"bad/templates/a.yaml": b"kind: x\n"}, "has no bad/Chart.yaml"),
        ({"Chart.yaml": V1_CHART}, "'Chart.yaml' is not inside the chart directory"),
        ({"a/Chart.yaml": V1_CHART, "b/x": b""}, r"more than one top directory \('a', 'b'\)"),
        ({"a/Chart.yaml": V1_CHART, "a/../../etc/x": b""}, "entry 'a/../../etc/x' would escape the chart directory"),
        ({}, "chart archive is empty"),
    ],
)
@pytest.mark.parametrize("extract", [False, True], ids=["pull", "repack"])
def test_helm_layout_rules(tmp_path: Path, files: dict[str, bytes], message: str, extract: bool) -> None:
    archive = chart_tgz(tmp_path / "c.tgz", files)

    def load() -> object:
        return extract_chart_archive(archive, tmp_path / "out") if extract else read_chart_archive(archive)

    with pytest.raises(CorruptChart, match=message) as caught:
        load()
    assert caught.value.reason == "ChartPullError"


@pytest.mark.parametrize("content", [b"not a chart", gzip.compress(b"x" * 2000)])
def test_not_a_tarball_is_a_corrupt_chart(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "c.tgz").write_bytes(content)
    with pytest.raises(CorruptChart, match="not a gzip-compressed tar archive"):
        read_chart_archive(tmp_path / "c.tgz")


def test_flux_per_file_cap_applies_by_default(tmp_path: Path) -> None:
    stream = TarGzStream(tmp_path / "c.tgz")
    stream.file("demo/Chart.yaml", b"name: demo\nversion: 1.0.0\n")
    stream.header("demo/values.yaml", size=DEFAULT_MAX_CHART_FILE_SIZE + 1)
    stream.fill(DEFAULT_MAX_CHART_FILE_SIZE + 1)
    stream.close()
    with pytest.raises(CorruptChart, match=f"over the limit of {DEFAULT_MAX_CHART_FILE_SIZE} bytes per file") as caught:
        read_chart_archive(tmp_path / "c.tgz")
    assert isinstance(caught.value.__cause__, ArchiveLimitExceeded)
    assert caught.value.__cause__.entry == "demo/values.yaml"


def test_a_missing_archive_is_a_package_error_not_a_corrupt_chart(tmp_path: Path) -> None:
    with pytest.raises(ChartPackageError, match="cannot unpack chart archive") as caught:
        read_chart_archive(tmp_path / "gone.tgz")
    assert isinstance(caught.value.__cause__, StorageError)
