"""The Helm adapter's own errors, each carrying Flux's reason for the HelmRepository / HelmChart conditions."""

# GitopsMeshError
# ├── TransientError
# │   ├── RepositoryFetchFailed     reason Failed: unreachable, TLS, timeout, non-200, index not found
# │   │   └── RepositoryAuthFailed  reason AuthenticationFailed: the server answered 401 / 403
# │   ├── InvalidIndex              reason IndexationFailed: malformed YAML, empty, no apiVersion, over the cap
# │   ├── ChartPullError            reason ChartPullError: download failed, too large, not a chart
# │   │   ├── ChartDigestMismatch   the bytes are not the ones the index announced
# │   │   └── CorruptChart          not a gzip'd tar, no Chart.yaml, an unsafe entry (a link, a path out, a cap)
# │   ├── DependencyBuildError      reason DependencyBuildError: ``helm dependency build`` failed
# │   └── ChartPackageError         reason ChartPackageError: ``helm package`` failed or timed out
# └── TerminalError
#     ├── InvalidRepositoryAuth     reason AuthenticationFailed: the Secret lacks what the repository needs
#     ├── InvalidChartReference     reason InvalidChartReference: no such chart, no matching version, bad range
#     ├── MetadataPatchError        reason MetadataPatchError: the chart version cannot take build metadata
#     └── ValuesFilesError          reason ValuesFilesError: a values file is missing, escapes, or is not a map
#
# Terminal ones are Flux's "persistent build errors" (Stalled until the spec changes); a new chart version
# in the repository changes the HelmRepository's revision, which re-triggers the HelmChart anyway.

from __future__ import annotations

from gitops_mesh.errors import TerminalError, TransientError


class RepositoryFetchFailed(TransientError):
    """The repository index or a chart could not be downloaded now."""

    reason = "Failed"

    def __init__(self, message: str, *, url: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        #: the URL with credentials and query removed, safe to show
        self.url = url
        self.status = status


class RepositoryAuthFailed(RepositoryFetchFailed):
    """The server refused the credentials, or wanted some and got none."""

    reason = "AuthenticationFailed"


class InvalidIndex(TransientError):
    """The repository's index.yaml is not a usable Helm index; the server may publish a good one later."""

    reason = "IndexationFailed"


class ChartPullError(TransientError):
    """The chart archive could not be fetched, or what was fetched is not the chart the index announced."""

    reason = "ChartPullError"


class ChartDigestMismatch(ChartPullError):
    """The downloaded archive's sha256 is not the digest in the index."""

    def __init__(self, *, chart: str, url: str, expected: str, got: str) -> None:
        super().__init__(f"chart {chart} from {url}: digest mismatch: index says sha256:{expected}, got sha256:{got}")
        self.expected = expected
        self.got = got


class CorruptChart(ChartPullError):
    """The archive is not a gzip-compressed tar holding ``<chart>/Chart.yaml``, or holds an unsafe entry.

    When the archive reader refused it, ``__cause__`` is its :class:`~gitops_mesh.artifacts.UnsafeArchive`
    (naming the entry).
    """


class DependencyBuildError(TransientError):
    """Resolving or fetching the chart's dependencies failed."""

    reason = "DependencyBuildError"


class ChartPackageError(TransientError):
    """Packaging the chart with helm failed."""

    reason = "ChartPackageError"


class InvalidRepositoryAuth(TerminalError):
    """The credentials Secret is unusable as it is (a username without a password, half a key pair)."""

    reason = "AuthenticationFailed"


class InvalidChartReference(TerminalError):
    """The chart name, version range or path cannot be satisfied by the source as it is."""

    reason = "InvalidChartReference"


class MetadataPatchError(TerminalError):
    """The chart's version cannot be given the build metadata a reconcile strategy or values files ask for."""

    reason = "MetadataPatchError"


class ValuesFilesError(TerminalError):
    """A values file is missing (and not ignorable), outside the source, or not a YAML mapping."""

    reason = "ValuesFilesError"
