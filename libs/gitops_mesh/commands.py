"""Running external programs (git, helm, kustomize, sops) with a deadline that stops all the work they started.

Sits beside observability and settings in the runtime's layers: kube, artifacts and every controller may
use it; it uses nothing of the runtime but the error tree.

A program runs as the leader of a session of its own, so its deadline, a cancelled task, runaway output or
a failing consumer ends with SIGKILL to its whole process group (git's remote helpers and ssh, kustomize's
git for remote bases), never to the leader alone; the leader is reaped before the call returns. What a
program prints is read with a cap: one printing without end is stopped, not buffered until memory runs out.

Secrets reach a program through its environment or through 0600 files the caller writes, never through
argv (any local user reads /proc/<pid>/cmdline). The environment is exactly ``env``: nothing of this
process's own leaks in unless the caller puts it there (:func:`program_env` is the usual start).

CommandError (GitopsMeshError)  neutral, like ApiError: each caller maps it to its own Flux reason
├── CommandNotStarted           the program could not be executed (missing, not executable)
├── CommandTimeout              it ran past its deadline; its process group was killed
├── OutputTooLarge              it printed more than allowed; its process group was killed
└── CommandFailed               it exited non-zero or died of a signal; exit status and stderr attached
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal, cast

from gitops_mesh.errors import GitopsMeshError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: What :func:`run` keeps of a program's stdout before stopping it (manifests, listings: far less).
DEFAULT_MAX_OUTPUT: Final = 64 << 20
#: What is kept of a program's stderr before stopping it: diagnostics, never this much from a sane program.
DEFAULT_MAX_STDERR: Final = 1 << 20
#: How much of a program's stderr a :class:`CommandFailed` message quotes.
TAIL_CHARS: Final = 400
#: Proxy settings of this process that a program fetching over the network honours, as Flux's do.
PROXY_VARIABLES: Final = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
)

_CHUNK = 1 << 16
#: What replaces a URL's userinfo in a message.
REDACTED: Final = "***"
# A URL's userinfo, up to the last '@' before the host (a password may hold one). Linear in the text (stderr
# is up to a MiB): a scheme starts only where a word does and is bounded, a userinfo run stops at a '/'.
_USERINFO = re.compile(r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<userinfo>[^/?#\s]*)@")


class CommandError(GitopsMeshError):
    """A program could not do its work; ``program`` is its name (argv[0]'s last component) for messages."""

    def __init__(self, message: str, *, program: str) -> None:
        super().__init__(message)
        self.program = program


class CommandNotStarted(CommandError):
    """The program could not be executed: missing, not executable, a bad working directory."""

    def __init__(self, program: str, error: OSError) -> None:
        self.strerror = error.strerror or str(error)
        super().__init__(f"{program} could not be started: {self.strerror}", program=program)


class CommandTimeout(CommandError):
    """The program ran past its deadline; its whole process group was killed."""

    def __init__(self, program: str, timeout: float) -> None:
        super().__init__(f"{program} timed out after {timeout:g}s", program=program)
        self.timeout = timeout


class OutputTooLarge(CommandError):
    """The program printed more than allowed on ``stream``; its whole process group was killed."""

    def __init__(self, program: str, stream: Literal["stdout", "stderr"], limit: int) -> None:
        super().__init__(f"{program} printed more than {_size(limit)} on {stream}", program=program)
        self.stream = stream
        self.limit = limit


class CommandFailed(CommandError):
    """The program exited non-zero (``returncode``), or died of a signal (``-signum``); ``stderr`` is all it said.

    The message quotes the end of stderr as the program wrote it: a caller whose program may echo a secret
    maps this error to its own, redacted one ``from None``.
    """

    def __init__(self, program: str, returncode: int, stderr: bytes) -> None:
        self.returncode = returncode
        self.stderr = stderr
        said = one_line(stderr.decode(errors="replace"), TAIL_CHARS) or "nothing on stderr"
        super().__init__(f"{program} {_exit_status(returncode)}: {said}", program=program)


@dataclass(frozen=True, slots=True)
class Completed:
    """A program that ran to its end: its exit status and everything it printed."""

    returncode: int
    stdout: bytes
    stderr: bytes


def redact_userinfo(text: str) -> str:
    """``text`` with every URL's userinfo (``user:password@``, or a token alone: ``TOKEN@``) made ``***@``.

    Programs quote the URLs they were given ("fatal: unable to access 'https://TOKEN@host/r/'"), and a token
    is often the whole userinfo. An ssh URL keeps a user name without a password (``ssh://git@host``): ssh
    logs in with keys, so the name is an account, not a credential, and the one thing to check on a denial.
    """
    return _USERINFO.sub(_redacted, text) if "@" in text else text


def _redacted(match: re.Match[str]) -> str:
    if "ssh" in match["scheme"].lower() and ":" not in match["userinfo"]:
        return match[0]
    return f"{match['scheme']}{REDACTED}@"


def one_line(text: str, limit: int = TAIL_CHARS, *, keep: Literal["first", "last"] = "last") -> str:
    """A program's diagnostics on one line for a message: non-blank lines joined by '; ', cut to ``limit``.

    ``keep`` says which end survives the cut: most programs print their conclusion last (git, helm), some
    their first error first (kustomize, sops). URL userinfo is redacted (:func:`redact_userinfo`) before
    the cut, so a cut never leaves half a credential behind without its scheme.
    """
    text = redact_userinfo(text)
    joined = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    if len(joined) <= limit:
        return joined
    return joined[:limit] + "…" if keep == "first" else "…" + joined[-limit:]


def program_env(home: Path) -> dict[str, str]:
    """Where a program's environment starts: this process's PATH, a private HOME, the proxy settings."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(home)}
    env.update({key: os.environ[key] for key in PROXY_VARIABLES if key in os.environ})
    return env


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    check: bool = True,
    max_output: int = DEFAULT_MAX_OUTPUT,
    max_stderr: int = DEFAULT_MAX_STDERR,
) -> Completed:
    """Run ``argv`` to its end and return what it printed; CommandFailed on a non-zero exit when ``check``.

    ``argv[0]`` is looked up on ``env``'s PATH. The deadline counts from the start; when it passes, when the
    calling task is cancelled or when stdout/stderr pass their caps, the whole process group is killed and
    reaped before CommandTimeout, CancelledError or OutputTooLarge propagates. So is whatever the program
    left running in its group after it exited.
    """
    program = _name(argv)
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _Collecting(loop, program, max_output, max_stderr),
            *argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            **_started_alone(env, cwd),
        )
    except OSError as e:
        raise CommandNotStarted(program, e) from e
    try:
        if stdin is not None:
            feed = transport.get_pipe_transport(0)
            assert isinstance(feed, asyncio.WriteTransport)  # a pipe
            feed.write(stdin)  # a program that stops reading early just closes the pipe: not an error here
            feed.close()
        async with asyncio.timeout(timeout):
            await protocol.finished
    except TimeoutError:
        raise CommandTimeout(program, timeout) from None
    finally:
        _kill_group(transport.get_pid())
        # Closing our ends of the pipes lets the transport finish even if something still holds them.
        transport.close()
        returncode = await protocol.exited
    completed = Completed(returncode, bytes(protocol.output[1]), bytes(protocol.output[2]))
    if check and returncode != 0:
        raise CommandFailed(program, returncode, completed.stderr)
    return completed


@contextlib.contextmanager
def stream(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
    max_output: int | None = DEFAULT_MAX_OUTPUT,
    max_stderr: int = DEFAULT_MAX_STDERR,
) -> Iterator[IO[bytes]]:
    """Blocking, for a worker thread: the program's stdout to read as it comes (``git archive`` into the packer).

    When the body ends, the rest of stdout is read and dropped and the program must exit 0 (else
    CommandFailed). The deadline is kept by a timer thread that kills the process group, so a body blocked
    on a read sees end-of-file and the block raises CommandTimeout, whatever the body made of the cut-short
    stream. When the body raises, the group is killed and the body's error propagates, unless the program
    had already failed on its own: then CommandFailed, the cause. Reading more than ``max_output`` bytes
    (None: no cap, for a consumer that keeps nothing) raises OutputTooLarge from the read.

    Asyncio cancellation cannot reach a thread: the deadline is what bounds a call whose awaiting task was
    cancelled.
    """
    program = _name(argv)
    try:
        proc = subprocess.Popen(
            list(argv),
            bufsize=0,
            stdin=subprocess.DEVNULL,
            **_started_alone(env, cwd),
        )
    except OSError as e:
        raise CommandNotStarted(program, e) from e
    assert isinstance(proc.stdout, io.FileIO)  # an unbuffered pipe
    assert isinstance(proc.stderr, io.FileIO)  # an unbuffered pipe
    running = _Streamed(proc, program, timeout, max_stderr)
    reader = io.BufferedReader(_CappedPipe(proc.stdout, program, max_output))
    try:
        try:
            yield reader
            while reader.read(_CHUNK):
                pass
        except Exception as failure:
            _kill_group(proc.pid)
            running.end()
            blame = running.blame(body_failed=True)
            if blame is None:
                raise
            raise blame from failure
        running.end()
    finally:
        _kill_group(proc.pid)  # a KeyboardInterrupt in the body; otherwise nothing is left to kill
        running.end()
        reader.close()
    blame = running.blame(body_failed=False)
    if blame is not None:
        raise blame


def _started_alone(env: Mapping[str, str], cwd: Path | None) -> dict[str, Any]:
    """How every program starts: leading a session (so a process group) of its own, with exactly ``env``."""
    return {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "env": dict(env),
        "cwd": cwd,
        "start_new_session": True,
    }


def _name(argv: Sequence[str]) -> str:
    return os.path.basename(argv[0]) or argv[0]


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _exit_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _kill_group(pid: int) -> None:
    # The program leads a session, and so a process group, of its own: its pid is the group's id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Collecting(asyncio.SubprocessProtocol):
    """Keeps what a program prints, up to a cap per stream; past it, kills the group and fails ``finished``.

    asyncio's protocol callbacks, not stream readers: a reader that stops reading pauses the pipe, and a
    paused pipe never sees the end of file that lets the process be waited for.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, program: str, max_output: int, max_stderr: int) -> None:
        self.program = program
        self.limits = {1: max_output, 2: max_stderr}
        self.output = {1: bytearray(), 2: bytearray()}
        #: every pipe closed and the leader reaped, or OutputTooLarge
        self.finished: asyncio.Future[None] = loop.create_future()
        #: the leader's exit status, once reaped
        self.exited: asyncio.Future[int] = loop.create_future()
        self._transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport has SubprocessTransport's methods without deriving from it: the
        # controllers run on uvloop, so no isinstance check here.
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        if self.finished.done():
            return  # over a cap: the group is being killed, nothing more is kept
        kept = self.output[fd]
        kept += data
        if len(kept) > self.limits[fd]:
            del kept[self.limits[fd] :]
            assert self._transport is not None
            _kill_group(self._transport.get_pid())
            stream: Literal["stdout", "stderr"] = "stdout" if fd == 1 else "stderr"
            self.finished.set_exception(OutputTooLarge(self.program, stream, self.limits[fd]))
            self.finished.exception()  # raised by run(), unless a cancellation came first: not "never retrieved"

    def process_exited(self) -> None:
        assert self._transport is not None
        returncode = self._transport.get_returncode()
        assert returncode is not None  # it exited
        self.exited.set_result(returncode)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


class _Streamed:
    """A streamed program's deadline timer and stderr drain, and what to blame once it ended."""

    def __init__(self, proc: subprocess.Popen[bytes], program: str, timeout: float, max_stderr: int) -> None:
        assert isinstance(proc.stderr, io.FileIO)  # an unbuffered pipe
        self.proc = proc
        self.program = program
        self.timeout = timeout
        self.expired = threading.Event()
        self.timer = threading.Timer(timeout, self._expire)
        self.timer.name, self.timer.daemon = f"{program}-deadline", True
        self.stderr = _StderrDrain(proc.stderr, program, max_stderr, on_overflow=lambda: _kill_group(proc.pid))
        self.timer.start()
        self.stderr.start()

    def _expire(self) -> None:
        self.expired.set()
        _kill_group(self.proc.pid)

    def end(self) -> None:
        """Wait for the leader (the timer kills it at the deadline), then kill what it left in its group."""
        self.proc.wait()
        self.timer.cancel()
        _kill_group(self.proc.pid)
        self.stderr.join()

    def blame(self, *, body_failed: bool) -> CommandError | None:
        """The program's fault, if any: its deadline, its stderr cap, or an exit status of its own."""
        if self.expired.is_set():
            return CommandTimeout(self.program, self.timeout)
        if self.stderr.overflowed:
            return OutputTooLarge(self.program, "stderr", self.stderr.limit)
        returncode = self.proc.returncode
        if returncode == 0 or (body_failed and returncode == -signal.SIGKILL):
            return None  # fine, or stopped by us because the body failed
        return CommandFailed(self.program, returncode, self.stderr.data())


class _CappedPipe(io.RawIOBase):
    """A program's stdout that raises OutputTooLarge once more than ``limit`` bytes came through."""

    def __init__(self, pipe: io.FileIO, program: str, limit: int | None) -> None:
        super().__init__()
        self._pipe = pipe
        self._program = program
        self._limit = limit
        self._count = 0

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._pipe.fileno()

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        n = self._pipe.readinto(buffer)
        if n:
            self._count += n
            if self._limit is not None and self._count > self._limit:
                raise OutputTooLarge(self._program, "stdout", self._limit)
        return n

    def close(self) -> None:
        self._pipe.close()
        super().close()


class _StderrDrain(threading.Thread):
    """Reads a streamed program's stderr as it comes, so that it never blocks on a full pipe; keeps ``limit``."""

    def __init__(self, pipe: io.FileIO, program: str, limit: int, *, on_overflow: Callable[[], None]) -> None:
        super().__init__(name=f"{program}-stderr", daemon=True)
        self._pipe = pipe
        self.limit = limit
        self._on_overflow = on_overflow
        self._data = bytearray()
        self.overflowed = False

    def run(self) -> None:
        with self._pipe:
            while chunk := self._pipe.read(_CHUNK):
                if self.overflowed:
                    continue  # the group is being killed: read on to the end of the pipe, keep nothing more
                self._data += chunk
                if len(self._data) > self.limit:
                    self.overflowed = True
                    del self._data[self.limit :]
                    self._on_overflow()

    def data(self) -> bytes:
        return bytes(self._data)
