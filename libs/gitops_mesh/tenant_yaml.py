"""Tenant YAML, parsing edge: PyYAML behind caps on size, alias expansion and depth, for every document a tenant wrote.

A YAML alias is a reference: PyYAML builds ``&a [...]`` once and shares it, so a 340-byte document of nested
``[*b, *b, ...]`` lists loads in microseconds and only turns into gigabytes when something walks it - the
JSON serialisation of an apply, a deep copy, a merge. Refusing every alias would refuse real Helm values and
kustomize files, which use anchors; so, as Go's yaml.v3 (Flux) and yaml.v2 (Helm) do, aliases are allowed
and *excessive* aliasing is refused. The document is composed to its node graph first and measured there,
before a single value is constructed (a ``<<: *merge`` chain is expanded by the constructor itself):

* ``max_bytes``: the text, before parsing;
* ``max_nodes``: nodes as if every alias were expanded (a :func:`load_all` stream counts all its
  documents), found by a walk over the graph that remembers each shared node's size, so the check costs
  one visit per node as written and never expands anything;
* ``max_expansion``: past 1,000 nodes, expansion may multiply a document's written nodes at most this
  many times (yaml.v3 refuses a document whose decodes come more than 99% from aliases: 100x);
* ``max_depth``: nesting, counted through aliases; an anchor that contains itself is refused too (Go:
  "anchor 'a' value contains itself"; JSON could never serialise it).

The reasons never quote the text: a kubeconfig or a Secret's YAML may hold credentials. ``yaml.YAMLError``
is still raised for text that does not parse. :class:`UnsafeYaml` is a ``yaml.YAMLError`` as well, so a
caller that only knew parse errors turns a refusal into its own "bad input" error, not a crash.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import yaml

__all__ = ["DEFAULT_LIMITS", "AliasBudget", "UnsafeYaml", "YamlLimits", "compose_all", "load", "load_all"]

try:
    _LOADER: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = yaml.SafeLoader

#: Below this many expanded nodes the expansion ratio is not checked (yaml.v3: 1,000 decodes).
_RATIO_FLOOR: Final = 1000


class UnsafeYaml(ValueError, yaml.YAMLError):
    """Tenant YAML refused before it was built: too big, aliases expanding too far, too deep, or self-containing.

    The message is ``"<what>: <problem>"``, e.g. ``"values.yaml: YAML aliases expand to more than 1000000 nodes"``;
    ``problem`` alone is for a caller whose message already names the document.
    """

    def __init__(self, what: str, problem: str = "") -> None:
        super().__init__(f"{what}: {problem}" if problem else what)
        self.what = what
        self.problem = problem or what


def problem(e: yaml.YAMLError) -> str:
    """One line describing a YAML error: the problem and its line and column, never the document's text.

    PyYAML's own message prints the offending line, which may be a Secret's token or a tenant's manifest.
    """
    if isinstance(e, UnsafeYaml):
        return e.problem  # the caller's message names the document
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{e.problem or e.context or 'invalid YAML'}{where}"
    text = str(e)  # unmarked errors (the reader's "unacceptable character #x…") describe, not quote
    return text.splitlines()[0] if text else type(e).__name__


@dataclass(frozen=True)
class YamlLimits:
    """What one tenant document (or stream) may be."""

    max_bytes: int
    #: nodes with every alias expanded: scalars, sequences, mappings and each mapping key
    max_nodes: int
    #: nested sequences and mappings, counted through aliases
    max_depth: int
    #: expanded nodes per node as written, once past 1,000 expanded nodes (Go's yaml.v3 allows 100)
    max_expansion: int = 100


#: For a document a tenant wrote: values files, Chart.yaml, kustomization files, one object, a kubeconfig.
#: A million nodes serialise to at least 3 MiB of JSON, the most the apiserver takes in one request;
#: yaml.v3 lets aliases add about 400,000 decodes. Past 256 levels no Kubernetes object or chart is
#: that deep, and the recursive code behind a load (merges, JSON) stays well inside Python's stack.
DEFAULT_LIMITS: Final = YamlLimits(max_bytes=8 << 20, max_nodes=1_000_000, max_depth=256)


def load(text: str | bytes, *, what: str, limits: YamlLimits = DEFAULT_LIMITS, loader: type | None = None) -> Any:
    """The single document of ``text`` (None when empty), or UnsafeYaml naming ``what``; yaml.YAMLError if invalid.

    ``loader`` is a PyYAML Loader class (a SafeLoader subclass with the caller's constructors, or
    CBaseLoader); by default libyaml's CSafeLoader.
    """
    _check_size(text, what, limits)
    parser = (loader or _LOADER)(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        _check_graph(node, what, limits, limits.max_nodes)
        return parser.construct_document(node)
    except RecursionError:
        # The pure-Python composer recurses per level; libyaml's stops at 1,000 levels with a YAMLError.
        raise UnsafeYaml(what, "YAML nests too deeply to parse") from None
    finally:
        parser.dispose()


def load_all(
    text: str | bytes, *, what: str, limits: YamlLimits = DEFAULT_LIMITS, loader: type | None = None
) -> list[Any]:
    """Every document of a stream (None for empty ones); ``limits.max_nodes`` caps the stream as a whole."""
    _check_size(text, what, limits)
    parser = (loader or _LOADER)(text)
    documents: list[Any] = []
    left = limits.max_nodes
    try:
        while parser.check_node():
            node = parser.get_node()
            # One budget for the stream: a bomb repeated in a thousand small documents is still a bomb.
            left -= _check_graph(node, what, limits, left)
            documents.append(parser.construct_document(node))
    except RecursionError:
        raise UnsafeYaml(what, "YAML nests too deeply to parse") from None
    finally:
        parser.dispose()
    return documents


def compose_all(text: str | bytes, *, what: str, limits: YamlLimits = DEFAULT_LIMITS) -> list[yaml.Node]:
    """Every document of a stream as PyYAML's node graph, under the same caps as :func:`load_all`.

    For editing a tenant's YAML without reinterpreting it: nodes keep each scalar's text, tag and style,
    so ``yaml.serialize_all`` writes back ``yes``, ``0777`` or ``1:20`` as they were, where constructing
    values under YAML 1.1 and dumping them would not (Kubernetes reads them with other rules).
    """
    _check_size(text, what, limits)
    parser = _LOADER(text)
    nodes: list[yaml.Node] = []
    left = limits.max_nodes
    try:
        while parser.check_node():
            node = parser.get_node()
            left -= _check_graph(node, what, limits, left)
            nodes.append(node)
    except RecursionError:
        raise UnsafeYaml(what, "YAML nests too deeply to parse") from None
    finally:
        parser.dispose()
    return nodes


class AliasBudget:
    """The same caps for a parser that builds values from libyaml's events itself (a streamed Helm index).

    The parser counts the nodes it reads as written (an alias is one) and hands each alias's target here:
    its expanded size is measured once and remembered. The parser refuses an alias to a container it is
    still building (the anchor contains itself) before calling :meth:`alias`.
    """

    def __init__(self, *, what: str, limits: YamlLimits) -> None:
        self._what = what
        self._limits = limits
        self._memo: dict[int, tuple[int, int, object]] = {}
        #: nodes that aliases added beyond the one each alias counts as written
        self.aliased = 0

    def alias(self, target: object, *, written: int) -> None:
        """Count one alias to ``target`` (a finished str/None/list/dict value); UnsafeYaml past the caps."""
        size, _height, _ = _measure(
            target, _value_children, self._memo, self._what, self._limits, self._limits.max_nodes
        )
        self.aliased += size - 1
        self.check(written)

    def check(self, written: int) -> None:
        """UnsafeYaml if ``written`` nodes plus what aliases added are over the caps."""
        _check_totals(self._what, self._limits, written + self.aliased, written, aliased=self.aliased > 0)


def _check_size(text: str | bytes, what: str, limits: YamlLimits) -> None:
    # A str is measured in UTF-8, but only once its length in characters (a lower bound) is within the cap.
    too_big = len(text) > limits.max_bytes or (
        isinstance(text, str)
        and len(text) * 4 > limits.max_bytes
        and len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes
    )
    if too_big:
        raise UnsafeYaml(what, f"YAML of more than {limits.max_bytes} bytes")


def _check_graph(node: yaml.Node, what: str, limits: YamlLimits, budget: int) -> int:
    """Refuse a composed document over the caps; its expanded node count."""
    memo: dict[int, tuple[int, int, object]] = {}
    expanded, _height, written = _measure(node, _node_children, memo, what, limits, budget)
    _check_totals(what, limits, expanded, written, aliased=expanded > written)
    return expanded


def _check_totals(what: str, limits: YamlLimits, expanded: int, written: int, *, aliased: bool) -> None:
    if expanded > limits.max_nodes:
        raise UnsafeYaml(what, _too_many(limits.max_nodes, aliased=aliased))
    if aliased and expanded > _RATIO_FLOOR and expanded > limits.max_expansion * written:
        raise UnsafeYaml(
            what, f"YAML aliases expand {written} nodes to {expanded}, more than {limits.max_expansion} times as many"
        )


def _too_many(limit: int, *, aliased: bool) -> str:
    return f"YAML aliases expand to more than {limit} nodes" if aliased else f"more than {limit} YAML nodes"


def _node_children(node: Any) -> Iterable[Any] | None:
    if isinstance(node, yaml.MappingNode):
        return itertools.chain.from_iterable(node.value)
    if isinstance(node, yaml.SequenceNode):
        return node.value  # type: ignore[no-any-return]
    return None


def _value_children(value: Any) -> Iterable[Any] | None:
    if isinstance(value, dict):
        return itertools.chain.from_iterable(value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return None


def _measure(
    root: Any,
    children: Callable[[Any], Iterable[Any] | None],
    memo: dict[int, tuple[int, int, object]],
    what: str,
    limits: YamlLimits,
    budget: int,
) -> tuple[int, int, int]:
    """(expanded size, nesting height, nodes as written) of ``root``, without expanding anything.

    Iterative, so no depth of input reaches Python's recursion limit here. ``memo`` maps a finished
    container's id to its size and height (and holds the container, so the id is never reused while
    remembered); a container met again is an alias and costs one lookup. Raises UnsafeYaml as soon as a
    running size passes ``budget``, the nesting passes ``limits.max_depth``, or a container contains itself.
    """
    first = children(root)
    if first is None:
        return 1, 0, 1
    known = memo.get(id(root))
    if known is not None:
        return known[0], known[1], 1
    max_depth = limits.max_depth
    written = 1
    aliased = False
    open_ids = {id(root)}
    # frame: [container, its children still to visit, expanded size so far, tallest child so far]
    stack: list[list[Any]] = [[root, iter(first), 1, 0]]
    size = height = 0
    while stack:
        frame = stack[-1]
        for child in frame[1]:
            written += 1
            grandchildren = children(child)
            if grandchildren is None:
                frame[2] += 1
                continue
            known = memo.get(id(child))
            if known is None:
                if id(child) in open_ids:
                    raise UnsafeYaml(what, "a YAML anchor contains itself")
                if len(stack) >= max_depth:
                    raise UnsafeYaml(what, f"nesting deeper than {max_depth} levels")
                open_ids.add(id(child))
                stack.append([child, iter(grandchildren), 1, 0])
                break
            aliased = True
            frame[2] += known[0]
            frame[3] = max(frame[3], known[1])
            if len(stack) + known[1] > max_depth:
                raise UnsafeYaml(what, f"nesting deeper than {max_depth} levels")
            if frame[2] > budget:
                raise UnsafeYaml(what, _too_many(limits.max_nodes, aliased=True))
        else:
            stack.pop()
            container = frame[0]
            open_ids.discard(id(container))
            size, height = frame[2], frame[3] + 1
            memo[id(container)] = (size, height, container)
            if stack:
                parent = stack[-1]
                parent[2] += size
                parent[3] = max(parent[3], height)
                if parent[2] > budget:
                    raise UnsafeYaml(what, _too_many(limits.max_nodes, aliased=aliased))
    if size > budget:
        raise UnsafeYaml(what, _too_many(limits.max_nodes, aliased=aliased))
    return size, height, written
