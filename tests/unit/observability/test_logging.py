"""Logs are one JSON object per line, carrying the reconcile context."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = """
import logging
from gitops_mesh.observability.logging import configure_logging, get_logger, log_context
configure_logging(level="info", controller="source-controller")
log = get_logger("test")
with log_context(kind="GitRepository", namespace="flux-system", name="podinfo", reconcile_id="r1"):
    log.info("fetched", revision="main@sha1:abc")
log.debug("hidden")
logging.getLogger("aiokafka").warning("library says %s", "hi")
"""


def test_json_lines_with_context() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stderr
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2, out
    first, lib = lines
    assert first["event"] == "fetched"
    assert first["controller"] == "source-controller"
    assert first["kind"] == "GitRepository"
    assert first["name"] == "podinfo"
    assert first["revision"] == "main@sha1:abc"
    assert first["level"] == "info"
    assert "ts" in first
    assert lib["event"] == "library says hi"
    assert lib["level"] == "warning"
