"""Step 3 of a build (and a step before kustomize): SOPS decryption with the real ``sops`` binary and age keys.

What follows kustomize-controller's decryptor (the facts, not the code), for ``decryption.provider: sops``:

* keys: every ``*.agekey`` entry of the ``decryption.secretRef`` Secret is an age identity;
* before kustomize runs, files a kustomization feeds to a ``secretGenerator`` (``files``, ``envs``) and
  patch files (``patches[].path``) that carry SOPS's marker for their format are decrypted in place in
  the build's private work tree (format from the file key's extension: .yaml/.yml, .json, .env, .ini,
  ``.dockerconfigjson`` is JSON, anything else binary; ``envs`` default to dotenv);
* after kustomize: an object with a ``sops`` map holding a ``mac`` is decrypted whole (any kind, as
  Flux does), and a Secret's ``data`` value that base64-decodes to SOPS output is decrypted on its own,
  output in the format of its key's extension;
* the MAC is not checked (``--ignore-mac``): kustomize changes objects (namespace, labels, prefixes),
  which would fail every check - Flux skips it for the same reason;
* an object annotated ``kustomize.toolkit.fluxcd.io/decrypt: Disabled`` is left encrypted, and with no
  ``spec.decryption`` nothing is decrypted at all.

The keys reach sops only through its environment (``SOPS_AGE_KEY``), never argv; sops runs with an
empty private HOME so no user key file or SSH key is picked up. Errors name the object or file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from gitops_mesh import commands
from kustomize_controller.build import graph, manifests
from kustomize_controller.build.errors import DecryptionFailed
from kustomize_controller.build.workdir import relative, replace_file

DECRYPT_KEY = "kustomize.toolkit.fluxcd.io/decrypt"
AGE_KEY_SUFFIX = ".agekey"
#: Flux's maxEncryptedFileSize.
MAX_FILE_SIZE: Final = 5 << 20
DETAIL_CHARS: Final = 600


class Format(StrEnum):
    """sops's ``--input-type`` / ``--output-type`` names."""

    BINARY = "binary"
    DOTENV = "dotenv"
    INI = "ini"
    JSON = "json"
    YAML = "yaml"


#: What SOPS writes into an encrypted document of each format (binary documents are JSON envelopes).
MARKERS: Final = {
    Format.YAML: b"mac: ENC[",
    Format.JSON: b'"mac": "ENC[',
    Format.BINARY: b'"mac": "ENC[',
    Format.DOTENV: b"sops_mac=ENC[",
    Format.INI: b"[sops]",
}


def format_for_path(path: str) -> Format:
    """sops's format for a file name (Flux reads ``.dockerconfigjson`` as JSON too)."""
    if path.endswith((".yaml", ".yml")):
        return Format.YAML
    if path.endswith((".json", ".dockerconfigjson")):
        return Format.JSON
    if path.endswith(".env"):
        return Format.DOTENV
    if path.endswith(".ini"):
        return Format.INI
    return Format.BINARY


def detect_format(data: bytes) -> Format | None:
    """The format whose SOPS marker ``data`` carries (JSON for the JSON-enveloped binary), if any."""
    for fmt in (Format.YAML, Format.JSON, Format.DOTENV, Format.INI):
        if MARKERS[fmt] in data:
            return fmt
    return None


def is_encrypted_object(obj: Mapping[str, Any]) -> bool:
    """Whether the object is a SOPS document: a top-level ``sops`` map with a ``mac``."""
    sops = obj.get("sops")
    return isinstance(sops, Mapping) and bool(sops.get("mac"))


def decryption_disabled(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(DECRYPT_KEY)
    return isinstance(value, str) and value.lower() == "disabled"


def age_identities(secret_data: Mapping[str, bytes]) -> list[str]:
    """The age identities of a decryption Secret: its ``*.agekey`` entries, in key order."""
    return [value.decode().strip() for key, value in sorted(secret_data.items()) if key.endswith(AGE_KEY_SUFFIX)]


@dataclass(frozen=True, slots=True)
class Source:
    """A file a kustomization reads that may be SOPS-encrypted, and how to decrypt it."""

    path: Path
    format: Format
    #: the kustomization that refers to it, artifact-relative, for messages
    referrer: str


def generator_sources(root: Path, start: Path) -> Iterator[Source]:
    """secretGenerator files/envs and patch files of every kustomization reachable from ``start``."""
    for node in graph.walk(root, start):
        referrer = relative(root, node.file)
        for generator in _maps(node.content.get("secretGenerator")):
            for entry in _strings(generator.get("files")):
                key, _, path = entry.partition("=")
                yield from _source(root, node.directory, path or key, format_for_path(key), referrer)
            envs = _strings(generator.get("envs"))
            if isinstance(generator.get("env"), str):
                envs.append(generator["env"])
            for env in envs:
                fmt = format_for_path(env)
                yield from _source(root, node.directory, env, Format.DOTENV if fmt is Format.BINARY else fmt, referrer)
        for patch in _maps(node.content.get("patches")):
            if isinstance(patch.get("path"), str) and patch["path"]:
                yield from _source(root, node.directory, patch["path"], format_for_path(patch["path"]), referrer)


def _source(root: Path, directory: Path, path: str, fmt: Format, referrer: str) -> Iterator[Source]:
    if path.startswith("/"):
        return
    target = Path(os.path.normpath(directory / path))
    # Outside the artifact, missing or not a regular file: kustomize reports it better than we could.
    if (target == root or root in target.parents) and target.is_file() and not target.is_symlink():
        yield Source(target, fmt, referrer)


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


class Decryptor:
    """Runs ``sops decrypt`` with the age identities of one Kustomization."""

    def __init__(self, sops: Path | str, identities: Sequence[str], *, timeout: float = 30.0) -> None:
        self.sops = str(sops)
        self._identities = [i for i in identities if i]
        self.timeout = timeout

    async def decrypt(self, data: bytes, input_format: Format, output_format: Format, *, what: str) -> bytes:
        """``data`` decrypted by sops; DecryptionFailed naming ``what`` when it cannot be."""
        argv = [
            self.sops,
            "decrypt",
            "--ignore-mac",
            "--input-type",
            str(input_format),
            "--output-type",
            str(output_format),
        ]
        with tempfile.TemporaryDirectory(prefix="sops-home-") as home:
            # The identities reach sops through its environment only, never argv.
            env = commands.program_env(Path(home)) | {
                "XDG_CONFIG_HOME": home,
                "SOPS_AGE_KEY": "\n".join(self._identities),
            }
            try:
                done = await commands.run(argv, env=env, timeout=self.timeout, stdin=data)
            except commands.CommandTimeout:
                raise DecryptionFailed(f"failed to decrypt {what}: sops timed out after {self.timeout:g}s") from None
            except commands.CommandNotStarted as e:
                raise DecryptionFailed(
                    f"failed to decrypt {what}: sops could not be run ({self.sops}): {e.strerror}"
                ) from e
            except commands.CommandFailed as e:
                # from None: the error quotes sops's raw stderr, which _detail redacts
                raise DecryptionFailed(f"failed to decrypt {what}: {self._detail(e.stderr, home)}") from None
            except commands.OutputTooLarge as e:
                raise DecryptionFailed(f"failed to decrypt {what}: {e}") from None
        return done.stdout

    def _detail(self, stderr: bytes, home: str) -> str:
        text = stderr.decode(errors="replace").replace(home, "$HOME")
        for identity in self._identities:
            for line in identity.splitlines():
                if line.strip() and not line.startswith("#"):
                    text = text.replace(line.strip(), "[redacted]")
        return commands.one_line(text, DETAIL_CHARS, keep="first") or "sops failed"

    async def decrypt_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object decrypted whole (SOPS document) or per Secret data entry; unchanged when not encrypted."""
        if decryption_disabled(obj):
            return obj
        what = f"'{manifests.describe(obj)}'"
        if is_encrypted_object(obj):
            out = await self.decrypt(json.dumps(obj).encode(), Format.JSON, Format.JSON, what=what)
            try:
                decrypted = json.loads(out)
            except ValueError as e:
                raise DecryptionFailed(f"failed to decrypt {what}: sops printed something that is not JSON") from e
            if not isinstance(decrypted, dict):
                raise DecryptionFailed(f"failed to decrypt {what}: the decrypted document is not an object")
            return decrypted
        if obj.get("kind") != "Secret" or not isinstance(obj.get("data"), dict):
            return obj
        data: dict[str, Any] = dict(obj["data"])
        changed = False
        for key, value in data.items():
            if not isinstance(value, str):
                continue
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                # Not base64: a user error the apiserver will name; nothing of ours to decrypt.
                continue
            fmt = detect_format(raw)
            if fmt is None:
                continue
            out = await self.decrypt(raw, fmt, format_for_path(key), what=f"{what} data key '{key}'")
            data[key] = base64.b64encode(out).decode()
            changed = True
        return {**obj, "data": data} if changed else obj

    async def decrypt_sources(self, root: Path, start: Path) -> list[str]:
        """Decrypt, in the work tree, every generator or patch file that is SOPS-encrypted; their names."""
        done: list[str] = []
        seen: set[Path] = set()
        for source in await asyncio.to_thread(lambda: list(generator_sources(root, start))):
            if source.path in seen:
                continue
            seen.add(source.path)
            name = relative(root, source.path)
            data = await asyncio.to_thread(_read_limited, source.path, name, source.referrer)
            if MARKERS[source.format] not in data:
                continue
            out = await self.decrypt(data, source.format, source.format, what=f"'{name}' (from '{source.referrer}')")
            await asyncio.to_thread(replace_file, source.path, out)
            done.append(name)
        return done


def _read_limited(path: Path, name: str, referrer: str) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE_SIZE:
        raise DecryptionFailed(
            f"cannot decrypt '{name}' (from '{referrer}'): {size} bytes exceeds the {MAX_FILE_SIZE} limit"
        )
    return path.read_bytes()
