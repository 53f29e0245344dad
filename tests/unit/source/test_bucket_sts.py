"""spec.sts's pure parts: Flux's checks and words, the LDAP STS form, and reading its answers (objectstore.sts)."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from gitops_mesh.errors import InvalidSpec
from source_controller.objectstore.auth import S3Keys
from source_controller.objectstore.errors import AuthenticationFailed
from source_controller.objectstore.sts import (
    INVALID_STS_CONFIGURATION,
    MAX_ANSWER_BYTES,
    URL_INVALID,
    LDAPLogin,
    STSAnswerError,
    STSSpec,
    check_sts,
    ldap_form,
    ldap_login,
    parse_ldap_answer,
    shown,
    sts_spec,
)

ENDPOINT = "https://sts.example.com/?RoleArn=arn:aws:iam::000000000000:role/r&RoleSessionName=flux"


def sts(provider: str, *, endpoint: str = ENDPOINT, secret: str | None = None, cert: str | None = None) -> STSSpec:
    return STSSpec(provider, endpoint, secret, cert)


def test_spec_is_read_with_its_references() -> None:
    spec = {
        "sts": {"provider": "ldap", "endpoint": ENDPOINT, "secretRef": {"name": "s"}, "certSecretRef": {"name": "c"}}
    }
    assert sts_spec(spec) == STSSpec("ldap", ENDPOINT, "s", "c")
    assert sts_spec({}) is None
    assert sts_spec({"sts": None}) is None


@pytest.mark.parametrize(
    ("bucket_provider", "spec"),
    [
        ("generic", sts("ldap")),
        ("generic", sts("ldap", secret="s", cert="c", endpoint="http://127.0.0.1:1/")),
        ("aws", sts("aws", endpoint="https://sts.us-east-1.amazonaws.com")),
    ],
)
def test_fluxs_pairs_pass(bucket_provider: str, spec: STSSpec) -> None:
    check_sts(bucket_provider, spec)


@pytest.mark.parametrize(
    ("bucket_provider", "spec", "message"),
    [
        ("generic", sts("aws"), "STS provider 'aws' is not supported for 'generic' bucket provider"),
        ("aws", sts("ldap"), "STS provider 'ldap' is not supported for 'aws' bucket provider"),
        ("aws", sts("aws", secret="s"), "spec.sts.secretRef is not required for the 'aws' STS provider"),
        ("aws", sts("aws", cert="c"), "spec.sts.certSecretRef is not required for the 'aws' STS provider"),
        ("azure", sts("ldap"), "STS configuration is not supported for 'azure' bucket provider"),
        ("gcp", sts("aws"), "STS configuration is not supported for 'gcp' bucket provider"),
    ],
)
def test_fluxs_invalid_combinations_stall_with_its_reason(bucket_provider: str, spec: STSSpec, message: str) -> None:
    with pytest.raises(InvalidSpec) as e:
        check_sts(bucket_provider, spec)
    assert e.value.reason == INVALID_STS_CONFIGURATION
    assert str(e.value) == message


@pytest.mark.parametrize("endpoint", ["ldap.example.com", "ftp://sts.example.com", "https://", "http://h:port/"])
def test_an_endpoint_that_is_not_an_http_url_is_url_invalid(endpoint: str) -> None:
    with pytest.raises(InvalidSpec) as e:
        check_sts("generic", sts("ldap", endpoint=endpoint))
    assert e.value.reason == URL_INVALID
    assert str(e.value).startswith(f"failed to parse STS endpoint '{endpoint}'")


def test_userinfo_in_an_endpoint_is_never_quoted() -> None:
    assert shown("https://user:pw@sts.example.com:8443/x?a=b") == "https://sts.example.com:8443/x?a=b"
    with pytest.raises(InvalidSpec) as e:
        check_sts("generic", sts("ldap", endpoint="ftp://user:pw@sts.example.com/"))
    assert "pw" not in str(e.value)


def test_ldap_secret_needs_both_fields_as_flux_says() -> None:
    assert ldap_login("ldap", "s", {"username": b"u", "password": b"p"}) == LDAPLogin("u", "p")
    # No Secret named: minio-go sends empty ones and the STS refuses them.
    assert ldap_login("ldap", None, None) == LDAPLogin("", "")
    for data in ({}, {"username": b"u"}, {"username": b"u", "password": b""}):
        with pytest.raises(AuthenticationFailed) as e:
            ldap_login("ldap", "creds", data)
        assert str(e.value) == "invalid 'creds' secret data for 'ldap' STS provider: required fields username, password"
    with pytest.raises(AuthenticationFailed) as e:
        ldap_login("ldap", "creds", {"username": b"u", "password": b"\xff\xfe"})
    assert "\\xff" not in str(e.value)


def test_login_and_keys_hide_their_secrets() -> None:
    assert "hunter2" not in repr(LDAPLogin("flux", "hunter2"))
    keys = S3Keys("ASIAKEY", "s3cr3t", "t0ken")
    assert not {"ASIAKEY", "s3cr3t", "t0ken"} & set(repr(keys).replace("(", " ").replace(")", " ").split())


def test_the_form_is_minio_gos() -> None:
    form = parse_qs(ldap_form(LDAPLogin("flux", "p&w=d")).decode())
    assert form == {
        "Action": ["AssumeRoleWithLDAPIdentity"],
        "Version": ["2011-06-15"],
        "LDAPUsername": ["flux"],
        "LDAPPassword": ["p&w=d"],
    }


OK = b"""<?xml version="1.0" encoding="UTF-8"?>
<AssumeRoleWithLDAPIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithLDAPIdentityResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>
<SecretAccessKey>sk</SecretAccessKey><SessionToken>tok</SessionToken>
<Expiration>2026-12-03T19:31:40Z</Expiration></Credentials></AssumeRoleWithLDAPIdentityResult>
<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithLDAPIdentityResponse>"""


def test_credentials_are_read_from_the_answer() -> None:
    assert parse_ldap_answer(200, OK) == S3Keys("ASIA1", "sk", "tok")
    # MinIO answers without a namespace on some versions; the names are what count.
    plain = OK.replace(b' xmlns="https://sts.amazonaws.com/doc/2011-06-15/"', b"")
    assert parse_ldap_answer(200, plain) == S3Keys("ASIA1", "sk", "tok")


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (
            403,
            b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            b"<Message>authentication failed</Message></Error></ErrorResponse>",
            "AccessDenied: authentication failed",
        ),
        (400, b"<Error><Code>InvalidParameterValue</Code><Message>bad</Message></Error>", "InvalidParameterValue: bad"),
        (502, b"<html>bad gateway</html>", "the STS answered HTTP 502"),
        (200, b"<html>hello</html>", "not an AssumeRoleWithLDAPIdentityResponse"),
        (200, b"not xml", "not an AssumeRoleWithLDAPIdentityResponse"),
        (200, OK.replace(b"<AccessKeyId>ASIA1</AccessKeyId>", b""), "lack AccessKeyId or SecretAccessKey"),
        (200, b"<AssumeRoleWithLDAPIdentityResponse/>", "holds no Credentials"),
        (200, b" " * (MAX_ANSWER_BYTES + 1), f"larger than {MAX_ANSWER_BYTES} bytes"),
    ],
)
def test_refusals_and_strange_answers_are_named(status: int, body: bytes, words: str) -> None:
    with pytest.raises(STSAnswerError) as e:
        parse_ldap_answer(status, body)
    assert words in str(e.value)


def test_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((c,) + (c - 1,) * 10) for c in b"bcdefghij"
        )
        + b"]><AssumeRoleWithLDAPIdentityResponse><Credentials><AccessKeyId>&j;</AccessKeyId>"
        b"<SecretAccessKey>s</SecretAccessKey></Credentials></AssumeRoleWithLDAPIdentityResponse>"
    )
    with pytest.raises(STSAnswerError):
        parse_ldap_answer(200, bomb)
