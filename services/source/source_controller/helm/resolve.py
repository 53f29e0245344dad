"""HelmChart from a HelmRepository, pure step: pick the chart version for spec.version, as Flux's GetChartVersion does."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from gitops_mesh.semver import InvalidConstraint, InvalidVersion, best_match, parse_constraint, parse_version
from source_controller.helm.errors import InvalidChartReference
from source_controller.helm.index import ChartVersion, IndexFile

#: How many versions a "not found" message lists before it says how many more there are.
SHOWN_VERSIONS = 10
_EPOCH = datetime.min.replace(tzinfo=UTC)


def resolve(index: IndexFile | Mapping[str, Sequence[ChartVersion]], chart: str, version: str = "*") -> ChartVersion:
    """The entry of ``chart`` that ``version`` (an exact version or a semver range) selects."""
    entries = index.entries if isinstance(index, IndexFile) else index
    wanted = version.strip() or "*"
    versions = entries.get(chart)
    if versions is None:
        close = difflib.get_close_matches(chart, list(entries), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InvalidChartReference(f"no chart named {chart!r} in the repository index{hint}")
    if not versions:
        raise InvalidChartReference(f"no chart version found for {chart}-{wanted}: the index lists no versions")
    if wanted != "*":
        for cv in versions:
            if cv.version == wanted:
                return cv
    try:
        constraint = parse_constraint(wanted)
    except InvalidConstraint as e:
        raise InvalidChartReference(f"invalid version range {wanted!r} for chart {chart}: {e}") from e
    best = best_match(constraint, (cv.version for cv in versions))
    if best is None:
        raise InvalidChartReference(f"no chart version found for {chart}-{wanted} (available: {available(versions)})")
    target = parse_version(best)
    ties = [cv for cv in versions if _same_version(cv.version, target)]
    return max(ties, key=_created)


def available(versions: Sequence[ChartVersion], shown: int = SHOWN_VERSIONS) -> str:
    """``1.2.0, 1.1.0, … and 12 more``: the newest few of an index's versions, for messages."""
    names = [cv.version for cv in versions[:shown]]
    more = len(versions) - len(names)
    return ", ".join(names) + (f", … and {more} more" if more > 0 else "")


def _same_version(text: str, target: object) -> bool:
    try:
        return parse_version(text) == target
    except InvalidVersion:
        return False


def _created(cv: ChartVersion) -> datetime:
    try:
        created = datetime.fromisoformat(cv.created)
    except ValueError:
        return _EPOCH
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)
