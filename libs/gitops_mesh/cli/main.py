"""The ``gitops-mesh`` entry point: the subcommand tree, dispatch, and the exit codes every command shares.

Each command module offers ``register(subparsers)``, which adds its parser and sets ``run`` (an async function
of the parsed arguments returning an exit code). Errors a command expects are :class:`CommandError`: printed
on stderr as ``✗ message``, exit 1; wrong usage is argparse's exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from gitops_mesh.cli import push
from gitops_mesh.cli.errors import CommandError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gitops-mesh", description="Command line of gitops-mesh (Flux-compatible).")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    push.register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = asyncio.run(args.run(args))
        return code
    except CommandError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
