"""The hostile-archive corpus against every caller of the one archive reader: artifact unpack, chart pull, chart repack.

Each refusal must be the reader's own (same error class, message and entry for every caller), before
memory or disk grows with the archive: the bombs declare 64-256 MiB, a caller may use a few MiB.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_mesh.artifacts.errors import ArchiveLimitExceeded, UnsafeArchive
from gitops_mesh.artifacts.extract import safe_extract
from gitops_mesh.artifacts.untar import ExtractLimits
from source_controller.helm.chart import (
    CHART_LIMITS,
    DEFAULT_MAX_CHART_FILE_SIZE,
    extract_chart_archive,
    read_chart_archive,
)
from source_controller.helm.errors import CorruptChart
from tests.support.hostile_archives import BOMB, CHART_YAML, CORPUS, LIMITS, Hostile, TarGzStream

#: What one call may allocate (tracemalloc peak): the reader's 1 MiB inflate window and a header or two.
PEAK = 8 << 20


@dataclass(frozen=True)
class Caller:
    """One way the project unpacks an archive; chart callers wrap the reader's refusal in CorruptChart."""

    id: str
    call: Callable[[Path, Path, ExtractLimits], object]
    wraps: bool
    #: the limits it runs with in production
    defaults: ExtractLimits


CALLERS = [
    # GitRepository includes, HelmChart from a GitRepository/Bucket, kustomize's TreeCache.
    Caller("artifact-extract", lambda a, out, limits: safe_extract(a, out, limits), False, ExtractLimits()),
    # download_chart: the pulled chart is checked and its Chart.yaml read in memory.
    Caller("chart-pull", lambda a, out, limits: read_chart_archive(a, limits=limits), True, CHART_LIMITS),
    # package_chart_archive: the chart is unpacked for valuesFiles, then packaged again.
    Caller("chart-repack", lambda a, out, limits: extract_chart_archive(a, out, limits=limits), True, CHART_LIMITS),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Hostile], Path]:
    """Each hostile archive, built once for all callers."""
    root = tmp_path_factory.mktemp("corpus")
    built: dict[str, Path] = {}

    def get(case: Hostile) -> Path:
        if case.id not in built:
            built[case.id] = case.build(root / f"{case.id}.tgz")
        return built[case.id]

    return get


@dataclass
class Run:
    error: BaseException
    peak: int
    seconds: float


def run(caller: Caller, archive: Path, out: Path, limits: ExtractLimits) -> Run:
    """Call ``caller`` expecting a refusal; measure its allocation peak and time."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises((UnsafeArchive, CorruptChart)) as caught:
            caller.call(archive, out, limits)
        seconds = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Run(caught.value, peak, seconds)


def reader_error(caller: Caller, error: BaseException) -> BaseException:
    """The reader's refusal: raised as is, or the cause of the chart error (reason ChartPullError)."""
    if not caller.wraps:
        return error
    assert isinstance(error, CorruptChart)
    assert error.reason == "ChartPullError"
    assert error.__cause__ is not None
    assert str(error.__cause__) in str(error), "the chart error carries the reader's message"
    return error.__cause__


def tree(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            yield Path(dirpath) / name


def assert_disk_bounded(out: Path, limits: ExtractLimits) -> None:
    """What was written stays under ``out``, holds no link, and is within the byte cap."""
    paths = list(tree(out))
    assert not [p for p in paths if p.is_symlink()]
    assert sum(p.stat().st_size for p in paths if p.is_file()) <= limits.max_total_bytes


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.id)
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_every_caller_refuses_every_hostile_archive(
    corpus: Callable[[Hostile], Path], tmp_path: Path, case: Hostile, caller: Caller
) -> None:
    archive = corpus(case)
    out = tmp_path / "out"
    result = run(caller, archive, out, case.limits)
    refusal = reader_error(caller, result.error)
    assert type(refusal) is case.error, refusal
    assert re.search(case.match, str(refusal)), str(refusal)
    assert isinstance(refusal, UnsafeArchive)
    assert refusal.entry == case.entry
    assert result.peak < PEAK, f"{result.peak} bytes allocated"
    assert os.listdir(tmp_path) in ([], ["out"]), "nothing is written next to the destination"
    assert_disk_bounded(out, case.limits)
    if caller.id == "chart-pull":
        assert not out.exists(), "the chart pull writes nothing"


BOMBS = [c for c in CORPUS if c.id in ("gzip-bomb", "pax-header-bomb", "gnu-long-name-bomb")]


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.id)
@pytest.mark.parametrize("case", BOMBS, ids=lambda c: c.id)
def test_bombs_are_refused_on_their_header_under_the_production_limits(
    corpus: Callable[[Hostile], Path], tmp_path: Path, case: Hostile, caller: Caller
) -> None:
    archive = corpus(case)
    assert archive.stat().st_size < BOMB // 100, "a small download that claims tens of MiB"
    result = run(caller, archive, tmp_path / "out", caller.defaults)
    refusal = reader_error(caller, result.error)
    assert isinstance(refusal, ArchiveLimitExceeded)
    assert refusal.entry == case.entry
    # Refused on the header, before its data: tarfile buffered a whole pax header (469 MB for 400 MiB).
    assert result.peak < PEAK, f"{result.peak} bytes allocated for a {BOMB}-byte header"
    assert result.seconds < 5
    assert_disk_bounded(tmp_path / "out", caller.defaults)


def test_charts_get_the_artifact_limits_plus_the_per_file_cap() -> None:
    assert dataclasses.replace(CHART_LIMITS, max_file_bytes=None) == ExtractLimits()
    assert CHART_LIMITS.max_file_bytes == DEFAULT_MAX_CHART_FILE_SIZE
    assert not CHART_LIMITS.skip_symlinks, "Helm reads a link as an empty file: charts refuse links"


def test_the_corpus_prefix_alone_is_accepted_by_every_caller(tmp_path: Path) -> None:
    """The refusals above come from the hostile entries, not from the chart around them."""
    stream = TarGzStream(tmp_path / "good.tgz")
    stream.header("demo/", type=b"5", mode=0o755)
    stream.file("demo/Chart.yaml", CHART_YAML)
    stream.file("demo/templates/cm.yaml", b"kind: ConfigMap\n")
    stream.close()
    extracted = safe_extract(tmp_path / "good.tgz", tmp_path / "artifact", LIMITS)
    assert (extracted.files, extracted.dirs, extracted.skipped_symlinks) == (2, 1, 0)
    assert read_chart_archive(tmp_path / "good.tgz", limits=LIMITS).name == "demo"
    meta, chart_dir = extract_chart_archive(tmp_path / "good.tgz", tmp_path / "chart", limits=LIMITS)
    assert (meta.name, meta.version) == ("demo", "1.0.0")
    assert (chart_dir / "templates" / "cm.yaml").read_bytes() == b"kind: ConfigMap\n"
