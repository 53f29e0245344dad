"""Kube access, retry pacing: a jittered exponential backoff for watches and leader election."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * factor**n`` capped at ``cap``, each stretched by up to ``jitter`` of itself.

    The jitter keeps many informers (or replicas) from reconnecting to a restarted apiserver in lockstep.
    """

    def __init__(self, *, initial: float = 0.2, cap: float = 5.0, factor: float = 2.0, jitter: float = 0.5) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * self.factor**self._attempt)
        self._attempt += 1
        return min(self.cap, base * (1.0 + self.jitter * random.random()))

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
