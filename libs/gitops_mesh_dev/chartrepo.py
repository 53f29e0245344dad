"""Dev tooling, a Helm chart repository: charts packaged by the real ``helm``, indexed by ``helm repo index`` and
served over HTTP(S) on loopback by aiohttp, with chart versions added, replaced or removed while it serves.

The tests, ``make demo`` and the benchmarks use it as the "local Helm repository" a HelmRepository points at::

    async with ChartRepo(tmp_path / "charts", helm=stack_env["HELM"]) as repo:
        await repo.add(PODINFO_CHART, version="6.0.1", values={"replicaCount": 2})
        url = repo.url  # spec.url of the HelmRepository
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh_dev.gitserver import TlsFiles
from gitops_mesh_dev.http import serve
from gitops_mesh_dev.stack import ROOT

#: The podinfo-like test chart (Deployment, Service, optional hook Job and test Pod; see its values.yaml).
PODINFO_CHART = ROOT / "tests" / "support" / "charts" / "podinfo"
#: helm package / repo index of a small chart take well under a second; this only bounds a hung helm.
HELM_TIMEOUT = 60.0


class ChartRepoError(RuntimeError):
    """helm refused to package or index a chart (its message attached)."""


@dataclass
class ChartServer:
    """Serves the directory ``root`` at ``/`` over HTTP(S) on loopback; ``url`` is set once started.

    ``username``/``password`` turn on basic auth; ``auth_log`` records each request's path and Authorization
    header, so a test can tell what a client fetched, how often, and with which credentials.
    """

    root: Path
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    url: str = ""
    auth_log: list[tuple[str, str | None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._auth])
        app.router.add_static("/", self.root)
        self._runner, port = await serve(app, self.tls)
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def requests(self) -> list[str]:
        """The paths requested so far, in order."""
        return [path for path, _ in self.auth_log]

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        self.auth_log.append((request.path, header))
        if self.username is not None:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if header != expected:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="charts"'})
        return await handler(request)


@dataclass
class ChartRepo(ChartServer):
    """A :class:`ChartServer` whose charts are packaged and indexed by ``helm`` (the directory is created, and
    indexed when it has no index yet, on start)."""

    helm: Path | str = field(kw_only=True)

    async def __aenter__(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "index.yaml").exists():
            await self.reindex()
        return await super().__aenter__()

    async def add(
        self,
        chart: Path,
        *,
        version: str | None = None,
        app_version: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Path:
        """Package ``chart`` (a chart directory) into the repository and re-index it; the archive's path.

        ``version``/``app_version`` override Chart.yaml's; ``values`` are merged over values.yaml (a deep merge,
        as Helm merges), so one source chart gives versions that differ in what they deploy. Adding a version
        that is already there replaces its archive, and so its digest in the index.
        """
        with tempfile.TemporaryDirectory(prefix="chartrepo-") as tmp:
            work = Path(tmp)
            source = work / chart.name
            shutil.copytree(chart, source)
            if values:
                values_file = source / "values.yaml"
                current = yaml.safe_load(values_file.read_text()) if values_file.exists() else None
                merged = deep_merge(current if isinstance(current, dict) else {}, values)
                values_file.write_text(yaml.safe_dump(merged, sort_keys=False))
            args = ["package", str(source), "--destination", str(work / "out")]
            if version is not None:
                args += ["--version", version]
            if app_version is not None:
                args += ["--app-version", app_version]
            await self._helm(args, work)
            (packaged,) = (work / "out").glob("*.tgz")
            target = self.root / packaged.name
            shutil.move(packaged, target)
        await self.reindex()
        return target

    async def remove(self, name: str, version: str) -> None:
        """Delete one chart version's archive and re-index: the repository no longer offers it."""
        (self.root / f"{name}-{version}.tgz").unlink()
        await self.reindex()

    async def reindex(self) -> None:
        """``helm repo index`` over ``root``: relative chart URLs, so the index does not depend on the port."""
        with tempfile.TemporaryDirectory(prefix="chartrepo-") as tmp:
            await self._helm(["repo", "index", str(self.root)], Path(tmp))

    def index(self) -> dict[str, Any]:
        """The index.yaml as served now."""
        loaded = yaml.safe_load((self.root / "index.yaml").read_text())
        assert isinstance(loaded, dict)
        return loaded

    def chart_url(self, name: str, version: str) -> str:
        return f"{self.url}/{name}-{version}.tgz"

    async def _helm(self, args: list[str], home: Path) -> None:
        done = await commands.run(
            [str(self.helm), *args], env=helm_env(home / ".helm"), timeout=HELM_TIMEOUT, cwd=home, check=False
        )
        if done.returncode != 0:
            raise ChartRepoError(f"helm {args[0]}: {commands.one_line(done.stderr.decode(errors='replace'))}")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: maps merge key by key, anything else is replaced (Helm's values merge)."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged
