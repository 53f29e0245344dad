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

Tenant-written input, so every step is bounded (:class:`Limits`): the ``#`` ``##`` ``%`` ``%%`` globs are
matched with RE2 (linear time, no backtracking; Python's ``re`` took seconds to minutes on
``${v##*a*a*a*a*a*a*a*a*b}``), the glob and the value it is matched against are capped, expansions nest at
most ``max_depth`` deep, and everything an expansion produces counts against ``max_output`` (a ``//``
replacement's size is known before it is built). Going over a limit raises :class:`LimitExceeded`, never a
silently shortened result. That is why running :func:`expand` in a worker thread is acceptable: the caller's
``checkpoint`` is called between units of work (each expansion), each unit is linear in capped input, so a
cancelled build stops at the next unit instead of holding a thread (and RE2 releases the GIL while it matches).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

#: Operators that supply a default; in strict mode an unset variable is an error without one.
DEFAULT_OPERATORS = frozenset({"=", ":=", ":-", ":?", ":+"})


class SubstitutionSyntaxError(ValueError):
    """The text is not a valid envsubst template (Flux's parse errors, with the offset)."""


class LimitExceeded(ValueError):
    """The template or a value is over one of :class:`Limits` (too long, nested too deep, or expands too far)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one :func:`expand` call; every limit is a refusal (LimitExceeded), never a truncation."""

    #: characters of a ``#`` ``##`` ``%`` ``%%`` glob (real ones are a few characters: ``*/``, ``.*``)
    max_pattern: int = 256
    #: characters of a value matched against such a glob (RE2 time is linear in value times glob)
    max_subject: int = 64 * 1024
    #: expansions inside expansions (``${a:=${b:=${c}}}`` is 3)
    max_depth: int = 32
    #: characters produced by all expansions together (a Kubernetes object is at most ~1.5 MiB)
    max_output: int = 8 * 1024 * 1024


DEFAULT_LIMITS = Limits()

#: Called between units of work; raises to stop the expansion (the caller's cancellation or deadline).
Checkpoint = Callable[[], None]


def no_checkpoint() -> None:
    """The checkpoint of a call nobody stops."""


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


def _ident(c: str, i: int) -> bool:
    return c.isalpha() or c.isdecimal() or c == "_"


def _not_closing(c: str, i: int) -> bool:
    return c != "}"


def _not_slash(c: str, i: int) -> bool:
    return c != "/"


def _not_colon_or_closing(c: str, i: int) -> bool:
    return c not in ":}"


class _Parser:
    def __init__(self, text: str, max_depth: int, checkpoint: Checkpoint) -> None:
        self.s = text
        self.i = 0
        self.depth = 0
        self.max_depth = max_depth
        self.checkpoint = checkpoint

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
            self.checkpoint()
            if self.at_expansion():
                self.i += 2
                nodes.append(self.expansion())
            else:
                nodes.append(Text(self.literal()))
        return nodes

    def literal(self) -> str:
        """Top-level text up to the next ``${`` (``$$`` is one ``$``), found by jumping from dollar to dollar
        since most of a manifest is literal."""
        s, out = self.s, []
        while self.i < len(s):
            j = s.find("$", self.i)
            if j < 0:
                out.append(s[self.i :])
                self.i = len(s)
                break
            out.append(s[self.i : j])
            if s.startswith("${", j):
                self.i = j
                break
            out.append("$")
            self.i = j + 2 if s.startswith("$$", j) else j + 1
        return "".join(out)

    def expansion(self) -> Func:
        """After ``${``: the variable, its operator and arguments, and the closing brace."""
        # Flux's parser recurses as deep as the text nests; ours is capped so the stack (and the evaluation,
        # which follows the same tree) stays small.
        self.depth += 1
        if self.depth > self.max_depth:
            raise LimitExceeded(f"expansions nested more than {self.max_depth} deep at offset {self.i}")
        try:
            return self._expansion()
        finally:
            self.depth -= 1

    def _expansion(self) -> Func:
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


def parse(
    text: str, *, max_depth: int = DEFAULT_LIMITS.max_depth, checkpoint: Checkpoint = no_checkpoint
) -> list[Node]:
    """The template's nodes. Raises SubstitutionSyntaxError, or LimitExceeded for nesting over ``max_depth``."""
    return _Parser(text, max_depth, checkpoint).parse()


def expand(
    text: str,
    lookup: Callable[[str], str | None],
    *,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    checkpoint: Checkpoint = no_checkpoint,
    budget: OutputBudget | None = None,
) -> str:
    """``text`` with every expansion evaluated; ``lookup`` returns None for an unset variable.

    ``checkpoint`` is called before each unit of work and may raise to stop; ``budget`` is shared with other
    calls (a whole build) on top of ``limits.max_output`` for this one. Raises SubstitutionSyntaxError,
    UnsetVariable in strict mode, or LimitExceeded.
    """
    budgets = [OutputBudget(limits.max_output)] + ([budget] if budget is not None else [])
    run = _Evaluation(lookup, strict, limits, checkpoint, budgets)
    nodes = parse(text, max_depth=limits.max_depth, checkpoint=checkpoint)
    return "".join(node.value if isinstance(node, Text) else run.evaluate(node) for node in nodes)


class OutputBudget:
    """How many characters expansions may still produce (what they produce, not the literal text around them)."""

    def __init__(self, limit: int, scope: str = "") -> None:
        self.limit = limit
        self.left = limit
        self.scope = scope

    def charge(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            where = f" {self.scope}" if self.scope else ""
            raise LimitExceeded(f"expansions{where} produce more than {self.limit} characters")


class _Evaluation:
    """One :func:`expand` call: the lookup, the limits, and the budgets its expansions draw on."""

    def __init__(
        self,
        lookup: Callable[[str], str | None],
        strict: bool,
        limits: Limits,
        checkpoint: Checkpoint,
        budgets: list[OutputBudget],
    ) -> None:
        self.lookup = lookup
        self.strict = strict
        self.limits = limits
        self.checkpoint = checkpoint
        self.budgets = budgets

    def charge(self, size: int) -> None:
        """Count ``size`` characters, before they are built where their size is known in advance."""
        for budget in self.budgets:
            budget.charge(size)

    def evaluate(self, node: Func) -> str:
        self.checkpoint()
        # Arguments are evaluated before the variable is looked at, as in Flux (so strict mode sees them).
        args = [arg.value if isinstance(arg, Text) else self.evaluate(arg) for arg in node.args]
        value = self.lookup(node.param)
        if value is None:
            if self.strict and node.op not in DEFAULT_OPERATORS:
                raise UnsetVariable(node.param)
            value = ""
        if node.op in ("/", "//"):
            # The one function whose result can be far larger than its inputs: know its size first.
            self.charge(_replaced_size(value, args, all_=node.op == "//"))
            return _FUNCTIONS[node.op](value, args, self.limits)
        result = _FUNCTIONS.get(node.op, _default)(value, args, self.limits)
        self.charge(len(result))
        return result


def _replaced_size(s: str, args: list[str], *, all_: bool) -> int:
    if not args:
        return len(s)
    old, new = args[0], args[1] if len(args) > 1 else ""
    # Like Go's strings.Replace, an empty ``old`` matches before every character and at the end.
    found = s.count(old) if old else len(s) + 1
    if not all_:
        found = min(found, 1)
    return len(s) + found * (len(new) - len(old))


Function = Callable[[str, list[str], Limits], str]


def _default(s: str, args: list[str], limits: Limits) -> str:
    return "".join(args) if not s and args else s


def _length(s: str, args: list[str], limits: Limits) -> str:
    return str(len(s)) if not args else _trim_prefix(s, args, limits, longest=False)


def _first(transform: Callable[[str], str]) -> Function:
    return lambda s, args, limits: transform(s[:1]) + s[1:] if s else s


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: an optionally signed decimal that fits in 64 bits, else None."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    # The length check keeps int() off huge digit strings (Python refuses over 4300 digits with ValueError).
    if not digits or len(digits) > 19 or not (digits.isascii() and digits.isdigit()):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _substring(s: str, args: list[str], limits: Limits) -> str:
    pos = _atoi(args[0]) if args else None
    if pos is None:
        return s
    if pos < 0:
        pos = max(len(s) + pos, 0)
    if len(args) == 1:
        return s[pos:]
    length = _atoi(args[1])
    if length is None:
        return s
    if pos + length >= len(s):
        return s[pos:]
    return s[pos : pos + length]


def _replace(count: int) -> Function:
    def replace(s: str, args: list[str], limits: Limits) -> str:
        if not args:
            return s
        new = args[1] if len(args) > 1 else ""
        return s.replace(args[0], new, count) if count > 0 else s.replace(args[0], new)

    return replace


def _replace_prefix(s: str, args: list[str], limits: Limits) -> str:
    if len(args) != 2 or not s.startswith(args[0]):
        return s
    return args[1] + s[len(args[0]) :]


def _replace_suffix(s: str, args: list[str], limits: Limits) -> str:
    if len(args) != 2 or not s.endswith(args[0]):
        return s
    return s[: len(s) - len(args[0])] + args[1]


def _trim_prefix(s: str, args: list[str], limits: Limits, *, longest: bool) -> str:
    if not args or not s:
        return s
    pattern = args[0]
    if len(pattern) > limits.max_pattern:
        raise LimitExceeded(f"pattern of {len(pattern)} characters is longer than {limits.max_pattern}")
    if len(s) > limits.max_subject:
        raise LimitExceeded(
            f"value of {len(s)} characters is too long to match a pattern against (limit {limits.max_subject})"
        )
    try:
        glob = compile_glob(pattern)
    except ValueError:
        return s  # Flux: path.Match's ErrBadPattern leaves the value as it is
    return s[glob.prefix_end(s, longest=longest) :]


def _trim_suffix(s: str, args: list[str], limits: Limits, *, longest: bool) -> str:
    if not args:
        return s
    # Flux reverses both the value and the pattern and trims a prefix; a reversed class or escape reads
    # differently, and that quirk is kept.
    return _trim_prefix(s[::-1], [args[0][::-1]], limits, longest=longest)[::-1]


_FUNCTIONS: dict[str, Function] = {
    ",": _first(str.lower),
    ",,": lambda s, args, limits: s.lower(),
    "^": _first(str.upper),
    "^^": lambda s, args, limits: s.upper(),
    "#": _length,
    "##": lambda s, args, limits: _trim_prefix(s, args, limits, longest=True),
    "%": lambda s, args, limits: _trim_suffix(s, args, limits, longest=False),
    "%%": lambda s, args, limits: _trim_suffix(s, args, limits, longest=True),
    ":": _substring,
    "/#": _replace_prefix,
    "/%": _replace_suffix,
    "/": _replace(1),
    "//": _replace(-1),
}


def _re2_options(*, longest: bool) -> Any:
    options = re2.Options()
    options.longest_match = longest  # leftmost-longest: the longest prefix, with no search over candidates
    options.dot_nl = True  # ``*`` and ``?`` match any character
    options.never_capture = True
    options.log_errors = False
    # RE2 keeps a DFA cache per regex up to this size and falls back to its (still linear) NFA past it; the
    # module caches 128 regexes, so this bounds what hostile globs can pin.
    options.max_mem = 1 << 20
    return options


_LONGEST = _re2_options(longest=True)
_FIRST = _re2_options(longest=False)


@dataclass(frozen=True, slots=True)
class Glob:
    """A glob compiled for RE2: ``terms`` as RE2 syntax (``*`` kept apart), anchored at the value's start."""

    terms: tuple[str, ...]

    @property
    def only_stars(self) -> bool:
        """Whether the glob matches the empty string: it is nothing but ``*`` (or empty)."""
        return all(term == "*" for term in self.terms)

    def fullmatch(self, text: str) -> bool:
        return re2.compile(self._regex(lazy=False), _LONGEST).fullmatch(_valid_unicode(text)) is not None

    def prefix_end(self, s: str, *, longest: bool) -> int:
        """The length of the longest / shortest non-empty prefix of ``s`` the glob matches; 0 when none does.

        Longest: RE2's leftmost-longest match anchored at 0. Shortest: the terms between stars are fixed
        width, so placing each at its earliest possible position gives the earliest end; RE2's leftmost-first
        match with lazy stars does exactly that (the property test checks it against trying every prefix).
        A glob of only stars matches the empty prefix, which Flux never tries: its shortest is one character.
        """
        if not s:
            return 0
        if not longest and self.only_stars:
            return 1 if self.terms else 0
        match = re2.compile(self._regex(lazy=not longest), _LONGEST if longest else _FIRST).match(_valid_unicode(s))
        return 0 if match is None else int(match.end())

    def _regex(self, *, lazy: bool) -> str:
        star = ".*?" if lazy else ".*"
        return "(?:" + "".join(star if term == "*" else term for term in self.terms) + ")"


def _valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (from a JSON ``\\ud800`` escape) as U+FFFD, as Go's JSON decoder reads
    them; RE2 takes UTF-8, and each surrogate stays one character so offsets still fit ``text``."""
    if text.isascii():
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    """A shell pattern as envsubst's fork of Go's ``path.Match`` reads it.

    ``*`` is any run of characters and ``?`` any one, ``/`` included (the fork drops path.Match's
    separator rule, which is what makes ``${path##*/}`` a basename); ``[a-z]`` / ``[^a-z]`` classes;
    ``\\`` escapes the next character. The fork reports a malformed part only when matching reaches it, but
    a glob with one never matches anything, so checking the whole glob first gives the same results.

    Raises ValueError for a malformed pattern (Go's ErrBadPattern).
    """
    terms: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if not terms or terms[-1] != "*":  # a run of stars is one star
                terms.append("*")
            i += 1
        elif c == "?":
            terms.append(".")
            i += 1
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise ValueError("bad pattern")
            terms.append(_literal(pattern[i + 1]))
            i += 2
        elif c == "[":
            i, cls = _glob_class(pattern, i + 1)
            terms.append(cls)
        else:
            terms.append(_literal(c))
            i += 1
    return Glob(tuple(terms))


def glob_regex(pattern: str) -> Glob:
    """The compiled glob (``.fullmatch(text)`` tells whether all of ``text`` matches). Raises ValueError."""
    return compile_glob(pattern)


def _literal(c: str) -> str:
    """One character as RE2 syntax: by code point, so nothing in it is read as syntax."""
    return c if c.isascii() and c.isalnum() else f"\\x{{{ord(_valid_unicode(c)):x}}}"


#: A class that matches nothing (RE2 has no ``(?!)``).
_NOTHING = r"[^\x{0}-\x{10ffff}]"


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
                return i + 1, "." if negated else _NOTHING
            return i + 1, "[" + ("^" if negated else "") + "".join(ranges) + "]"
        i, lo = _glob_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            i, hi = _glob_char(pattern, i + 1)
        seen += 1
        if lo <= hi:
            ranges.append(_literal(lo) if lo == hi else f"{_literal(lo)}-{_literal(hi)}")


def _glob_char(pattern: str, i: int) -> tuple[int, str]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise ValueError("bad pattern")
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            raise ValueError("bad pattern")
        return i + 2, pattern[i + 1]
    return i + 1, pattern[i]
