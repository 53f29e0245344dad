"""The ``gcp`` provider's Secret and endpoint read into what :mod:`.gcs` needs, pure: Flux's checks and wording.

As Flux (``internal/bucket/gcp``): the Secret's ``serviceaccount`` key holds a service account key file (JSON).
Only a ``service_account`` key is accepted: other credential files name things the controller would act on -
an ``external_account`` reads a host file or calls a URL, an impersonation URL gets the token, ``authorized_user``
is a person's refresh token - and none is what Flux documents. The file is cut down to the fields the token flow
needs, so nothing else in it steers the client. ``token_uri`` (Google's by default) gets a JWT signed with the
tenant's key: it must be https, or http under ``spec.insecure``, as the endpoint. Values never appear in errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from source_controller.objectstore.errors import AuthenticationFailed, ClientError

SERVICE_ACCOUNT_KEY = "serviceaccount"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: A key file is about 2.3 KiB; anything far larger is not one.
MAX_KEY_FILE = 64 * 1024
_KEPT = ("type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "token_uri")


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A service account key: who it is, where its tokens come from, and the file for the token flow."""

    client_email: str
    token_uri: str
    key_file: str = field(repr=False)


def _invalid(secret_name: str, why: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"invalid '{secret_name}' secret data: '{SERVICE_ACCOUNT_KEY}' {why}")


def service_account(secret_name: str, data: Mapping[str, bytes], *, insecure: bool) -> ServiceAccount:
    """The key in ``data`` checked as Flux's ValidateSecret does, then as a key file the token flow can use."""
    raw = data.get(SERVICE_ACCOUNT_KEY)
    if raw is None:
        raise AuthenticationFailed(f"invalid '{secret_name}' secret data: required fields '{SERVICE_ACCOUNT_KEY}'")
    if len(raw) > MAX_KEY_FILE:
        raise _invalid(secret_name, f"is larger than {MAX_KEY_FILE} bytes: not a service account key file")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise _invalid(secret_name, "is not JSON (a service account key file)") from None
    if not isinstance(doc, dict):
        raise _invalid(secret_name, "is not a JSON object (a service account key file)")
    kind = doc.get("type")
    if kind != "service_account":
        shown = kind if isinstance(kind, str) and len(kind) <= 40 and kind.isprintable() else "?"
        raise _invalid(
            secret_name,
            f"has type '{shown}'; only 'service_account' key files are supported "
            "(external accounts, impersonation and user credentials are not)",
        )
    for name in ("client_email", "private_key"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise _invalid(secret_name, f"lacks '{name}'")
    _check_private_key(secret_name, doc["private_key"])
    token_uri = doc.get("token_uri") or GOOGLE_TOKEN_URI
    if not isinstance(token_uri, str):
        raise _invalid(secret_name, "has a 'token_uri' that is not a string")
    _check_token_uri(secret_name, token_uri, insecure)
    kept = {k: doc[k] for k in _KEPT if isinstance(doc.get(k), str)}
    kept["token_uri"] = token_uri
    return ServiceAccount(doc["client_email"], token_uri, json.dumps(kept))


def _check_private_key(secret_name: str, pem: str) -> None:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise _invalid(secret_name, "has a 'private_key' that is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _invalid(secret_name, "has a 'private_key' that is not an RSA key (tokens are signed with RS256)")


def _check_token_uri(secret_name: str, uri: str, insecure: bool) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise _invalid(secret_name, "has a 'token_uri' that is not an http(s) URL without credentials")
    if parts.scheme == "http" and not insecure:
        raise _invalid(
            secret_name,
            "has an http:// 'token_uri': the signed assertion would cross the network in clear "
            "(allowed only with spec.insecure)",
        )


def api_root(endpoint: str, insecure: bool) -> str:
    """The JSON API's root for ``spec.endpoint``: ``host[:port]`` (https, http under ``spec.insecure``) or an
    ``https://host[:port]`` URL (``http://`` under ``spec.insecure``); Flux's ``storage.googleapis.com`` is Google's."""
    text = endpoint.strip().rstrip("/")
    scheme = "http" if insecure else "https"
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or (parts.scheme == "http" and not insecure):
            raise ClientError(f"endpoint '{endpoint}' must be https:// (http:// only with spec.insecure)")
        scheme, text = parts.scheme, text.split("://", 1)[1]
    host = urlsplit(f"//{text}")
    if not text or "/" in text or "@" in text or "?" in text or "#" in text or not host.hostname:
        raise ClientError(f"endpoint '{endpoint}' must be a host[:port] (or a URL) without path or credentials")
    try:
        host.port  # noqa: B018 - validates the port
    except ValueError:
        raise ClientError(f"endpoint '{endpoint}' has an invalid port") from None
    return f"{scheme}://{text}"


def bucket_problem(name: str) -> str | None:
    """Why ``name`` cannot be a GCS bucket name (it goes into the API's URL path unquoted), or None."""
    if not 3 <= len(name) <= 222:
        return "must be 3 to 222 characters"
    if not all(ch.isascii() and (ch.islower() or ch.isdigit() or ch in "-_.") for ch in name):
        return "may hold only lowercase letters, digits, '-', '_' and '.'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must start and end with a letter or digit"
    return None
