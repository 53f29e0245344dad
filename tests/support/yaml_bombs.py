"""Hostile YAML for every loader of tenant YAML: the issue's alias bomb, in block or one-line flow style."""

from __future__ import annotations


def alias_bomb(levels: int = 7, fan: int = 9, *, flow: bool = False) -> str:
    """Each level a list of ``fan`` aliases to the level below: ``fan ** levels`` leaves once expanded.

    Seven levels of nine is the issue's 337-byte document (47 MB once serialised). ``flow`` writes it on
    one line as a flow map, the shape a postBuild variable keeps (substitution removes newlines).
    """
    pairs = ['a0: &a0 ["lol"]']
    pairs += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * fan)}]" for i in range(1, levels + 1)]
    return "{" + ", ".join(pairs) + "}" if flow else "\n".join(pairs) + "\n"
