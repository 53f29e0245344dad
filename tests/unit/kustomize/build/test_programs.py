"""kustomize and sops stopped or failing become BuildFailed errors with Flux's messages (stand-in programs, /bin/sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kustomize_controller.build.decrypt import Decryptor, Format
from kustomize_controller.build.errors import DecryptionFailed, KustomizeFailed
from kustomize_controller.build.kustomize import kustomize_build

IDENTITY = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"


def program(directory: Path, name: str, script: str) -> Path:
    """An executable ``name`` in ``directory`` running ``script``: a stand-in for the real binary."""
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


async def test_kustomize_that_cannot_be_run(tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "kustomize"
    with pytest.raises(KustomizeFailed, match=r"^kustomize could not be run \(.*/bin/kustomize\): No such file"):
        await kustomize_build(missing, tmp_path, tmp_path, timeout=30)


async def test_kustomize_printing_without_end_is_stopped(tmp_path: Path) -> None:
    kustomize = program(tmp_path, "kustomize", "exec cat /dev/zero")
    with pytest.raises(
        KustomizeFailed, match=r"^kustomize build of '.' stopped: kustomize printed more than 64 MiB on stdout$"
    ):
        await kustomize_build(kustomize, tmp_path, tmp_path, timeout=60)


async def test_kustomize_failure_quotes_its_first_error_with_relative_paths(tmp_path: Path) -> None:
    script = f"echo \"Error: accumulating resources from '{tmp_path}/apps/x.yaml'\" >&2; exit 1"
    kustomize = program(tmp_path, "kustomize", script)
    with pytest.raises(KustomizeFailed) as info:
        await kustomize_build(kustomize, tmp_path, tmp_path / "apps", timeout=30)
    assert str(info.value) == "kustomize build failed for 'apps': accumulating resources from 'apps/x.yaml'"


async def test_sops_sees_the_identities_in_its_environment_only(tmp_path: Path) -> None:
    # fails if its command line holds the key, else prints the key its environment holds
    script = 'tr "\\0" " " < /proc/$$/cmdline | grep -q AGE-SECRET-KEY && exit 9; printf %s "$SOPS_AGE_KEY"'
    sops = program(tmp_path, "sops", script)
    out = await Decryptor(sops, [IDENTITY]).decrypt(b"{}", Format.JSON, Format.JSON, what="'x'")
    assert out == IDENTITY.encode()


async def test_sops_failure_is_redacted_and_not_chained(tmp_path: Path) -> None:
    sops = program(tmp_path, "sops", f'echo "Error: no key matched {IDENTITY} in $HOME/keys" >&2; exit 128')
    with pytest.raises(DecryptionFailed) as info:
        await Decryptor(sops, [IDENTITY]).decrypt(b"{}", Format.JSON, Format.JSON, what="'Secret/a/b'")
    assert str(info.value) == "failed to decrypt 'Secret/a/b': Error: no key matched [redacted] in $HOME/keys"
    # the raw stderr (with the key) must not ride along in a chained exception a log would print
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_sops_that_cannot_be_run_or_hangs(tmp_path: Path) -> None:
    with pytest.raises(DecryptionFailed, match=r"^failed to decrypt 'x': sops could not be run \(.*\): No such file"):
        await Decryptor(tmp_path / "sops", [IDENTITY]).decrypt(b"{}", Format.JSON, Format.JSON, what="'x'")
    sops = program(tmp_path, "sops", "exec sleep 60")
    with pytest.raises(DecryptionFailed, match=r"^failed to decrypt 'x': sops timed out after 0.5s$"):
        await Decryptor(sops, [IDENTITY], timeout=0.5).decrypt(b"{}", Format.JSON, Format.JSON, what="'x'")
