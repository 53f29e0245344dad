"""Artifact exclusion: Flux's defaults, .sourceignore per directory, spec.ignore, negation (pure, on temp dirs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from source_controller.git.ignore import IgnoreFilter, build_filter, included_files, parse_rules

DEFAULTS = [
    (".git/config", False),
    ("sub/.git/HEAD", False),
    (".gitignore", False),
    (".gitmodules", False),
    (".gitattributes", False),
    ("logo.png", False),
    ("docs/img/a.JPG", True),  # gitignore matching is case-sensitive, as in Flux
    ("docs/img/a.jpeg", False),
    ("release.tar.gz", False),
    ("bundle.zip", False),
    ("movie.flv", False),
    (".github/workflows/ci.yaml", False),
    (".circleci/config.yml", False),
    (".travis.yml", False),
    ("sub/.travis.yml", False),
    (".gitlab-ci.yml", False),
    ("appveyor.yml", False),
    (".drone.yml", False),
    ("cloudbuild.yaml", False),
    ("codeship-services.yml", False),
    ("codeship-steps.yml", False),
    (".goreleaser.yml", False),
    ("deep/er/.sops.yaml", False),
    ("apps/.flux.yaml", False),
    ("apps/deploy.yaml", True),
    ("kustomization.yaml", True),
    (".sourceignore", True),
    ("README.md", True),
]


@pytest.mark.parametrize(("path", "included"), DEFAULTS)
def test_default_exclusions(tmp_path: Path, path: str, included: bool) -> None:
    assert build_filter(tmp_path).include(path) is included


FLUX_DOC_EXAMPLE = """
# exclude all
/*
# include deploy dir
!/deploy
# exclude file extensions from deploy dir
/deploy/**/*.md
/deploy/**/*.txt
"""


@pytest.mark.parametrize(
    ("path", "is_dir", "included"),
    [
        ("README.md", False, False),
        ("apps", True, False),
        ("apps/app.yaml", False, False),
        ("deploy", True, True),
        ("deploy/app.yaml", False, True),
        ("deploy/nested/app.yaml", False, True),
        ("deploy/nested/notes.md", False, False),
        ("deploy/notes.txt", False, False),
        ("deploy/logo.png", False, True),  # user rules replace the default extension list
        (".git/config", False, False),  # VCS exclusions stay
    ],
)
def test_spec_ignore_overrides_defaults_and_reincludes(tmp_path: Path, path: str, is_dir: bool, included: bool) -> None:
    assert build_filter(tmp_path, FLUX_DOC_EXAMPLE).include(path, is_dir) is included


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    files = {
        ".sourceignore": "*.bak\n/build/\n",
        "apps/.sourceignore": "# local rules\nsecret.yaml\n/local-only/\n!keep.bak\n",
        "apps/app.yaml": "",
        "apps/secret.yaml": "",
        "apps/keep.bak": "",
        "apps/old.bak": "",
        "apps/local-only/x.yaml": "",
        "apps/sub/local-only/y.yaml": "",
        "secret.yaml": "",
        "build/out.yaml": "",
        "apps/build/ok.yaml": "",
        "root.bak": "",
        "logo.png": "",
        ".git/HEAD": "",
    }
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    (tmp_path / "link.yaml").symlink_to("/etc/passwd")
    return tmp_path


def test_sourceignore_files_apply_relative_to_their_directory(tree: Path) -> None:
    keep = build_filter(tree)
    assert sorted(included_files(tree, keep)) == [
        ".sourceignore",
        "apps/.sourceignore",
        "apps/app.yaml",
        "apps/build/ok.yaml",  # /build/ is anchored to the root's .sourceignore
        "apps/keep.bak",  # re-included by the deeper file
        "apps/sub/local-only/y.yaml",  # /local-only/ is anchored to apps/
        "logo.png",  # a .sourceignore replaces the default extension list
        "secret.yaml",  # apps/.sourceignore does not reach the root
    ]


def test_spec_ignore_has_the_last_word(tree: Path) -> None:
    keep = build_filter(tree, "apps/keep.bak\n!root.bak\n")
    files = set(included_files(tree, keep))
    assert "apps/keep.bak" not in files
    assert "root.bak" in files


def test_excluded_directory_is_still_walked_when_a_later_rule_may_reinclude(tmp_path: Path) -> None:
    keep = IgnoreFilter(parse_rules("/*\n!/deploy\n"))
    assert not keep.include("apps", True)
    assert keep.descend("apps")  # a negation follows: a walker must look
    assert not IgnoreFilter(parse_rules("/apps/\n")).descend("apps")


def test_blank_spec_ignore_keeps_defaults(tmp_path: Path) -> None:
    assert not build_filter(tmp_path, "\n# only a comment\n").include("a.png")
