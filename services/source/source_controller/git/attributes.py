"""A fetched repository's own attributes file: what a commit's .gitattributes may not change in its artifact.

git archive honours ``export-ignore`` (files left out) and ``export-subst`` (``$Format:…$`` expanded), and
both git archive and checkout apply ``text``/``eol``, ``ident``, ``filter`` and ``working-tree-encoding``
conversions, so a tenant's .gitattributes would make the artifact differ from the commit's tree (and the
streamed artifact from the checked-out one). Flux (go-git) writes blobs as committed. ``$GIT_DIR/info/
attributes`` outranks every .gitattributes in the tree and cannot be set by the remote, so unsetting the
attributes there for every path makes both routes write exactly the committed bytes. A fetch gets it through
a template directory (GIT_TEMPLATE_DIR): every repository git creates then has it, the fetched one and
each submodule's alike; :func:`neutralise` writes it into a repository that already exists.
"""

from __future__ import annotations

from pathlib import Path

#: Unset for every path: nothing git would use to rewrite or leave out a file on archive or checkout.
NEUTRAL = "* -export-ignore -export-subst -text -eol -ident -filter -working-tree-encoding\n"
_HEADER = "# written by source-controller: a commit's .gitattributes must not change its artifact\n"


def template(parent: Path) -> Path:
    """A git template directory under ``parent`` holding only the neutral attributes, for GIT_TEMPLATE_DIR."""
    info = parent / "template" / "info"
    info.mkdir(parents=True)
    (info / "attributes").write_text(_HEADER + NEUTRAL)
    return info.parent


def neutralise(repo: Path) -> None:
    """Write the neutral attributes into ``repo``'s git directory (``repo/.git``, or ``repo`` if bare)."""
    git_dir = repo / ".git" if (repo / ".git").is_dir() else repo
    info = git_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "attributes").write_text(_HEADER + NEUTRAL)
