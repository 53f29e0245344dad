"""Reading kubeconfig, pure: parsed YAML documents in, the context to use out (kubectl's merge rules).

No files are opened here (config.py reads them and builds the TLS context and credentials), so every
rule — which file wins a name, relative paths, ``-data`` over paths, which credential is used — is
decided and tested without I/O. Errors name the file, context, cluster, user or field, never a value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_mesh.errors import InvalidSpec


class KubeConfigError(InvalidSpec):
    """No usable kubeconfig or in-cluster configuration."""

    reason = "KubeConfigError"


@dataclass(frozen=True, slots=True)
class Material:
    """A certificate or key: inline (a ``…-data`` field, already base64-decoded) or a file path."""

    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    name: str
    server: str
    ca: Material | None = None  # None: the system's trust store
    insecure: bool = False
    tls_server_name: str | None = None
    proxy: str | None = None


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    client_certificate: Material | None = None
    client_key: Material | None = None
    basic: tuple[str, str] | None = field(default=None, repr=False)
    #: ``exec`` or ``auth-provider``: kubernetes_asyncio's loader runs the plugin / refreshes the token.
    delegated: bool = False


@dataclass(frozen=True, slots=True)
class ResolvedContext:
    name: str
    cluster: ClusterInfo
    user: UserInfo


@dataclass(frozen=True, slots=True)
class _Entry:
    """A named stanza and the directory of the file that defined it, which its relative paths are against."""

    base: Path
    body: Mapping[str, Any]


@dataclass(slots=True)
class MergedConfig:
    """Several kubeconfig files as kubectl merges them: the first file to define a name wins."""

    files: tuple[Path, ...]
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    current_context: str | None = None


_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


def merge(documents: Sequence[tuple[Path, Any]]) -> MergedConfig:
    """``(file, parsed YAML)`` pairs in $KUBECONFIG order → one config; current-context from the first to set it."""
    merged = MergedConfig(files=tuple(path for path, _ in documents))
    for path, document in documents:
        doc = document or {}  # an empty file parses to None
        if not isinstance(doc, Mapping):
            raise KubeConfigError(f"{path}: not a kubeconfig (expected a mapping at the top level)")
        for section, inner in _SECTIONS:
            target: dict[str, _Entry] = getattr(merged, section)
            for name, body in _named_items(doc.get(section), section, inner, path):
                target.setdefault(name, _Entry(path.parent, body))
        current = doc.get("current-context")
        if current and merged.current_context is None:
            merged.current_context = str(current)
    return merged


def _named_items(items: Any, section: str, inner: str, path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise KubeConfigError(f"{path}: {section} must be a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise KubeConfigError(f"{path}: {section}[{i}] has no name")
        body = item.get(inner) or {}
        if not isinstance(body, Mapping):
            raise KubeConfigError(f"{path}: {section}[{i}] ({item['name']}): {inner} must be a mapping")
        out.append((str(item["name"]), body))
    return out


def resolve(merged: MergedConfig, context: str | None = None) -> ResolvedContext:
    """The context to use (``context``, else current-context) with its cluster and user looked up."""
    files = ", ".join(map(str, merged.files))
    name = context or merged.current_context
    if not name:
        raise KubeConfigError(f"no context selected: current-context is not set in {files} and none was given")
    ctx = merged.contexts.get(name)
    if ctx is None:
        raise KubeConfigError(f"context {name!r} not found in {files}")
    cluster_name = _text(ctx.body, "cluster", f"context {name!r}")
    if not cluster_name:
        raise KubeConfigError(f"context {name!r} names no cluster")
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise KubeConfigError(f"context {name!r}: cluster {cluster_name!r} not found in {files}")
    user_name = _text(ctx.body, "user", f"context {name!r}")
    user = merged.users.get(user_name) if user_name else _Entry(Path(), {})  # no user: anonymous
    if user is None:
        raise KubeConfigError(f"context {name!r}: user {user_name!r} not found in {files}")
    return ResolvedContext(name, cluster_info(cluster_name, cluster), user_info(user_name or "", user))


def cluster_info(name: str, entry: _Entry) -> ClusterInfo:
    where, body = f"cluster {name!r}", entry.body
    server = _text(body, "server", where)
    if not server:
        raise KubeConfigError(f"{where} has no server")
    return ClusterInfo(
        name=name,
        server=server,
        ca=_material(entry, "certificate-authority", where),
        insecure=_flag(body, "insecure-skip-tls-verify", where),
        tls_server_name=_text(body, "tls-server-name", where),
        proxy=_text(body, "proxy-url", where),
    )


def user_info(name: str, entry: _Entry) -> UserInfo:
    where, body = f"user {name!r}", entry.body
    if "exec" in body or "auth-provider" in body:
        return UserInfo(name=name, delegated=True)
    cert = _material(entry, "client-certificate", where)
    key = _material(entry, "client-key", where)
    if (cert is None) != (key is None):
        present, missing = ("client-certificate", "client-key") if key is None else ("client-key", "client-certificate")
        raise KubeConfigError(f"{where} has a {present} but no {missing}")
    token_file = _text(body, "tokenFile", where)
    username, password = _text(body, "username", where), _text(body, "password", where)
    return UserInfo(
        name=name,
        token=_text(body, "token", where),
        token_file=_path(entry.base, token_file) if token_file else None,
        client_certificate=cert,
        client_key=key,
        basic=(username, password) if username and password else None,
    )


def in_cluster(environ: Mapping[str, str], service_account_dir: Path) -> ResolvedContext:
    """A pod's view: the apiserver's service address, the mounted CA and (rotating) service account token."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeConfigError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set")
    # net.JoinHostPort: IPv6 literals (and zone ids) need brackets before the port.
    authority = f"[{host}]:{port}" if ":" in host or "%" in host else f"{host}:{port}"
    return ResolvedContext(
        name="in-cluster",
        cluster=ClusterInfo("in-cluster", f"https://{authority}", ca=Material(path=service_account_dir / "ca.crt")),
        user=UserInfo("service account", token_file=service_account_dir / "token"),
    )


def _text(body: Mapping[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise KubeConfigError(f"{where}: {key} must be a string")
    return str(value)  # YAML reads an all-digit token or password as a number


def _flag(body: Mapping[str, Any], key: str, where: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise KubeConfigError(f"{where}: {key} must be true or false")
    return value


def _path(base: Path, value: str) -> Path:
    # kubectl resolves relative paths against the directory of the kubeconfig file that holds them.
    path = Path(value)
    return path if path.is_absolute() else base / path


def _material(entry: _Entry, key: str, where: str) -> Material | None:
    """``key-data`` (base64, preferred as kubectl does) or ``key`` (a path)."""
    data = _text(entry.body, f"{key}-data", where)
    if data:
        try:
            return Material(data=base64.b64decode("".join(data.split()), validate=True))
        except binascii.Error:
            raise KubeConfigError(f"{where}: {key}-data is not valid base64") from None
    path = _text(entry.body, key, where)
    return Material(path=_path(entry.base, path)) if path else None
