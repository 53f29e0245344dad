"""Helm charts in OCI registries, pure: where a HelmRepository of type oci points, which chart version the
registry's tags give for ``spec.version``, the tag a version is stored under, and the chart layer of a manifest.

Flux's rules (internal/helm/repository/oci_chart_repository.go over Helm's registry client):

* The chart lives at ``<spec.url>/<spec.chart>``; ``spec.url`` must be ``oci://host[:port][/path]``, anything
  else is ``URL scheme '<s>' in '<url>' is not supported``.
* A ``spec.version`` that is itself a version (strict semver, an optional ``v``) is pulled as that tag without
  listing tags. Otherwise the tags are listed; Helm keeps those that are strict semver once ``_`` is read as
  ``+`` (OCI tags cannot hold ``+``), newest first; an exact string match wins, else the newest version the
  range (default ``*``: the latest stable) accepts.
* A version's tag is the version with ``+`` written ``_`` (what ``helm push`` does).
* The manifest must carry the Helm chart layer (``application/vnd.cncf.helm.chart.content.v1.tar+gzip``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gitops_mesh.oci import InvalidReference, Manifest, Repository
from gitops_mesh.oci.reference import repository
from gitops_mesh.semver import InvalidConstraint, InvalidVersion, Version, parse_constraint, parse_version
from source_controller.helm.errors import ChartPullError, InvalidChartReference

OCI_SCHEME = "oci://"
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


class InvalidOciUrl(ValueError):
    """``spec.url`` of an OCI HelmRepository that cannot name a registry (Flux's URLInvalid)."""


@dataclass(frozen=True, slots=True)
class OciLocation:
    """``oci://registry/path`` split: the registry (host[:port]) and the path under it ("" at the root)."""

    registry: str
    path: str

    def chart(self, name: str) -> Repository:
        """The repository holding chart ``name``; InvalidChartReference when the name cannot be one."""
        if not name or "/" in name:
            raise InvalidChartReference(f"invalid chart name {name[:80]!r}: it must be one path component")
        try:
            return repository(self.registry, f"{self.path}/{name}" if self.path else name)
        except InvalidReference as e:
            raise InvalidChartReference(f"invalid chart reference {self.registry}/{self.path}/{name}: {e}") from e

    @property
    def url(self) -> str:
        return f"{OCI_SCHEME}{self.registry}" + (f"/{self.path}" if self.path else "")


def parse_oci_url(url: str) -> OciLocation:
    """Split an OCI HelmRepository's ``spec.url``; InvalidOciUrl in Flux's words when it is not one."""
    if not url.startswith(OCI_SCHEME):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        raise InvalidOciUrl(f"URL scheme '{scheme}' in '{url}' is not supported")
    rest = url.removeprefix(OCI_SCHEME).rstrip("/")
    host, _, path = rest.partition("/")
    if not host:
        raise InvalidOciUrl(f"invalid OCI registry URL: {url}")
    try:
        # A placeholder chart name checks the host and the path's components in one go.
        repository(host, f"{path}/chart" if path else "chart")
    except InvalidReference as e:
        raise InvalidOciUrl(f"invalid OCI registry URL '{url}': {e}") from e
    return OciLocation(host, path)


def _strict(text: str) -> Version | None:
    """Masterminds' StrictNewVersion: X.Y.Z[-pre][+build], no ``v``."""
    if text.startswith("v"):
        return None
    try:
        return parse_version(text)
    except InvalidVersion:
        return None


def exact_version(text: str) -> bool:
    """``spec.version`` names one version (Flux's ParseVersion: strict semver, a ``v`` allowed): no tag listing."""
    try:
        parse_version(text)
    except InvalidVersion:
        return False
    return True


def tag_versions(tags: Iterable[str]) -> list[str]:
    """Helm's view of a repository's tags: ``_`` read as ``+``, strict semver only, newest first."""
    parsed = [(v, t.replace("_", "+")) for t in tags if (v := _strict(t.replace("_", "+"))) is not None]
    parsed.sort(key=lambda pair: pair[0], reverse=True)
    return [text for _, text in parsed]


def select_version(tags: Iterable[str], wanted: str) -> str:
    """The chart version the registry's tags give for ``wanted`` (an exact tag, or a range; "" and ``*`` are the
    latest stable); ChartPullError as Flux's when none does, InvalidChartReference for a malformed range."""
    versions = tag_versions(tags)
    if not versions:
        raise ChartPullError("unable to locate any tags in provided repository")
    wanted = wanted.strip()
    if wanted and wanted in versions:
        return wanted
    try:
        constraint = parse_constraint("*" if wanted in ("", "*") else wanted)
    except InvalidConstraint as e:
        raise InvalidChartReference(f"invalid version range {wanted!r}: {e}") from e
    for text in versions:  # newest first
        if constraint.check(parse_version(text)):
            return text
    raise ChartPullError(f"could not locate a version matching provided version string {wanted or '*'}")


def tag_of(version: str) -> str:
    """The OCI tag a chart version is pushed under (``+`` is not allowed in tags)."""
    return version.replace("+", "_")


def chart_layer(manifest: Manifest, shown: str) -> int:
    """The index of the Helm chart layer in ``manifest``; ChartPullError naming what it is instead."""
    for i, layer in enumerate(manifest.layers):
        if layer.media_type == HELM_CHART_MEDIA_TYPE:
            return i
    got = ", ".join(sorted({layer.media_type for layer in manifest.layers})) or "no layers"
    raise ChartPullError(
        f"{shown} is not a Helm chart: no layer of media type {HELM_CHART_MEDIA_TYPE} "
        f"(config {manifest.config.media_type}; layers: {got})"
    )
