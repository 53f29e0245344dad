"""fluxconfig-controller, status (pure): a FluxConfig's compliance from the Flux objects it manages.

What Azure's ``fluxConfigurations`` GET returns (api-version 2023-05-01, ``ObjectStatusDefinition``,
``HelmReleasePropertiesDefinition``), computed from what the caches hold: the config's source, its
Kustomizations, and the HelmReleases and Kustomizations those applied (read from their inventories). The
status feed (``status_feed.py``) does the I/O; this module only decides.

Compliance, per object (Azure: "Compliant: the state of the cluster matches the desired state; Pending: an
updated desired state was detected but not yet reconciled; Non-Compliant: the current state does not match"):

- ``Suspended``: ``spec.suspend`` is set;
- ``Compliant``: Ready=True for the generation it has now (Flux's own readiness of a dependency);
- ``Pending``: not there yet, never reconciled (no Ready), Ready=Unknown (in progress), a Ready=True from
  before a spec change, or Ready=False while it waits for a dependency or its chart (``DependencyNotReady``,
  a HelmRelease's ``SourceNotReady``: Flux's
  controllers retry that without a failure either);
- ``Non-Compliant``: any other Ready=False;
- ``Unknown``: a Ready condition we cannot read.

Overall: a suspended config is ``Suspended``; a config its own controller refused (Ready=False: invalid spec,
a missing Secret) is ``Non-Compliant``; a spec the controller has not reconciled yet is ``Pending``; then the
worst of its objects: Non-Compliant > Pending > Unknown > Compliant (suspended objects do not count; all
suspended is ``Suspended``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NotRequired, TypedDict

from fluxconfig_controller.model import (
    KIND,
    KUSTOMIZE_API,
    NAME_LABEL,
    NAMESPACE_LABEL,
    kustomization_name,
    source_kind,
)
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c

HELM_API = "helm.toolkit.fluxcd.io/v2"

#: ``spec.sourceKind`` → the Flux kind made for it (Flux has no AzureBlob kind: a Bucket with provider azure).
SOURCE_KINDS: Mapping[str, str] = {
    "GitRepository": "GitRepository",
    "Bucket": "Bucket",
    "AzureBlob": "Bucket",
    "OCIRepository": "OCIRepository",
}

#: The kinds listed from a Kustomization's inventory, by inventory group (Azure lists these two).
APPLIED_KINDS: Mapping[tuple[str, str], str] = {
    ("helm.toolkit.fluxcd.io", "HelmRelease"): HELM_API,
    ("kustomize.toolkit.fluxcd.io", "Kustomization"): KUSTOMIZE_API,
}

#: A tenant decides how many HelmReleases its Kustomizations apply; the status lists at most this many of
#: them (compliance still counts every one), so the FluxConfig stays far below etcd's object size limit.
MAX_APPLIED_LISTED = 200
#: Condition messages copied into statuses[] are cut here (Flux's own are capped at 32 KiB each).
MAX_MESSAGE = 1024
#: Conditions copied per object: Flux's kinds carry at most a handful; more is someone else's writing.
MAX_CONDITIONS = 8


class ComplianceState(StrEnum):
    """Azure's ``FluxComplianceState``."""

    COMPLIANT = "Compliant"
    NON_COMPLIANT = "Non-Compliant"
    PENDING = "Pending"
    SUSPENDED = "Suspended"
    UNKNOWN = "Unknown"


# ---- wire shapes (the CRD's status, Azure's names) ----------------------------------------------------


class ObjectReferenceWire(TypedDict):
    name: str
    namespace: str


class StatusConditionWire(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str


class HelmReleasePropertiesWire(TypedDict, total=False):
    lastRevisionApplied: int
    helmChartRef: ObjectReferenceWire
    failureCount: int
    installFailureCount: int
    upgradeFailureCount: int


class ObjectStatusWire(TypedDict):
    name: str
    namespace: str
    kind: str
    complianceState: str
    statusConditions: list[StatusConditionWire]
    appliedBy: NotRequired[ObjectReferenceWire]
    helmReleaseProperties: NotRequired[HelmReleasePropertiesWire]


# ---- what was observed --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ref:
    """A Flux object by kind, namespace and name (its apiVersion follows from the kind)."""

    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> str:
        """The reverse-index value: ``Kind/namespace/name`` (gitops_mesh.watches.ref_key's form)."""
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Applied:
    """An object a config's Kustomization applied, with that Kustomization."""

    ref: Ref
    by: Ref
    obj: KubeObject | None


@dataclass(frozen=True, slots=True)
class Observed:
    """The managed objects as the caches hold them; ``None`` for one expected but not (yet) there."""

    source: tuple[Ref, KubeObject | None] | None
    kustomizations: Sequence[tuple[Ref, KubeObject | None]]
    applied: Sequence[Applied] = ()


#: ``lookup(ref)``: the cached object, or None.
Lookup = Callable[[Ref], KubeObject | None]


def config_key(obj: KubeObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def source_ref(config: KubeObject) -> Ref | None:
    """The source the controller makes for ``config``: named after it, in its namespace."""
    ns, name = config_key(config)
    kind = SOURCE_KINDS.get(source_kind(config.get("spec") or {}))
    return Ref(kind, ns, name) if kind else None


def kustomization_refs(config: KubeObject) -> list[Ref]:
    """One Kustomization per ``spec.kustomizations`` entry, ``<config>-<entry>``, sorted by name."""
    ns, name = config_key(config)
    entries = (config.get("spec") or {}).get("kustomizations") or {}
    if not isinstance(entries, Mapping):
        return []
    return [Ref("Kustomization", ns, kustomization_name(name, entry)) for entry in sorted(entries)]


def parse_inventory_id(entry_id: str) -> tuple[str, str, str, str] | None:
    """Flux's inventory id ``<namespace>_<name>_<group>_<kind>`` → (namespace, name, group, kind).

    None of the four can hold ``_`` (DNS names, API groups, kinds), so a split on it is exact; anything else
    is not an id Flux wrote and is skipped.
    """
    parts = entry_id.split("_")
    if len(parts) != 4 or not parts[1] or not parts[3]:
        return None
    return (parts[0], parts[1], parts[2], parts[3])


def applied_refs(kustomization: KubeObject | None) -> list[Ref]:
    """The HelmReleases and Kustomizations in a Kustomization's ``status.inventory``, in inventory order."""
    inventory = ((kustomization or {}).get("status") or {}).get("inventory") or {}
    entries = inventory.get("entries") if isinstance(inventory, Mapping) else None
    out: list[Ref] = []
    for entry in entries if isinstance(entries, list) else []:
        parsed = parse_inventory_id(str(entry.get("id") or "")) if isinstance(entry, Mapping) else None
        if parsed is None:
            continue
        ns, name, group, kind = parsed
        if (group, kind) in APPLIED_KINDS:
            out.append(Ref(kind, ns, name))
    return out


def observe(config: KubeObject, lookup: Lookup) -> Observed:
    """What the caches hold for ``config``'s objects (pure over ``lookup``)."""
    source = source_ref(config)
    kustomizations = [(ref, lookup(ref)) for ref in kustomization_refs(config)]
    applied: list[Applied] = []
    seen: set[Ref] = set()
    for by, ks in kustomizations:
        for ref in applied_refs(ks):
            if ref not in seen:
                seen.add(ref)
                applied.append(Applied(ref, by, lookup(ref)))
    return Observed(
        source=(source, lookup(source)) if source else None,
        kustomizations=kustomizations,
        applied=applied,
    )


def config_refs(obj: KubeObject) -> list[str]:
    """The FluxConfig a managed object belongs to, by its labels (``FluxConfig/<ns>/<name>``).

    The controller makes its objects in the config's own namespace, so a label naming another namespace is
    not believed: a tenant's manifest cannot put its object into another tenant's config this way (and
    even in the same namespace, the config's status lists only the names its spec implies).
    """
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name, ns = labels.get(NAME_LABEL), labels.get(NAMESPACE_LABEL)
    if not name or not ns or ns != meta.get("namespace"):
        return []
    return [f"{KIND}/{ns}/{name}"]


# ---- per object ---------------------------------------------------------------------------------------

#: Ready=False reasons that mean "waiting", which Flux's controllers retry without counting a failure: a
#: dependency not ready, and a HelmRelease's chart source not ready yet (helm-controller's SourceNotReady).
WAITING_REASONS: Final = frozenset({c.Reason.DEPENDENCY_NOT_READY, "SourceNotReady"})


def object_compliance(obj: KubeObject | None) -> ComplianceState:
    """One Flux object's compliance (the module's rules)."""
    if obj is None:
        return ComplianceState.PENDING
    if (obj.get("spec") or {}).get("suspend") is True:
        return ComplianceState.SUSPENDED
    ready = c.get(obj, c.ConditionType.READY)
    if ready is None:
        return ComplianceState.PENDING
    status = ready.get("status")
    if status == "True":
        observed = (obj.get("status") or {}).get("observedGeneration")
        return ComplianceState.COMPLIANT if observed == c.generation_of(obj) else ComplianceState.PENDING
    if status == "False":
        if ready.get("reason") in WAITING_REASONS:
            return ComplianceState.PENDING
        return ComplianceState.NON_COMPLIANT
    if status == "Unknown":
        return ComplianceState.PENDING
    return ComplianceState.UNKNOWN


def _cut(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_conditions(obj: KubeObject | None) -> list[StatusConditionWire]:
    """The object's conditions in Azure's ``ObjectStatusConditionDefinition`` shape, capped in number and
    message length."""
    out: list[StatusConditionWire] = []
    # Another controller wrote these: read them as untyped data.
    conds: Sequence[Any] = c.conditions_of(obj or {})
    for cond in conds:
        if not isinstance(cond, Mapping):
            continue
        wire: StatusConditionWire = {}
        for key in ("type", "status", "reason", "lastTransitionTime"):
            value = cond.get(key)
            if isinstance(value, str) and value:
                wire[key] = value
        message = cond.get("message")
        if isinstance(message, str) and message:
            wire["message"] = _cut(message)
        out.append(wire)
        if len(out) == MAX_CONDITIONS:
            break
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def helm_release_properties(obj: KubeObject | None) -> HelmReleasePropertiesWire:
    """A HelmRelease's ``helmReleaseProperties`` from its v2 status.

    ``lastRevisionApplied`` is the Helm release version of the newest history snapshot (v2's
    ``status.history``; v2beta1's ``lastReleaseRevision`` when there is no history), ``helmChartRef`` the
    ``status.helmChart`` ``<namespace>/<name>``, and the three counters Flux's ``failures``,
    ``installFailures`` and ``upgradeFailures`` (absent once cleared, which Azure shows as none).
    """
    status = (obj or {}).get("status") or {}
    props: HelmReleasePropertiesWire = {}
    versions = [
        v for s in status.get("history") or [] if isinstance(s, Mapping) and (v := _int(s.get("version"))) is not None
    ]
    revision = max(versions) if versions else _int(status.get("lastReleaseRevision"))
    if revision is not None:
        props["lastRevisionApplied"] = revision
    chart = status.get("helmChart")
    if isinstance(chart, str) and "/" in chart:
        ns, _, name = chart.partition("/")
        props["helmChartRef"] = {"name": name, "namespace": ns}
    for wire_key, key in (
        ("failureCount", "failures"),
        ("installFailureCount", "installFailures"),
        ("upgradeFailureCount", "upgradeFailures"),
    ):
        count = _int(status.get(key))
        if count is not None:
            props[wire_key] = count  # type: ignore[literal-required]  # the keys are the TypedDict's own
    return props


def object_status(ref: Ref, obj: KubeObject | None, *, applied_by: Ref | None = None) -> ObjectStatusWire:
    """One ``statuses[]`` entry."""
    entry: ObjectStatusWire = {
        "name": ref.name,
        "namespace": ref.namespace,
        "kind": ref.kind,
        "complianceState": object_compliance(obj),
        "statusConditions": status_conditions(obj),
    }
    if applied_by is not None:
        entry["appliedBy"] = {"name": applied_by.name, "namespace": applied_by.namespace}
    if ref.kind == "HelmRelease":
        entry["helmReleaseProperties"] = helm_release_properties(obj)
    return entry


# ---- the source's revision, as Azure shows it ---------------------------------------------------------


def synced_commit_id(revision: str) -> str:
    """Flux's artifact revision in the form Azure's ``sourceSyncedCommitId`` shows (Flux's pre-v1 one).

    ``main@sha1:<sha>`` → ``main/<sha>`` (a branch, tag or semver-picked tag alike: ``v1.2.0/<sha>``);
    a plain ``sha1:<sha>`` (a commit checked out by itself) → ``HEAD/<sha>``, as Flux showed a detached
    checkout; a digest-only revision (a Bucket: ``sha256:<hex>``) → the hex; an OCI ``<tag>@sha256:<hex>``
    → ``<tag>/<hex>``. Anything else is shown as it is.
    """
    named, at, digest = revision.rpartition("@")
    if not at:
        named, digest = "", revision
    algorithm, colon, value = digest.partition(":")
    if not colon or not value or not algorithm.isalnum():
        return revision
    if named:
        return f"{named}/{value}"
    return f"HEAD/{value}" if algorithm == "sha1" else value


# ---- the summary --------------------------------------------------------------------------------------

_SEVERITY = {
    ComplianceState.NON_COMPLIANT: 3,
    ComplianceState.PENDING: 2,
    ComplianceState.UNKNOWN: 1,
    ComplianceState.COMPLIANT: 0,
}


@dataclass(frozen=True, slots=True)
class ComplianceStatus:
    """What :func:`summarize` decided: the status fields of Azure's GET response it owns."""

    compliance_state: ComplianceState
    statuses: list[ObjectStatusWire]
    source_synced_commit_id: str | None = None
    source_updated_at: str | None = None
    #: Why it is Non-Compliant (the first object that is, or the config's own refusal); "" otherwise.
    error_message: str = ""
    #: The source's Flux revision (for the bus events' ``revision``), "" when there is no artifact.
    source_revision: str = ""
    #: Applied objects counted but not listed (past MAX_APPLIED_LISTED).
    not_listed: int = 0
    #: Non-Compliant because the config's own controller refused or failed it (its runner announced that).
    refused: bool = False
    counts: Mapping[str, int] = field(default_factory=dict)

    def status_fields(self) -> dict[str, Any]:
        """The fields the status feed writes, in the CRD's names (absent values as None: a merge patch
        removes them)."""
        return {
            "complianceState": str(self.compliance_state),
            "statuses": [dict(s) for s in self.statuses],
            "sourceSyncedCommitId": self.source_synced_commit_id,
            "sourceUpdatedAt": self.source_updated_at,
        }


def _config_refusal(config: KubeObject) -> str | None:
    """The config's own Ready=False message when its controller refused or failed it (not a wait)."""
    ready = c.get(config, c.ConditionType.READY)
    if ready is None or ready.get("status") != "False" or ready.get("reason") in WAITING_REASONS:
        return None
    return str(ready.get("message") or ready.get("reason") or "not ready")


def _not_reconciled(config: KubeObject) -> bool:
    """The config's current spec has not been carried out yet (its controller's observedGeneration lags)."""
    return (config.get("status") or {}).get("observedGeneration") != c.generation_of(config)


def summarize(config: KubeObject, observed: Observed) -> ComplianceStatus:
    """``config``'s statuses[], overall complianceState and source fields from ``observed`` (pure)."""
    entries: list[tuple[ObjectStatusWire, KubeObject | None]] = []
    if observed.source is not None:
        ref, obj = observed.source
        entries.append((object_status(ref, obj), obj))
    for ref, obj in observed.kustomizations:
        entries.append((object_status(ref, obj), obj))
    applied = sorted(observed.applied, key=lambda a: (a.ref.kind, a.ref.namespace, a.ref.name))
    for a in applied:
        entries.append((object_status(a.ref, a.obj, applied_by=a.by), a.obj))

    counts: dict[str, int] = {}
    worst: ObjectStatusWire | None = None
    for entry, _ in entries:
        state = ComplianceState(entry["complianceState"])
        counts[state] = counts.get(state, 0) + 1
        if state in _SEVERITY and (
            worst is None or _SEVERITY[state] > _SEVERITY[ComplianceState(worst["complianceState"])]
        ):
            worst = entry

    error = ""
    refusal = _config_refusal(config)
    if (config.get("spec") or {}).get("suspend") is True:
        state = ComplianceState.SUSPENDED
    elif refusal is not None:
        state, error = ComplianceState.NON_COMPLIANT, refusal
    elif _not_reconciled(config):
        state = ComplianceState.PENDING
    elif worst is None:
        # Nothing listed, or every object suspended.
        state = ComplianceState.SUSPENDED if entries else ComplianceState.PENDING
    else:
        state = ComplianceState(worst["complianceState"])
        if state is ComplianceState.NON_COMPLIANT:
            error = _why(worst)

    source_obj = observed.source[1] if observed.source else None
    artifact = ((source_obj or {}).get("status") or {}).get("artifact") or {}
    revision = artifact.get("revision") if isinstance(artifact, Mapping) else None
    updated = artifact.get("lastUpdateTime") if isinstance(artifact, Mapping) else None
    own = len(entries) - len(applied)
    listed = [e for e, _ in entries[: own + MAX_APPLIED_LISTED]]
    return ComplianceStatus(
        compliance_state=state,
        statuses=listed,
        source_synced_commit_id=synced_commit_id(revision) if isinstance(revision, str) and revision else None,
        source_updated_at=updated if isinstance(updated, str) and updated else None,
        error_message=_cut(error),
        source_revision=revision if isinstance(revision, str) else "",
        not_listed=len(entries) - len(listed),
        counts=counts,
        refused=refusal is not None and state is ComplianceState.NON_COMPLIANT,
    )


def _why(entry: ObjectStatusWire) -> str:
    """``Kind/namespace/name: <Ready message>`` for a Non-Compliant object."""
    message = next((cond.get("message", "") for cond in entry["statusConditions"] if cond.get("type") == "Ready"), "")
    return f"{entry['kind']}/{entry['namespace']}/{entry['name']}: {message or 'not ready'}"
