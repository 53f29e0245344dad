"""resolve(): exact match first, Masterminds ranges, prereleases only when asked, Flux's tie-break, messages."""

from __future__ import annotations

import pytest

from source_controller.helm.errors import InvalidChartReference
from source_controller.helm.index import ChartVersion
from source_controller.helm.resolve import available, resolve

VERSIONS = ["1.2.0", "1.1.0", "1.0.0", "0.9.1", "0.9.0", "0.1.0", "2.0.0-rc.1", "1.3.0-beta.2", "v0.5.0", "1.0"]


def entries(*versions: str, chart: str = "demo") -> dict[str, tuple[ChartVersion, ...]]:
    return {chart: tuple(ChartVersion(name=chart, version=v, urls=(f"{chart}-{v}.tgz",)) for v in versions)}


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("*", "1.2.0"),
        ("", "1.2.0"),
        (">=0.1.0 <1.0.0", "0.9.1"),
        ("~0.9.0", "0.9.1"),
        ("^1.0.0", "1.2.0"),
        ("1.1.x", "1.1.0"),
        ("<0.6.0", "v0.5.0"),
        ("0.9.0", "0.9.0"),
        (">=2.0.0-0", "2.0.0-rc.1"),
        ("1.3.0-beta.2", "1.3.0-beta.2"),
        (">1.2.0-alpha", "2.0.0-rc.1"),  # Masterminds: any prerelease, not only 1.2.0-*
        ("1.0", "1.0"),
    ],
)
def test_ranges(wanted: str, expected: str) -> None:
    assert resolve(entries(*VERSIONS), "demo", wanted).version == expected


def test_prereleases_only_when_the_range_names_one() -> None:
    index = entries("1.0.0", "2.0.0-rc.1")
    assert resolve(index, "demo", "*").version == "1.0.0"
    assert resolve(index, "demo", ">=1.0.0").version == "1.0.0"
    with pytest.raises(InvalidChartReference, match=r"no chart version found for demo->=2\.0\.0"):
        resolve(index, "demo", ">=2.0.0")
    assert resolve(index, "demo", ">=2.0.0-0").version == "2.0.0-rc.1"


def test_only_prereleases_under_star_is_not_found() -> None:
    with pytest.raises(InvalidChartReference, match=r"no chart version found for demo-\*"):
        resolve(entries("1.0.0-rc.1"), "demo")


def test_not_found_lists_the_newest_versions_shortened() -> None:
    versions = [f"1.{i}.0" for i in range(30, 0, -1)]
    with pytest.raises(InvalidChartReference) as caught:
        resolve(entries(*versions), "demo", ">=5.0.0")
    message = str(caught.value)
    assert message.startswith("no chart version found for demo->=5.0.0 (available: 1.30.0, 1.29.0,")
    assert "1.21.0, … and 20 more)" in message
    assert caught.value.reason == "InvalidChartReference"


def test_available_short_list() -> None:
    versions = entries("1.0.0", "0.1.0")["demo"]
    assert available(versions) == "1.0.0, 0.1.0"


def test_unknown_chart_suggests_close_names() -> None:
    index = {**entries("1.0.0", chart="podinfo"), **entries("1.0.0", chart="nginx")}
    with pytest.raises(InvalidChartReference, match=r"no chart named 'podinf' .*did you mean podinfo"):
        resolve(index, "podinf")


def test_chart_without_versions() -> None:
    with pytest.raises(InvalidChartReference, match="lists no versions"):
        resolve({"demo": ()}, "demo")


def test_invalid_range_is_a_reference_error() -> None:
    with pytest.raises(InvalidChartReference, match="invalid version range"):
        resolve(entries("1.0.0"), "demo", ">=>1")


def test_build_metadata_ties_go_to_the_latest_created() -> None:
    index = {
        "demo": (
            ChartVersion("demo", "1.0.0+a", created="2024-01-02T00:00:00Z"),
            ChartVersion("demo", "1.0.0+b", created="2024-01-01T00:00:00.123456789Z"),
            ChartVersion("demo", "0.9.0", created="2025-01-01T00:00:00Z"),
        )
    }
    assert resolve(index, "demo").version == "1.0.0+a"
    assert resolve(index, "demo", "1.0.0+b").version == "1.0.0+b"


def test_exact_string_match_beats_a_range_reading() -> None:
    # "1.0" would be a range (1.0.x); an entry written exactly so wins first, as in Flux.
    index = entries("1.0.5", "1.0")
    assert resolve(index, "demo", "1.0").version == "1.0"
    assert resolve(entries("1.0.5", "1.0.2"), "demo", "1.0").version == "1.0.5"
