"""S3 listing by key ranges, pure: where to cut a bucket's keys so its pages can be asked for at once, and
how each range's pages are read back into one ordered listing.

A ListObjectsV2 page answers one question at a time (its continuation token is in the page before), so a
listing of 10,000 keys is ten round trips in a row. ``StartAfter`` lets a client ask for the keys after any
key it names, and general-purpose S3 buckets (and MinIO, SeaweedFS, Ceph RGW) list keys in UTF-8 binary
order; so the keys of the previous listing, cut every :data:`PAGE_KEYS` keys, give ranges
``(start_i, start_i+1]`` whose first pages can all be asked for at once. Nothing is assumed about what is
in the bucket now: the ranges cover the whole key space, a range that grew is read on with its
continuation token until it passes its bound, and keys past the bound are the next range's. Python's
``str`` order is code point order, which is UTF-8 byte order, so comparisons here are S3's.

What is not assumed either is the server's order: every page is checked to hold keys in strictly
increasing order after its range's start; a server that does not sort (S3 Express directory buckets) or
ignores ``StartAfter`` is found out (:class:`RangesUnusable`) and the caller lists page by page instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from source_controller.objectstore.index import Listed

#: Keys per page S3 returns at most (and its default); a range is one page when nothing changed.
PAGE_KEYS = 1000


class RangesUnusable(ValueError):
    """The server's pages are not in key order, or ignore ``StartAfter``: list page by page."""


@dataclass(frozen=True, slots=True)
class KeyRanges:
    """Range ``i`` holds the keys after ``starts[i]`` (from the first key when None) up to and including
    ``starts[i + 1]`` (to the end for the last range)."""

    starts: tuple[str | None, ...]

    def bound(self, i: int) -> str | None:
        return self.starts[i + 1] if i + 1 < len(self.starts) else None

    def __len__(self) -> int:
        return len(self.starts)


def learn(keys: Sequence[str], per_range: int = PAGE_KEYS) -> KeyRanges:
    """Ranges of ``per_range`` keys over ``keys`` (a listing, in the server's order): each page ends on a
    bound while the bucket is unchanged, and the last range is never empty unless the listing is."""
    return KeyRanges((None, *(keys[i] for i in range(per_range - 1, len(keys) - 1, per_range))))


@dataclass(slots=True)
class RangeRead:
    """One range being read page by page: what it kept so far, and whether it is complete."""

    start: str | None
    bound: str | None
    objects: list[Listed] = field(default_factory=list)
    pages: int = 0
    done: bool = False

    def take(self, page: Sequence[Listed], truncated: bool) -> None:
        """Keep a page's keys up to the bound; complete at the bound or on the last page.

        Raises RangesUnusable when a key is not after the one before it (or after the range's start).
        """
        self.pages += 1
        last = self.objects[-1].key if self.objects else self.start
        for obj in page:
            if last is not None and not obj.key > last:
                raise RangesUnusable(f"key '{obj.key[:200]}' is listed after '{last[:200]}'")
            if self.bound is not None and obj.key > self.bound:
                self.done = True
                return
            self.objects.append(obj)
            last = obj.key
        self.done = not truncated or (self.bound is not None and last == self.bound)


def assemble(reads: Sequence[RangeRead]) -> list[Listed]:
    """The ranges' keys in order, as one listing (each range kept only keys within its bounds)."""
    out: list[Listed] = []
    for read in reads:
        out.extend(read.objects)
    return out


@dataclass(frozen=True, slots=True)
class RangedListing:
    """A listing and what the next one can be asked with.

    ``objects`` is None when every page was byte for byte the one the previous listing read with the same
    ranges (``unchanged``): the listing is the previous one, and nothing was parsed. ``ranges`` are the
    ranges to ask for next time (None: the server cannot be listed by ranges; list page by page).
    ``digests`` are the SHA-256 of each range's page, kept only when this listing was read with ``ranges``
    themselves and each range was one page - the only case in which equal pages next time mean an equal
    listing.
    """

    objects: list[Listed] | None
    ranges: KeyRanges | None
    digests: tuple[bytes, ...] | None = None

    @property
    def unchanged(self) -> bool:
        return self.objects is None


def next_listing(
    objects: list[Listed],
    used: KeyRanges | None,
    reads: Sequence[RangeRead],
    digests: Sequence[bytes],
    per_range: int = PAGE_KEYS,
) -> RangedListing:
    """What a listing read with ``used`` ranges (``reads``, one per range, ``digests`` of their first pages)
    leaves for the next one: the ranges learnt from it, and the digests when they hold for those ranges."""
    learnt = learn([o.key for o in objects], per_range)
    single = used is not None and len(reads) == len(used) and all(r.pages == 1 for r in reads)
    return RangedListing(objects, learnt, tuple(digests) if single and learnt == used else None)
