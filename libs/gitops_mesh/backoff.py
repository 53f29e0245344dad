"""Retry pacing for the whole runtime (bottom layer, beside errors): one jittered exponential backoff.

Every wait before trying again is ``initial * factor**attempt``, capped at ``cap``, then scaled by a
factor drawn uniformly from ``[1 + jitter[0], 1 + jitter[1]]`` and capped again. The jitter is a range
rather than one number because the callers keep the shapes they were written with (client-go stretches
waits upwards, Flux's interval jitter goes both ways, the bus shrinks them by up to a fifth); the point
of any of them is that many clients do not retry in lock-step after an outage.

:func:`delay` is the pure arithmetic (for callers that keep the attempt count themselves, such as the
work queue per key or a delivery record); :class:`Backoff` counts attempts for a loop that retries.
"""

from __future__ import annotations

import random

#: ``(low, high)``: each delay is multiplied by ``1 + uniform(low, high)``; ``(0.0, 0.0)`` is no jitter.
Jitter = tuple[float, float]

NO_JITTER: Jitter = (0.0, 0.0)


def jittered(value: float, jitter: Jitter, *, rng: random.Random | None = None) -> float:
    """``value`` times a factor drawn uniformly from ``[1 + jitter[0], 1 + jitter[1]]``."""
    low, high = jitter
    if low == high == 0.0:
        return value
    return value * (1.0 + (rng or random).uniform(low, high))


def delay(
    attempt: int,
    *,
    initial: float,
    cap: float,
    factor: float,
    jitter: Jitter,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first): see the module docstring."""
    try:
        base = min(cap, initial * factor ** max(attempt, 0))
    except OverflowError:  # far past any cap: factor**attempt no longer fits a float
        base = cap
    return min(cap, jittered(base, jitter, rng=rng))


class Backoff:
    """Successive :func:`delay` values for one retrying loop; :meth:`reset` after a success."""

    def __init__(
        self, *, initial: float, cap: float, factor: float, jitter: Jitter, rng: random.Random | None = None
    ) -> None:
        if not (initial > 0 and cap > 0 and factor >= 1):
            # A zero wait would spin; a factor below one would retry faster the longer something fails.
            raise ValueError(f"need initial > 0, cap > 0, factor >= 1; got {initial=} {cap=} {factor=}")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self._attempt = 0

    def next(self) -> float:
        """The wait before the next try; counts one more failed attempt."""
        wait = delay(
            self._attempt, initial=self.initial, cap=self.cap, factor=self.factor, jitter=self.jitter, rng=self._rng
        )
        self._attempt += 1
        return wait

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        """Failed attempts since the last :meth:`reset`."""
        return self._attempt
