"""`make bench`: run every suite in its own process, print one table, write bench/results/latest.json."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

SUITES = [
    "bench.push_latency",
    "bench.source_git",
    "bench.source_bucket",
    "bench.source_oci",
    "bench.kustomize_scale",
    "bench.notification_fanout",
    "bench.helm_action_cost",
    "bench.helm_install_paths",
    "bench.helm_scale",
    "bench.fluxconfig_status",
    "bench.fluxconfig_scale",
    "bench.idle_rss",
]
RESULTS = Path(__file__).resolve().parent / "results"


def run_suite(module: str, quick: bool) -> dict[str, object]:
    cmd = [sys.executable, "-m", module, *(["--quick"] if quick else [])]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    took = round(time.perf_counter() - started, 1)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        return {"suite": module, "error": f"exit {proc.returncode}", "seconds": took, "measures": []}
    doc: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    doc.update({"suite": module, "seconds": took})
    return doc


def table(rows: list[dict[str, object]]) -> str:
    head = ("measure", "ours", "target", "met", "anchor")
    lines = [head]
    for m in rows:
        met = {True: "yes", False: "NO", None: "-"}[m["met"]]  # type: ignore[index]
        lines.append((str(m["measure"]), f"{m['ours']} {m['unit']}", str(m["target"] or "-"), met, str(m["anchor"])))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke run")
    parser.add_argument("suites", nargs="*", default=SUITES)
    args = parser.parse_args()
    docs = [run_suite(s, args.quick) for s in args.suites]
    measures = [m for d in docs for m in d["measures"]]  # type: ignore[attr-defined]
    print(table(measures))
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "suites": docs,
    }
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'latest.json'}")
    return 1 if any("error" in d for d in docs) else 0


if __name__ == "__main__":
    sys.exit(main())
