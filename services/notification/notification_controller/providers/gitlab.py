"""``gitlab``: a commit status through GitLab's REST API, ``POST /api/v4/projects/{id}/statuses/{sha}``.

``{id}`` is the URL-encoded project path (``group%2Fsubgroup%2Fproject``); the body is
``{"state": "success"|"failed", "name", "description"}`` as GitLab documents it; the token goes in
``PRIVATE-TOKEN``.
"""

from __future__ import annotations

from urllib.parse import quote

from gitops_mesh.bus.envelope import Severity
from notification_controller.providers.base import (
    JSON_CONTENT,
    Credentials,
    Notification,
    ProviderConfigError,
    ProviderSpec,
    Request,
    json_body,
    raw_address,
)
from notification_controller.providers.gitstatus import description, parse_repository, status_commit, status_context


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if not creds.token:
        raise ProviderConfigError("gitlab needs a 'token' in the provider's secret")
    repo = parse_repository(raw_address(spec, creds))
    sha = status_commit(n)
    if sha is None:
        return None
    doc = {
        "state": "failed" if n.severity == Severity.ERROR else "success",
        "name": status_context(spec.uid, n),
        "description": description(n),
    }
    return Request(
        url=f"{repo.host}/api/v4/projects/{quote(repo.path, safe='')}/statuses/{sha}",
        body=json_body(doc),
        headers={"Content-Type": JSON_CONTENT, "PRIVATE-TOKEN": creds.token},
    )
