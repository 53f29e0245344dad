from __future__ import annotations

from gitops_mesh.kube.version import ServerVersion, parse_version, validates_fields


def test_parses_plain_and_provider_suffixed_numbers() -> None:
    assert parse_version({"major": "1", "minor": "34", "gitVersion": "v1.34.4"}) == ServerVersion(1, 34, "v1.34.4")
    assert parse_version({"major": "1", "minor": "27+", "gitVersion": "v1.27.3-eks"}).minor == 27


def test_unreadable_version_assumes_no_feature() -> None:
    version = parse_version({"major": "", "minor": "x"})
    assert (version.major, version.minor) == (0, 0)
    assert not validates_fields(version)
    assert not validates_fields(parse_version(None))


def test_field_validation_from_127() -> None:
    assert not validates_fields(ServerVersion(1, 26, ""))
    assert validates_fields(ServerVersion(1, 27, ""))
    assert validates_fields(ServerVersion(2, 0, ""))
