"""S3 listing by key ranges, pure: ranges learnt from a listing, each range read back within its bounds, and
when a listing's page digests may stand for it next time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from source_controller.objectstore.index import Listed
from source_controller.objectstore.s3_ranges import (
    KeyRanges,
    RangeRead,
    RangesUnusable,
    assemble,
    learn,
    next_listing,
)


def objs(*keys: str) -> list[Listed]:
    return [Listed(k, f"e-{k}", 1) for k in keys]


def pages(keys: list[str], after: str | None, size: int) -> list[list[Listed]]:
    """What a sorted server answers from ``after`` on, ``size`` keys a page."""
    rest = [k for k in sorted(keys) if after is None or k > after]
    return [objs(*rest[i : i + size]) for i in range(0, len(rest), size)] or [[]]


def read_all(keys: list[str], ranges: KeyRanges, size: int) -> tuple[list[Listed], list[RangeRead]]:
    """Each range read as :class:`S3Bucket` reads it: pages from its start until it is done."""
    reads = []
    for i in range(len(ranges)):
        read = RangeRead(ranges.starts[i], ranges.bound(i))
        answers = pages(keys, ranges.starts[i], size)
        for n, page in enumerate(answers):
            read.take(page, truncated=n + 1 < len(answers))
            if read.done:
                break
        assert read.done
        reads.append(read)
    return assemble(reads), reads


def test_ranges_cut_every_page_and_the_last_is_never_empty() -> None:
    keys = [f"k{i:03d}" for i in range(10)]
    assert learn(keys, 3).starts == (None, "k002", "k005", "k008")
    assert learn(keys[:9], 3).starts == (None, "k002", "k005")  # 9 keys: three full ranges, no empty fourth
    assert learn([], 3).starts == (None,)
    ranges = learn(keys, 3)
    assert [ranges.bound(i) for i in range(len(ranges))] == ["k002", "k005", "k008", None]


def test_an_unchanged_bucket_is_one_page_per_range_and_its_digests_hold() -> None:
    keys = [f"k{i:03d}" for i in range(10)]
    ranges = learn(keys, 3)
    listed, reads = read_all(keys, ranges, 3)
    assert [o.key for o in listed] == keys
    assert all(r.pages == 1 for r in reads)
    after = next_listing(listed, ranges, reads, [b"d"] * len(reads), 3)
    assert after.ranges == ranges
    assert after.digests == (b"d",) * len(reads)


def test_a_range_that_grew_is_read_on_and_the_digests_are_not_kept() -> None:
    old = [f"k{i:03d}" for i in range(10)]
    ranges = learn(old, 3)
    new = [*old, "k0035", "k0036"]  # two keys inside the second range
    listed, reads = read_all(new, ranges, 3)
    assert [o.key for o in listed] == sorted(new)
    assert reads[1].pages == 2
    after = next_listing(listed, ranges, reads, [b"d"] * len(reads), 3)
    assert after.digests is None  # a page more: equal first pages would not mean an equal listing
    assert after.ranges == learn(sorted(new), 3)


def test_a_deleted_bound_ends_its_range_at_the_next_key() -> None:
    old = [f"k{i:03d}" for i in range(10)]
    ranges = learn(old, 3)
    new = [k for k in old if k != "k005"]  # the second range's bound
    listed, _ = read_all(new, ranges, 3)
    assert [o.key for o in listed] == new  # k006 is the third range's, listed once


def test_a_key_out_of_order_or_before_the_start_makes_ranges_unusable() -> None:
    read = RangeRead("k002", "k005")
    with pytest.raises(RangesUnusable):
        read.take(objs("k001"), truncated=True)  # the server ignored StartAfter
    read = RangeRead(None, None)
    with pytest.raises(RangesUnusable):
        read.take(objs("b", "a"), truncated=False)  # not sorted
    read = RangeRead(None, None)
    read.take(objs("a", "b"), truncated=True)
    with pytest.raises(RangesUnusable):
        read.take(objs("b"), truncated=False)  # a key listed twice


def test_a_first_listing_without_ranges_keeps_no_digests() -> None:
    listed = objs("a", "b")
    after = next_listing(listed, None, [], [], 3)
    assert after.ranges == KeyRanges((None,))
    assert after.digests is None


_KEY = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FFF), min_size=1, max_size=6)


@given(
    old=st.lists(_KEY, max_size=40, unique=True),
    added=st.lists(_KEY, max_size=15),
    removed=st.sets(st.integers(0, 39)),
    size=st.integers(1, 7),
)
def test_ranges_from_any_earlier_listing_list_exactly_the_bucket_now(
    old: list[str], added: list[str], removed: set[int], size: int
) -> None:
    """Whatever changed since the ranges were learnt, reading them gives the bucket's sorted keys, once each."""
    ranges = learn(sorted(old), size)
    now = sorted({k for i, k in enumerate(sorted(old)) if i not in removed} | set(added))
    listed, _ = read_all(now, ranges, size)
    assert [o.key for o in listed] == now
    # UTF-8 byte order, as S3 lists: Python's str order is the same.
    assert now == sorted(now, key=lambda k: k.encode())
