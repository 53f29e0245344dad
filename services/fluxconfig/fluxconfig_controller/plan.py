"""The pure plan: a FluxConfig (+ its protected parameters, + the generated key) → the objects it wants.

No I/O and no randomness here: the reconciler reads the protected-parameters Secret, decodes it
(:func:`decode_protected`), generates or reloads the key pair, and hands them in. The plan names every
object it wants in apply order (Secrets, source, Kustomizations); what a previous plan made and this one
lacks is found by label and deleted by the reconciler. The shared RBAC objects of a namespace are
planned apart (:func:`rbac_plan`), from every FluxConfig of the namespace.

Field mapping (ARM fluxConfigurations → Flux), as the microsoft.flux extension does it:

- the source is named after the config; GitRepository ``repositoryRef`` commit > semver > tag > branch
  (Flux's own precedence, after the CLI allowed exactly one); OCIRepository digest > semver > tag;
  ``bucket`` → Bucket provider generic (endpoint = the URL's host, ``insecure`` for http);
  ``azureBlob`` → Bucket provider azure (bucketName = containerName, endpoint = the URL);
  ``*InSeconds`` → Go durations, 600 s when unset;
- each ``kustomizations`` entry → Kustomization ``<config>-<entry>`` on that source, dependsOn mapped to
  the same names, impersonating ``flux-applier``, never a cross-namespace reference;
- the auth Secret ``<config>-auth`` holds the credentials in Flux's key names, or ``localAuthRef`` names
  an existing Secret instead.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fluxconfig_controller import model as m
from fluxconfig_controller.known_hosts import DEFAULT_KNOWN_HOSTS
from fluxconfig_controller.sshkeys import KeyAlgorithm, KeyPair, b64decode
from fluxconfig_controller.validation import is_http
from gitops_mesh.errors import TransientError
from gitops_mesh.kube.objects import KubeObject

DEFAULT_SECONDS = 600
#: The Ready reason of a credential problem (a Secret missing or unreadable): Flux's for the same cases.
AUTHENTICATION_FAILED = "AuthenticationFailed"

#: The protected parameters ARM takes base64-encoded (the CLI encodes each before sending it).
PROTECTED_KEYS = (
    "sshPrivateKey",
    "httpsKey",
    "bucketSecretKey",
    "accountKey",
    "sasToken",
    "clientSecret",
    "clientCertificate",
    "clientCertificatePassword",
)


class AuthProblem(TransientError):
    """The credentials cannot be built (a Secret missing, a value that does not decode or parse).

    Transient: the fix is an edit of a Secret, which the spec does not see, so it is retried.
    """

    reason = AUTHENTICATION_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=AUTHENTICATION_FAILED)


def decode_protected(secret_name: str, data: Mapping[str, bytes]) -> dict[str, bytes]:
    """The protected parameters with ARM's base64 removed; an undecodable value is named, never shown."""
    out: dict[str, bytes] = {}
    for key in PROTECTED_KEYS:
        raw = data.get(key)
        if not raw:
            continue
        decoded = b64decode(raw.strip())
        if decoded is None:
            raise AuthProblem(f"protected parameter '{key}' in Secret '{secret_name}' is not base64, as ARM takes it")
        out[key] = decoded
    return out


def seconds(block: Mapping[str, Any], key: str, default: int | None = DEFAULT_SECONDS) -> str | None:
    value = block.get(key)
    if value is None:
        return None if default is None else f"{default}s"
    return f"{int(value)}s"


def labels_of(config: KubeObject, *, shared: bool = False) -> dict[str, str]:
    meta = config["metadata"]
    out = {m.MANAGED_LABEL: "true", m.NAMESPACE_LABEL: meta["namespace"]}
    if not shared:
        out[m.NAME_LABEL] = meta["name"]
    op = (meta.get("labels") or {}).get(m.OPERATION_ID) or (meta.get("annotations") or {}).get(m.OPERATION_ID)
    if op and not shared:
        out[m.OPERATION_ID] = str(op)[:63]
    return out


def _meta(config: KubeObject, name: str, **extra: Any) -> dict[str, Any]:
    meta = config["metadata"]
    out: dict[str, Any] = {"name": name, "namespace": meta["namespace"], "labels": labels_of(config), **extra}
    if meta.get("uid"):
        # A safety net beside the finalizer: the apiserver's garbage collector removes what we missed.
        out["ownerReferences"] = [
            {"apiVersion": m.API_VERSION, "kind": m.KIND, "name": meta["name"], "uid": meta["uid"], "controller": True}
        ]
    return out


def flux_git_url(url: str) -> str:
    """``git@host:path`` (the CLI allows it) as Flux wants it, ``ssh://git@host/path``; other URLs unchanged."""
    if not url.startswith("git@"):
        return url
    host, _, path = url.partition(":")
    return f"ssh://{host}/{path.lstrip('/')}"


def git_ref(ref: Mapping[str, Any]) -> dict[str, str]:
    for key in ("commit", "semver", "tag", "branch"):
        if ref.get(key):
            return {key: str(ref[key])}
    return {}


def oci_ref(ref: Mapping[str, Any]) -> dict[str, str]:
    for key in ("digest", "semver", "tag"):
        if ref.get(key):
            return {key: str(ref[key])}
    return {}


def protected_needed_by(spec: m.Spec) -> str | None:
    """The spec field whose secret half only the protected parameters carry, if any."""
    kind, block = m.source_kind(spec), source_block(spec)
    if block.get("localAuthRef"):
        return None
    if kind == "GitRepository" and block.get("httpsUser"):
        return "spec.gitRepository.httpsUser (its httpsKey)"
    if kind == "Bucket" and block.get("accessKey"):
        return "spec.bucket.accessKey (its bucketSecretKey)"
    if kind == "AzureBlob" and block.get("servicePrincipal"):
        return "spec.azureBlob.servicePrincipal (its clientSecret or clientCertificate)"
    return None


def wanted_key_algorithm(spec: m.Spec, protected: Mapping[str, bytes]) -> KeyAlgorithm | None:
    """The algorithm of the key pair to generate: an SSH git URL with no key and no localAuthRef, else None."""
    if m.source_kind(spec) != "GitRepository":
        return None
    git = spec.get("gitRepository") or {}
    url = str(git.get("url") or "")
    if not url or is_http(url) or git.get("localAuthRef") or "sshPrivateKey" in protected:
        return None
    return KeyAlgorithm(str(git.get("sshKeyAlgorithm") or KeyAlgorithm.ED25519))


def _git_auth(git: Mapping[str, Any], protected: Mapping[str, bytes], key: KeyPair | None) -> dict[str, bytes]:
    url = str(git.get("url") or "")
    data: dict[str, bytes] = {}
    if is_http(url):
        if git.get("httpsUser") and "httpsKey" in protected:
            data["username"] = str(git["httpsUser"]).encode()
            data["password"] = protected["httpsKey"]
        if git.get("httpsCACert"):
            ca = b64decode(str(git["httpsCACert"]))
            if ca is None:
                raise AuthProblem("spec.gitRepository.httpsCACert is not base64, as ARM takes it")
            data["ca.crt"] = ca
        return data
    if "sshPrivateKey" in protected:
        data["identity"] = protected["sshPrivateKey"]
    elif key is not None:
        data["identity"], data["identity.pub"] = key.private, key.public.encode()
    known = git.get("sshKnownHosts")
    if known:
        decoded = b64decode(str(known))
        if decoded is None:
            raise AuthProblem(
                "spec.gitRepository.sshKnownHosts: ssh known_hosts is not a valid utf-8 base64 encoded string"
            )
        data["known_hosts"] = decoded
    else:
        data["known_hosts"] = DEFAULT_KNOWN_HOSTS
    return data


def _bucket_auth(bucket: Mapping[str, Any], protected: Mapping[str, bytes]) -> dict[str, bytes]:
    if bucket.get("accessKey") and "bucketSecretKey" in protected:
        return {"accesskey": str(bucket["accessKey"]).encode(), "secretkey": protected["bucketSecretKey"]}
    return {}


def _blob_auth(blob: Mapping[str, Any], protected: Mapping[str, bytes]) -> dict[str, bytes]:
    if "accountKey" in protected:
        return {"accountKey": protected["accountKey"]}
    if "sasToken" in protected:
        return {"sasKey": protected["sasToken"]}
    sp = blob.get("servicePrincipal") or {}
    if not sp:
        return {}
    data = {"tenantId": str(sp.get("tenantId") or "").encode(), "clientId": str(sp.get("clientId") or "").encode()}
    if "clientSecret" in protected:
        data["clientSecret"] = protected["clientSecret"]
    if "clientCertificate" in protected:
        data["clientCertificate"] = protected["clientCertificate"]
        if "clientCertificatePassword" in protected:
            data["clientCertificatePassword"] = protected["clientCertificatePassword"]
        if sp.get("clientCertificateSendChain"):
            data["clientCertificateSendChain"] = b"true"
    return data


def source_block(spec: m.Spec) -> Mapping[str, Any]:
    block = {"GitRepository": "gitRepository", "Bucket": "bucket", "AzureBlob": "azureBlob"}.get(
        m.source_kind(spec), "ociRepository"
    )
    value = spec.get(block)
    return value if isinstance(value, Mapping) else {}


def auth_data(spec: m.Spec, protected: Mapping[str, bytes], key: KeyPair | None) -> dict[str, bytes]:
    """The source's credentials in Flux's Secret keys (empty: the source needs no Secret)."""
    kind, block = m.source_kind(spec), source_block(spec)
    if block.get("localAuthRef"):
        return {}
    if kind == "GitRepository":
        return _git_auth(block, protected, key)
    if kind == "Bucket":
        return _bucket_auth(block, protected)
    if kind == "AzureBlob":
        return _blob_auth(block, protected)
    return {}


def source_spec(spec: m.Spec, secret: str | None) -> tuple[str, dict[str, Any]]:
    """The Flux source kind and spec for the config's source."""
    kind, block = m.source_kind(spec), source_block(spec)
    out: dict[str, Any] = {
        "interval": seconds(block, "syncIntervalInSeconds"),
        "timeout": seconds(block, "timeoutInSeconds"),
        "suspend": bool(spec.get("suspend")),
    }
    if secret:
        out["secretRef"] = {"name": secret}
    if kind == "GitRepository":
        out["url"] = flux_git_url(str(block.get("url") or ""))
        ref = git_ref(block.get("repositoryRef") or {})
        if ref:
            out["ref"] = ref
        if str(block.get("provider") or "").lower() == "azure":
            out["provider"] = "azure"
        return "GitRepository", out
    if kind == "Bucket":
        url = urlsplit(str(block.get("url") or ""))
        out.update(provider="generic", bucketName=block.get("bucketName"), endpoint=url.netloc)
        if url.scheme == "http" or block.get("insecure"):
            out["insecure"] = True
        return "Bucket", out
    if kind == "AzureBlob":
        out.update(provider="azure", bucketName=block.get("containerName"), endpoint=str(block.get("url") or ""))
        return "Bucket", out
    out["url"] = str(block.get("url") or "")
    ref = oci_ref(block.get("repositoryRef") or {})
    if ref:
        out["ref"] = ref
    if block.get("insecure"):
        out["insecure"] = True
    if block.get("layerSelector"):
        out["layerSelector"] = dict(block["layerSelector"])
    if block.get("serviceAccountName"):
        out["serviceAccountName"] = str(block["serviceAccountName"])
    return "OCIRepository", out


def kustomization_spec(
    config: str, source: tuple[str, str], body: Mapping[str, Any], suspend: bool, *, impersonate: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sourceRef": {"kind": source[0], "name": source[1]},  # no namespace: never cross-namespace
        "interval": seconds(body, "syncIntervalInSeconds"),
        "timeout": seconds(body, "timeoutInSeconds"),
        "prune": bool(body.get("prune", False)),
        "force": bool(body.get("force", False)),
        "wait": bool(body.get("wait", True)),
        "suspend": suspend,
    }
    if impersonate:
        out["serviceAccountName"] = m.APPLIER
    if body.get("path"):
        out["path"] = str(body["path"])
    retry = seconds(body, "retryIntervalInSeconds", default=None)
    if retry:
        out["retryInterval"] = retry
    deps = body.get("dependsOn") or ()
    if deps:
        out["dependsOn"] = [{"name": m.kustomization_name(config, str(d))} for d in deps]
    post = body.get("postBuild") or {}
    post_build: dict[str, Any] = {}
    if post.get("substitute"):
        post_build["substitute"] = {str(k): str(v) for k, v in post["substitute"].items()}
    if post.get("substituteFrom"):
        post_build["substituteFrom"] = [
            {"kind": s["kind"], "name": s["name"], **({"optional": True} if s.get("optional") else {})}
            for s in post["substituteFrom"]
        ]
    if post_build:
        out["postBuild"] = post_build
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """What one FluxConfig wants: objects in apply order, and the public key to show."""

    objects: list[KubeObject] = field(default_factory=list)
    public_key: str | None = None

    def keys(self) -> set[tuple[str, str]]:
        """(kind, name) of every planned object: what the garbage collection keeps."""
        return {(o["kind"], o["metadata"]["name"]) for o in self.objects}


def _secret(config: KubeObject, name: str, data: Mapping[str, bytes], **meta: Any) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(config, name, **meta),
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def plan(config: KubeObject, protected: Mapping[str, bytes], key: KeyPair | None, *, impersonate: bool = True) -> Plan:
    """The objects ``config`` wants, given its decoded protected parameters and its key pair (if it has one).

    ``impersonate`` is the extension's ``multiTenancy.enforce``: the Kustomizations run as ``flux-applier``;
    without it they name no ServiceAccount, Flux's default (kustomize-controller's own identity, or its
    ``--default-service-account``).

    ``key`` is kept in its Secret whenever it exists — a deploy key the user registered stays valid for
    the config's lifetime — and used for auth only when the source needs a generated key.
    """
    name = config["metadata"]["name"]
    spec = config.get("spec") or {}
    objects: list[KubeObject] = []
    if key is not None:
        objects.append(
            _secret(
                config,
                m.key_secret_name(name),
                {"identity": key.private, "identity.pub": key.public.encode()},
                annotations={m.KEY_ALGORITHM_ANNOTATION: key.algorithm.value},
            )
        )
    use_key = key if wanted_key_algorithm(spec, protected) is not None else None
    block = source_block(spec)
    secret: str | None = str(block["localAuthRef"]) if block.get("localAuthRef") else None
    data = auth_data(spec, protected, use_key)
    if data:
        secret = m.auth_secret_name(name)
        objects.append(_secret(config, secret, data))
    kind, sspec = source_spec(spec, secret)
    api = m.SOURCE_API
    objects.append({"apiVersion": api, "kind": kind, "metadata": _meta(config, name), "spec": sspec})
    suspend = bool(spec.get("suspend"))
    for entry, body in sorted((spec.get("kustomizations") or {}).items()):
        objects.append(
            {
                "apiVersion": m.KUSTOMIZE_API,
                "kind": "Kustomization",
                "metadata": _meta(config, m.kustomization_name(name, entry)),
                "spec": kustomization_spec(name, (kind, name), body or {}, suspend, impersonate=impersonate),
            }
        )
    return Plan(objects, use_key.public if use_key else None)


@dataclass(frozen=True, slots=True)
class RbacPlan:
    """The namespace's shared RBAC objects: those to apply, and (apiVersion, kind, name) of those to delete."""

    apply: list[KubeObject]
    delete: list[tuple[str, str, str | None, str]]  # apiVersion, kind, namespace, name


def _is_live(cfg: KubeObject) -> bool:
    return not (cfg.get("metadata") or {}).get("deletionTimestamp")


def rbac_plan(namespace: str, configs: Iterable[KubeObject]) -> RbacPlan:
    """``flux-applier`` while the namespace has a FluxConfig; a RoleBinding to ``admin`` while one of them
    has namespace scope, a ClusterRoleBinding to ``cluster-admin`` while one has cluster scope (Azure's
    scopes). Shared by the namespace's configs, so they carry no name label, and go with the last one."""
    live = [c for c in configs if _is_live(c) and c["metadata"]["namespace"] == namespace]
    scopes = {m.scope(c.get("spec") or {}) for c in live}
    labels = {m.MANAGED_LABEL: "true", m.NAMESPACE_LABEL: namespace}
    subject = [{"kind": "ServiceAccount", "name": m.APPLIER, "namespace": namespace}]
    sa = ("v1", "ServiceAccount", namespace, m.APPLIER)
    rb = (m.RBAC_API, "RoleBinding", namespace, m.binding_name())
    crb: tuple[str, str, str | None, str] = (m.RBAC_API, "ClusterRoleBinding", None, m.cluster_binding_name(namespace))
    apply: list[KubeObject] = []
    delete: list[tuple[str, str, str | None, str]] = []
    if live:
        apply.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": m.APPLIER, "namespace": namespace, "labels": labels},
            }
        )
    else:
        delete.append(sa)
    if "namespace" in scopes:
        apply.append(
            {
                "apiVersion": m.RBAC_API,
                "kind": "RoleBinding",
                "metadata": {"name": m.binding_name(), "namespace": namespace, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": subject,
            }
        )
    else:
        delete.append(rb)
    if "cluster" in scopes:
        apply.append(
            {
                "apiVersion": m.RBAC_API,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": m.cluster_binding_name(namespace), "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": subject,
            }
        )
    else:
        delete.append(crb)
    return RbacPlan(apply, delete)


def stale(existing: Sequence[KubeObject], wanted: Plan) -> list[KubeObject]:
    """The objects a previous plan made (listed by the config's labels) that this plan lacks."""
    keep = wanted.keys()
    return [o for o in existing if (o.get("kind"), o["metadata"]["name"]) not in keep]
