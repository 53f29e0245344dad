"""gitops_mesh.oci.auth: dockerconfigjson entries for a registry, and WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import json

import pytest

from gitops_mesh.oci import (
    Credentials,
    DockerConfigError,
    InvalidReference,
    docker_config_credentials,
    first_credentials,
)
from gitops_mesh.oci.auth import bearer_scope, check_realm, parse_challenges
from gitops_mesh.oci.client import AuthCache


def config(auths: dict[str, object]) -> bytes:
    return json.dumps({"auths": auths}).encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_an_entry_is_found_by_its_host_in_any_key_form() -> None:
    data = config(
        {
            "https://other.io/v1/": {"auth": b64("no:no")},
            "https://registry.example.com:5000/v2/": {"auth": b64("robot:s3cr:et")},
        }
    )
    assert docker_config_credentials(data, "registry.example.com:5000") == Credentials("robot", "s3cr:et")
    assert docker_config_credentials(data, "registry.example.com") is None


def test_username_and_password_fields_and_identity_tokens_work() -> None:
    assert docker_config_credentials(config({"r.io": {"username": "u", "password": "p"}}), "r.io") == Credentials(
        "u", "p"
    )
    assert docker_config_credentials(config({"r.io": {"identitytoken": "tok"}}), "r.io") == Credentials(
        "<token>", "tok"
    )


def test_docker_hub_aliases_match_each_other() -> None:
    data = config({"https://index.docker.io/v1/": {"auth": b64("hub:pw")}})
    assert docker_config_credentials(data, "registry-1.docker.io") == Credentials("hub", "pw")


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", json.dumps({"auths": []}).encode(), config({"r.io": {"auth": "%%%"}}), config({"r.io": {}})],
)
def test_unreadable_configs_are_refused_without_quoting_them(data: bytes) -> None:
    with pytest.raises(DockerConfigError) as caught:
        docker_config_credentials(data, "r.io")
    assert "%%%" not in str(caught.value)


def test_the_first_config_with_an_entry_wins() -> None:
    first = config({"a.io": {"auth": b64("a:1")}})
    second = config({"r.io": {"auth": b64("r:2")}})
    third = config({"r.io": {"auth": b64("r:3")}})
    assert first_credentials([first, second, third], "r.io") == Credentials("r", "2")
    assert first_credentials([first], "r.io") is None


def test_credentials_hide_their_password() -> None:
    creds = Credentials.parse("user:pa:ss")
    assert creds.password == "pa:ss"
    assert "pa:ss" not in repr(creds)
    assert creds.basic() == "Basic " + b64("user:pa:ss")
    with pytest.raises(ValueError, match="user:password"):
        Credentials.parse("nocolon")


def test_challenges_are_parsed_as_registries_send_them() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:a/b:pull,push",
    }
    basic, token = parse_challenges('Basic realm="Registry Realm", Bearer realm=https://t.io/x, service=s')
    assert (basic.scheme, dict(basic.params)) == ("basic", {"realm": "Registry Realm"})
    assert (token.scheme, dict(token.params)) == ("bearer", {"realm": "https://t.io/x", "service": "s"})
    assert parse_challenges('Bearer realm="a\\"b"')[0].params["realm"] == 'a"b'


@pytest.mark.parametrize("header", ["", "   ", 'Bearer realm="unterminated', "@@@ ,,, ===", "a " * 5000])
def test_garbage_challenges_end_the_list_and_never_raise(header: str) -> None:
    assert isinstance(parse_challenges(header), list)


def test_realms_must_not_leak_credentials_to_plain_http() -> None:
    assert check_realm("https://auth.io/token", registry_scheme="https") == "https://auth.io/token"
    assert check_realm("http://127.0.0.1/token", registry_scheme="http") == "http://127.0.0.1/token"
    with pytest.raises(InvalidReference, match="plain http"):
        check_realm("http://auth.io/token", registry_scheme="https")
    with pytest.raises(InvalidReference, match="not an http"):
        check_realm("file:///etc/passwd", registry_scheme="https")


def test_scopes_name_the_repository_and_actions() -> None:
    assert bearer_scope("apps/x", ("pull",)) == "repository:apps/x:pull"
    assert bearer_scope("apps/x", ("pull", "push")) == "repository:apps/x:pull,push"


def test_the_auth_cache_forgets_tokens_before_they_expire_and_stays_bounded() -> None:
    now = [0.0]
    cache = AuthCache(max_entries=2, margin=10, clock=lambda: now[0])
    key = ("https://r.io", "repository:a:pull", "who")
    cache.put(key, "Bearer t", ttl=60)
    assert cache.get(key) == "Bearer t"
    now[0] = 49.9
    assert cache.get(key) == "Bearer t"
    now[0] = 50.0
    assert cache.get(key) is None
    cache.put(("b", "", "w"), "Basic x", ttl=None)
    cache.put(("c", "", "w"), "Basic y", ttl=None)
    cache.put(("d", "", "w"), "Basic z", ttl=None)
    assert cache.get(("b", "", "w")) is None
    assert cache.get(("d", "", "w")) == "Basic z"
