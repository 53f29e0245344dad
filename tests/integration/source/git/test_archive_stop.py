"""The streamed pack stops at its deadline or when cancelled, between two paths, however slow the filter."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from gitops_mesh.artifacts.archive import PackStopped
from source_controller.git import GitTimeout
from source_controller.git.archive import pack_commit


@pytest.fixture
def many_files(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    for i in range(300):
        (repo / f"f{i:03}.yaml").write_text(f"kind: ConfigMap # {i}\n" + "x" * 900)
    env = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, timeout=60)
    subprocess.run(["git", *env, "commit", "-qm", "files"], cwd=repo, check=True, timeout=60)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    return repo, head.stdout.strip()


def test_the_deadline_stops_the_filter_loop(many_files: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = many_files
    calls: list[str] = []

    def slow(rel: str, _is_dir: bool) -> bool:
        calls.append(rel)
        time.sleep(0.1)  # a pattern that costs this much on every path
        return True

    dest = tmp_path / "a.tgz"
    started = time.monotonic()
    with pytest.raises(GitTimeout, match=r"^git archive of the fetched commit timed out after 0\.35s$"):
        pack_commit(repo, commit, dest, slow, timeout=0.35)
    # not the entries git had already written into the pipe: those were filtered on after git was killed
    assert len(calls) <= 6, len(calls)
    assert time.monotonic() - started < 2
    assert not dest.exists()


def test_a_cancelled_pack_stops_at_the_next_path(many_files: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = many_files
    cancelled = threading.Event()
    calls: list[str] = []

    def keep(rel: str, _is_dir: bool) -> bool:
        calls.append(rel)
        if len(calls) == 3:
            cancelled.set()  # what the reconcile's task does when it is cancelled
        return True

    dest = tmp_path / "a.tgz"
    with pytest.raises(PackStopped, match=r"^archiving was cancelled$"):
        pack_commit(repo, commit, dest, keep, cancelled=cancelled)
    assert calls == ["f000.yaml", "f001.yaml", "f002.yaml"]
    assert not dest.exists()
