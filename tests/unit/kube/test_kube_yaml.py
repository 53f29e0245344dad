"""Manifests read as Go reads them: timestamps and sexagesimals stay text, non-string keys become Go's strings."""

from __future__ import annotations

import pytest

from gitops_mesh import tenant_yaml
from gitops_mesh.kube_yaml import ManifestLoader, go_float, go_key


def load(text: str) -> object:
    return tenant_yaml.load(text, what="test", loader=ManifestLoader)


def test_scalars_go_reads_as_text_stay_text() -> None:
    assert load("when: 2001-12-14\nat: 1:20\nratio: 1:20.5\nmode: 0777\non: yes\n") == {
        "when": "2001-12-14",
        "at": "1:20",
        "ratio": "1:20.5",
        "mode": 511,
        "true": True,
    }


def test_keys_become_the_strings_sigs_yaml_writes() -> None:
    assert load("1: a\n1.5: b\n2.0: c\n~: d\nno: e\n") == {"1": "a", "1.5": "b", "2": "c", "null": "d", "false": "e"}
    # nested mappings and merge keys too
    assert load("base: &b {1: x}\nout:\n  <<: *b\n  y: 2\n") == {"base": {"1": "x"}, "out": {"1": "x", "y": 2}}


@pytest.mark.parametrize(
    ("value", "go"),
    [
        (100.0, "100"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e21, "1e+21"),
        (12345.678, "12345.678"),
        (0.0, "0"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_floats_as_go_formats_them(value: float, go: str) -> None:
    assert go_float(value) == go


def test_strings_and_odd_keys_are_left_alone() -> None:
    assert go_key("on") == "on"
    assert go_key(True) == "true"
    assert go_key(7) == "7"
