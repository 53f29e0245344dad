"""A controller process serves probes while it runs and stops cleanly on SIGTERM or a fatal task crash."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

_SCRIPT = """
import asyncio, contextlib, sys
from gitops_mesh.process import run
from gitops_mesh.settings import Settings

@contextlib.asynccontextmanager
async def setup(ctx):
    async def work():
        if sys.argv[1] == "crash":
            raise RuntimeError("boom")
        await asyncio.Event().wait()
    ctx.spawn(work(), name="work")
    ctx.checks.ready["work"] = lambda: None
    yield
    print("cleaned-up", file=sys.stderr, flush=True)

sys.exit(run("test-controller", Settings(metrics_addr="127.0.0.1:0"), setup))
"""


def _start(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, mode], stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], event: str) -> dict[str, object]:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{"):
            rec: dict[str, object] = json.loads(line)
            if rec.get("event") == event:
                return rec
    raise AssertionError(f"process ended before logging {event!r}")


def test_probes_then_graceful_sigterm() -> None:
    proc = _start("serve")
    try:
        port = _wait_for(proc, "starting")["metrics_port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert r.status == 200
            assert "[+]work ok" in r.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert proc.wait(timeout=10) == 0
        assert "cleaned-up" in rest
        assert '"event":"stopped"' in rest
    finally:
        proc.kill()


def test_crashed_task_stops_the_process_with_an_error() -> None:
    proc = _start("crash")
    try:
        assert proc.stderr is not None
        crash = _wait_for(proc, "task crashed")
        assert crash["task"] == "work"
        assert "boom" in str(crash.get("exception"))
        assert proc.wait(timeout=10) == 1
    finally:
        proc.kill()
