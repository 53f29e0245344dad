"""The one shape every benchmark reports: a measure, our figure, the target, and what we compare against."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Measure:
    suite: str
    measure: str
    ours: float
    unit: str
    #: e.g. "<= 1.5" or ">= 2000"; empty when there is no target, only a figure to watch
    target: str = ""
    #: what the figure is compared with (a baseline run in the same process, Flux's published figure, ...)
    anchor: str = ""

    def met(self) -> bool | None:
        if not self.target:
            return None
        op, _, value = self.target.partition(" ")
        bound = float(value)
        return self.ours <= bound if op == "<=" else self.ours >= bound


def emit(measures: list[Measure], extra: dict[str, object] | None = None) -> None:
    """Print the suite's results as one JSON document on stdout (the harness collects it)."""
    doc = {"measures": [{**asdict(m), "met": m.met()} for m in measures], "details": extra or {}}
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest sample with at least p% of samples at or below it (p100 = max); NaN if none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
