"""Helm's release storage read directly (the Secret driver), Flux's names and history snapshots, and unlock.

A HelmRelease's status is read from the ``sh.helm.release.v1.<name>.v<N>`` Secrets themselves, with one
LIST and no helm subprocess, so reporting a release costs a request, not a process. The digests written
to ``status.history`` are Flux's: ``digest`` is the SHA-256 of Go's JSON encoding of helm-controller's
release Observation, reproduced byte for byte (field order, HTML escaping, float formatting), so a
history written by Flux and one written here agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import orjson
import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.errors import NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.health import ObjectRef
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.kube_yaml import ManifestLoader
from gitops_mesh.timestamps import rfc3339

#: Helm's own limit on a release name; Flux shortens longer names (internal/release/name.go).
MAX_RELEASE_NAME: Final = 53
_SHORT_HASH: Final = 12

SECRET_TYPE: Final = "helm.sh/release.v1"
OWNER: Final = "helm"
#: Labels Helm's storage owns; any other label on a release Secret is the release's own (``--labels``).
SYSTEM_LABELS: Final = frozenset({"name", "owner", "status", "version", "createdAt", "modifiedAt"})

#: ``data.release`` as the API returns it (base64 of Helm's base64): an object is at most 1.5 MiB in etcd.
MAX_ENCODED_BYTES: Final = 4 << 20
#: The release JSON after gunzip: a chart at Flux's 10 MiB --helm-chart-max-size, base64'd inside the JSON,
#: plus a manifest within the kustomize-controller's 64 MiB manifest cap. A gzip bomb stops here.
MAX_RELEASE_BYTES: Final = 64 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b\x08"
#: A release description Helm keeps (pkg/action MaxDescriptionLength).
MAX_DESCRIPTION: Final = 256
#: The rendered manifest a health check reads (a chart's templates, tenant-written): Helm stores what the
#: apiserver took, so a manifest past these is refused rather than parsed.
MANIFEST_LIMITS: Final = tenant_yaml.YamlLimits(max_bytes=16 << 20, max_nodes=2_000_000, max_depth=256)
#: Objects of one release looked at by a health check (Flux's inventory has no cap; a GET each is the cost).
MAX_MANIFEST_OBJECTS: Final = 5000
_INFLATE_STEP: Final = 1 << 20


class Status(StrEnum):
    """Helm's release statuses (pkg/release/common)."""

    UNKNOWN = "unknown"
    DEPLOYED = "deployed"
    UNINSTALLED = "uninstalled"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    UNINSTALLING = "uninstalling"
    PENDING_INSTALL = "pending-install"
    PENDING_UPGRADE = "pending-upgrade"
    PENDING_ROLLBACK = "pending-rollback"


PENDING_STATUSES: Final = frozenset({Status.PENDING_INSTALL, Status.PENDING_UPGRADE, Status.PENDING_ROLLBACK})


class CorruptRelease(TransientError):
    """A release Secret that is not Helm's format or is over the caps; helm itself cannot read it either."""

    reason = "CorruptRelease"


class UnreadableManifest(TransientError):
    """A release manifest the health check cannot list objects from: not YAML, or over the caps."""

    reason = "UnreadableManifest"


# --- names --------------------------------------------------------------------------------------------------


def shorten_name(name: str) -> str:
    """Flux's ShortenName: past 53 characters, the first 40, '-', and 12 hex digits of the whole name's SHA-256."""
    if len(name) <= MAX_RELEASE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()
    return name[: MAX_RELEASE_NAME - _SHORT_HASH - 1] + "-" + digest[:_SHORT_HASH]


def _meta(hr: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = hr.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec_str(hr: Mapping[str, Any], key: str) -> str:
    spec = hr.get("spec")
    value = spec.get(key) if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) else ""


def release_name(hr: Mapping[str, Any]) -> str:
    """The Helm release name: spec.releaseName, else ``[<targetNamespace>-]<name>``, shortened as Flux does."""
    name = _spec_str(hr, "releaseName")
    if not name:
        target = _spec_str(hr, "targetNamespace")
        own = str(_meta(hr).get("name") or "")
        name = f"{target}-{own}" if target else own
    return shorten_name(name)


def target_namespace(hr: Mapping[str, Any]) -> str:
    """Where the release's objects go: spec.targetNamespace, else the HelmRelease's namespace."""
    return _spec_str(hr, "targetNamespace") or str(_meta(hr).get("namespace") or "")


def storage_namespace(hr: Mapping[str, Any]) -> str:
    """Where Helm's release Secrets live: spec.storageNamespace, else the target namespace.

    Flux's default is the HelmRelease's own namespace, but the helm CLI (one process per action) stores a
    release where it installs it, so a release in another target namespace is stored there; a storage
    namespace set apart from the target is refused (actions.check_storage). `helm list -n <target>` shows it.
    """
    return _spec_str(hr, "storageNamespace") or target_namespace(hr)


def secret_name(name: str, version: int) -> str:
    """The Secret driver's key for one version of a release."""
    return f"sh.helm.release.v1.{name}.v{version}"


# --- the release record ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Release:
    """One version of a release, as Helm stored it (the chart's files and templates are not kept)."""

    name: str
    namespace: str
    version: int
    status: str
    chart_name: str
    chart_version: str
    app_version: str
    #: the values the release was made with, as stored
    config: Mapping[str, Any]
    first_deployed: datetime | None
    last_deployed: datetime | None
    deleted: datetime | None
    description: str
    #: test hook name → {"lastStarted", "lastCompleted", "phase"} (times absent until the hook ran)
    test_hooks: Mapping[str, Mapping[str, str]]
    #: ``sha256:<hex>`` of the rendered manifest
    manifest_digest: str
    #: where the Secret lives (empty when decoded from bare data)
    storage_namespace: str = ""
    #: the release's own labels (``--labels``), not Helm's system labels
    labels: Mapping[str, str] = field(default_factory=dict)
    #: "ssa" or "csa" (Helm 4); empty for a release Helm 3 made, which applied client-side
    apply_method: str = ""
    #: Flux's Observation encoded up to its last field, hashed: ``ociDigest`` is appended per caller
    _observed: Any = field(default=None, repr=False, compare=False)
    #: the rendered manifest, parsed only when asked (:meth:`objects`): a reconcile reads every version
    _manifest: str = field(default="", repr=False, compare=False)

    def objects(self) -> list[ObjectRef]:
        """The release's objects (apiVersion, kind, namespace, name), in manifest order, each once.

        The manifest is a chart's rendering, so tenant YAML: parsed under :data:`MANIFEST_LIMITS`, at most
        :data:`MAX_MANIFEST_OBJECTS` objects, else :class:`UnreadableManifest`. An object without a
        namespace is in the release's (helm applies it there; a cluster-scoped kind's namespace is ignored
        by the health check). Hooks are not in the manifest, so they are never listed.
        """
        return manifest_objects(self._manifest, self.namespace)

    def manifest_documents(self) -> list[dict[str, Any]]:
        """The manifest's objects in full (``*List`` kinds flattened), for drift detection; same caps as :meth:`objects`."""
        return manifest_documents(self._manifest)

    @property
    def secret_name(self) -> str:
        return secret_name(self.name, self.version)

    @property
    def full_name(self) -> str:
        """``<namespace>/<name>.v<version>``, as Flux names a release in messages."""
        return f"{self.namespace}/{self.name}.v{self.version}"

    def digest(self, oci_digest: str = "") -> str:
        """Flux's release digest (Snapshot.digest): SHA-256 of the Observation's JSON, ociDigest included."""
        h = self._observed.copy() if self._observed is not None else hashlib.sha256(b"{")
        h.update((f',"ociDigest":{_go_string(oci_digest)}}}\n' if oci_digest else "}\n").encode())
        return "sha256:" + h.hexdigest()


def pending(r: Release) -> bool:
    """Left mid-action: a process that dies while Helm holds the lock leaves the release pending forever."""
    return r.status in PENDING_STATUSES


# --- decoding -------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CorruptRelease(f"release data is not base64: {e}") from None


def _gunzip(data: bytes) -> bytes:
    z = zlib.decompressobj(31)
    out = bytearray()
    try:
        chunk = z.decompress(data, _INFLATE_STEP)
        while True:
            out += chunk
            if len(out) > MAX_RELEASE_BYTES:
                raise CorruptRelease(f"release data inflates past {MAX_RELEASE_BYTES >> 20} MiB")
            if not z.unconsumed_tail:
                break
            chunk = z.decompress(z.unconsumed_tail, _INFLATE_STEP)
    except zlib.error as e:
        raise CorruptRelease(f"release data is not valid gzip: {e}") from None
    if not z.eof:
        raise CorruptRelease("release data is truncated gzip")
    return bytes(out)


def _release_json(secret_data: bytes | str) -> dict[str, Any]:
    """Helm's record from ``data.release``: base64 of the API, then Helm's base64, then (usually) gzip.

    Taken with or without the API's layer: gzip's magic and '{' are not base64 characters, so the layers
    cannot be mistaken for one another.
    """
    raw = secret_data.encode() if isinstance(secret_data, str) else bytes(secret_data)
    if len(raw) > MAX_ENCODED_BYTES:
        raise CorruptRelease(f"release data is over {MAX_ENCODED_BYTES >> 20} MiB")
    data = _b64(raw)
    if not (data.startswith(_GZIP_MAGIC) or data.lstrip().startswith(b"{")):
        data = _b64(data)
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data)
    elif len(data) > MAX_RELEASE_BYTES:
        raise CorruptRelease(f"release data is over {MAX_RELEASE_BYTES >> 20} MiB")
    try:
        rel = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise CorruptRelease(f"release data is not JSON: {e}") from None
    if not isinstance(rel, dict):
        raise CorruptRelease("release data is not a JSON object")
    return rel


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    """A Go time as Helm wrote it (RFC 3339, nanoseconds); Helm 3 wrote "" for a zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01T00:00:00"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CorruptRelease(f"release holds a malformed time {value[:40]!r}") from None


def _is_test_hook(hook: Mapping[str, Any]) -> bool:
    events = hook.get("events")
    return isinstance(events, list) and "test" in events


def _test_hooks(hooks: list[Any]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for hook in hooks:
        if not isinstance(hook, dict) or not _is_test_hook(hook):
            continue
        run = _obj(hook.get("last_run"))
        status: dict[str, str] = {}
        for key, wire in (("started_at", "lastStarted"), ("completed_at", "lastCompleted")):
            t = _time(run.get(key))
            if t is not None:
                status[wire] = rfc3339(t)
        if phase := _str(run.get("phase")):
            status["phase"] = phase
        found[_str(hook.get("name"))] = status
    return found


def _from_json(rel: dict[str, Any], *, storage_ns: str = "", labels: Mapping[str, str] | None = None) -> Release:
    info = _obj(rel.get("info"))
    meta = _obj(_obj(rel.get("chart")).get("metadata"))
    hooks = rel.get("hooks") if isinstance(rel.get("hooks"), list) else []
    version = rel.get("version")
    manifest = _str(rel.get("manifest"))
    return Release(
        name=_str(rel.get("name")),
        namespace=_str(rel.get("namespace")),
        version=version if isinstance(version, int) else 0,
        status=_str(info.get("status")) or Status.UNKNOWN.value,
        chart_name=_str(meta.get("name")),
        chart_version=_str(meta.get("version")),
        app_version=_str(meta.get("appVersion")),
        config=_obj(rel.get("config")),
        first_deployed=_time(info.get("first_deployed")),
        last_deployed=_time(info.get("last_deployed")),
        deleted=_time(info.get("deleted")),
        description=_str(info.get("description")),
        test_hooks=_test_hooks(hooks or []),
        manifest_digest="sha256:" + hashlib.sha256(manifest.encode()).hexdigest(),
        storage_namespace=storage_ns,
        labels=dict(labels or {}),
        apply_method=_str(rel.get("apply_method")),
        _observed=_observation_hash(rel, info, meta, hooks or []),
        _manifest=manifest,
    )


def _refs_of(doc: Any, namespace: str) -> list[ObjectRef]:
    """One document's objects: itself, or a ``kind: *List``'s items (helm's builder flattens lists)."""
    if not isinstance(doc, dict):
        return []
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str) or not kind or not api_version:
        return []
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        return [ref for item in doc["items"] if not isinstance(item, list) for ref in _refs_of(item, namespace)]
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return []
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return [ObjectRef(api_version, kind, ns if isinstance(ns, str) and ns else namespace, name)]


def _load_manifest(manifest: str) -> list[Any]:
    """A rendered release manifest's documents, parsed as tenant YAML under :data:`MANIFEST_LIMITS`, as Go reads them."""
    try:
        docs = tenant_yaml.load_all(manifest, what="release manifest", limits=MANIFEST_LIMITS, loader=ManifestLoader)
    except tenant_yaml.UnsafeYaml as e:
        raise UnreadableManifest(str(e)) from None
    except yaml.YAMLError as e:
        raise UnreadableManifest(f"release manifest: {tenant_yaml.problem(e)}") from None
    return docs


def manifest_objects(manifest: str, namespace: str) -> list[ObjectRef]:
    """The objects of a rendered release manifest (see :meth:`Release.objects`)."""
    docs = _load_manifest(manifest)
    found: dict[ObjectRef, None] = {}
    for doc in docs:
        for ref in _refs_of(doc, namespace):
            found[ref] = None
            if len(found) > MAX_MANIFEST_OBJECTS:
                raise UnreadableManifest(f"release manifest lists more than {MAX_MANIFEST_OBJECTS} objects")
    return list(found)


def manifest_documents(manifest: str) -> list[dict[str, Any]]:
    """The objects of a rendered release manifest in full, in order (see :meth:`Release.manifest_documents`)."""
    docs = _load_manifest(manifest)
    found: list[dict[str, Any]] = []
    pending = list(reversed(docs))
    while pending:
        doc = pending.pop()
        if not isinstance(doc, dict) or not _refs_of(doc, ""):
            continue
        if str(doc.get("kind")).endswith("List") and isinstance(doc.get("items"), list):
            pending.extend(reversed(doc["items"]))
            continue
        found.append(doc)
        if len(found) > MAX_MANIFEST_OBJECTS:
            raise UnreadableManifest(f"release manifest lists more than {MAX_MANIFEST_OBJECTS} objects")
    return found


def decode_release(secret_data: bytes | str, *, storage_namespace: str = "") -> Release:
    """A release from the Secret driver's ``data.release`` (bounded: a hostile Secret is CorruptRelease)."""
    return _from_json(_release_json(secret_data), storage_ns=storage_namespace)


def _secret_payload(secret: Mapping[str, Any]) -> str:
    data = secret.get("data")
    payload = data.get("release") if isinstance(data, Mapping) else None
    if not isinstance(payload, str):
        raise CorruptRelease(f"Secret {_meta(secret).get('name')} has no data.release")
    return payload


def _custom_labels(secret: Mapping[str, Any]) -> dict[str, str]:
    labels = _meta(secret).get("labels")
    if not isinstance(labels, Mapping):
        return {}
    return {str(k): str(v) for k, v in labels.items() if k not in SYSTEM_LABELS}


def decode_secret(secret: Mapping[str, Any]) -> Release:
    """A release from a whole Secret as the API returns it: its namespace and custom labels too."""
    return _from_json(
        _release_json(_secret_payload(secret)),
        storage_ns=str(_meta(secret).get("namespace") or ""),
        labels=_custom_labels(secret),
    )


async def release_history(kube: KubeClient, storage_namespace: str, name: str) -> list[Release]:
    """Every stored version of a release, newest first (what ``helm history`` lists)."""
    found = await kube.list("v1", "Secret", namespace=storage_namespace, label_selector=f"owner={OWNER},name={name}")
    releases = [decode_secret(s) for s in found.items]
    return sorted((r for r in releases if r.name == name), key=lambda r: r.version, reverse=True)


async def last_release(kube: KubeClient, storage_namespace: str, name: str) -> Release | None:
    """The newest version of a release, or None when Helm has none."""
    history = await release_history(kube, storage_namespace, name)
    return history[0] if history else None


# --- Flux's history snapshot ------------------------------------------------------------------------------------


def history_entry(
    r: Release, config_digest: str, *, oci_digest: str = "", action: str = "", test_hooks: bool | None = None
) -> dict[str, Any]:
    """Flux's ``status.history`` snapshot (api/v2 Snapshot) of one release version.

    ``test_hooks``: include ``testHooks`` (Flux records them once the test action ran); by default when
    any test hook has run.
    """
    entry: dict[str, Any] = {
        "apiVersion": "v2",
        "digest": r.digest(oci_digest),
        "name": r.name,
        "namespace": r.namespace,
        "version": r.version,
        "status": r.status,
    }
    if action:
        entry["action"] = action
    entry |= {"chartName": r.chart_name, "chartVersion": r.chart_version}
    if r.app_version:
        entry["appVersion"] = r.app_version
    entry |= {
        "configDigest": config_digest,
        "firstDeployed": rfc3339(r.first_deployed) if r.first_deployed else None,
        "lastDeployed": rfc3339(r.last_deployed) if r.last_deployed else None,
    }
    if r.deleted:
        entry["deleted"] = rfc3339(r.deleted)
    if test_hooks is None:
        test_hooks = any(h.get("phase") for h in r.test_hooks.values())
    if test_hooks:
        entry["testHooks"] = {name: dict(status) for name, status in r.test_hooks.items()}
    if oci_digest:
        entry["ociDigest"] = oci_digest
    return entry


# --- unlock ----------------------------------------------------------------------------------------------------


def encode_release(rel: Mapping[str, Any]) -> str:
    """Helm's storage encoding: JSON, gzip at best compression, base64 (then the API's own base64)."""
    helm = base64.b64encode(_gzip(orjson.dumps(rel)))
    return base64.b64encode(helm).decode()


def _gzip(data: bytes) -> bytes:
    """gzip at level 9, as Helm writes (gzip.BestCompression); header without a name or time."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return z.compress(data) + z.flush()


async def unlock(kube: KubeClient, r: Release) -> None:
    """Mark a release left pending by a killed process as failed, as Flux's Unlock does.

    Helm and Flux write "failed" with the description ``Release unlocked from stale '<status>' state``,
    the ``status`` label and a new ``modifiedAt``. The write is a PUT against the Secret's
    resourceVersion: if anything touched the release since it was read, Conflict is raised and nothing
    is overwritten. A release no longer pending (or gone) is left alone.
    """
    try:
        secret = await kube.get("v1", "Secret", r.secret_name, namespace=r.storage_namespace)
    except NotFound:
        return
    rel = _release_json(_secret_payload(secret))
    info = _obj(rel.get("info"))
    status = _str(info.get("status"))
    if status not in PENDING_STATUSES or rel.get("version") != r.version:
        return
    info["status"] = Status.FAILED.value
    info["description"] = f"Release unlocked from stale '{status}' state"
    rel["info"] = info
    meta = dict(_meta(secret))
    labels = dict(meta.get("labels") or {})
    labels |= {"status": Status.FAILED.value, "modifiedAt": str(int(time.time()))}
    meta["labels"] = labels
    updated: KubeObject = {**secret, "metadata": meta, "data": {**secret["data"], "release": encode_release(rel)}}
    await kube.replace(updated)


async def mark_failed(kube: KubeClient, r: Release, description: str) -> Release | None:
    """Record a deployed release as failed, as Helm does when its wait for the resources fails.

    Helm (pkg/action install/upgrade/rollback) writes status "failed" with the description
    ``Release "<name>" failed: <error>`` (upgrade: ``Upgrade "<name>" failed: <error>``) on the same
    version; helm-controller's own wait does the same once spec.timeout passes, so ``helm history`` and
    the remediation see what Flux's would. A PUT against the Secret's resourceVersion, as :func:`unlock`:
    a concurrent writer gets Conflict. Returns the record as written, or None when the release is no
    longer that deployed version (nothing is written then).
    """
    try:
        secret = await kube.get("v1", "Secret", r.secret_name, namespace=r.storage_namespace)
    except NotFound:
        return None
    rel = _release_json(_secret_payload(secret))
    info = _obj(rel.get("info"))
    if _str(info.get("status")) != Status.DEPLOYED.value or rel.get("version") != r.version:
        return None
    info["status"] = Status.FAILED.value
    info["description"] = description[:MAX_DESCRIPTION]
    rel["info"] = info
    meta = dict(_meta(secret))
    labels = dict(meta.get("labels") or {})
    labels |= {"status": Status.FAILED.value, "modifiedAt": str(int(time.time()))}
    meta["labels"] = labels
    updated: KubeObject = {**secret, "metadata": meta, "data": {**secret["data"], "release": encode_release(rel)}}
    written = await kube.replace(updated)
    return decode_secret(written)


# --- Go's encoding/json, for Flux's digest ----------------------------------------------------------------------

_HTML_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_RE: Final = re.compile("[<>&\u2028\u2029]")


def _go_string(s: str) -> str:
    # Python and Go (1.22+) escape the same control characters the same way; Go also escapes HTML.
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], json.dumps(s, ensure_ascii=False))


def _go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json chooses (ES6 style)."""
    if not math.isfinite(f):
        raise ValueError("JSON has no NaN or Inf")
    if f == 0:
        return "0" if math.copysign(1.0, f) > 0 else "-0"
    if 1e-6 <= abs(f) < 1e21:
        return format(Decimal(repr(f)).normalize(), "f")
    text = repr(f)  # shortest round-trip digits, exponent form here
    mantissa, _, exp = text.partition("e")
    sign = exp[0] if exp[0] in "+-" else "+"
    return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"


def _go_json(value: Any, *, sort_keys: bool = False) -> str:
    """Go's json.Marshal of a value decoded from Go's JSON: objects in the given order unless a Go map."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int):
        # A number in a map[string]any was a float64 in Go: exact below 2**53, rounded above.
        return str(value) if abs(value) < 2**53 else _go_float(float(value))
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        return "{" + ",".join(f"{_go_string(str(k))}:{_go_json(v, sort_keys=sort_keys)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_go_json(v, sort_keys=sort_keys) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


_INFO_FIELDS: Final = ("description", "status", "rollback_revision", "notes", "resources")


def _go_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """helm v4 Info.MarshalJSON: zero times left out (Helm 3 stored them as ""), then the omitempty fields."""
    out: dict[str, Any] = {}
    for key in ("first_deployed", "last_deployed", "deleted"):
        if _time(info.get(key)) is not None:
            out[key] = info[key]
    for key in _INFO_FIELDS:
        if info.get(key):
            out[key] = info[key]
    return out


def _go_struct(obj: Any, fields: tuple[tuple[str, bool], ...]) -> dict[str, Any]:
    """A Go struct's encoding: its fields in declaration order, ``omitempty`` ones left out when empty."""
    src = _obj(obj)
    return {key: src.get(key) for key, omitempty in fields if not omitempty or src.get(key)}


# helm v4 chart/v2 Metadata, Maintainer and Dependency, and release/v1 Hook: (json name, omitempty)
_MAINTAINER: Final = (("name", True), ("email", True), ("url", True))
_DEPENDENCY: Final = (
    ("name", False),
    ("version", True),
    ("repository", False),
    ("condition", True),
    ("tags", True),
    ("enabled", True),
    ("import-values", True),
    ("alias", True),
)
_METADATA: Final = (
    ("name", True),
    ("home", True),
    ("sources", True),
    ("version", True),
    ("description", True),
    ("keywords", True),
    ("maintainers", True),
    ("icon", True),
    ("apiVersion", True),
    ("condition", True),
    ("tags", True),
    ("appVersion", True),
    ("deprecated", True),
    ("annotations", True),
    ("kubeVersion", True),
    ("dependencies", True),
    ("type", True),
)
_HOOK: Final = (
    ("name", True),
    ("kind", True),
    ("path", True),
    ("manifest", True),
    ("events", True),
    ("last_run", False),
    ("weight", True),
    ("delete_policies", True),
    ("output_log_policies", True),
)


def _go_metadata(meta: Any) -> dict[str, Any]:
    out = _go_struct(meta, _METADATA)
    if isinstance(out.get("maintainers"), list):
        out["maintainers"] = [None if m is None else _go_struct(m, _MAINTAINER) for m in out["maintainers"]]
    if isinstance(out.get("dependencies"), list):
        out["dependencies"] = [None if d is None else _go_struct(d, _DEPENDENCY) for d in out["dependencies"]]
    if isinstance(out.get("annotations"), dict):
        out["annotations"] = dict(sorted(out["annotations"].items()))  # a Go map: keys sorted
    return out


def _go_hook(hook: Mapping[str, Any]) -> dict[str, Any]:
    """A Hook re-encoded by helm v4: last_run always there, its zero times left out, phase always written."""
    run = _obj(hook.get("last_run"))
    last_run: dict[str, Any] = {k: run[k] for k in ("started_at", "completed_at") if _time(run.get(k)) is not None}
    last_run["phase"] = _str(run.get("phase"))
    return _go_struct(hook, _HOOK) | {"last_run": last_run}


def _observation_hash(rel: Mapping[str, Any], info: Mapping[str, Any], meta: Any, hooks: list[Any]) -> Any:
    """Flux's Observation (internal/release/observation.go) encoded up to ociDigest, in a SHA-256 state.

    Fields in the struct's order: name, version, info, chartMetadata, config (null when empty), manifest,
    hooks (test hooks filtered out; null when none are left), namespace; nested structs in their Go
    declaration order whatever order the stored JSON has, unknown keys dropped as Go drops them.
    """
    kept = [_go_hook(h) for h in hooks if isinstance(h, dict) and not _is_test_hook(h)]
    config = rel.get("config")
    version = rel.get("version")
    parts = [
        f'"name":{_go_string(_str(rel.get("name")))}',
        f'"version":{version if isinstance(version, int) else 0}',
        f'"info":{_go_json(_go_info(info))}',
        f'"chartMetadata":{_go_json(_go_metadata(meta))}',
        f'"config":{_go_json(config, sort_keys=True) if isinstance(config, dict) and config else "null"}',
        f'"manifest":{_go_string(_str(rel.get("manifest")))}',
        f'"hooks":{_go_json(kept) if kept else "null"}',
        f'"namespace":{_go_string(_str(rel.get("namespace")))}',
    ]
    return hashlib.sha256(("{" + ",".join(parts)).encode())
