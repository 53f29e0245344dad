"""The apiserver's version (``GET /version``) and what it tells a client about the server's features.

Where it sits: a controller asks once at start which server it talks to; helm-controller uses
:func:`validates_fields` to decide whether helm's client-side OpenAPI check would ever run (see
services/helm/helm_controller/actions.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from gitops_mesh.kube.client import KubeClient

#: Server-side field validation (the ``fieldValidation`` parameter on create/update/patch) went GA in
#: Kubernetes 1.27 (KEP-2885); from then on every write can be validated strictly by the apiserver itself.
FIELD_VALIDATION_GA: Final = (1, 27)
# "1", "27", "27+" (GKE/EKS add a plus): the leading digits are the number.
_NUMBER: Final = re.compile(r"\d{1,6}")


@dataclass(frozen=True, slots=True)
class ServerVersion:
    major: int
    minor: int
    git_version: str

    def at_least(self, version: tuple[int, int]) -> bool:
        return (self.major, self.minor) >= version


def parse_version(body: object) -> ServerVersion:
    """``/version``'s body; a server that reports no numbers reads as 0.0 (no feature assumed)."""
    doc = body if isinstance(body, dict) else {}

    def number(key: str) -> int:
        found = _NUMBER.match(str(doc.get(key, "")))
        return int(found.group()) if found else 0

    return ServerVersion(number("major"), number("minor"), str(doc.get("gitVersion", "")))


async def server_version(kube: KubeClient) -> ServerVersion:
    return parse_version(await kube.request("GET", "/version"))


def validates_fields(version: ServerVersion) -> bool:
    """True when the apiserver validates written objects strictly itself (fieldValidation=Strict)."""
    return version.at_least(FIELD_VALIDATION_GA)
