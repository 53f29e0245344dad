"""Running external programs: deadlines, cancellation and output caps stop the whole process group (real /bin/sh)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import IO

import pytest

from gitops_mesh import commands
from gitops_mesh.commands import CommandFailed, CommandNotStarted, CommandTimeout, OutputTooLarge

SH = "/bin/sh"
ENV = {"PATH": "/usr/bin:/bin"}
# The leader writes its pid to $LEADER and starts a child shell, which starts a sleeping grandchild and
# writes the grandchild's pid to $PIDFILE; both shells wait, so the work only ends when it is killed.
FAMILY = 'echo $$ > "$LEADER"; sh -c \'sleep 300 & echo $! > "$PIDFILE"; wait\' & wait'


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for init is dead, its work stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def read_pid(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text.endswith("\n") else None


async def pid_from(path: Path) -> int:
    for _ in range(500):
        if (pid := read_pid(path)) is not None:
            return pid
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def wait_dead(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def family_env(tmp_path: Path) -> dict[str, str]:
    return {**ENV, "LEADER": str(tmp_path / "leader"), "PIDFILE": str(tmp_path / "grandchild")}


async def test_deadline_kills_the_grandchild_and_reaps_the_leader(tmp_path: Path) -> None:
    started = time.monotonic()
    task = asyncio.ensure_future(commands.run([SH, "-c", FAMILY], env=family_env(tmp_path), timeout=2))
    grandchild = await pid_from(tmp_path / "grandchild")
    assert alive(grandchild)
    with pytest.raises(CommandTimeout, match=r"^sh timed out after 2s$") as info:
        await task
    assert info.value.timeout == 2
    assert time.monotonic() - started < 10
    assert wait_dead(grandchild), "the grandchild outlived the deadline"
    leader = read_pid(tmp_path / "leader")
    assert leader is not None
    assert not exists(leader), "the leader was left a zombie"


async def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    task = asyncio.ensure_future(commands.run([SH, "-c", FAMILY], env=family_env(tmp_path), timeout=60))
    grandchild = await pid_from(tmp_path / "grandchild")
    assert alive(grandchild)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_dead(grandchild), "the grandchild outlived the cancelled task"
    leader = read_pid(tmp_path / "leader")
    assert leader is not None
    assert not exists(leader), "the leader was left a zombie"


async def test_what_a_program_leaves_in_its_group_is_killed_when_it_exits(tmp_path: Path) -> None:
    script = 'sleep 300 >/dev/null 2>&1 & echo $! > "$PIDFILE"; echo done'
    done = await commands.run([SH, "-c", script], env=family_env(tmp_path), timeout=30)
    assert done.stdout == b"done\n"
    grandchild = read_pid(tmp_path / "grandchild")
    assert grandchild is not None
    assert wait_dead(grandchild), "a background process outlived the call"


# cat writes as fast as the pipe takes it: the cap is passed while it still writes, the case that once hung
@pytest.mark.parametrize(("stream", "script"), [("stdout", "cat /dev/zero"), ("stderr", "cat /dev/zero >&2")])
async def test_output_over_the_cap_kills_the_group(tmp_path: Path, stream: str, script: str) -> None:
    family = f'sleep 300 & echo $! > "$PIDFILE"; {script}'
    with pytest.raises(OutputTooLarge, match=rf"^sh printed more than 1 MiB on {stream}$") as info:
        await commands.run(
            [SH, "-c", family], env=family_env(tmp_path), timeout=60, max_output=1 << 20, max_stderr=1 << 20
        )
    assert (info.value.stream, info.value.limit) == (stream, 1 << 20)
    grandchild = read_pid(tmp_path / "grandchild")
    assert grandchild is not None
    assert wait_dead(grandchild)


async def test_exit_status_and_the_end_of_stderr() -> None:
    script = (
        'echo "first noise" >&2; i=0; while [ $i -lt 100 ]; do echo "line $i of a long complaint" >&2; '
        'i=$((i+1)); done; echo out; echo "fatal: the real reason" >&2; exit 3'
    )
    with pytest.raises(CommandFailed) as info:
        await commands.run([SH, "-c", script], env=ENV, timeout=30)
    failed = info.value
    assert failed.returncode == 3
    assert str(failed).startswith("sh exited with status 3: …")
    assert str(failed).endswith("line 99 of a long complaint; fatal: the real reason")
    assert len(str(failed)) <= len("sh exited with status 3: …") + commands.TAIL_CHARS
    assert failed.stderr.startswith(b"first noise\n"), "the whole stderr is kept for the caller"

    unchecked = await commands.run([SH, "-c", script], env=ENV, timeout=30, check=False)
    assert (unchecked.returncode, unchecked.stdout) == (3, b"out\n")
    assert unchecked.stderr.endswith(b"fatal: the real reason\n")


async def test_a_signal_is_reported_as_such() -> None:
    with pytest.raises(CommandFailed, match=r"^sh was killed by SIGTERM: nothing on stderr$") as info:
        await commands.run([SH, "-c", "kill -TERM $$"], env=ENV, timeout=30)
    assert info.value.returncode == -15


async def test_the_program_sees_exactly_env_and_no_secret_in_argv() -> None:
    done = await commands.run(["/usr/bin/env"], env={"ONLY": "this"}, timeout=30)
    assert done.stdout == b"ONLY=this\n", "nothing of this process's environment leaks in"

    secret = "s3cr3t-token-value"
    script = 'printf %s "$TOKEN"; tr "\\0" " " < /proc/$$/cmdline >&2'
    seen = await commands.run([SH, "-c", script], env={**ENV, "TOKEN": secret}, timeout=30)
    assert seen.stdout == secret.encode()
    assert seen.stderr.startswith(b"/bin/sh -c ")
    assert secret.encode() not in seen.stderr


async def test_stdin_and_cwd(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # more than the pipe buffers hold both ways: fed while read
    done = await commands.run(["cat"], env=ENV, timeout=30, stdin=data)
    assert done.stdout == data
    where = await commands.run(["pwd"], env=ENV, timeout=30, cwd=tmp_path)
    assert where.stdout.decode().strip() == str(tmp_path)


async def test_a_program_that_stops_reading_stdin_is_not_an_error() -> None:
    done = await commands.run(["head", "-c", "5"], env=ENV, timeout=30, stdin=b"x" * (4 << 20))
    assert done.stdout == b"xxxxx"


async def test_a_missing_program_is_not_started(tmp_path: Path) -> None:
    with pytest.raises(CommandNotStarted, match=r"^prog could not be started: No such file or directory$") as info:
        await commands.run([str(tmp_path / "prog")], env=ENV, timeout=30)
    assert info.value.program == "prog"
    with (
        pytest.raises(CommandNotStarted),
        commands.stream([str(tmp_path / "prog")], env=ENV, timeout=30),
    ):
        pass


def test_stream_delivers_output_as_it_comes(tmp_path: Path) -> None:
    go = tmp_path / "go"
    # "second" is only printed once the reader has had "first": a stream that waited for the end would hang.
    script = 'printf "first\\n"; while [ ! -e "$GO" ]; do sleep 0.02; done; printf "second\\n"'
    with commands.stream([SH, "-c", script], env={**ENV, "GO": str(go)}, timeout=30) as out:
        assert out.readline() == b"first\n"
        go.touch()
        assert out.read() == b"second\n"


def complain_of_truncation(out: IO[bytes]) -> None:
    """A reader like the packer: it reads to the end and finds the stream cut short."""
    assert out.read(1) == b"x"
    rest = out.read()  # blocks until the deadline cuts the stream
    raise ValueError(f"truncated archive after {rest!r}")


def give_up(out: IO[bytes]) -> None:
    assert out.read(4) == b"y\ny\n"
    raise RuntimeError("the reader gave up")


def test_stream_deadline_kills_the_group_whatever_the_reader_made_of_it(tmp_path: Path) -> None:
    family = 'sleep 300 & echo $! > "$PIDFILE"; printf x; wait'
    started = time.monotonic()
    with (
        pytest.raises(CommandTimeout, match=r"^sh timed out after 1s$") as info,
        commands.stream([SH, "-c", family], env=family_env(tmp_path), timeout=1) as out,
    ):
        complain_of_truncation(out)
    assert isinstance(info.value.__cause__, ValueError), "the reader's complaint is kept as the cause"
    assert time.monotonic() - started < 10
    grandchild = read_pid(tmp_path / "grandchild")
    assert grandchild is not None
    assert wait_dead(grandchild)


def test_stream_reader_error_kills_the_group_and_propagates(tmp_path: Path) -> None:
    family = 'sleep 300 & echo $! > "$PIDFILE"; yes'
    with (
        pytest.raises(RuntimeError, match="the reader gave up"),
        commands.stream([SH, "-c", family], env=family_env(tmp_path), timeout=60, max_output=None) as out,
    ):
        give_up(out)
    grandchild = read_pid(tmp_path / "grandchild")
    assert grandchild is not None
    assert wait_dead(grandchild)


def test_stream_program_failure_is_the_cause() -> None:
    script = 'echo "fatal: not a valid object name" >&2; exit 128'
    with (
        pytest.raises(CommandFailed, match=r"^sh exited with status 128: fatal: not a valid object name$"),
        commands.stream([SH, "-c", script], env=ENV, timeout=30) as out,
    ):
        assert out.read() == b""
    # the reader choked on the empty stream: the program's failure is what is reported, the choke its effect
    with (
        pytest.raises(CommandFailed) as info,
        commands.stream([SH, "-c", script], env=ENV, timeout=30) as out,
    ):
        raise ValueError(f"empty archive {out.read()!r}")
    assert info.value.returncode == 128
    assert isinstance(info.value.__cause__, ValueError)


def test_stream_reads_what_the_reader_left_so_the_program_finishes() -> None:
    # 1 MiB, far more than a pipe holds: head would die of SIGPIPE (CommandFailed) if the rest were not read.
    with commands.stream(["head", "-c", "1048576", "/dev/zero"], env=ENV, timeout=30) as out:
        assert out.read(10) == bytes(10)


@pytest.mark.parametrize(("stream", "script"), [("stdout", "yes"), ("stderr", "yes >&2")])
def test_stream_output_caps(stream: str, script: str) -> None:
    with (
        pytest.raises(OutputTooLarge, match=rf"^sh printed more than 65536 bytes on {stream}$"),
        commands.stream([SH, "-c", script], env=ENV, timeout=30, max_output=1 << 16, max_stderr=1 << 16) as out,
    ):
        out.read()


def test_one_line_keeps_the_end_that_matters() -> None:
    text = "\n  first  \n\nsecond\n" + "x" * 50
    assert commands.one_line(text, 100) == "first; second; " + "x" * 50
    assert commands.one_line(text, 10) == "…" + "x" * 10
    assert commands.one_line(text, 10, keep="first") == "first; sec…"
    assert commands.one_line("\n \n") == ""


def test_program_env_has_path_home_and_proxies_only(tmp_path: Path) -> None:
    env = commands.program_env(tmp_path)
    assert env["HOME"] == str(tmp_path)
    assert env["PATH"] == os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    assert set(env) - {"PATH", "HOME"} <= set(commands.PROXY_VARIABLES)


def test_run_works_on_uvloop_as_the_controllers_run(tmp_path: Path) -> None:
    """The controller processes run on uvloop, whose process transport is not asyncio's class."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        done = await commands.run([SH, "-c", "echo out; echo err >&2"], env=ENV, timeout=30)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"out\n", b"err\n")
        with pytest.raises(CommandFailed) as failed:
            await commands.run([SH, "-c", "exit 4"], env=ENV, timeout=30)
        assert failed.value.returncode == 4
        with pytest.raises(OutputTooLarge):
            await commands.run([SH, "-c", "cat /dev/zero"], env=ENV, timeout=30, max_output=1 << 16)
        family = 'sleep 300 & echo $! > "$PIDFILE"; sleep 300'
        with pytest.raises(CommandTimeout):
            await commands.run([SH, "-c", family], env=family_env(tmp_path), timeout=0.5)
        grandchild = read_pid(tmp_path / "grandchild")
        assert grandchild is not None
        assert wait_dead(grandchild)

    uvloop.run(scenario())


async def test_a_url_token_a_program_prints_is_redacted_in_the_message() -> None:
    # git prints the URL it was given; a token is often the whole userinfo (https://TOKEN@host/)
    said = "echo \"fatal: unable to access 'https://ghp_secret123@git.example.com/r.git/': 403\" >&2; exit 128"
    with pytest.raises(CommandFailed) as caught:
        await commands.run([SH, "-c", said], env=ENV, timeout=10)
    assert "ghp_secret123" not in str(caught.value)
    assert "'https://***@git.example.com/r.git/': 403" in str(caught.value)


def test_one_line_redacts_userinfo_before_the_cut() -> None:
    text = "x" * 50 + " https://user:pw@h/a\nssh://git@h/b https://TOKEN@h/c"
    # cut after redaction: the tail keeps '***', never the end of a password without its scheme
    assert commands.one_line(text, 40) == "…//***@h/a; ssh://git@h/b https://***@h/c"
    assert "pw" not in commands.one_line(text, 1000)
    assert "TOKEN" not in commands.one_line(text, 1000)


def test_redacting_a_hostile_stderr_takes_linear_time() -> None:
    started = time.perf_counter()
    for text in ("a" * (1 << 20) + "@", ("x://" + "a" * 1000) * 1000 + "@", ("a://" + "b" * 30 + "@") * 30000):
        commands.redact_userinfo(text)
    assert time.perf_counter() - started < 2
