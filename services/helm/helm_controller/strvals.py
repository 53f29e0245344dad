"""Helm's ``--set`` syntax (helm v4 ``pkg/strvals``) for ``valuesFrom[].targetPath``: paths and typed values (pure).

Flux sets a referenced value at ``targetPath`` by handing ``<targetPath>=<value>`` to Helm's strvals parser,
so the value is parsed too: ``a.b`` nests, ``a[0]`` indexes (Helm caps an index at 65536 and a dotted
path at 30 levels), ``\\`` escapes the next character, ``{x,y}`` is a list, ``,`` starts another
assignment, and a plain value is typed (``true``/``false``/``null`` in any case, decimal int64s without a
leading zero) unless strings were asked for. The parser writes into the map it is given, in place, as
Helm's does: a nested map or list it reaches is the caller's object, so whatever else refers to it sees
the change (Flux's composition depends on that, see :mod:`helm_controller.values`).

Errors are :class:`StrvalsError` with Helm's wording; a message may quote a key that came from the value
(Helm's ``key "x" has no value``), so callers holding secret values must not pass it on verbatim.
"""

from __future__ import annotations

import re
from typing import Any, Final

MAX_INDEX: Final = 65536
MAX_NESTED_NAME_LEVEL: Final = 30

_KEY_STOP: Final = frozenset("=[,.")
_LIST_ITEM_STOP: Final = frozenset("[.=")
_INDEX_STOP: Final = frozenset("]")
_VALUE_STOP: Final = frozenset(",")
_LIST_STOP: Final = frozenset(",}")
_DECIMAL: Final = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class StrvalsError(ValueError):
    """Helm's parser refused the assignment."""


class _Eof(Exception):
    """The input ended (Go's io.EOF): the normal end of the last assignment."""


def _quote(s: str) -> str:
    """Go's %q for the keys Helm quotes in its messages (close enough: quotes and backslashes escaped)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_type(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return "string"


def _conversion(v: Any, want: str) -> StrvalsError:
    """Go's panic on a failed type assertion, as Helm's recover reports it."""
    return StrvalsError(f"unable to parse key: interface conversion: interface {{}} is {_go_type(v)}, not {want}")


def _parse_int64(s: str) -> int | None:
    """strconv.ParseInt(s, 10, 64): optional sign, decimal digits, in range."""
    if not _DECIMAL.fullmatch(s):
        return None
    v = int(s)
    return v if _INT64_MIN <= v <= _INT64_MAX else None


def typed_value(s: str, *, as_string: bool) -> Any:
    """Helm's typedVal: the plain value's type, as ``--set`` gives it (``--set-string``: always a string)."""
    if as_string:
        return s
    low = s.casefold()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    if s == "0":
        return 0
    if s and s[0] != "0":
        iv = _parse_int64(s)
        if iv is not None:
            return iv
    return s


class _Parser:
    """One ``path=value[,path=value...]`` string parsed into ``data``; the same walk as Helm's."""

    def __init__(self, text: str, data: dict[str, Any], *, as_string: bool) -> None:
        self._text = text
        self._pos = 0
        self._data = data
        self._as_string = as_string

    # --- the scanner (Go's bytes.Buffer of runes) ---

    def _read(self) -> str:
        if self._pos >= len(self._text):
            raise _Eof
        r = self._text[self._pos]
        self._pos += 1
        return r

    def _unread(self) -> None:
        self._pos -= 1

    def _until(self, stop: frozenset[str]) -> tuple[str, str | None]:
        """Runes up to one of ``stop`` (consumed, returned second); a backslash takes the next rune as is.

        At the end of the input, returns what was read and None (Go returns io.EOF with it).
        """
        out: list[str] = []
        text, n = self._text, len(self._text)
        while self._pos < n:
            r = text[self._pos]
            self._pos += 1
            if r in stop:
                return "".join(out), r
            if r == "\\":
                if self._pos >= n:
                    return "".join(out), None
                out.append(text[self._pos])
                self._pos += 1
            else:
                out.append(r)
        return "".join(out), None

    # --- the grammar ---

    def parse(self) -> None:
        try:
            while True:
                self._key(self._data, 0)
        except _Eof:
            return
        except RecursionError:
            raise StrvalsError("unable to parse key: nested too deeply") from None

    def _value(self, rs: str) -> Any:
        return typed_value(rs, as_string=self._as_string)

    def _key(self, data: dict[str, Any], level: int) -> None:
        k, last = self._until(_KEY_STOP)
        if last is None:
            if not k:
                raise _Eof
            raise StrvalsError(f"key {_quote(k)} has no value")
        if last == "[":
            i = self._index()
            lst: list[Any] = []
            if k in data:
                existing = data[k]
                if not isinstance(existing, list):
                    raise _conversion(existing, "[]interface {}")
                lst = existing
            # On an error the whole composition is dropped, so what is left half-set does not matter; the
            # end of the input is no error (``a[0]`` alone sets an empty list).
            try:
                item = self._list_item(lst, i, level)
            except _Eof:
                _set(data, k, lst)
                raise
            _set(data, k, item)
            return
        if last == "=":
            try:
                vl = self._val_list()
            except _Eof:
                _set(data, k, "")
                raise
            if vl is not None:
                _set(data, k, vl)
                return
            rs, _ = self._until(_VALUE_STOP)
            _set(data, k, self._value(rs))
            return
        if last == ",":
            _set(data, k, "")
            raise StrvalsError(f"key {_quote(k)} has no value (cannot end with ,)")
        # last == "."
        level += 1
        if level > MAX_NESTED_NAME_LEVEL:
            raise StrvalsError(
                f"value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
            )
        inner: dict[str, Any] = {}
        if k in data:
            existing = data[k]
            if not isinstance(existing, dict):
                raise _conversion(existing, "map[string]interface {}")
            inner = existing
        try:
            self._key(inner, level)
        except _Eof:
            if inner:
                _set(data, k, inner)
            raise
        except StrvalsError:
            if inner:
                _set(data, k, inner)
            raise
        if not inner:
            raise StrvalsError(f"key map {_quote(k)} has no value")
        _set(data, k, inner)

    def _index(self) -> int:
        v, last = self._until(_INDEX_STOP)
        if last is None:
            # Helm wraps io.EOF here and its parse loop takes any EOF as the end: ``a[1`` sets nothing.
            raise _Eof
        iv = _parse_int64(v)
        if iv is None:
            what = "value out of range" if _DECIMAL.fullmatch(v) else "invalid syntax"
            raise StrvalsError(f"error parsing index: strconv.Atoi: parsing {_quote(v)}: {what}")
        return iv

    def _list_item(self, lst: list[Any], i: int, level: int) -> list[Any]:
        if i < 0:
            raise StrvalsError(f"negative {i} index not allowed")
        k, last = self._until(_LIST_ITEM_STOP)
        if k:
            raise StrvalsError(f"unexpected data at end of array index: {_quote(k)}")
        if last is None:
            raise _Eof
        if last == "=":
            try:
                vl = self._val_list()
            except _Eof:
                return _set_index(lst, i, "")
            if vl is not None:
                return _set_index(lst, i, vl)
            rs, _ = self._until(_VALUE_STOP)
            return _set_index(lst, i, self._value(rs))
        if last == "[":
            next_i = self._index()
            current: list[Any] = []
            if len(lst) > i and lst[i] is not None:
                if not isinstance(lst[i], list):
                    raise _conversion(lst[i], "[]interface {}")
                current = lst[i]
            inner_list = self._list_item(current, next_i, level)
            return _set_index(lst, i, inner_list)
        # last == "."
        inner: dict[str, Any] = {}
        if len(lst) > i:
            if not isinstance(lst[i], dict):
                lst[i] = {}
            inner = lst[i]
        self._key(inner, level)
        return _set_index(lst, i, inner)

    def _val_list(self) -> list[Any] | None:
        """``{a,b}`` after ``=``: the list; None when the value is not a list (Helm's ErrNotList)."""
        r = self._read()
        if r != "{":
            self._unread()
            return None
        out: list[Any] = []
        while True:
            rs, last = self._until(_LIST_STOP)
            if last is None:
                raise StrvalsError("list must terminate with '}'")
            out.append(self._value(rs))
            if last == "}":
                if self._pos < len(self._text) and self._text[self._pos] == ",":
                    self._pos += 1
                return out


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    if key:
        data[key] = value


def _set_index(lst: list[Any], index: int, value: Any) -> list[Any]:
    """Helm's setIndex: in place when the list is long enough, else a longer copy (Go's slice semantics)."""
    if index < 0:
        raise StrvalsError(f"negative {index} index not allowed")
    if index > MAX_INDEX:
        raise StrvalsError(f"index of {index} is greater than maximum supported index of {MAX_INDEX}")
    if len(lst) <= index:
        lst = [*lst, *([None] * (index + 1 - len(lst)))]
    lst[index] = value
    return lst


def parse_into(assignment: str, dest: dict[str, Any], *, as_string: bool = False) -> None:
    """Helm's ParseInto (``--set``) / ParseIntoString (``--set-string``): ``assignment`` written into ``dest``."""
    _Parser(assignment, dest, as_string=as_string).parse()


def escape_literal(value: str) -> str:
    """What Flux does for ``literal: true``: every character Helm's parser would read escaped, backslash first."""
    out = value.replace("\\", "\\\\")
    for ch in ",[]{}":
        out = out.replace(ch, "\\" + ch)
    return out


__all__ = ["MAX_INDEX", "MAX_NESTED_NAME_LEVEL", "StrvalsError", "escape_literal", "parse_into", "typed_value"]
