"""A commit's .gitattributes cannot change its artifact: the streamed and the checked-out routes both hold
the tree exactly as committed (no export-ignore, no export-subst, no eol/ident conversion)."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from gitops_mesh.artifacts.archive import pack
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from source_controller.git import GitRef, build_filter, checkout
from source_controller.git.archive import pack_commit, sourceignore_filter

CONTENT = {
    "deploy/app.yaml": "kind: ConfigMap\n",
    "deploy/version.txt": "$Format:%H$\n",
    "deploy/lines.txt": "a\nb\n",
    "deploy/id.txt": "$Id$\n",
    "deploy/hidden.yaml": "kind: Secret\n",
}
# What a tenant would write to change the artifact: hide everything, expand placeholders, rewrite lines.
ATTRIBUTES = (
    "* export-ignore\n"
    "deploy/version.txt export-subst\n"
    "deploy/lines.txt eol=crlf\n"
    "deploy/id.txt ident\n"
    "[attr]hide export-ignore\n"
    "deploy/hidden.yaml hide\n"
)


def files_of(artifact: Path) -> dict[str, bytes]:
    with tarfile.open(artifact, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def committed(work: Path, commit: str) -> dict[str, bytes]:
    """Every blob of the commit, as git stores it."""
    names = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", commit], cwd=work, capture_output=True, check=True
    ).stdout
    return {
        name: subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{name}"], cwd=work, capture_output=True, check=True
        ).stdout
        for name in names.decode().split("\0")
        if name
    }


async def test_gitattributes_do_not_change_the_artifact(
    git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo()
    repo.commit(CONTENT, "content")  # committed before the attributes, so git add converted nothing
    commit = repo.commit({".gitattributes": ATTRIBUTES}, "attributes")
    repo.push()
    url = git_http.url(repo.name)
    want = committed(repo.work, commit)
    assert want.pop(".gitattributes") == ATTRIBUTES.encode()  # kept out of every artifact (Flux's ExcludeVCS)
    assert want["deploy/version.txt"] == b"$Format:%H$\n"

    full = await checkout(url, GitRef(), None, tmp_path / "full")
    await checkout(url, GitRef(), None, tmp_path / "bare", worktree=False)
    assert full.hash == commit

    streamed, checked_out = tmp_path / "streamed.tgz", tmp_path / "checked-out.tgz"
    s = pack_commit(tmp_path / "bare", commit, streamed, sourceignore_filter(tmp_path / "bare", commit, None))
    c = pack(tmp_path / "full", checked_out, include=build_filter(tmp_path / "full"))

    assert files_of(streamed) == want
    assert files_of(checked_out) == want
    assert s.digest == c.digest


async def test_a_submodules_gitattributes_do_not_change_its_files(
    git_http: GitServer, make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    child = make_repo()
    child.commit({"lib/lines.txt": "a\nb\n", "lib/id.txt": "$Id$\n"}, "child")
    child_head = child.commit({".gitattributes": "* eol=crlf ident\n"}, "attributes")
    child.push()
    parent = make_repo()
    parent.add_submodule("vendor/lib", git_http.url(child.name), child_head)
    parent.commit({"app.yaml": "a: 1\n"}, "with a submodule")
    parent.push()

    await checkout(git_http.url(parent.name), None, None, tmp_path / "deep", recurse_submodules=True)
    assert (tmp_path / "deep" / "vendor" / "lib" / "lib" / "lines.txt").read_bytes() == b"a\nb\n"
    assert (tmp_path / "deep" / "vendor" / "lib" / "lib" / "id.txt").read_bytes() == b"$Id$\n"
