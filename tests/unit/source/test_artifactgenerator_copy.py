"""The generator's copy operations on real directories: Flux's cp-like rules, excludes, Merge, Extract, caps, digest."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mesh.artifacts.extract import ExtractLimits
from source_controller.generator.copying import Budget, Copier, CopyError, parse_copy
from source_controller.generator.globs import BadPattern
from source_controller.generator.treehash import tree_digest


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


MONOREPO: dict[str, str | bytes] = {
    "apps/frontend/deploy.yaml": "kind: Deployment\n",
    "apps/frontend/README.md": "docs",
    "apps/backend/deploy.yaml": "kind: Deployment # backend\n",
    "apps/backend/testdata/fixture.yaml": "fixture",
    "infrastructure/controllers/descheduler/release.yaml": "descheduler",
    "infrastructure/controllers/sealed-secrets/release.yaml": "sealed",
    "infrastructure/descheduler/release.yaml": "top-level",
    "infrastructure/configs/issuer.yaml": "issuer",
    "config.yaml": "a: 1\n",
    "configs/one.yaml": "one",
    "configs/two.yaml": "two",
    "configs/sub/three.yaml": "three",
}


def run(tmp_path: Path, *ops: dict[str, Any], files: dict[str, str | bytes] | None = None, **budget: int) -> Path:
    src = write(tmp_path / "src", files if files is not None else MONOREPO)
    staging = tmp_path / "out"
    staging.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    limits = ExtractLimits(skip_symlinks=True)
    copier = Copier(
        {"src": src},
        staging,
        scratch,
        Budget(budget.get("max_bytes", 1 << 20), budget.get("max_entries", 1000), limits),
    )
    copier.apply_all([parse_copy(op) for op in ops])
    return staging


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        # The spec's own examples: file to a path, file into a directory, a glob, a directory, a directory's contents.
        ({"from": "@src/config.yaml", "to": "@artifact/apps/app.yaml"}, {"apps/app.yaml": "a: 1\n"}),
        ({"from": "@src/config.yaml", "to": "@artifact/apps/"}, {"apps/config.yaml": "a: 1\n"}),
        (
            {"from": "@src/configs/*.yaml", "to": "@artifact/apps/"},
            {"apps/configs/one.yaml": "one", "apps/configs/two.yaml": "two"},  # Flux keeps the matched path
        ),
        (
            {"from": "@src/configs/", "to": "@artifact/apps/"},
            {"apps/configs/one.yaml": "one", "apps/configs/two.yaml": "two", "apps/configs/sub/three.yaml": "three"},
        ),
        (
            {"from": "@src/configs/**", "to": "@artifact/apps/"},
            {"apps/one.yaml": "one", "apps/two.yaml": "two", "apps/sub/three.yaml": "three"},
        ),
    ],
)
def test_copy_rules_are_flux_s(tmp_path: Path, op: dict[str, Any], expected: dict[str, str]) -> None:
    assert tree(run(tmp_path, op)) == expected


def test_the_source_root_copies_its_contents(tmp_path: Path) -> None:
    out = run(tmp_path, {"from": "@src/", "to": "@artifact/"}, files={"Chart.yaml": "name: x", "templates/a.yaml": "a"})
    assert tree(out) == {"Chart.yaml": "name: x", "templates/a.yaml": "a"}


def test_monorepo_split_with_excludes(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        {"from": "@src/apps/**", "to": "@artifact/", "exclude": ["*.md", "**/testdata/**"]},
    )
    assert tree(out) == {
        "frontend/deploy.yaml": "kind: Deployment\n",
        "backend/deploy.yaml": "kind: Deployment # backend\n",
    }


def test_excludes_below_the_selected_root_are_not_anchored_at_the_walked_directory(tmp_path: Path) -> None:
    out = run(tmp_path, {"from": "@src/infrastructure/**", "to": "@artifact/", "exclude": ["descheduler/**"]})
    assert tree(out) == {
        "controllers/descheduler/release.yaml": "descheduler",
        "controllers/sealed-secrets/release.yaml": "sealed",
        "configs/issuer.yaml": "issuer",
    }
    out = run(
        tmp_path / "2",
        {"from": "@src/infrastructure/**", "to": "@artifact/", "exclude": ["controllers/descheduler/**"]},
    )
    assert "controllers/descheduler/release.yaml" not in tree(out)
    assert "descheduler/release.yaml" in tree(out)


def test_later_operations_overwrite_and_merge_deep_merges_yaml(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "chart/values.yaml": "image: {repo: app, tag: v1}\nports: [80, 443]\nreplicas: 1\n",
        "prod/values.yaml": "image: {tag: v2}\nports: [8080]\n---\nreplicas: 3\n",
        "other/values.yaml": "replicas: 9\n",
    }
    out = run(
        tmp_path,
        {"from": "@src/chart/", "to": "@artifact/"},
        {"from": "@src/prod/values.yaml", "to": "@artifact/chart/values.yaml", "strategy": "Merge"},
        files=files,
    )
    merged = yaml.safe_load((out / "chart/values.yaml").read_text())
    # Maps merge key by key, lists are replaced whole, later documents of a file win (Helm's --values rule).
    assert merged == {"image": {"repo": "app", "tag": "v2"}, "ports": [8080], "replicas": 3}
    out = run(
        tmp_path / "2",
        {"from": "@src/chart/", "to": "@artifact/"},
        {"from": "@src/other/values.yaml", "to": "@artifact/chart/values.yaml"},
        files=files,
    )
    assert (out / "chart/values.yaml").read_text() == "replicas: 9\n"


def test_merge_onto_nothing_is_a_copy_and_a_list_document_is_refused(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"a.yaml": "x: 1\n", "list.yaml": "- 1\n- 2\n"}
    out = run(tmp_path, {"from": "@src/a.yaml", "to": "@artifact/v.yaml", "strategy": "Merge"}, files=files)
    assert (out / "v.yaml").read_text() == "x: 1\n"
    with pytest.raises(CopyError, match="not a map"):
        run(
            tmp_path / "2",
            {"from": "@src/a.yaml", "to": "@artifact/v.yaml"},
            {"from": "@src/list.yaml", "to": "@artifact/v.yaml", "strategy": "Merge"},
            files=files,
        )


def test_extract_unpacks_tarballs_and_skips_other_matches(tmp_path: Path) -> None:
    chart = tarball({"podinfo/Chart.yaml": "name: podinfo", "podinfo/values.yaml": "a: 1"})
    files: dict[str, str | bytes] = {"releases/v1/podinfo-1.0.0.tgz": chart, "releases/notes.txt": "x"}
    out = run(
        tmp_path, {"from": "@src/releases/**/*.tgz", "to": "@artifact/charts/", "strategy": "Extract"}, files=files
    )
    assert tree(out) == {"charts/podinfo/Chart.yaml": "name: podinfo", "charts/podinfo/values.yaml": "a: 1"}
    with pytest.raises(CopyError, match="requires tarball"):
        run(tmp_path / "2", {"from": "@src/releases/notes.txt", "to": "@artifact/", "strategy": "Extract"}, files=files)
    with pytest.raises(CopyError, match="not supported for directories"):
        run(tmp_path / "3", {"from": "@src/releases/", "to": "@artifact/", "strategy": "Extract"}, files=files)


def test_extract_refuses_a_hostile_tarball(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"evil.tgz": tarball({"../escape.yaml": "x"})}
    with pytest.raises(CopyError, match="failed to extract tarball"):
        run(tmp_path, {"from": "@src/evil.tgz", "to": "@artifact/", "strategy": "Extract"}, files=files)
    assert not (tmp_path / "escape.yaml").exists()


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"from": "@src/missing.yaml", "to": "@artifact/"}, "source 'missing.yaml' does not exist"),
        ({"from": "@src/nothing/*.yaml", "to": "@artifact/"}, "no files match pattern 'nothing/\\*.yaml'"),
        ({"from": "@src/configs/*.yaml", "to": "@artifact/", "exclude": ["*.yaml"]}, "were excluded"),
        ({"from": "@other/x", "to": "@artifact/"}, "source alias 'other' not found"),
    ],
)
def test_build_errors_name_the_operation(tmp_path: Path, op: dict[str, Any], message: str) -> None:
    with pytest.raises(CopyError, match=message) as e:
        run(tmp_path, op)
    assert f"from '{op['from']}'" in str(e.value)
    assert str(tmp_path) not in str(e.value), "messages never show this host's paths"


@pytest.mark.parametrize(
    "op",
    [
        {"from": "@src/../etc/passwd", "to": "@artifact/"},
        {"from": "@src//etc/passwd", "to": "@artifact/"},
        {"from": "@src/config.yaml", "to": "@artifact/../../outside.yaml"},
        {"from": "@src/config.yaml", "to": "/tmp/x"},
        {"from": "src/config.yaml", "to": "@artifact/"},
        {"from": "@src/*.yaml", "to": "@artifact/", "exclude": ["[oops"]},
        {"from": "@src/config.yaml", "to": "@artifact/", "strategy": "Append"},
    ],
)
def test_paths_outside_their_roots_and_malformed_entries_are_refused_before_copying(op: dict[str, Any]) -> None:
    with pytest.raises(BadPattern):
        parse_copy(op)


def test_the_budget_caps_what_an_artifact_may_hold(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"big.bin": b"x" * 4096}
    with pytest.raises(CopyError, match="larger than 1000 bytes"):
        run(tmp_path, {"from": "@src/big.bin", "to": "@artifact/"}, files=files, max_bytes=1000)
    with pytest.raises(CopyError, match="more than 3 entries"):
        run(tmp_path / "2", {"from": "@src/configs/", "to": "@artifact/"}, max_entries=3)


def test_tree_digest_follows_content_and_exec_bit_only(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"x/app.yaml": "one", "y.yaml": "two"})
    b = write(tmp_path / "b", {"y.yaml": "two", "x/app.yaml": "one"})
    os.utime(b / "y.yaml", (0, 0))
    assert tree_digest(a) == tree_digest(b)
    (b / "y.yaml").write_text("three")
    assert tree_digest(a) != tree_digest(b)
    c = write(tmp_path / "c", {"x/app.yaml": "one", "y.yaml": "two"})
    os.chmod(c / "y.yaml", 0o755)
    assert tree_digest(a) != tree_digest(c)
    d = write(tmp_path / "d", {"x/app.yaml": "one", "y.yaml": "two"})
    (d / "empty").mkdir()
    assert tree_digest(a) != tree_digest(d)
