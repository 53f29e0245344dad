"""Pure: names in a registry — ``oci://host[:port]/path`` repositories, tags and digests, checked by the
distribution spec's grammar (fixed patterns with disjoint alternatives on length-capped input: linear time).

Docker Hub is named as go-containerregistry names it (Flux's library): ``docker.io`` and ``index.docker.io``
are served by ``registry-1.docker.io``, and a one-component name there is under ``library/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitops_mesh.oci.errors import InvalidReference

OCI_SCHEME = "oci://"
DEFAULT_TAG = "latest"
#: distribution's limit on a repository name; tags are at most 128 characters.
MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io"})
DOCKER_HUB_REGISTRY = "registry-1.docker.io"


@dataclass(frozen=True, slots=True)
class Repository:
    """A repository of a registry: ``registry`` is ``host[:port]`` as requests address it."""

    registry: str
    name: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.name}"

    @property
    def url(self) -> str:
        """As Flux writes it: ``oci://registry/name``."""
        return f"{OCI_SCHEME}{self}"


def parse_repository(url: str) -> Repository:
    """``oci://host[:port]/name`` (no tag, no digest: the ref says which); InvalidReference with what is wrong."""
    if not url.startswith(OCI_SCHEME):
        raise InvalidReference("URL must be in format 'oci://<domain>/<org>/<repo>'")
    rest = url.removeprefix(OCI_SCHEME)
    host, sep, name = rest.partition("/")
    if not sep or not name:
        raise InvalidReference("URL must be in format 'oci://<domain>/<org>/<repo>'")
    if "@" in name:
        raise InvalidReference("URL must not contain a digest; set it in the reference instead")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        raise InvalidReference(f"URL must not contain a tag; remove ':{last.split(':', 1)[1]}'")
    return repository(host, name)


def repository(host: str, name: str) -> Repository:
    """A checked repository from its registry host and name (Docker Hub's aliases resolved)."""
    if len(host) > 260 or not _HOST.fullmatch(host):
        raise InvalidReference(f"invalid registry host {host[:64]!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReference(f"repository name longer than {MAX_NAME_LENGTH} characters")
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"invalid repository name {name[:80]!r}: components are lowercase letters and digits, "
                "separated by '.', '_', '__' or dashes"
            )
    if host in _DOCKER_HUB:
        host = DOCKER_HUB_REGISTRY
        if "/" not in name:
            name = f"library/{name}"
    return Repository(host, name)


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise InvalidReference(
            f"invalid tag {tag[:140]!r}: at most 128 letters, digits, '_', '.', '-', not starting with '.' or '-'"
        )
    return tag


def check_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise InvalidReference(f"invalid digest {digest[:140]!r}: expected 'sha256:<64 hex>' (or sha512)")
    return digest


def is_digest(reference: str) -> bool:
    return bool(_DIGEST.fullmatch(reference))


def check_reference(reference: str) -> str:
    """A tag or a digest, checked: what a manifest URL's last segment may be."""
    return check_digest(reference) if ":" in reference else check_tag(reference)
