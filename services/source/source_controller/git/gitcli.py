"""Running git (and gpg, to verify) on :mod:`gitops_mesh.commands`: scrubbed output, errors classified.

Each command runs with the deadline left of its fetch; a ``monitor`` (the fetch's size limit) runs
alongside and stops the command by raising. What git says on stderr is scrubbed of credentials before
anything quotes it, then turned into the typed, actionable errors of :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_mesh import commands
from gitops_mesh.errors import GitopsMeshError
from source_controller.git.errors import (
    AuthenticationFailed,
    CertificateInvalid,
    GitOperationFailed,
    GitTimeout,
    HostKeyVerificationFailed,
    RefNotFound,
    RemoteUnreachable,
    RepositoryNotFound,
)

#: How much of git's stderr an error message quotes.
DETAIL_CHARS = 400


@dataclass(frozen=True)
class GitResult:
    """A finished command: exit status, raw stdout, scrubbed stderr."""

    returncode: int
    stdout: bytes
    stderr: str


class Deadline:
    """One timeout shared by the several commands of a fetch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = asyncio.get_running_loop().time() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - asyncio.get_running_loop().time())


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    scrub: Callable[[str], str],
    cwd: Path | None = None,
    monitor: Callable[[], Awaitable[None]] | None = None,
    timeout_message: str | None = None,
) -> GitResult:
    """Run ``argv`` to its end, whatever its exit status; the caller judges that.

    ``monitor`` runs alongside and may raise (e.g. a size limit): the command is then cancelled, which
    kills its process group, and the monitor's error propagates. A timeout is GitTimeout; a command that
    cannot be started or prints without end is GitOperationFailed.
    """
    command = asyncio.ensure_future(commands.run(argv, env=env, timeout=timeout, cwd=cwd, check=False))
    watcher = asyncio.ensure_future(monitor()) if monitor is not None else None
    try:
        if watcher is not None:
            await asyncio.wait({command, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                watcher.result()  # the monitor's error; the command is cancelled below
        done = await command
    except commands.CommandTimeout:
        raise GitTimeout(timeout_message or f"{argv[0]} timed out after {timeout:g}s") from None
    except commands.CommandError as e:
        raise GitOperationFailed(scrub(str(e))) from None
    finally:
        running = [task for task in (command, watcher) if task is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return GitResult(done.returncode, done.stdout, scrub(done.stderr.decode(errors="replace")))


def detail(stderr: str) -> str:
    """The useful tail of git's stderr, one line, bounded."""
    useful = (ln for ln in stderr.splitlines() if not ln.startswith(("hint:", "warning: redirecting")))
    return commands.one_line("\n".join(useful), DETAIL_CHARS)


_HOSTKEY_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed")
_HOSTKEY_UNKNOWN = re.compile(r"No \S+ host key is known for|Host key verification failed")
_SSH_DENIED = re.compile(
    r"Permission denied \(|Too many authentication failures|incorrect passphrase|Load key .*: incorrect"
)
_HTTP_DENIED = re.compile(
    r"could not read (Username|Password)|Authentication failed for|HTTP Basic: Access denied|"
    r"The requested URL returned error: 40[13]|terminal prompts disabled"
)
_CERT = re.compile(
    r"SSL certificate problem|server certificate verification failed|certificate verify failed|SSL: no alternative"
)
_UNREACHABLE = re.compile(
    r"Could not resolve host|Could not resolve hostname|Failed to connect to|Couldn't connect to server|"
    r"Connection refused|Connection timed out|No route to host|Network is unreachable|Connection reset|"
    r"Connection closed by|kex_exchange_identification|ssh: connect to host|Empty reply from server|"
    r"Recv failure|SSL_connect|SSL_ERROR_SYSCALL|unexpected disconnect|remote end hung up unexpectedly"
)
_NO_REPO = re.compile(
    r"repository '.*' not found|does not appear to be a git repository|Repository not found|"
    r"The requested URL returned error: 404|No such file or directory"
)
_NO_REF = re.compile(r"couldn't find remote ref|not our ref|unadvertised object|no such remote ref")


def classify(stderr: str, *, url: str, action: str, has_credentials: bool) -> GitopsMeshError:
    """Turn a failed git command's (already scrubbed) stderr into an actionable, typed error."""
    why = detail(stderr)
    if _HOSTKEY_CHANGED.search(stderr):
        return HostKeyVerificationFailed(
            f"{action} {url}: the SSH host key does not match the one in known_hosts; if the server's key really "
            f"changed, update known_hosts in the Secret, otherwise this may be a man-in-the-middle ({why})"
        )
    if _HOSTKEY_UNKNOWN.search(stderr):
        return HostKeyVerificationFailed(
            f"{action} {url}: the server's SSH host key is not in known_hosts; add it to the Secret's "
            f"known_hosts (ssh-keyscan -p <port> <host>) ({why})"
        )
    if _SSH_DENIED.search(stderr):
        return AuthenticationFailed(
            f"{action} {url}: the SSH server refused the identity key; check identity (and password for an "
            f"encrypted key) in the Secret and that the key has access ({why})"
        )
    if _CERT.search(stderr):
        return CertificateInvalid(
            f"{action} {url}: the server's TLS certificate is not trusted; put the issuing CA in the Secret's "
            f"ca.crt ({why})"
        )
    if _HTTP_DENIED.search(stderr):
        hint = (
            "the server rejected the credentials; check username/password or bearerToken in the Secret"
            if has_credentials
            else "the server requires authentication; reference a Secret with username/password or bearerToken"
        )
        return AuthenticationFailed(f"{action} {url}: {hint} ({why})")
    if _NO_REF.search(stderr):
        return RefNotFound(f"{action} {url}: ref not found ({why})")
    if _NO_REPO.search(stderr):
        return RepositoryNotFound(f"{action} {url}: no repository at this URL, or no access to it ({why})")
    if _UNREACHABLE.search(stderr):
        return RemoteUnreachable(f"{action} {url}: the remote is unreachable; check the URL and the network ({why})")
    return GitOperationFailed(f"{action} {url} failed: {why or 'git exited with an error'}")
