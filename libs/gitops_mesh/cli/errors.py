"""What a command reports as its failure (``✗ message`` on stderr, exit 1) rather than a traceback."""

from __future__ import annotations


class CommandError(Exception):
    pass
