"""A Provider Secret's ``headers`` (pure, with a cache): tenant YAML to a map of sendable header fields, once per change.

Flux reads the value with ``yaml.Unmarshal`` into a ``map[string]string``; so do we, with the tenant's YAML
behind caps (:mod:`gitops_mesh.tenant_yaml`): the value is size-checked before it is parsed, aliases may
not multiply it, and the parsed headers together may not be larger than the value's cap — a scalar alias
is one node as written but its whole text on every request. Each name must be an RFC 9110 token and each
value sendable (no CR/LF/controls: :mod:`gitops_mesh.http_headers`), so a header is refused when the
configuration is read, never when a request is being written. Everything unusable is
:class:`InvalidHeaders` (the Provider's configuration error where it is read) whose message never quotes
a value (headers carry credentials).

:class:`HeadersCache` parses each distinct value once (keyed by its digest), so a Secret costs one parse
per change, not one per delivery, for the Provider's Ready check and every delivery alike; a value not
seen before is parsed in a worker thread (:meth:`HeadersCache.warm`), so the event loop (deliveries, the
Receiver server) keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.http_headers import header_problem
from gitops_mesh.tenant_yaml import YamlLimits, load

#: The most a ``headers`` value may be, and the most its headers may add up to once parsed (names and
#: values). Servers refuse far less (8-16 KiB of headers is common); this only bounds the work.
#: 16 KiB is also about what servers take (nginx: 8 KiB a line); parsing that much takes milliseconds.
MAX_HEADERS_BYTES: Final = 16 << 10
#: A map of headers: one level of nesting and a node per name and per value (512 headers).
HEADERS_LIMITS: Final = YamlLimits(max_bytes=MAX_HEADERS_BYTES, max_nodes=1025, max_depth=2)
#: What the messages call the value.
WHAT: Final = "headers from secret"


class InvalidHeaders(ValueError):
    """A ``headers`` value that cannot be used; the message says why without quoting it."""


def parse_headers(raw: bytes) -> dict[str, str]:
    """The header fields of a ``headers`` value; InvalidHeaders naming why not (never quoting a value)."""
    if len(raw) > MAX_HEADERS_BYTES:
        # Before decoding or parsing anything: the cap is what keeps this cheap enough for the event loop.
        raise InvalidHeaders(f"failed to read {WHAT}: more than {MAX_HEADERS_BYTES} bytes")
    try:
        doc = load(raw.decode("utf-8"), what=WHAT, limits=HEADERS_LIMITS)
    except UnicodeDecodeError:
        raise InvalidHeaders(f"failed to read {WHAT}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        # UnsafeYaml (a refusal) is a YAMLError too; neither message quotes the text.
        raise InvalidHeaders(f"failed to read {WHAT}: {tenant_yaml.problem(e)}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InvalidHeaders(f"failed to read {WHAT}: not a map of header names to values")
    headers: dict[str, str] = {}
    total = 0
    for name, value in doc.items():
        if not isinstance(name, str):
            raise InvalidHeaders(f"failed to read {WHAT}: a {type(name).__name__} key; header names are strings")
        if not isinstance(value, str):
            # As Flux's map[string]string: `X-Count: 1` or a list is not a header value (quote it: "1").
            raise InvalidHeaders(
                f"failed to read {WHAT}: the value of {name!r} is a {type(value).__name__}, not a string"
            )
        problem = header_problem(name, value)
        if problem is not None:
            raise InvalidHeaders(f"invalid {WHAT}: {problem}")
        total += len(name) + len(value)
        if total > MAX_HEADERS_BYTES:
            raise InvalidHeaders(f"failed to read {WHAT}: the headers add up to more than {MAX_HEADERS_BYTES} bytes")
        headers[name] = value
    return headers


def request_headers_problem(headers: Mapping[str, str]) -> str | None:
    """Why a request cannot carry ``headers`` (a token with a newline in ``Authorization``), else None."""
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            return problem
    return None


class HeadersCache:
    """Parsed ``headers`` values by digest (the outcome, success or the error's message), most recent kept."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, dict[str, str] | str] = OrderedDict()
        #: Values parsed so far (each distinct value once while it stays cached).
        self.parses = 0

    async def warm(self, raw: bytes) -> None:
        """Parse ``raw`` in a worker thread unless its outcome is known, so :meth:`parse` finds it."""
        if len(raw) > MAX_HEADERS_BYTES:
            return  # parse refuses it before hashing or parsing
        key = hashlib.sha256(raw).digest()
        if key not in self._entries:
            self._store(key, await asyncio.to_thread(_outcome, raw))

    def parse(self, raw: bytes) -> dict[str, str]:
        """:func:`parse_headers` of ``raw``, from the cache when this exact value was parsed before."""
        if len(raw) > MAX_HEADERS_BYTES:
            return parse_headers(raw)  # refused before hashing or parsing
        key = hashlib.sha256(raw).digest()
        hit = self._entries.get(key)
        if hit is None:
            hit = self._store(key, _outcome(raw))
        self._entries.move_to_end(key)
        if isinstance(hit, str):
            # A fresh error each time: re-raising one instance would pile up its tracebacks.
            raise InvalidHeaders(hit)
        return dict(hit)

    def _store(self, key: bytes, outcome: dict[str, str] | str) -> dict[str, str] | str:
        self.parses += 1
        self._entries[key] = outcome
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return outcome


def _outcome(raw: bytes) -> dict[str, str] | str:
    """The headers, or the message of why not (what the cache keeps)."""
    try:
        return parse_headers(raw)
    except InvalidHeaders as e:
        return str(e)
