"""The chart version a ``chartRef`` to an OCIRepository or ExternalArtifact releases: the digest appended (pure).

Flux's helm-controller (``mutateChartWithSourceRevision``) appends the first 12 hex digits of the source
artifact's digest to the chart version as semver build metadata (``6.6.1+0cc9a8446c95``) and records the
whole digest in ``status.lastAttemptedRevisionDigest`` and in each new release's history snapshot
(``ociDigest``). A new digest is then a new chart version: the release goes out of sync and is upgraded,
even when the tag and Chart.yaml's version are the same (a tag pushed again with other content).

The source's revision is ``<tag>@<algo>:<hex>`` or ``<algo>:<hex>``. When the tag is a semantic version
(Helm writes ``+`` as ``_`` in tags) it must equal the chart's version, build metadata aside. An
ExternalArtifact whose revision has no ``:`` (a plain version) is released as its chart says.

One deviation: for a tag that is not a semantic version (``latest@sha256:...``) Flux records the whole
revision as the digest; the digest alone is recorded here, as for every other revision.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

from gitops_mesh.errors import TransientError
from gitops_mesh.semver import InvalidVersion, parse_version

OCIREPOSITORY: Final = "OCIRepository"
EXTERNAL_ARTIFACT: Final = "ExternalArtifact"
#: Flux's Ready reason when the version cannot be made (its ChartMutateError).
CHART_MUTATE_ERROR: Final = "ChartMutateError"
#: hex digits of the digest appended (Flux's extractDigestSubString)
SHORT_DIGEST: Final = 12


class ChartMutateError(TransientError):
    """The artifact's revision and the chart's version do not go together (Flux retries, as here)."""

    reason = CHART_MUTATE_ERROR


@dataclass(frozen=True, slots=True)
class ChartRevision:
    """What is released: the chart version (the digest appended) and the artifact digest ("" when none)."""

    version: str
    digest: str = ""


def tracks_digest(kind: str, revision: str) -> bool:
    """Flux's isSourceWithRevisionDigest: an OCIRepository always, an ExternalArtifact whose revision has a digest."""
    return kind == OCIREPOSITORY or (kind == EXTERNAL_ARTIFACT and ":" in revision)


def _short(revision: str, digest: str) -> str:
    algo, sep, hex_digits = digest.partition(":")
    if not sep or not algo or ":" in hex_digits or len(hex_digits) < SHORT_DIGEST:
        raise ChartMutateError(f"invalid artifact revision {revision}")
    return hex_digits[:SHORT_DIGEST]


def chart_revision(kind: str, revision: str, chart_version: str) -> ChartRevision:
    """The version to release for a chart of ``chart_version`` from a ``kind`` artifact of ``revision``.

    A HelmChart's chart, or an ExternalArtifact without a digest, keeps its version and has no digest.
    """
    if not tracks_digest(kind, revision):
        return ChartRevision(chart_version)
    try:
        version = parse_version(chart_version)
    except InvalidVersion:
        raise ChartMutateError(f"invalid chart version {chart_version}") from None
    tag, at, digest = revision.rpartition("@")
    if not at:
        tag, digest = "", revision
    if tag:
        try:
            tagged = parse_version(tag.replace("_", "+"))
        except InvalidVersion:
            tagged = None
        if tagged is not None and tagged != version:  # build metadata is not compared, as semver's Equal
            raise ChartMutateError(f"artifact revision {tag} does not match chart version {chart_version}")
    short = _short(revision, digest)
    return ChartRevision(str(dataclasses.replace(version, build=short)), digest)


__all__ = [
    "CHART_MUTATE_ERROR",
    "EXTERNAL_ARTIFACT",
    "OCIREPOSITORY",
    "ChartMutateError",
    "ChartRevision",
    "chart_revision",
    "tracks_digest",
]
