"""Artifacts, producer side: the HTTP file server for the storage root (``--storage-addr``).

aiohttp's :class:`~aiohttp.web.FileResponse` gives Content-Length, a strong ETag (``"<mtime_ns>-<size>"``
in hex: a new artifact file gets a new one), If-None-Match/If-Modified-Since -> 304, Range -> 206 and
an unsatisfiable range -> 416. What this module adds is the reachability rule: only regular files
under the root, after every symlink is resolved. Anything else - ``..`` or ``.`` segments (also when
percent-encoded), empty segments, hidden names (our temp files), backslashes, directories, links
leading out of the root, missing files - is a plain 404, so probing learns nothing. The ``latest``
links the storage keeps resolve inside the root and are served.

Health and metrics are the controller's own server; only artifacts are served here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from gitops_mesh.observability import metrics

STORAGE_ROOT = web.AppKey("artifact_storage_root", Path)


def make_app(root: Path) -> web.Application:
    """The file server application for ``root`` (serve it with ``observability.health.start_server``)."""
    app = web.Application()
    app[STORAGE_ROOT] = Path(os.path.realpath(root))
    app.router.add_get("/{path:.*}", _serve)
    return app


def resolve(root: Path, url_path: str) -> Path | None:
    """The real path of the regular file ``url_path`` names under ``root`` (already real), or None."""
    segments = url_path.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    if not segments or any(not s or s.startswith(".") or "\\" in s or "\0" in s for s in segments):
        return None
    real = os.path.realpath(root.joinpath(*segments))
    if os.path.commonpath((real, root)) != str(root):
        return None
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            return None
    except OSError:
        return None
    return Path(real)


class _StoredFileResponse(web.FileResponse):
    """A FileResponse that sends the stored bytes themselves and counts what it serves."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        # FileResponse would send a "<file>.gz" sibling with Content-Encoding gzip to a client that
        # accepts gzip; a consumer checking a digest needs the stored bytes, so no negotiation.
        headers = CIMultiDict(request.headers)
        headers.popall(hdrs.ACCEPT_ENCODING, None)
        writer = await super().prepare(request.clone(headers=headers))
        metrics.artifact_requests.labels(code=str(self.status)).inc()
        if request.method == hdrs.METH_GET and self.status in (200, 206) and self.content_length:
            metrics.artifact_served_bytes.inc(self.content_length)
        return writer


async def _serve(request: web.Request) -> web.StreamResponse:
    path = resolve(request.app[STORAGE_ROOT], request.path)
    if path is None:
        metrics.artifact_requests.labels(code="404").inc()
        raise web.HTTPNotFound()
    return _StoredFileResponse(path)
