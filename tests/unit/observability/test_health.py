"""The health/metrics server, served for real on loopback."""

from __future__ import annotations

import aiohttp
import pytest

from gitops_mesh.observability import metrics
from gitops_mesh.observability.health import HealthChecks, make_app, split_addr, start_server


@pytest.mark.parametrize(
    ("addr", "expected"),
    [(":8080", ("0.0.0.0", 8080)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9", ("::1", 9))],
)
def test_split_addr(addr: str, expected: tuple[str, int]) -> None:
    assert split_addr(addr) == expected


async def test_probes_and_metrics() -> None:
    state: dict[str, str | None] = {"kafka": "broker unreachable"}
    checks = HealthChecks(live={"loop": lambda: None}, ready={"kafka": lambda: state["kafka"]})
    runner, port = await start_server(make_app(checks), "127.0.0.1:0")
    metrics.workqueue_adds.labels(name="probe-test").inc()
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
                assert "[+]loop ok" in await r.text()
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503
                assert "[-]kafka failed: broker unreachable" in await r.text()
            state["kafka"] = None
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{base}/metrics") as r:
                body = await r.text()
                assert r.status == 200
                assert 'workqueue_adds_total{name="probe-test"} 1.0' in body
                assert "gotk_reconcile_duration_seconds" in body
    finally:
        await runner.cleanup()
