"""Dev tooling, the local stack: where the checkout and ``.stack`` are, and the addresses ``make stack-up`` wrote."""

from __future__ import annotations

import os
from pathlib import Path

#: The checkout: this package is only ever used from it (installed editable).
ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("STACK_DIR", ROOT / ".stack"))
STACK_SCRIPT = ROOT / "deploy" / "local" / "stack.sh"


class StackNotUp(RuntimeError):
    """The stack's env file is missing: ``make stack-up`` has not run (or ``make stack-down`` did)."""


def read_stack_env(path: Path = STACK_DIR / "env") -> dict[str, str]:
    """Parse the ``export KEY=VALUE`` lines ``make stack-up`` writes; StackNotUp when there are none to read."""
    if not path.exists():
        raise StackNotUp(f"{path} is missing: the local stack is not up; run `make stack-up` (make test does)")
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return env
