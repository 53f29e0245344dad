"""Alias bombs in every Helm input a tenant controls: values files, a repository's index.yaml, Chart.yaml.

Each is refused as the error the reconciler already reports for that input (ValuesFilesError,
InvalidIndex, CorruptChart), before any value is expanded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from source_controller.helm.chart import extract_chart_archive, parse_chart_yaml, read_chart_archive
from source_controller.helm.errors import CorruptChart, InvalidIndex, ValuesFilesError
from source_controller.helm.index import index_limits, parse_index_bytes
from source_controller.helm.values import parse_values
from tests.support.hostile_archives import TarGzStream
from tests.support.yaml_bombs import alias_bomb

REFUSED = "YAML aliases expand to more than 1000000 nodes"
VERSION = "{name: demo, version: 1.0.0, urls: [demo-1.0.0.tgz]}"


def test_a_values_file_holding_an_alias_bomb_is_a_values_files_error() -> None:
    with pytest.raises(ValuesFilesError, match=f"^unmarshaling values from 'values-prod.yaml' failed: {REFUSED}$"):
        parse_values(alias_bomb().encode(), source="values-prod.yaml")


def test_an_index_with_an_alias_bomb_anywhere_is_invalid() -> None:
    index = "apiVersion: v1\nentries: {}\nbomb:\n" + "".join(f"  {line}\n" for line in alias_bomb(10).splitlines())
    # Refused early, as yaml.v2 (Helm's decoder) refuses it: 45 nodes as written cannot expand 100-fold.
    with pytest.raises(InvalidIndex, match=r"^index.yaml: YAML aliases expand 45 nodes to 4851, more than 100 times"):
        parse_index_bytes(index.encode())


def test_an_index_naming_one_aliased_version_list_many_times_is_invalid() -> None:
    # 200 versions once, then 5,000 chart names for that list: a million ChartVersions if read on.
    versions = ", ".join([VERSION] * 200)
    names = "".join(f"  c{i}: *all\n" for i in range(5000))
    index = f"apiVersion: v1\nall: &all [{versions}]\nentries:\n{names}"
    assert len(index) < 100_000
    with pytest.raises(InvalidIndex, match=r"^index.yaml: YAML aliases expand \d+ nodes to \d+, more than 100 times"):
        parse_index_bytes(index.encode())


def test_an_index_anchor_that_contains_itself_is_invalid() -> None:
    with pytest.raises(InvalidIndex, match=r"^index.yaml: line 2: anchor 'x' contains itself$"):
        parse_index_bytes(b"apiVersion: v1\nextra: &x {k: [*x]}\nentries: {}\n")


def test_an_index_sharing_versions_through_a_few_aliases_is_read() -> None:
    index = f"apiVersion: v1\nshared: &v [{VERSION}, {VERSION}]\nentries:\n  demo: *v\n  again: *v\n".encode()
    got = parse_index_bytes(index)
    assert [cv.version for cv in got.entries["demo"]] == ["1.0.0", "1.0.0"]
    assert got.entries["again"] == got.entries["demo"]


def test_index_limits_follow_the_index_size_cap() -> None:
    assert index_limits().max_nodes == (50 << 20) // 8
    assert index_limits().max_bytes == 50 << 20
    assert index_limits(1 << 20).max_nodes == 1_000_000  # never below the default for one document


def test_a_chart_yaml_holding_an_alias_bomb_is_a_corrupt_chart() -> None:
    chart = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n" + alias_bomb().encode()
    with pytest.raises(CorruptChart, match=f"^Chart.yaml is refused: {REFUSED}$"):
        parse_chart_yaml(chart)


def test_a_chart_archive_whose_chart_yaml_is_an_alias_bomb_is_a_corrupt_chart(tmp_path: Path) -> None:
    archive = tmp_path / "demo-1.0.0.tgz"
    stream = TarGzStream(archive)
    stream.file("demo/Chart.yaml", b"apiVersion: v2\nname: demo\nversion: 1.0.0\n" + alias_bomb().encode())
    stream.close()
    with pytest.raises(CorruptChart, match=f"^demo/Chart.yaml is refused: {REFUSED}$"):
        read_chart_archive(archive)
    (tmp_path / "out").mkdir()
    with pytest.raises(CorruptChart, match=f"^demo/Chart.yaml is refused: {REFUSED}$"):
        extract_chart_archive(archive, tmp_path / "out")
