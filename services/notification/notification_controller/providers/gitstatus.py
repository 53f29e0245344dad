"""What the commit-status providers (github, gitlab) share: the repository address, the commit, the status.

As Flux's notifier: the address is the repository's URL (``https://host/owner/repo[.git]``, or SSH
``git@host:owner/repo.git``, which means HTTPS on the same host); the commit is the hash at the end of the
event's ``revision`` (``main@sha1:<hash>``, ``sha1:<hash>``, or the legacy ``main/<hash>``); the status is
named ``<kind>/<name>/<first group of the Provider's UID>`` in lower case (one per object and cluster),
and described by the event's reason split into lower-case words (``reconciliation succeeded``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from notification_controller.matching import REVISION_KEY
from notification_controller.providers.base import (
    COMMIT_STATUS_KEY,
    COMMIT_STATUS_UPDATE,
    PROGRESSING,
    Notification,
    ProviderConfigError,
    redact,
    split_camelcase,
)

_SCP = re.compile(r"^(?:[\w.+-]+@)?([\w.-]+):(?!//)(.+)$")
_HASH = re.compile(r"^[0-9a-fA-F]{7,64}$")


@dataclass(frozen=True, slots=True)
class Repository:
    #: ``scheme://host[:port]`` of the git server's web/API endpoint.
    host: str
    #: The path below the host without ``.git``: ``owner/repo`` or ``group/subgroup/project``.
    path: str


def parse_repository(address: str) -> Repository:
    address = address.strip()
    m = _SCP.match(address) if "://" not in address else None
    if m is not None:
        return Repository(host=f"https://{m.group(1)}", path=_clean(m.group(2), address))
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https", "ssh") or not parts.hostname:
        raise ProviderConfigError(f"invalid repository address {redact(address)!r}")
    scheme = "https" if parts.scheme == "ssh" else parts.scheme
    host = parts.hostname + (f":{parts.port}" if parts.port and parts.scheme != "ssh" else "")
    return Repository(host=f"{scheme}://{host}", path=_clean(parts.path, address))


def _clean(path: str, address: str) -> str:
    path = path.strip("/").removesuffix(".git")
    if not path or "/" not in path:
        raise ProviderConfigError(f"repository address {redact(address)!r} names no owner/repository")
    return path


def commit_of(revision: str) -> str | None:
    """The commit hash of a revision, or None when the revision names no commit (e.g. a chart version)."""
    rev = revision.strip()
    if "@" in rev:
        rev = rev.rsplit("@", 1)[1]
    if ":" in rev:
        rev = rev.split(":", 1)[1]
    elif "/" in rev:
        rev = rev.rsplit("/", 1)[1]
    return rev if _HASH.match(rev) else None


def status_commit(n: Notification) -> str | None:
    """The commit to set a status on, or None when this notification is not one for a commit status."""
    if n.reason == PROGRESSING and n.metadata.get(COMMIT_STATUS_KEY) != COMMIT_STATUS_UPDATE:
        return None
    return commit_of(n.metadata.get(REVISION_KEY, ""))


def status_context(provider_uid: str, n: Notification) -> str:
    o = n.involved_object
    return f"{o.kind}/{o.name}/{provider_uid.split('-')[0]}".lower()


def description(n: Notification) -> str:
    return " ".join(w for w in split_camelcase(n.reason) if w.strip()).lower()
