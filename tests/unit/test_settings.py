"""Shared flags: command line over environment over defaults; Go-style durations."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import assert_type

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.settings import Settings, add_flags, parse, parse_as, parse_duration, resolve


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("750ms", 0.75), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5), ("1h0m10s", 3610.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1m 30s", "-1s", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(0, 100), st.integers(0, 59), st.integers(0, 59))
def test_duration_components_add_up(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


def test_defaults_match_flux() -> None:
    s = parse([], env={})
    assert s.concurrent == 4
    assert s.requeue_dependency == 30.0
    assert s.no_cross_namespace_refs is False
    assert s.watch_all_namespaces is True


def test_flag_beats_env_beats_default() -> None:
    env = {"CONCURRENT": "8", "KAFKA_BOOTSTRAP": "k:1", "REQUEUE_DEPENDENCY": "5s", "LEADER_ELECT": "true"}
    s = parse(["--concurrent", "16"], env=env)
    assert s.concurrent == 16
    assert s.kafka_bootstrap == "k:1"
    assert s.requeue_dependency == 5.0
    assert s.leader_elect is True


def test_bool_flag_without_value_means_true() -> None:
    assert parse(["--no-cross-namespace-refs"], env={}).no_cross_namespace_refs is True
    assert parse(["--watch-all-namespaces=false"], env={}).watch_all_namespaces is False


def test_bad_env_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse([], env={"REQUEUE_DEPENDENCY": "soon"})


@dataclass(frozen=True, slots=True)
class _SourceSettings(Settings):
    storage_path: str = "/data"


def test_controller_subclass_adds_its_own_flags() -> None:
    p = argparse.ArgumentParser()
    add_flags(p)
    p.add_argument("--storage-path", dest="storage_path")
    got = resolve(p.parse_args(["--storage-path", "/tmp/x", "--concurrent", "2"]), _SourceSettings, env={})
    assert isinstance(got, _SourceSettings)
    assert got.storage_path == "/tmp/x"
    assert got.concurrent == 2


def test_parse_as_returns_the_controllers_own_class() -> None:
    got = parse_as(_SourceSettings(storage_path="/srv"), ["--concurrent", "3"], prog="source", env={})
    # Typed as the subclass (mypy checks assert_type), and so it is at run time.
    assert_type(got, _SourceSettings)
    assert type(got) is _SourceSettings
    assert (got.storage_path, got.concurrent) == ("/srv", 3)
