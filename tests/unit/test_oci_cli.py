"""The `gitops-mesh` command line's parsing: push artifact's target, annotations, credentials, usage errors."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from gitops_mesh.cli.errors import CommandError
from gitops_mesh.cli.main import main, parser
from gitops_mesh.cli.push import CREDS_ENV, credentials, manifest_annotations, parse_target
from gitops_mesh.oci import Credentials, Repository


def test_targets_name_a_repository_and_a_tag() -> None:
    assert parse_target("oci://ghcr.io/org/app:v1.2.3") == (Repository("ghcr.io", "org/app"), "v1.2.3")
    assert parse_target("oci://127.0.0.1:5000/app") == (Repository("127.0.0.1:5000", "app"), "latest")
    for bad, words in [
        ("ghcr.io/org/app:v1", "must start with oci://"),
        ("oci://ghcr.io", "oci://REGISTRY/REPO"),
        ("oci://ghcr.io/Org/app:v1", "invalid repository name"),
        ("oci://ghcr.io/org/app:.v1", "invalid tag"),
    ]:
        with pytest.raises(CommandError, match=None) as caught:
            parse_target(bad)
        assert words in str(caught.value)


def test_annotations_are_fluxs_and_the_users() -> None:
    args = parser().parse_args(
        [
            *("push", "artifact", "oci://r.io/a:v1", "--path=.", "--source=https://git/x", "--revision=main@sha1:ab"),
            *("--annotations=team=web", "--annotations", "empty="),
        ]
    )
    meta = manifest_annotations(args, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert meta == {
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
        "org.opencontainers.image.source": "https://git/x",
        "org.opencontainers.image.revision": "main@sha1:ab",
        "team": "web",
        "empty": "",
    }
    args.annotations = ["novalue"]
    with pytest.raises(CommandError, match="KEY=VALUE"):
        manifest_annotations(args, datetime.now(UTC))


def test_credentials_come_from_the_environment_only_when_asked_for_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = argparse.Namespace(creds_stdin=False)
    monkeypatch.delenv(CREDS_ENV, raising=False)
    assert credentials(args) is None
    monkeypatch.setenv(CREDS_ENV, "robot:p:w")
    assert credentials(args) == Credentials("robot", "p:w")
    monkeypatch.setenv(CREDS_ENV, "nocolon")
    with pytest.raises(CommandError, match="user:password"):
        credentials(args)


def test_usage_errors_exit_2_and_command_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["push", "artifact", "oci://r.io/a:v1", "--path=.", "--source=s", "--revision=r", "--creds=u:p"])
    assert usage.value.code == 2
    code = main(["push", "artifact", "oci://r.io/a:v1", "--path=/nonexistent/dir", "--source=s", "--revision=r"])
    assert code == 1
    assert "✗ --path /nonexistent/dir is not a directory" in capsys.readouterr().err
