"""Bash-style ``${var}`` expansion with the grammar and functions of fluxcd/pkg envsubst (a drone/envsubst fork). Pure.

Supported, as Flux's parser accepts them:

=============================  ================================================================
``${var}``                     the value (empty when unset, an error when unset in strict mode)
``${var=d}`` ``${var:=d}``     ``d`` when the value is empty; so are ``:-``, ``:?`` and ``:+``
``${var:-d}``                  (Flux maps every default-like operator to "use d when empty")
``${#var}``                    the length
``${var^}`` ``${var^^}``       upper-case the first / every character (``,`` ``,,`` lower-case)
``${var:n}`` ``${var:n:len}``  substring (negative ``n`` counts from the end)
``${var#p}`` ``${var##p}``     strip the shortest / longest prefix matching glob ``p``
``${var%p}`` ``${var%%p}``     strip the shortest / longest suffix matching glob ``p``
``${var/p/r}`` ``${var//p/r}`` replace the first / every ``p`` with ``r`` (``\\/`` is a slash)
``${var/#p/r}`` ``${var/%p/r}`` replace ``p`` at the start / end
=============================  ================================================================

Defaults may nest expansions (``${a:=${b}-x}``). ``$$`` is a literal ``$`` everywhere outside an
expansion, so ``$${var}`` prints ``${var}``; a lone ``$`` or ``$var`` is left alone. ``${var-d}``
(no colon) is a "missing closing brace" error, as in Flux. Lengths and offsets count characters,
where Go counts bytes (the same for ASCII).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: Operators that supply a default; in strict mode an unset variable is an error without one.
DEFAULT_OPERATORS = frozenset({"=", ":=", ":-", ":?", ":+"})


class SubstitutionSyntaxError(ValueError):
    """The text is not a valid envsubst template (Flux's parse errors, with the offset)."""


class UnsetVariable(LookupError):
    """Strict mode: an expansion names a variable that is not set and gives no default."""

    def __init__(self, name: str) -> None:
        super().__init__(f"variable not set (strict mode): '{name}'")
        self.name = name


@dataclass(frozen=True, slots=True)
class Text:
    value: str


@dataclass(frozen=True, slots=True)
class Func:
    param: str
    op: str = ""
    args: list[Text | Func] = field(default_factory=list)


Node = Text | Func
Accept = Callable[[str, int], bool]


def _any(c: str, i: int) -> bool:
    return True


def _ident(c: str, i: int) -> bool:
    return c.isalpha() or c.isdecimal() or c == "_"


def _not_closing(c: str, i: int) -> bool:
    return c != "}"


def _not_slash(c: str, i: int) -> bool:
    return c != "/"


def _not_colon_or_closing(c: str, i: int) -> bool:
    return c not in ":}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, problem: str) -> SubstitutionSyntaxError:
        return SubstitutionSyntaxError(f"{problem} at offset {self.i}")

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.s[j] if j < len(self.s) else ""

    def at_expansion(self) -> bool:
        return self.s.startswith("${", self.i)

    def scan(self, accept: Accept, *, escapes: str = "", stop_at_expansion: bool = False) -> str | None:
        """The longest run of accepted characters from here (None if there is none).

        ``escapes`` holds the escape characters in force: ``$`` makes ``$$`` a literal ``$``; ``\\`` makes
        ``\\/`` and ``\\\\`` a literal ``/`` and ``\\``. An escaped pair counts as one character.
        """
        out: list[str] = []
        count = 0
        s = self.s
        while self.i < len(s):
            if stop_at_expansion and s.startswith("${", self.i):
                break
            c, nxt = s[self.i], self.peek(1)
            if (c == "$" and "$" in escapes and nxt == "$") or (c == "\\" and "\\" in escapes and nxt in ("/", "\\")):
                out.append(nxt)
                self.i += 2
                count += 1
                continue
            if not accept(c, count + 1):
                break
            out.append(c)
            self.i += 1
            count += 1
        return "".join(out) if count else None

    def parse(self) -> list[Node]:
        nodes: list[Node] = []
        while self.i < len(self.s):
            if self.at_expansion():
                self.i += 2
                nodes.append(self.expansion())
            else:
                text = self.scan(_any, escapes="$", stop_at_expansion=True)
                assert text is not None
                nodes.append(Text(text))
        return nodes

    def expansion(self) -> Func:
        """After ``${``: the variable, its operator and arguments, and the closing brace."""
        if self.peek() == "#":
            self.i += 1
            name = self.scan(_ident)
            if name is None:
                raise self.fail("bad substitution")
            self.closing()
            return Func(name, "#")
        name = self.scan(_ident)
        if name is None:
            raise self.fail("unable to parse variable name")
        c = self.peek()
        if c == ":":
            after = self.peek(1)
            return self.default(name) if after and after in "=-?+" else self.substring(name)
        if c == "=":
            return self.default(name)
        if c and c in ",^":
            op = self.scan(lambda ch, i: ch in ",^" and i < 3) or ""
            self.closing()
            return Func(name, op)
        if c == "/":
            return self.replace(name)
        if c and c in "#%":
            op = self.scan(lambda ch, i: ch == c and i < 3) or ""
            args = [self.param(_not_closing)]
            self.closing()
            return Func(name, op, args)
        if c == "}":
            self.i += 1
            return Func(name)
        raise self.fail("missing closing brace")

    def param(self, accept: Accept, *, escapes: str = "") -> Node:
        """One argument: a nested expansion or a run of text (a single node, as in Flux)."""
        if self.at_expansion():
            self.i += 2
            return self.expansion()
        text = self.scan(accept, escapes=escapes, stop_at_expansion=True)
        if text is None:
            raise self.fail("unable to parse substitution within function")
        return Text(text)

    def closing(self) -> None:
        if self.peek() != "}":
            raise self.fail("bad substitution")
        self.i += 1

    def default(self, name: str) -> Func:
        if self.peek() == "=":
            op, self.i = "=", self.i + 1
        else:
            op, self.i = ":" + self.peek(1), self.i + 2
        args: list[Node] = []
        while self.peek() != "}":
            args.append(self.param(_not_closing))
        self.i += 1
        return Func(name, op, args)

    def substring(self, name: str) -> Func:
        self.i += 1
        args = [self.param(_not_colon_or_closing)]
        c = self.peek()
        if c == "}":
            self.i += 1
            return Func(name, ":", args)
        if c != ":":
            raise self.fail("bad substitution")
        self.scan(lambda ch, i: ch == ":")
        args.append(self.param(_not_closing))
        self.closing()
        return Func(name, ":", args)

    def replace(self, name: str) -> Func:
        op = self.scan(lambda ch, i: (i == 1 and ch == "/") or (i == 2 and ch in "/#%")) or "/"
        args = [self.param(_not_slash, escapes="$\\")]
        if self.scan(lambda ch, i: ch == "/") is None:
            raise self.fail("bad substitution")
        if self.peek() == "}":
            self.i += 1
            return Func(name, op, args)
        args.append(self.param(_not_closing, escapes="$\\"))
        self.closing()
        return Func(name, op, args)


def parse(text: str) -> list[Node]:
    """The template's nodes. Raises SubstitutionSyntaxError."""
    return _Parser(text).parse()


def expand(text: str, lookup: Callable[[str], str | None], *, strict: bool = False) -> str:
    """``text`` with every expansion evaluated; ``lookup`` returns None for an unset variable.

    Raises SubstitutionSyntaxError, or UnsetVariable in strict mode.
    """
    return "".join(_evaluate(node, lookup, strict) for node in parse(text))


def _evaluate(node: Node, lookup: Callable[[str], str | None], strict: bool) -> str:
    if isinstance(node, Text):
        return node.value
    # Arguments are evaluated before the variable is looked at, as in Flux (so strict mode sees them).
    args = [_evaluate(arg, lookup, strict) for arg in node.args]
    value = lookup(node.param)
    if value is None:
        if strict and node.op not in DEFAULT_OPERATORS:
            raise UnsetVariable(node.param)
        value = ""
    return _FUNCTIONS.get(node.op, _default)(value, args)


def _default(s: str, args: list[str]) -> str:
    return "".join(args) if not s and args else s


def _length(s: str, args: list[str]) -> str:
    return str(len(s)) if not args else _trim_prefix(s, args, longest=False)


def _first(transform: Callable[[str], str]) -> Callable[[str, list[str]], str]:
    return lambda s, args: transform(s[:1]) + s[1:] if s else s


_INT = re.compile(r"[+-]?[0-9]+\Z")


def _substring(s: str, args: list[str]) -> str:
    if not args or not _INT.match(args[0]):
        return s
    pos = int(args[0])
    if pos < 0:
        pos = max(len(s) + pos, 0)
    if len(args) == 1:
        return s[pos:]
    if not _INT.match(args[1]):
        return s
    length = int(args[1])
    if pos + length >= len(s):
        return s[pos:]
    return s[pos : pos + length]


def _replace(count: int) -> Callable[[str, list[str]], str]:
    def replace(s: str, args: list[str]) -> str:
        if not args:
            return s
        new = args[1] if len(args) > 1 else ""
        return s.replace(args[0], new, count) if count > 0 else s.replace(args[0], new)

    return replace


def _replace_prefix(s: str, args: list[str]) -> str:
    if len(args) != 2 or not s.startswith(args[0]):
        return s
    return args[1] + s[len(args[0]) :]


def _replace_suffix(s: str, args: list[str]) -> str:
    if len(args) != 2 or not s.endswith(args[0]):
        return s
    return s[: len(s) - len(args[0])] + args[1]


def _trim_prefix(s: str, args: list[str], *, longest: bool) -> str:
    if not args or not s:
        return s
    try:
        pattern = glob_regex(args[0])
    except ValueError:
        return s
    match = ""
    # Candidates from the whole string down to its first character (never the empty prefix), as Flux does.
    for end in range(len(s), 0, -1):
        if pattern.fullmatch(s[:end]):
            match = s[:end]
            if longest:
                break
    return s[len(match) :]


def _trim_suffix(s: str, args: list[str], *, longest: bool) -> str:
    if not args:
        return s
    # Flux reverses both the value and the pattern and trims a prefix; a reversed class or escape reads
    # differently, and that quirk is kept.
    return _trim_prefix(s[::-1], [args[0][::-1]], longest=longest)[::-1]


_FUNCTIONS: dict[str, Callable[[str, list[str]], str]] = {
    ",": _first(str.lower),
    ",,": lambda s, args: s.lower(),
    "^": _first(str.upper),
    "^^": lambda s, args: s.upper(),
    "#": _length,
    "##": lambda s, args: _trim_prefix(s, args, longest=True),
    "%": lambda s, args: _trim_suffix(s, args, longest=False),
    "%%": lambda s, args: _trim_suffix(s, args, longest=True),
    ":": _substring,
    "/#": _replace_prefix,
    "/%": _replace_suffix,
    "/": _replace(1),
    "//": _replace(-1),
}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A shell pattern as a regex, as envsubst's fork of Go's ``path.Match`` reads it.

    ``*`` is any run of characters and ``?`` any one, ``/`` included (the fork drops path.Match's
    separator rule, which is what makes ``${path##*/}`` a basename); ``[a-z]`` / ``[^a-z]`` classes;
    ``\\`` escapes the next character.

    Raises ValueError for a malformed pattern (Go's ErrBadPattern).
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
            i += 1
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise ValueError("bad pattern")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "[":
            i, cls = _glob_class(pattern, i + 1)
            out.append(cls)
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob_class(pattern: str, i: int) -> tuple[int, str]:
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    seen = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and seen:
            if not ranges:
                # Only inverted ranges like z-a: they match nothing, so the class matches nothing (or anything).
                return i + 1, "." if negated else "(?!)"
            return i + 1, "[" + ("^" if negated else "") + "".join(ranges) + "]"
        i, lo = _glob_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            i, hi = _glob_char(pattern, i + 1)
        seen += 1
        if lo <= hi:
            ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")


def _glob_char(pattern: str, i: int) -> tuple[int, str]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise ValueError("bad pattern")
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            raise ValueError("bad pattern")
        return i + 2, pattern[i + 1]
    return i + 1, pattern[i]
