"""The gcp provider's pure edges: the service account key as Flux reads it (and what is refused in it), the
endpoint as the JSON API's root, GCS bucket names, the spec rules, and error bodies cut to what may be shown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.reconcile.unsupported import unsupported_fields
from source_controller.bucket_plan import refuse_provider_fields
from source_controller.objectstore import gcs
from source_controller.objectstore.errors import AuthenticationFailed, ClientError
from source_controller.objectstore.gcs_auth import GOOGLE_TOKEN_URI, api_root, bucket_problem, service_account
from source_controller.unsupported import BUCKET


def pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def key_file(private_key: str, **extra: Any) -> dict[str, bytes]:
    doc = {"type": "service_account", "client_email": "flux@p.iam.gserviceaccount.com", "private_key": private_key}
    doc.update(extra)
    return {"serviceaccount": json.dumps({k: v for k, v in doc.items() if v is not None}).encode()}


def test_a_service_account_key_file_is_read_and_cut_to_the_token_flow(rsa_pem: str) -> None:
    data = key_file(
        rsa_pem,
        project_id="p",
        service_account_impersonation_url="https://iamcredentials.example/impersonate",
        universe_domain="googleapis.com",
    )
    account = service_account("gcp", data, insecure=False)
    assert account.client_email == "flux@p.iam.gserviceaccount.com"
    assert account.token_uri == GOOGLE_TOKEN_URI  # Google's when the file names none
    kept = json.loads(account.key_file)
    # Nothing but the token flow's fields reaches the library: an impersonation URL would get the token.
    assert set(kept) == {"type", "client_email", "private_key", "project_id", "token_uri"}
    assert rsa_pem not in repr(account)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"accesskey": b"x"}, "invalid 'gcp' secret data: required fields 'serviceaccount'"),
        ({"serviceaccount": b"{not json"}, "'serviceaccount' is not JSON"),
        ({"serviceaccount": b"[]"}, "is not a JSON object"),
        ({"serviceaccount": b"[" * 100_000}, "larger than"),
        (
            {
                "serviceaccount": json.dumps(
                    {"type": "external_account", "credential_source": {"file": "/etc/x"}}
                ).encode()
            },
            "has type 'external_account'; only 'service_account'",
        ),
        ({"serviceaccount": json.dumps({"type": "authorized_user"}).encode()}, "type 'authorized_user'"),
        (
            {"serviceaccount": json.dumps({"type": "service_account", "private_key": "k"}).encode()},
            "lacks 'client_email'",
        ),
    ],
)
def test_what_is_not_a_service_account_key_file_is_refused(data: dict[str, bytes], words: str) -> None:
    with pytest.raises(AuthenticationFailed) as e:
        service_account("gcp", data, insecure=False)
    assert words in str(e.value)
    assert "/etc/x" not in str(e.value)


def test_the_private_key_must_be_an_rsa_pem_and_is_never_quoted() -> None:
    with pytest.raises(AuthenticationFailed, match="not an unencrypted PEM private key") as e:
        service_account(
            "gcp", key_file("-----BEGIN PRIVATE KEY-----\nSeCrEt\n-----END PRIVATE KEY-----\n"), insecure=False
        )
    assert "SeCrEt" not in str(e.value)
    with pytest.raises(AuthenticationFailed, match="not an RSA key"):
        service_account("gcp", key_file(pem(ec.generate_private_key(ec.SECP256R1()))), insecure=False)


def test_the_token_uri_is_https_or_http_under_insecure(rsa_pem: str) -> None:
    plain = key_file(rsa_pem, token_uri="http://127.0.0.1:9/token")
    with pytest.raises(AuthenticationFailed, match=r"allowed only with spec\.insecure"):
        service_account("gcp", plain, insecure=False)
    assert service_account("gcp", plain, insecure=True).token_uri == "http://127.0.0.1:9/token"
    for bad in ("file:///etc/passwd", "https://user:pw@host/token", "token"):
        with pytest.raises(AuthenticationFailed, match="not an http\\(s\\) URL") as e:
            service_account("gcp", key_file(rsa_pem, token_uri=bad), insecure=True)
        assert "pw@" not in str(e.value)


def test_the_endpoint_is_the_json_apis_root() -> None:
    assert api_root("storage.googleapis.com", insecure=False) == "https://storage.googleapis.com"
    assert api_root("https://storage.googleapis.com/", insecure=False) == "https://storage.googleapis.com"
    assert api_root("127.0.0.1:24080", insecure=True) == "http://127.0.0.1:24080"
    assert api_root("http://127.0.0.1:24080", insecure=True) == "http://127.0.0.1:24080"
    with pytest.raises(ClientError, match=r"only with spec\.insecure"):
        api_root("http://127.0.0.1:24080", insecure=False)
    for bad in ("", "host/path", "user@host", "https://host/storage/v1", "host:port", "ftp://host"):
        with pytest.raises(ClientError):
            api_root(bad, insecure=True)


def test_gcs_bucket_names() -> None:
    assert bucket_problem("my-bucket.example_1") is None
    for bad in ("ab", "Upper", "a/b", "a?b", "-lead", "trail.", "x" * 223):
        assert bucket_problem(bad) is not None


def spec(**fields: Any) -> dict[str, Any]:
    return {"provider": "gcp", "endpoint": "storage.googleapis.com", "bucketName": "b-1", **fields}


def test_gcp_spec_rules() -> None:
    refuse_provider_fields(spec(secretRef={"name": "sa"}, prefix="x/", region="us-east1"))
    assert unsupported_fields(spec(secretRef={"name": "sa"}), BUCKET) == []
    with pytest.raises(InvalidSpec, match="workload identity") as e:
        refuse_provider_fields(spec())
    assert e.value.reason == "UnsupportedField"
    with pytest.raises(InvalidSpec, match="certSecretRef is not supported for the 'gcp' provider"):
        refuse_provider_fields(spec(secretRef={"name": "sa"}, certSecretRef={"name": "tls"}))
    with pytest.raises(InvalidSpec, match="not a GCS bucket name") as e:
        refuse_provider_fields(spec(secretRef={"name": "sa"}, bucketName="b/../o"))
    assert e.value.reason == "InvalidSpec"


def test_error_bodies_are_cut_to_what_may_be_shown() -> None:
    # The library's message is "<reason>: <body>"; only OAuth's error fields and the API's error message are kept.
    oauth = 'Bad Request: {"error": "invalid_grant", "error_description": "Invalid JWT Signature.", "x": "internal"}'
    assert gcs._oauth_error(oauth) == ": invalid_grant: Invalid JWT Signature."
    assert gcs._oauth_error("Bad Request: <html>internal page</html>") == ""
    api = 'Forbidden: {"error": {"code": 403, "message": "flux@p has no storage.objects.list access"}}'
    assert gcs._api_error_detail(403, api) == "HTTP 403: flux@p has no storage.objects.list access"
    assert gcs._api_error_detail(502, "Bad Gateway: <html>x</html>") == "HTTP 502"
