"""OpenPGP verification of the checked-out commit and/or tag against the public keys of a Secret."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from source_controller.git.auth import Scrubber, base_env
from source_controller.git.errors import InvalidVerificationMode, SignatureVerificationFailed
from source_controller.git.gitcli import Deadline, detail, run
from source_controller.git.remote import Commit


class VerifyMode(StrEnum):
    """spec.verify.mode."""

    HEAD = "HEAD"
    TAG = "Tag"
    TAG_AND_HEAD = "TagAndHEAD"

    @classmethod
    def parse(cls, value: str | None) -> VerifyMode:
        """Read spec.verify.mode; ``head`` is accepted for compatibility, empty means HEAD."""
        if not value or value == "head":
            return cls.HEAD
        return cls(value)

    @property
    def tag(self) -> bool:
        return self in (VerifyMode.TAG, VerifyMode.TAG_AND_HEAD)

    @property
    def head(self) -> bool:
        return self in (VerifyMode.HEAD, VerifyMode.TAG_AND_HEAD)


@dataclass(frozen=True)
class GpgStatus:
    """What gpg's ``--status-fd`` lines said about one signature."""

    good: bool
    fingerprint: str | None
    key_id: str | None
    problem: str | None


def parse_status(text: str) -> GpgStatus:
    """Read ``[GNUPG:]`` status lines: VALIDSIG gives the (primary) key fingerprint; anything bad wins."""
    fingerprint = key_id = problem = None
    good = False
    for line in text.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        keyword, *args = line.removeprefix("[GNUPG:] ").split()
        if keyword == "GOODSIG":
            good = True
            key_id = args[0] if args else key_id
        elif keyword == "VALIDSIG" and args:
            # the last field is the primary key's fingerprint (signing may be done by a subkey)
            fingerprint = args[9] if len(args) >= 10 else args[0]
        elif keyword == "BADSIG":
            problem = "the signature is bad: the signed content was altered or the signature is corrupt"
        elif keyword in ("ERRSIG", "NO_PUBKEY"):
            key_id = args[0] if args else key_id
            problem = problem or f"it was made with key {key_id}, which is not among the trusted public keys"
        elif keyword == "EXPKEYSIG":
            problem = f"it was made with key {args[0] if args else ''}, which has expired"
        elif keyword == "REVKEYSIG":
            problem = f"it was made with key {args[0] if args else ''}, which has been revoked"
    return GpgStatus(good and problem is None and fingerprint is not None, fingerprint, key_id, problem)


@dataclass(frozen=True)
class Verified:
    """What was verified and with which keys (fingerprints); ``message`` is the SourceVerified text."""

    mode: VerifyMode
    commit_fingerprint: str | None
    tag_fingerprint: str | None
    message: str


def _fail(message: str, reason: str) -> SignatureVerificationFailed:
    return SignatureVerificationFailed(message, reason=reason)


async def verify(
    repo: Path, commit: Commit, mode: VerifyMode, keys: Mapping[str, bytes], *, timeout: float = 60.0
) -> Verified:
    """Check the commit's and/or the tag's OpenPGP signature against ``keys`` (armored, one or more per value)."""
    if mode.tag and commit.tag is None and commit.tag_name is None:
        raise InvalidVerificationMode(
            "cannot verify a tag signature: spec.ref does not point at a tag (use ref.tag, ref.semver or a "
            "refs/tags/ ref.name, or verify mode HEAD)"
        )
    if not keys:
        raise _fail("the verification Secret holds no public keys", "VerificationError")
    deadline = Deadline(timeout)
    home = Path(tempfile.mkdtemp(prefix="gitops-gpg-"))
    try:
        env = base_env(home)
        env["GNUPGHOME"] = str(home)
        imported = 0
        for name, armored in sorted(keys.items()):
            key_file = home / "import.asc"
            key_file.write_bytes(armored)
            done = await run(
                ["gpg", "--batch", "--no-tty", "--import", str(key_file)],
                env=env,
                timeout=deadline.remaining(),
                scrub=Scrubber(),
            )
            if done.returncode == 0:
                imported += 1
            elif "no valid OpenPGP data" not in done.stderr:
                raise _fail(
                    f"unable to read the public key '{name}' of the verification Secret: {detail(done.stderr)}",
                    "VerificationError",
                )
        if imported == 0:
            raise _fail("the verification Secret holds no armored OpenPGP public key", "VerificationError")
        tag_fpr = commit_fpr = None
        lines: list[str] = []
        if mode.tag:
            tag = commit.tag
            if tag is None or tag.signature is None:
                raise _fail(
                    f"cannot verify signature of tag '{commit.tag_name}' since it is not signed", "InvalidGitObject"
                )
            tag_fpr = await _check(
                repo, env, ["verify-tag", "--raw", tag.hash], f"tag '{tag.name}'", "InvalidTagSignature", deadline
            )
            lines.append(f"tag '{tag.name}' with key '{tag_fpr}'")
        if mode.head:
            if commit.signature is None:
                raise _fail(
                    f"signature verification of commit '{commit.hash}' failed: the commit is not signed",
                    "InvalidCommitSignature",
                )
            commit_fpr = await _check(
                repo,
                env,
                ["verify-commit", "--raw", commit.hash],
                f"commit '{commit.hash}'",
                "InvalidCommitSignature",
                deadline,
            )
            lines.append(f"commit '{commit.hash}' with key '{commit_fpr}'")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return Verified(mode, commit_fpr, tag_fpr, "verified signature of\n\t- " + "\n\t- ".join(lines))


async def _check(repo: Path, env: dict[str, str], args: list[str], what: str, reason: str, deadline: Deadline) -> str:
    done = await run(["git", *args], env=env, timeout=deadline.remaining(), scrub=Scrubber(), cwd=repo)
    status = parse_status(done.stderr)
    if done.returncode == 0 and status.good and status.fingerprint:
        return status.fingerprint
    problem = status.problem or detail(done.stderr) or "no valid signature"
    raise _fail(f"signature verification of {what} failed: {problem}", reason)
