"""The health/metrics server, served for real on loopback."""

from __future__ import annotations

import gzip

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


async def test_metrics_negotiate_openmetrics_and_gzip() -> None:
    runner, port = await start_server(make_app(HealthChecks()), "127.0.0.1:0")
    metrics.workqueue_adds.labels(name="negotiation-test").inc()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            async with http.get(url, headers={"Accept-Encoding": "identity"}) as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert "Content-Encoding" not in r.headers
                plain = await r.text()
            assert 'workqueue_adds_total{name="negotiation-test"} 1.0' in plain
            assert "# EOF" not in plain

            # What Prometheus sends: OpenMetrics first, gzip accepted.
            headers = {
                "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                "Accept-Encoding": "gzip",
            }
            async with http.get(url, headers=headers) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                assert r.headers["Content-Encoding"] == "gzip"
                body = gzip.decompress(await r.read()).decode()
            assert 'workqueue_adds_total{name="negotiation-test"} 1.0' in body
            assert body.endswith("# EOF\n")

            # name[] filters: only the series asked for.
            only_adds = {"name[]": "workqueue_adds_total"}
            async with http.get(url, params=only_adds, headers={"Accept-Encoding": "identity"}) as r:
                only = await r.text()
            assert "workqueue_adds_total" in only
            assert "gotk_reconcile_duration_seconds" not in only
    finally:
        await runner.cleanup()
