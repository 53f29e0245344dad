"""Helm values as Go reads and writes them: go-yaml v2 scalar typing, JSON numbers, and Flux's digest bytes (pure).

Flux (fluxcd/pkg ``chartutil``) and Helm read a values document with sigs.k8s.io/yaml: go-yaml v2
(YAML 1.1: ``y``/``yes``/``on`` are booleans, ``0x1F`` and ``017`` integers, ``1e3`` a float, a
timestamp-looking scalar stays a string), then non-string keys turned into strings, then JSON, so every
number is a float64. The config digest (``chartutil.DigestValues`` with ``digest.Canonical``) is the
SHA-256 of the values written by go-yaml v2's encoder: keys sorted at every level, integral numbers as
integers, strings quoted only where go-yaml v2 would read them as something else, block style, 80-column
line folding. That encoder is a port of libyaml's emitter, so the bytes are made here by libyaml itself
(PyYAML's CEmitter) from events whose styles are chosen as go-yaml v2's encoder chooses them.

Checked against Go on a few hundred strings and numbers (quoting, folding, literal blocks, unicode,
Go's float formatting). One known difference: libyaml 0.2.5 indents before the closing quote of a
single-quoted string that ends in U+2028/U+2029, go-yaml v2 does not; such values digest differently.
"""

from __future__ import annotations

import datetime
import io
import math
import re
import struct
from collections.abc import Hashable, Mapping
from decimal import Decimal
from typing import Any, Final

import yaml
from yaml import events as ev

from gitops_mesh import tenant_yaml

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1
#: float64 holds every integer up to this exactly; beyond, Go's JSON numbers round.
_EXACT: Final = 1 << 53

_BOOL_NULL: Final[dict[str, bool | None]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
}
_SPECIAL_FLOATS: Final = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_STYLE_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_BASE60_FLOAT: Final = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
#: go-yaml v2's layouts: ``2006-1-2T15:4:5.999999999Z07:00`` (``T`` or ``t``), ``2006-1-2 15:4:5.999999999``
#: and ``2006-1-2``.
_TIMESTAMP: Final = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))"
    r"|(?: ([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?))?"
)
_DIGITS: Final = {
    2: re.compile(r"[01]+"),
    8: re.compile(r"[0-7]+"),
    10: re.compile(r"[0-9]+"),
    16: re.compile(r"[0-9a-fA-F]+"),
}


class ValuesYamlError(ValueError):
    """A values document Go would refuse after parsing it (a key or number JSON cannot carry)."""


# --- reading: go-yaml v2's resolve ------------------------------------------------------------------------


def _go_parse_int(s: str) -> int | None:
    """strconv.ParseInt/ParseUint(s, 0, 64): sign, then 0x/0o/0b/0 prefixes; None when Go would refuse."""
    sign, body = 1, s
    if body[:1] in "+-" and body:
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    base = 10
    low = body[:2].lower()
    if low in ("0x", "0o", "0b"):
        base, body = {"0x": 16, "0o": 8, "0b": 2}[low], body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, body = 8, body[1:]
    if not body or not _DIGITS[base].fullmatch(body):
        return None
    v = sign * int(body, base)
    if _INT64_MIN <= v <= _INT64_MAX:
        return v
    # ParseUint takes no sign
    return v if v <= _UINT64_MAX and s[:1] not in "+-" else None


def _is_timestamp(s: str) -> bool:
    """go-yaml v2's parseTimestamp: one of its layouts, and a real date and time (Go's time.Parse checks)."""
    m = _TIMESTAMP.fullmatch(s)
    if not m:
        return False
    year, month, day = (int(x) for x in m.group(1, 2, 3))
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    clock = m.group(4, 5, 6) if m.group(4) is not None else m.group(7, 8, 9)
    if clock[0] is None:
        return True
    hour, minute, second = (int(x) for x in clock)
    return hour < 24 and minute < 60 and second < 60


def resolve_plain(s: str) -> Any:
    """What go-yaml v2 makes of a plain (unquoted) scalar decoded into an ``interface{}``.

    Timestamps stay strings (go-yaml v2 keeps them so for ``interface{}``); a number out of range, or a
    float that overflows, is a string too, as Go's parsers refuse them.
    """
    if s in _BOOL_NULL:
        return _BOOL_NULL[s]
    if s in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[s]
    hint = s[:1]
    if hint == ".":
        if _YAML_STYLE_FLOAT.fullmatch(s):
            f = float(s)
            return s if math.isinf(f) else f
        return s
    if hint and ((hint.isascii() and hint.isdigit()) or hint in "+-"):
        if _is_timestamp(s):
            return s
        plain = s.replace("_", "")
        iv = _go_parse_int(plain)
        if iv is not None:
            return iv
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            f = float(plain)
            return s if math.isinf(f) else f
        for prefix, sign in (("0b", 1), ("-0b", -1)):
            if plain.startswith(prefix) and _DIGITS[2].fullmatch(plain[len(prefix) :]):
                v = sign * int(plain[len(prefix) :], 2)
                if _INT64_MIN <= v <= _UINT64_MAX:
                    return v
    return s


def _plain_is_string(s: str) -> bool:
    """go-yaml v2's encoder writes a string plain only when reading it back plain gives the same string."""
    if _BASE60_FLOAT.fullmatch(s):
        return False
    if s in _BOOL_NULL or s in _SPECIAL_FLOATS:
        return False
    hint = s[:1]
    if hint and ((hint.isascii() and hint.isdigit()) or hint in "+-") and _is_timestamp(s):
        return False  # go-yaml's resolve tags it a timestamp, so its encoder quotes it
    return resolve_plain(s) == s and isinstance(resolve_plain(s), str)


_PLAIN_TAG: Final = "tag:gitops-mesh,2026:go-plain"


class _GoYamlV2Loader(yaml.CSafeLoader):
    """libyaml's parser, every plain scalar typed by :func:`resolve_plain` (merge keys as YAML's ``<<``)."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        "<": [("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"))],
        None: [(_PLAIN_TAG, re.compile(""))],
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Keys as strings while building: Go's ``1`` and ``true`` are two keys ("1", "true"), Python's one."""
        self.flatten_mapping(node)
        out: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = _key_string(self.construct_object(key_node, deep=deep))
            out[key] = self.construct_object(value_node, deep=deep)
        return out


def _construct_plain(loader: Any, node: yaml.ScalarNode) -> Any:
    return resolve_plain(str(node.value))


_GoYamlV2Loader.add_constructor(_PLAIN_TAG, _construct_plain)


def _go_float_string(f: float, bits: int = 64) -> str:
    """strconv.FormatFloat(f, 'g', -1, bits): Go's shortest form (``1e+06``, ``1.5``, ``-0``)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = math.copysign(1.0, f) < 0
    if f == 0:
        return "-0" if neg else "0"
    if bits == 32:
        f32 = struct.unpack("f", struct.pack("f", f))[0]
        for p in range(1, 10):
            text = f"{f32:.{p - 1}e}"
            if struct.unpack("f", struct.pack("f", float(text)))[0] == f32:
                break
    else:
        text = repr(f)
    t = Decimal(text).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    dp = len(digits) + int(t.exponent)
    exp = dp - 1
    sign = "-" if neg else ""
    if exp < -4 or exp >= 6:  # Go's 'g' with the shortest precision decides at 6
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _json_number(v: int | float) -> int | float:
    """A number after Go's JSON (float64) and sigs.k8s.io/yaml's JSONObjectToYAMLObject (integral → integer)."""
    if isinstance(v, int) and -_EXACT <= v <= _EXACT:
        return v
    try:
        f = float(v)
    except OverflowError:
        raise ValuesYamlError("a number does not fit a float64") from None
    if math.isnan(f) or math.isinf(f):
        raise ValuesYamlError("json: unsupported value: NaN or Inf")
    if f == math.floor(f) and _INT64_MIN <= f <= _UINT64_MAX:
        return int(f)
    return f


def _key_string(k: Any) -> str:
    """sigs.k8s.io/yaml's key rule: strings, ints, floats (as float32 'g') and booleans become strings."""
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, int) and _INT64_MIN <= k <= _INT64_MAX:
        return str(k)
    if isinstance(k, float):
        s = _go_float_string(k, 32)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(s, s)
    raise ValuesYamlError(f"unsupported map key of type: {type(k).__name__}")


def to_json_values(obj: Any, *, depth: int = 0) -> Any:
    """A decoded YAML value as Go's JSON makes it: string keys, float64 numbers (integral ones as ints)."""
    if depth > tenant_yaml.DEFAULT_LIMITS.max_depth:
        raise ValuesYamlError("values nest too deeply")
    if isinstance(obj, Mapping):
        return {_key_string(k): to_json_values(v, depth=depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_json_values(v, depth=depth + 1) for v in obj]
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (int, float)):
        return _json_number(obj)
    raise ValuesYamlError(f"unsupported value of type: {type(obj).__name__}")


def read_values(
    text: str | bytes, *, what: str, limits: tenant_yaml.YamlLimits = tenant_yaml.DEFAULT_LIMITS
) -> dict[str, Any]:
    """Helm's ReadValues: the first document as a map (empty when there is none); ValueError otherwise.

    ``yaml.YAMLError`` (including tenant_yaml's refusals) for text that does not parse or is refused;
    ValuesYamlError for a document that is not a map or that JSON cannot carry.
    """
    docs = tenant_yaml.load_all(text, what=what, limits=limits, loader=_GoYamlV2Loader)
    doc = docs[0] if docs else None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        kind = "array" if isinstance(doc, list) else "string" if isinstance(doc, str) else "number or boolean"
        raise ValuesYamlError(f"error unmarshaling JSON: cannot unmarshal {kind} into Go value of type common.Values")
    out = to_json_values(doc)
    assert isinstance(out, dict)
    return out


# --- writing: go-yaml v2's encoder over libyaml's emitter -------------------------------------------------


def _scalar(value: str, style: str | None) -> ev.ScalarEvent:
    return ev.ScalarEvent(None, None, (True, True), value, style=style)


def _string_event(s: str) -> ev.ScalarEvent:
    """go-yaml v2's stringv: a literal block for text with a newline, plain where it reads back, else quoted."""
    if "\n" in s:
        return _scalar(s, "|")
    return _scalar(s, None if _plain_is_string(s) else '"')


def _events(value: Any, out: list[ev.Event], depth: int = 0) -> None:
    if depth > tenant_yaml.DEFAULT_LIMITS.max_depth:
        raise ValuesYamlError("values nest too deeply")
    if isinstance(value, Mapping):
        out.append(ev.MappingStartEvent(None, None, True, flow_style=False))
        for key in sorted(value, key=lambda k: str(k).encode("utf-8", "surrogatepass")):
            out.append(_string_event(str(key)))
            _events(value[key], out, depth + 1)
        out.append(ev.MappingEndEvent())
    elif isinstance(value, (list, tuple)):
        out.append(ev.SequenceStartEvent(None, None, True, flow_style=False))
        for item in value:
            _events(item, out, depth + 1)
        out.append(ev.SequenceEndEvent())
    elif value is None:
        out.append(_scalar("null", None))
    elif isinstance(value, bool):
        out.append(_scalar("true" if value else "false", None))
    elif isinstance(value, int):
        out.append(_scalar(str(value), None))  # an int64 as held (JSON's were rounded when read)
    elif isinstance(value, float):
        n = _json_number(value)
        out.append(_scalar(str(n) if isinstance(n, int) else _go_float_string(n), None))
    elif isinstance(value, str):
        out.append(_string_event(value))
    else:
        raise ValuesYamlError(f"unsupported value of type: {type(value).__name__}")


def encode(values: Mapping[str, Any]) -> bytes:
    """The bytes Flux's chartutil.Encode writes for ``values`` (sorted keys), b"" for empty values.

    go-yaml's Encoder writes a document when it ends and Flux never closes the stream, so nothing of the
    stream's end (a ``...`` after a kept-newline block) is in the bytes: the document is taken as libyaml
    flushes it at its end.
    """
    if not values:
        return b""
    events: list[ev.Event] = [ev.StreamStartEvent(), ev.DocumentStartEvent(explicit=False)]
    _events(values, events)
    events.append(ev.DocumentEndEvent(explicit=False))
    buf = io.StringIO()
    emitter = yaml.CDumper(buf, width=80, indent=2, allow_unicode=True)
    try:
        for e in events:
            emitter.emit(e)
        return buf.getvalue().encode("utf-8")
    finally:
        emitter.dispose()


__all__ = ["ValuesYamlError", "encode", "read_values", "resolve_plain", "to_json_values"]
