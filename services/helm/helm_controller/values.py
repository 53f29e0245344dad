"""A HelmRelease's values: ``spec.valuesFrom`` read and merged in order, then ``spec.values``; Flux's config digest.

As fluxcd/pkg ``chartutil.ChartValuesFromReferences``: each reference (a ConfigMap or Secret in the
HelmRelease's namespace, read once however often it is listed) is either a values document merged at the
root (go-yaml v2's typing, :mod:`helm_controller.values_yaml`) or, with ``targetPath``, one value set at
that path with Helm's ``--set`` parser (:mod:`helm_controller.strvals`; quoted in ``'`` or ``"`` it is
a string, with ``literal`` it is taken verbatim). Inline values go on top. Merging is Helm's: maps merge
deeply, anything else replaces.

One detail is Flux's, kept on purpose because the digest depends on it: before a ``targetPath`` is set,
the inline values are merged into what was composed so far, and the parser writes into the maps and lists
it reaches in place, so a ``targetPath`` inside a map (or an existing list item) that the inline values
also set wins over them, while a top-level key of the inline values wins over a ``targetPath``.

The reference errors are Flux's (``could not resolve Secret chart values reference 'ns/name' with key
'values.yaml': ...``, Ready=False reason ``ValuesError``); none quotes a Secret's data.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from gitops_mesh import tenant_yaml
from gitops_mesh.errors import ApiError, NotFound, TransientError
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.secrets import configmap_data, secret_data
from gitops_mesh.observability.logging import get_logger
from helm_controller.strvals import StrvalsError, escape_literal, parse_into
from helm_controller.values_yaml import ValuesYamlError, encode, read_values, to_json_values

log = get_logger(__name__)

#: Flux's Ready=False reason (and Warning event reason) when the values cannot be composed.
VALUES_ERROR: Final = "ValuesError"
DEFAULT_VALUES_KEY: Final = "values.yaml"
KINDS: Final = ("ConfigMap", "Secret")

#: At most this many valuesFrom entries (each merge walks everything composed so far).
MAX_REFERENCES: Final = 256
#: Referenced data read in one composition, all entries together (an entry listed twice counts twice).
MAX_VALUES_BYTES: Final = 16 << 20
#: One referenced values document or value (the apiserver stores at most about 1.5 MiB per object).
MAX_DOCUMENT_BYTES: Final = 3 << 20

# fluxcd/pkg chartutil's reasons, the last part of its message
RESOURCE_NOT_FOUND: Final = "resource not found"
KEY_NOT_FOUND: Final = "key not found"
UNSUPPORTED_KIND: Final = "unsupported values reference kind"
DATA_READ: Final = "failed to read values data"
VALUE_MERGE: Final = "failed to merge value"


class ValuesReferenceError(TransientError):
    """A ``valuesFrom`` reference that cannot be used now (missing object or key, unreadable data).

    Transient, as in Flux: the Secret may be created or fixed without the HelmRelease changing. ``cause``
    is chartutil's reason (:data:`RESOURCE_NOT_FOUND`, :data:`KEY_NOT_FOUND`, ...).
    """

    reason = VALUES_ERROR

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message, reason=VALUES_ERROR)
        self.cause = cause


@dataclass(frozen=True)
class ValuesReference:
    """One ``spec.valuesFrom`` entry with Flux's defaults."""

    kind: str
    name: str
    values_key: str = DEFAULT_VALUES_KEY
    target_path: str = ""
    optional: bool = False
    literal: bool = False

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> ValuesReference:
        return cls(
            kind=str(entry.get("kind") or ""),
            name=str(entry.get("name") or ""),
            values_key=str(entry.get("valuesKey") or DEFAULT_VALUES_KEY),
            target_path=str(entry.get("targetPath") or ""),
            optional=entry.get("optional") is True,
            literal=entry.get("literal") is True,
        )

    def error(self, namespace: str, cause: str, detail: str = "") -> ValuesReferenceError:
        """chartutil's ErrValuesReference message: ``could not resolve [optional] <Kind> chart values reference
        '<ns>/<name>' with key '<key>': <detail or reason>``."""
        optional = " optional" if self.optional else ""
        kind = f" {self.kind}" if self.kind else ""
        return ValuesReferenceError(
            f"could not resolve{optional}{kind} chart values reference '{namespace}/{self.name}' "
            f"with key '{self.values_key}': {detail or cause}",
            cause=cause,
        )


def references(spec: Mapping[str, Any]) -> list[ValuesReference]:
    """The ``spec.valuesFrom`` entries, in order (entries that are not maps are skipped)."""
    return [ValuesReference.of(e) for e in spec.get("valuesFrom") or [] if isinstance(e, Mapping)]


def values_references(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every ``valuesFrom`` entry, in order, each once: the objects whose change wakes us."""
    seen: dict[tuple[str, str], None] = {}
    for ref in references(spec):
        if ref.kind in KINDS and ref.name:
            seen.setdefault((ref.kind, ref.name), None)
    return list(seen)


def merge_maps(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """chartutil.MergeMaps: a new top level; a map in ``b`` over a map in ``a`` merges deeply, anything else replaces.

    The maps and lists reached are shared, not copied, as Go's are; :func:`compose` depends on that.
    """
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict):
            existing = out.get(k)
            if isinstance(existing, dict):
                out[k] = merge_maps(existing, v)
                continue
        out[k] = v
    return out


def set_path(values: dict[str, Any], path: str, value: str, *, literal: bool = False) -> None:
    """Flux's ReplacePathValue / ReplacePathLiteralValue: ``value`` at ``path``, in place, as ``--set`` does.

    A value wrapped in single or double quotes loses every quote at both ends and is a string
    (``--set-string``); ``literal`` escapes every character the parser would read (``--set-literal``).
    StrvalsError when Helm's parser refuses it.
    """
    if literal:
        parse_into(f"{path}={escape_literal(value)}", values, as_string=True)
        return
    quoted = len(value) >= 1 and (
        (value.startswith("'") and value.endswith("'")) or (value.startswith('"') and value.endswith('"'))
    )
    if quoted:
        parse_into(f"{path}={value.strip(chr(39) + chr(34))}", values, as_string=True)
        return
    parse_into(f"{path}={value}", values)


async def _read(kube: KubeClient, kind: str, namespace: str, name: str) -> Mapping[str, str | bytes] | None:
    """The object's data, or None when it does not exist (any other API error propagates and is retried)."""
    try:
        if kind == "Secret":
            return await secret_data(kube, namespace, name)
        return await configmap_data(kube, namespace, name)
    except NotFound:
        return None
    except ApiError as e:
        # Forbidden and the like: Flux reports the client's error under ValuesError too; retried.
        raise ValuesReferenceError(f"could not get {kind} '{namespace}/{name}': {e}", cause=DATA_READ) from e


def _not_found(kind: str, name: str) -> str:
    """The apiserver's NotFound text as Flux's message carries it (``secrets "x" not found``)."""
    return f'{kind.lower()}s "{name}" not found'


#: What the referenced objects hold: (kind, name) → data, None for an object that does not exist.
ObjectData = Mapping[tuple[str, str], Mapping[str, str | bytes] | None]


async def compose_values(kube: KubeClient, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The values a HelmRelease releases with: ``valuesFrom`` in order, then ``spec.values`` (Flux's order).

    ValuesReferenceError for a missing reference or key that is not optional, data that does not parse
    or a ``targetPath`` Helm's parser refuses; an optional reference whose object or key is missing is
    skipped (Flux logs it). Each object is read once, so every entry naming it sees the same version.
    """
    _check_count(spec)
    objects = {(kind, name): await _read(kube, kind, namespace, name) for kind, name in values_references(spec)}
    return compose(namespace, spec, objects)


def _check_count(spec: Mapping[str, Any]) -> None:
    count = len(spec.get("valuesFrom") or [])
    if count > MAX_REFERENCES:
        raise ValuesReferenceError(
            f"too many valuesFrom references: {count} (at most {MAX_REFERENCES})", cause=DATA_READ
        )


def compose(namespace: str, spec: Mapping[str, Any], objects: ObjectData) -> dict[str, Any]:
    """:func:`compose_values` over objects already read (pure): Flux's ChartValuesFromReferences."""
    _check_count(spec)
    inline = _inline_values(spec.get("values"))
    result: dict[str, Any] = {}
    budget = MAX_VALUES_BYTES
    for ref in references(spec):
        if ref.kind not in KINDS:
            raise ref.error(namespace, UNSUPPORTED_KIND)
        data = objects.get((ref.kind, ref.name))
        if data is None:
            err = ref.error(namespace, RESOURCE_NOT_FOUND, _not_found(ref.kind, ref.name))
            if ref.optional:
                log.info("optional values reference skipped", error=str(err))
                continue
            raise err
        if ref.values_key not in data:
            err = ref.error(namespace, KEY_NOT_FOUND)
            if ref.optional:
                log.info("optional values reference skipped", error=str(err))
                continue
            raise err
        raw = data[ref.values_key]
        size = len(raw)
        if size > MAX_DOCUMENT_BYTES or size > budget:
            raise ref.error(namespace, DATA_READ, f"{DATA_READ}: over the size limit")
        budget -= size
        if ref.target_path:
            result = merge_maps(result, inline)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            try:
                set_path(result, ref.target_path, text, literal=ref.literal)
            except StrvalsError as e:
                # Helm's message may quote part of the value (a key it found in it): never a Secret's.
                detail = str(e) if ref.kind == "ConfigMap" else "the value does not parse as a Helm --set value"
                raise ref.error(namespace, VALUE_MERGE, detail) from None
            continue
        try:
            document = read_values(raw, what=f"{ref.kind} '{namespace}/{ref.name}' key '{ref.values_key}'")
        except yaml.YAMLError as e:
            # Helm's text is sigs.k8s.io/yaml's "error converting YAML to JSON: yaml: ..."; ours never quotes
            raise ref.error(namespace, DATA_READ, f"error converting YAML to JSON: {tenant_yaml.problem(e)}") from None
        except ValuesYamlError as e:
            raise ref.error(namespace, DATA_READ, str(e)) from None
        result = merge_maps(result, document)
    return merge_maps(result, inline)


def _inline_values(values: Any) -> dict[str, Any]:
    """``spec.values`` as Flux gets it (JSON decoded afresh, numbers as float64): a private copy to write into."""
    if not isinstance(values, Mapping):
        return {}
    try:
        out = to_json_values(copy.deepcopy(dict(values)))
    except ValuesYamlError as e:
        raise ValuesReferenceError(f"spec.values: {e}", cause=DATA_READ) from None
    assert isinstance(out, dict)
    return out


def config_digest(values: Mapping[str, Any]) -> str:
    """Flux's config digest of ``values`` (``chartutil.DigestValues(digest.Canonical, values)``): ``sha256:<hex>``.

    The SHA-256 of go-yaml v2's encoding of the values with keys sorted at every level, nothing for empty
    values (so ``{}`` digests as the empty string). Numbers are taken as held: pass integers Go would hold
    as float64 (values read from JSON) through :func:`helm_controller.values_yaml.to_json_values` first
    when they may exceed 2^53.
    """
    return "sha256:" + hashlib.sha256(encode(values)).hexdigest()


__all__ = [
    "DEFAULT_VALUES_KEY",
    "VALUES_ERROR",
    "ValuesReference",
    "ValuesReferenceError",
    "compose_values",
    "config_digest",
    "merge_maps",
    "references",
    "set_path",
    "values_references",
]
