"""kustomize-controller refuses to start on a tree cache directory another user could reach (issue #11 item 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def start(tree_cache_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "kustomize_controller.main", "--kustomize-path=/bin/true"]
    argv += [f"--tree-cache-dir={tree_cache_dir}", "--metrics-addr=127.0.0.1:0"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("mode", "link"), [(0o755, False), (0o700, True)])
def test_an_unsafe_tree_cache_directory_stops_the_process_with_a_clear_message(
    tmp_path: Path, mode: int, link: bool
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    path = shared
    if link:
        path = tmp_path / "link"
        path.symlink_to(shared)
    done = start(path)
    assert done.returncode == 1
    why = "is a symbolic link" if link else "is open to group or others (mode 0755); make it 0700"
    assert f"kustomize-controller: --tree-cache-dir: {path} {why}" in done.stderr
    assert list(shared.iterdir()) == [], "nothing was written into it"
