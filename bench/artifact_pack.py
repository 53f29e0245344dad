"""Micro-benchmark of artifact packing: pack() against `tar -c | gzip -6` (and `git archive | gzip -6`).

Usage: python bench/artifact_pack.py [--files 10000] [--mb 100] [--levels 1,6] [--repeat 3] [--git]
Prints one JSON document: the tree, then seconds (best of --repeat) and compressed size for each.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gitops_mesh.artifacts.archive import pack
from gitops_mesh.artifacts.extract import ExtractLimits, safe_extract

_WORDS = (
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "app",
    "spec",
    "replicas",
    "selector",
    "matchLabels",
    "template",
    "containers",
    "image",
    "ports",
    "containerPort",
    "resources",
    "limits",
    "requests",
    "cpu",
    "memory",
    "env",
    "value",
    "volumeMounts",
    "mountPath",
    "configMap",
    "secretRef",
    "serviceAccountName",
    "-",
    ":",
    "true",
    "false",
    "1",
    "2",
    "3",
    "80",
    "443",
    "8080",
    "podinfo",
    "nginx",
)


def make_tree(root: Path, files: int, total_bytes: int, seed: int = 1) -> int:
    """YAML-like, compressible text spread over files in nested directories; returns bytes written."""
    rng = random.Random(seed)
    pool_lines: list[str] = []
    pool_size = 0
    while pool_size < 8 << 20:
        line = "  " * rng.randrange(4) + " ".join(rng.choices(_WORDS, k=rng.randrange(2, 9))) + "\n"
        pool_lines.append(line)
        pool_size += len(line)
    pool = "".join(pool_lines).encode()
    per_file = max(1, total_bytes // files)
    written = 0
    for i in range(files):
        d = root / f"dir{i % 97:02d}" / f"sub{i % 13}"
        d.mkdir(parents=True, exist_ok=True)
        # Sizes vary around the mean, as in a real repository.
        size = max(1, int(per_file * rng.uniform(0.2, 1.8)))
        start = rng.randrange(0, len(pool) - size) if size < len(pool) else 0
        (d / f"file{i}.yaml").write_bytes(pool[start : start + size])
        written += size
    return written


def best_of(repeat: int, run: Callable[[], int]) -> dict[str, float | int]:
    times: list[float] = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = run()
        times.append(time.perf_counter() - t0)
    return {"seconds": round(min(times), 3), "size": size}


def shell(cmd: str, out: Path) -> Callable[[], int]:
    def run() -> int:
        subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
        return out.stat().st_size

    return run


def packer(tree: Path, out: Path, level: int) -> Callable[[], int]:
    def run() -> int:
        # The source controller always passes a filter (.git, .sourceignore): count its cost too.
        return pack(tree, out, level=level, include=lambda rel, _is_dir: rel != ".git").size

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=float, default=100.0, help="total size of the tree in MiB")
    parser.add_argument("--levels", default="1,6", help="zlib levels to run pack() at")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--git", action="store_true", help="also time `git archive HEAD | gzip -6`")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-pack-"))
    try:
        tree = work / "tree"
        tree.mkdir()
        total = make_tree(tree, args.files, int(args.mb * (1 << 20)))
        out = work / "out.tar.gz"
        results: dict[str, object] = {"files": args.files, "bytes": total}
        # Warm the page cache so the first timed run is not the only one reading from disk.
        subprocess.run(["tar", "-cf", "/dev/null", "-C", str(tree), "."], check=True)

        baseline = best_of(args.repeat, shell(f"tar -cf - -C {tree} . | gzip -6 > {out}", out))
        results["tar_gzip6"] = baseline
        if args.git:
            env = "GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b"
            subprocess.run(
                ["bash", "-c", f"cd {tree} && git init -q && git add -A && {env} git commit -qm bench"], check=True
            )
            results["git_archive_gzip6"] = best_of(
                args.repeat, shell(f"git -C {tree} archive HEAD | gzip -6 > {out}", out)
            )
        for level in (int(x) for x in args.levels.split(",")):
            result = best_of(args.repeat, packer(tree, out, level))
            result["ratio_to_tar_gzip6"] = round(float(result["seconds"]) / float(baseline["seconds"]), 2)
            if "git_archive_gzip6" in results:
                git = results["git_archive_gzip6"]
                assert isinstance(git, dict)
                result["ratio_to_git_archive_gzip6"] = round(float(result["seconds"]) / float(git["seconds"]), 2)
            results[f"pack_level{level}"] = result
        # The consumer's side of the same artifact: a level-6 pack, unpacked with every check on.
        pack(tree, out, include=lambda rel, _d: rel != ".git")
        unpacked = work / "unpacked"

        def unpack() -> int:
            shutil.rmtree(unpacked, ignore_errors=True)
            return safe_extract(out, unpacked, ExtractLimits(max_total_bytes=1 << 40, max_entries=1 << 30)).bytes

        results["safe_extract"] = best_of(args.repeat, unpack)
        results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
