"""A Provider Secret's ``headers``: tenant YAML to sendable header fields, refused clearly, parsed once per change."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_mesh.errors import TransientError
from gitops_mesh.reconcile import conditions as c
from gitops_mesh.reconcile.result import conclude
from notification_controller.providers import Credentials, ProviderConfigError, build_request, provider_from_object
from notification_controller.providers.headers import MAX_HEADERS_BYTES, HeadersCache, InvalidHeaders, parse_headers
from notification_controller.status import ProviderReconciler
from tests.unit.notification.support import provider_object
from tests.unit.notification.test_providers import notification

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
#: The issue's probe: 329 bytes of nested aliases that PyYAML expanded to a 52 MB header on every delivery.
ALIAS_BOMB = (
    b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    b"X-Bomb: *f\n"
)
#: One long scalar, referenced again and again: a node each as written, its whole text on every request.
SCALAR_ALIASES = b'X-A: &a "' + b"x" * 8000 + b'"\n' + b"".join(b"X-B%d: *a\n" % i for i in range(200))


def test_a_map_of_strings_is_read() -> None:
    assert parse_headers(b"Authorization: Bearer xyz\nX-Team: 'platform'\n") == {
        "Authorization": "Bearer xyz",
        "X-Team": "platform",
    }
    assert parse_headers(b"") == {}
    assert parse_headers(b"# nothing\n") == {}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (ALIAS_BOMB, "nesting deeper than 2 levels"),
        (SCALAR_ALIASES, f"the headers add up to more than {MAX_HEADERS_BYTES} bytes"),
        (b"a: " + b"x" * MAX_HEADERS_BYTES, f"more than {MAX_HEADERS_BYTES} bytes"),
        (b"- a\n- b\n", "not a map of header names to values"),
        (b"X-Count: 1\n", "the value of 'X-Count' is a int, not a string"),
        (b"X-On: true\n", "the value of 'X-On' is a bool, not a string"),
        (b"X-Empty:\n", "the value of 'X-Empty' is a NoneType, not a string"),
        (b"X-List: [a, b]\n", "the value of 'X-List' is a list, not a string"),
        (b"1: one\n", "a int key; header names are strings"),
        (b"a: [unclosed\n", "line 2"),
        (b"\xff\xfe: x\n", "not UTF-8 text"),
    ],
)
def test_what_is_not_a_map_of_strings_is_refused_quickly(raw: bytes, why: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidHeaders, match="headers from secret") as e:
        parse_headers(raw)
    assert why in str(e.value)
    assert time.perf_counter() - started < 0.5
    # The same message reaches the Provider's configuration error (Ready, the DLQ's reason).
    with pytest.raises(ProviderConfigError, match="headers from secret"):
        Credentials.from_secrets({"headers": raw})


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'X-Token: "abc\\r\\nX-Injected: 1"\n', "the value of header 'X-Token' has a control character"),
        (b'X-Token: "abc\\ndef"\n', "the value of header 'X-Token' has a control character"),
        (b'X-Token: "nul\\0"\n', "the value of header 'X-Token' has a control character"),
        (b'"X-A\\r\\nX-B": v\n', "is not an RFC 9110 token"),
        (b'"X Space": v\n', "is not an RFC 9110 token"),
        (b'"": v\n', "is not an RFC 9110 token"),
    ],
)
def test_headers_that_cannot_be_sent_are_refused_without_quoting_the_value(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidHeaders) as e:
        parse_headers(raw)
    assert why in str(e.value)
    assert "X-Injected: 1" not in str(e.value)
    assert "def" not in str(e.value)


async def test_the_cache_parses_each_value_once_off_the_event_loop() -> None:
    cache = HeadersCache(max_entries=2)
    good, bad = b"X-A: a\n", b"X-A: 1\n"
    await cache.warm(good)
    await cache.warm(good)
    await cache.warm(bad)
    assert cache.parses == 2
    assert cache.parse(good) == {"X-A": "a"}
    for _ in range(3):
        with pytest.raises(InvalidHeaders, match="is a int"):
            cache.parse(bad)
    assert cache.parses == 2  # every delivery after the first is a lookup
    cache.parse(b"X-B: b\n")
    cache.parse(b"X-C: c\n")
    cache.parse(good)  # evicted (two entries kept): parsed again
    assert cache.parses == 5


def test_a_token_with_a_line_break_refuses_that_delivery_only() -> None:
    spec = provider_from_object(provider_object(type="slack", address="https://slack.com/api/chat.postMessage"))
    with pytest.raises(ProviderConfigError, match="header 'Authorization' has a control character") as e:
        build_request(notification(), spec, Credentials(token="xoxb-1\r\nX-Evil: 1"))
    assert "xoxb" not in str(e.value)


# ---- the Provider's Ready ------------------------------------------------------------------------------


def reader(secrets: dict[str, dict[str, bytes]]) -> Any:
    async def read(namespace: str, name: str) -> dict[str, bytes]:
        return secrets[f"{namespace}/{name}"]

    return read


async def ready_of(obj: dict[str, Any], secrets: dict[str, dict[str, bytes]], cache: HeadersCache) -> Any:
    # As the runner: Ready as the object came in, so this cycle's verdict replaces the last one.
    before = copy.deepcopy(c.get(obj, "Ready"))
    outcome = await ProviderReconciler(reader(secrets), cache).reconcile(obj)
    decision = conclude(obj, outcome, now=NOW, ready_before=before)
    cond = c.get(obj, "Ready")
    assert cond is not None
    return decision, (cond["status"], cond["reason"], cond["message"])


async def test_bad_headers_make_the_provider_not_ready_retried_until_the_secret_is_fixed() -> None:
    obj = provider_object(type="generic", address="https://hooks.example.com/x", secretRef={"name": "s"})
    cache = HeadersCache()
    decision, ready = await ready_of(obj, {"apps/s": {"headers": ALIAS_BOMB}}, cache)
    assert ready == (
        "False",
        "InvalidProviderConfig",
        "failed to read headers from secret: nesting deeper than 2 levels",
    )
    with pytest.raises(TransientError):
        decision.result()
    assert not c.is_stalled(obj)  # an edit of the Secret fixes it: retried, never Stalled

    _, ready = await ready_of(obj, {"apps/s": {"headers": b'X-A: "a\\r\\nb"\n'}}, cache)
    assert ready[:2] == ("False", "InvalidProviderConfig")
    assert "control character" in ready[2]

    _, ready = await ready_of(obj, {"apps/s": {"headers": b"X-A: a\n", "token": b"t"}}, cache)
    assert ready == ("True", "Succeeded", "Initialized")


async def test_a_token_that_cannot_go_in_a_header_makes_the_provider_not_ready() -> None:
    obj = provider_object(type="slack", address="https://slack.com/api/chat.postMessage", secretRef={"name": "s"})
    _, ready = await ready_of(obj, {"apps/s": {"token": b"xoxb\r\nX-Evil: 1"}}, HeadersCache())
    assert ready[:2] == ("False", "InvalidProviderConfig")
    assert "xoxb" not in ready[2]
    # A generic-hmac token only signs: any bytes will do, as in Flux.
    hmac = provider_object(type="generic-hmac", address="https://h.example.com/x", secretRef={"name": "s"})
    _, ready = await ready_of(hmac, {"apps/s": {"token": b"k\r\ney"}}, HeadersCache())
    assert ready[0] == "True"
