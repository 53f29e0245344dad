"""A real OpenSSH sshd for tests: loopback port, its own host key, key-only auth, serving git over SSH."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from gitops_mesh_dev.gitserver import loopback_socket

SSHD = "/usr/sbin/sshd"
#: sshd's privilege-separation directory; Debian's package creates it at boot, containers may lack it.
PRIVSEP_DIR = Path("/run/sshd")


def keygen(path: Path, *, kind: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair at ``path`` / ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


@dataclass
class Sshd:
    """``sshd -D -e -f <config>`` on 127.0.0.1 for the current user (root: ``prohibit-password``).

    ``client_key`` (and ``encrypted_key``, passphrase ``passphrase``) are authorised; ``other_key`` is not.
    """

    workdir: Path
    passphrase: str = "correct horse battery"
    port: int = 0
    user: str = field(default_factory=getpass.getuser)
    log: list[str] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = None
    _drain: asyncio.Task[None] | None = None

    @property
    def host_key(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_ed25519"

    @property
    def encrypted_key(self) -> Path:
        return self.workdir / "client_encrypted"

    @property
    def other_key(self) -> Path:
        return self.workdir / "other_ed25519"

    def known_hosts(self, host_key: Path | None = None) -> bytes:
        """The known_hosts line for this server (``[127.0.0.1]:<port> <type> <key>``)."""
        kind, key = (host_key or self.host_key).with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n".encode()

    def url(self, bare: Path) -> str:
        """The ssh:// URL of a bare repository on this machine."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"

    def _configure(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        keygen(self.host_key)
        keygen(self.client_key)
        keygen(self.encrypted_key, kind="rsa", passphrase=self.passphrase)
        keygen(self.other_key)
        authorized = self.workdir / "authorized_keys"
        authorized.write_text(
            self.client_key.with_suffix(".pub").read_text() + self.encrypted_key.with_suffix(".pub").read_text()
        )
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.workdir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "AcceptEnv GIT_PROTOCOL\n"
            "PrintMotd no\n"
            "LogLevel INFO\n"
        )
        return config

    async def __aenter__(self) -> Sshd:
        sock = loopback_socket()
        self.port = sock.getsockname()[1]
        sock.close()  # sshd binds it itself; loopback ports are not reused this fast
        config = await asyncio.to_thread(self._configure)
        self._proc = await asyncio.create_subprocess_exec(
            SSHD, "-D", "-e", "-f", str(config),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._proc.stderr
        stderr = self._proc.stderr
        try:
            await self._until_listening(stderr)
        except BaseException:
            await self._stop()
            raise

        async def drain() -> None:
            while line := await stderr.readline():
                self.log.append(line.decode(errors="replace").rstrip())

        self._drain = asyncio.create_task(drain())
        return self

    async def _until_listening(self, stderr: asyncio.StreamReader) -> None:
        async with asyncio.timeout(10):
            while line := (await stderr.readline()).decode(errors="replace"):
                self.log.append(line.rstrip())
                if "Server listening on" in line:
                    return
        raise RuntimeError("sshd exited: " + "\n".join(self.log))

    async def _stop(self) -> None:
        if self._proc and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._drain:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()
