"""``gitops-mesh push artifact``: publish a directory to an OCI registry in Flux's artifact format.

What is written is what ``flux push artifact`` writes, so Flux's OCIRepository (and ``flux pull artifact``)
read it as well as ours: an OCI image manifest whose config is ``{}`` with media type
``application/vnd.cncf.flux.config.v1+json``, one layer — the directory as a deterministic tar.gz
(:func:`gitops_mesh.artifacts.archive.pack`, ``.git/`` left out) — with media type
``application/vnd.cncf.flux.content.v1.tar+gzip``, and the annotations ``org.opencontainers.image.source``,
``.revision`` and ``.created``.

Credentials never come from argv (where ``ps`` and shell history show them): ``user:password`` from
``$GITOPS_MESH_REGISTRY_CREDS`` or, with ``--creds-stdin``, the first line of standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gitops_mesh.artifacts.archive import pack
from gitops_mesh.artifacts.errors import StorageError
from gitops_mesh.cli.errors import CommandError
from gitops_mesh.oci import (
    Credentials,
    InvalidReference,
    InvalidTLSMaterial,
    OciError,
    RegistryClient,
    Repository,
    Transport,
    tls_context,
)
from gitops_mesh.oci.manifest import (
    CREATED_ANNOTATION,
    FLUX_CONFIG,
    FLUX_CONTENT,
    OCI_MANIFEST,
    REVISION_ANNOTATION,
    SOURCE_ANNOTATION,
    image_manifest,
)
from gitops_mesh.oci.reference import DEFAULT_TAG, OCI_SCHEME, check_tag, repository
from gitops_mesh.timestamps import rfc3339

CREDS_ENV = "GITOPS_MESH_REGISTRY_CREDS"
#: Flux's artifact config: an empty JSON object.
EMPTY_CONFIG = b"{}"


def register(commands: Any) -> None:
    push = commands.add_parser("push", help="push artifacts to a registry")
    kinds = push.add_subparsers(dest="kind", metavar="KIND", required=True)
    artifact = kinds.add_parser(
        "artifact",
        help="push a directory as a Flux OCI artifact",
        description="Push the directory --path as a Flux OCI artifact (what `flux push artifact` writes).",
    )
    artifact.add_argument("url", metavar="oci://REGISTRY/REPO:TAG", help="where to push (the tag defaults to latest)")
    artifact.add_argument("--path", required=True, help="the directory to publish")
    artifact.add_argument("--source", required=True, help="where the files come from (a Git URL)")
    artifact.add_argument("--revision", required=True, help="the source's revision (e.g. main@sha1:<commit>)")
    artifact.add_argument(
        "--annotations", action="append", default=[], metavar="KEY=VALUE", help="more manifest annotations"
    )
    artifact.add_argument(
        "--creds-stdin", action="store_true", help="read 'user:password' from the first line of standard input"
    )
    artifact.add_argument("--insecure-registry", action="store_true", help="talk plain HTTP to the registry")
    artifact.add_argument("--ca-file", help="a PEM CA bundle to trust for the registry (added to the system roots)")
    artifact.add_argument("--timeout", type=float, default=300.0, help="seconds the whole push may take")
    artifact.set_defaults(run=push_artifact)


def parse_target(url: str) -> tuple[Repository, str]:
    """``oci://host/repo[:tag]`` → the repository and the tag."""
    if not url.startswith(OCI_SCHEME):
        raise CommandError(f"the URL must start with {OCI_SCHEME}")
    rest = url.removeprefix(OCI_SCHEME)
    host, sep, path = rest.partition("/")
    if not sep or not path:
        raise CommandError("the URL must be oci://REGISTRY/REPO[:TAG]")
    name, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    try:
        return repository(host, name), check_tag(tag) if colon else DEFAULT_TAG
    except InvalidReference as e:
        raise CommandError(str(e)) from e


def credentials(args: argparse.Namespace) -> Credentials | None:
    text = sys.stdin.readline().rstrip("\r\n") if args.creds_stdin else os.environ.get(CREDS_ENV, "")
    if not text:
        if args.creds_stdin:
            raise CommandError("--creds-stdin: standard input had no 'user:password' line")
        return None
    try:
        return Credentials.parse(text)
    except ValueError as e:
        raise CommandError(str(e)) from e


def manifest_annotations(args: argparse.Namespace, now: datetime) -> dict[str, str]:
    out = {
        CREATED_ANNOTATION: rfc3339(now),
        SOURCE_ANNOTATION: args.source,
        REVISION_ANNOTATION: args.revision,
    }
    for item in args.annotations:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--annotations {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def transport(args: argparse.Namespace) -> Transport:
    if args.insecure_registry:
        return Transport(insecure=True)
    if not args.ca_file:
        return Transport()
    try:
        return Transport(ssl=tls_context(Path(args.ca_file).read_bytes()))
    except (OSError, InvalidTLSMaterial) as e:
        raise CommandError(f"--ca-file: {e}") from e


async def push_artifact(args: argparse.Namespace) -> int:
    repo, tag = parse_target(args.url)
    source = Path(args.path)
    if not await asyncio.to_thread(source.is_dir):
        raise CommandError(f"--path {args.path} is not a directory")
    creds, how = credentials(args), transport(args)
    meta = manifest_annotations(args, datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="gitops-mesh-push-") as tmp:
        layer_file = Path(tmp) / "artifact.tar.gz"
        try:
            await asyncio.to_thread(
                pack, source, layer_file, include=lambda rel, _is_dir: rel.split("/", 1)[0] != ".git"
            )
            layer_data = await asyncio.to_thread(layer_file.read_bytes)
        except (OSError, StorageError) as e:
            raise CommandError(f"packing {args.path}: {e}") from e
    try:
        async with asyncio.timeout(args.timeout), aiohttp.ClientSession() as http:
            client = RegistryClient(http, repo.registry, credentials=creds, transport=how)
            config = await client.push_blob(repo, EMPTY_CONFIG, FLUX_CONFIG)
            layer = await client.push_blob(repo, layer_data, FLUX_CONTENT)
            manifest = image_manifest(config, [layer], meta)
            pushed = await client.push_manifest(repo, tag, manifest, OCI_MANIFEST)
    except TimeoutError as e:
        raise CommandError(f"pushing to {repo}: not done within {args.timeout:g}s") from e
    except OciError as e:
        raise CommandError(f"pushing to {repo}: {e}") from e
    print(f"✔ artifact successfully pushed to {OCI_SCHEME}{repo}:{tag}@{pushed.digest}")
    print(pushed.digest)
    return 0
