"""Issue #11 item 4: the chart whose first member declares a 400 MiB pax header (tarfile took 469 MB and accepted it).

Charts go through the project's own capped reader (untar.read_members / safe_extract), never tarfile: the
header is refused on its own 512-byte block, before a byte of its data is read.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mesh.artifacts.errors import ArchiveLimitExceeded
from gitops_mesh.artifacts.untar import MAX_EXTENDED_HEADER
from source_controller.helm.chart import extract_chart_archive, read_chart_archive
from source_controller.helm.errors import CorruptChart
from tests.support.hostile_archives import ISSUE_PAX_HEADER, pax_header_first

#: What a refusal may allocate (tracemalloc peak): the reader's 1 MiB inflate window and a header.
PEAK = 8 << 20


@pytest.fixture(scope="module")
def issue_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pax_header_first(tmp_path_factory.mktemp("issue") / "demo-1.0.0.tgz")


def test_the_archive_is_the_issues_a_small_real_tgz_declaring_400_mib(issue_chart: Path) -> None:
    assert 300 << 10 < issue_chart.stat().st_size < 600 << 10
    with gzip.open(issue_chart) as f:
        first = tarfile.TarInfo.frombuf(f.read(512), "utf-8", "surrogateescape")
        record = f.read(15)
    assert record == b"%d path=" % ISSUE_PAX_HEADER
    assert (first.type, first.size) == (tarfile.XHDTYPE, ISSUE_PAX_HEADER)


@pytest.mark.parametrize(
    "call",
    [
        lambda archive, out: read_chart_archive(archive),
        lambda archive, out: extract_chart_archive(archive, out),
    ],
    ids=["chart-pull", "chart-repack"],
)
def test_a_400_mib_pax_header_is_refused_on_its_header(
    issue_chart: Path, tmp_path: Path, call: Callable[[Path, Path], object]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(CorruptChart) as refused:
            call(issue_chart, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(refused.value) == (
        f"unsafe chart archive: extended header of {ISSUE_PAX_HEADER} bytes over the limit: 'demo/PaxHeader/evil'"
    )
    assert refused.value.reason == "ChartPullError"
    cause = refused.value.__cause__
    assert isinstance(cause, ArchiveLimitExceeded)
    assert ISSUE_PAX_HEADER > MAX_EXTENDED_HEADER  # the per-header cap (1 MiB) is what refused it
    assert peak < PEAK, f"{peak} bytes allocated for a {ISSUE_PAX_HEADER}-byte header"
    assert os.listdir(out) == []


def test_the_same_chart_with_a_pax_header_within_the_cap_is_read(tmp_path: Path) -> None:
    # A comment record (a path record this long would be refused as a name) under 1 MiB: the chart reads,
    # so the refusal above is the header cap's.
    archive = pax_header_first(tmp_path / "demo-1.0.0.tgz", MAX_EXTENDED_HEADER - 512, key=b"comment")
    assert read_chart_archive(archive).name == "demo"
