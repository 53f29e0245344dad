"""``github``: a commit status through GitHub's REST API, ``POST /repos/{owner}/{repo}/statuses/{sha}``.

Body ``{"state": "success"|"failure", "description", "context"}`` as GitHub documents it; the token goes
in ``Authorization: Bearer``. github.com's API is ``https://api.github.com``; GitHub Enterprise serves it
under ``/api/v3`` on the same host. Flux also lists the commit's statuses first to skip an identical one;
our rate limiter already drops repeats, so one request is made.
"""

from __future__ import annotations

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

API_VERSION = "2022-11-28"


def api_base(host: str) -> str:
    return "https://api.github.com" if host in ("https://github.com", "https://www.github.com") else f"{host}/api/v3"


def build(n: Notification, spec: ProviderSpec, creds: Credentials) -> Request | None:
    if not creds.token:
        raise ProviderConfigError("github needs a 'token' in the provider's secret")
    repo = parse_repository(raw_address(spec, creds))
    if repo.path.count("/") != 1:
        raise ProviderConfigError(f"github repository {repo.path!r} is not 'owner/repository'")
    sha = status_commit(n)
    if sha is None:
        return None
    doc = {
        "state": "failure" if n.severity == Severity.ERROR else "success",
        "description": description(n),
        "context": status_context(spec.uid, n),
    }
    return Request(
        url=f"{api_base(repo.host)}/repos/{repo.path}/statuses/{sha}",
        body=json_body(doc),
        headers={
            "Content-Type": JSON_CONTENT,
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {creds.token}",
            "X-GitHub-Api-Version": API_VERSION,
        },
    )
