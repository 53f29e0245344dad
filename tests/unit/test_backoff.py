"""backoff: exponential growth, the cap, the jitter range, reset, and the shapes its callers rely on."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mesh.backoff import NO_JITTER, Backoff, delay, jittered


def test_without_jitter_delays_double_from_initial_to_the_cap() -> None:
    waits = [delay(n, initial=0.75, cap=900.0, factor=2.0, jitter=NO_JITTER) for n in range(14)]
    assert waits[:5] == [0.75, 1.5, 3.0, 6.0, 12.0]
    assert waits[10] == 768.0
    assert waits[11:] == [900.0, 900.0, 900.0]


def test_a_huge_attempt_count_is_the_cap_not_an_overflow() -> None:
    assert delay(100_000, initial=0.001, cap=10.0, factor=2.0, jitter=NO_JITTER) == 10.0
    assert delay(100_000, initial=0.2, cap=5.0, factor=2.0, jitter=(0.0, 0.5)) == 5.0


def test_a_negative_attempt_counts_as_the_first() -> None:
    assert delay(-1, initial=1.0, cap=10.0, factor=2.0, jitter=NO_JITTER) == 1.0


@given(
    attempt=st.integers(min_value=0, max_value=200),
    initial=st.floats(min_value=0.001, max_value=10.0),
    cap=st.floats(min_value=0.001, max_value=1000.0),
    factor=st.floats(min_value=1.0, max_value=4.0),
    low=st.floats(min_value=-0.9, max_value=0.0),
    high=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_delay_lies_in_the_jittered_band_of_its_capped_base(
    attempt: int, initial: float, cap: float, factor: float, low: float, high: float, seed: int
) -> None:
    base = min(cap, initial * factor**attempt)
    wait = delay(attempt, initial=initial, cap=cap, factor=factor, jitter=(low, high), rng=random.Random(seed))
    assert wait <= cap, "the cap holds after the jitter too"
    assert base * (1 + low) * (1 - 1e-12) <= wait <= min(cap, base * (1 + high)) * (1 + 1e-12)


def test_jitter_spreads_over_the_whole_range_and_only_it() -> None:
    rng = random.Random(3)
    down = [jittered(10.0, (-0.2, 0.0), rng=rng) for _ in range(2000)]
    assert all(8.0 <= v <= 10.0 for v in down)
    assert min(down) < 8.1
    assert max(down) > 9.9
    both = [jittered(300.0, (-0.1, 0.1), rng=rng) for _ in range(2000)]
    assert all(270.0 <= v <= 330.0 for v in both)
    assert min(both) < 275.0
    assert max(both) > 325.0
    assert jittered(7.0, NO_JITTER) == 7.0


def test_the_same_seed_gives_the_same_delays() -> None:
    def run(seed: int) -> list[float]:
        b = Backoff(initial=0.2, cap=10.0, factor=2.0, jitter=(-0.2, 0.0), rng=random.Random(seed))
        return [b.next() for _ in range(8)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_backoff_grows_jittered_upwards_and_is_capped() -> None:
    """The informer's shape (client-go's reflector): 0.2 s doubling to 5 s, each wait stretched up to +50%."""
    b = Backoff(initial=0.2, cap=5.0, factor=2.0, jitter=(0.0, 0.5))
    waits = [b.next() for _ in range(10)]
    assert 0.2 <= waits[0] <= 0.3
    assert 0.4 <= waits[1] <= 0.6
    assert all(w <= 5.0 for w in waits)
    assert waits[-1] == 5.0, "base 5 s stretched upwards is capped back to 5 s"
    assert b.attempts == 10


def test_backoff_shrinks_by_up_to_a_fifth_when_asked() -> None:
    """The bus's shape: 0.2 s doubling to the cap, each wait 80-100% of its step."""
    b = Backoff(initial=0.2, cap=1.0, factor=2.0, jitter=(-0.2, 0.0))
    waits = [b.next() for _ in range(6)]
    steps = [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert all(0.8 * s <= w <= s for w, s in zip(waits, steps, strict=True))


def test_reset_starts_again_from_initial() -> None:
    b = Backoff(initial=1.0, cap=100.0, factor=3.0, jitter=NO_JITTER)
    assert [b.next() for _ in range(4)] == [1.0, 3.0, 9.0, 27.0]
    b.reset()
    assert b.attempts == 0
    assert b.next() == 1.0


@pytest.mark.parametrize(
    ("initial", "cap", "factor"),
    [(0.0, 1.0, 2.0), (-1.0, 1.0, 2.0), (1.0, 0.0, 2.0), (1.0, 10.0, 0.5)],
)
def test_backoff_rejects_spinning_or_shrinking(initial: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError, match="need initial > 0"):
        Backoff(initial=initial, cap=cap, factor=factor, jitter=NO_JITTER)
