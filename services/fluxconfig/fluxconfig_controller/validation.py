"""The checks `az k8s-configuration flux create` makes, pure, run before anything is planned or applied.

The CRD's CEL rules catch what they can at admission (URL schemes, one repositoryRef, positive durations);
these checks repeat them (an object stored before a CRD change is checked too) and add what CEL cannot see:
the lengths of the names made from the config's, dependsOn against the other entries, and the rules that
involve the protected parameters Secret. Messages are the CLI's own (Azure/azure-cli-extensions,
src/k8s-configuration ``consts.py``), with the spec field they concern, so a user who knows the CLI
recognises them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fluxconfig_controller.model import Spec, kustomization_name, source_kind
from fluxconfig_controller.sshkeys import b64decode, known_hosts_problem

MAX_NAME = 63
#: az: "Flux configuration name '{0}' combined with kustomization name '{1}' cannot be greater than 62 characters"
MAX_COMBINED = 62
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")

GIT_SCHEMES = ("http://", "https://", "ssh://", "git@")
HTTP_SCHEMES = ("http://", "https://")
REF_FIELDS = ("branch", "tag", "semver", "commit")


def _az(where: str, error: str, hint: str) -> str:
    return f"{where}: {error} {hint}"


def name_problems(value: str, where: str, param: str, max_len: int = MAX_NAME) -> list[str]:
    """The CLI's Kubernetes name rule (DNS subdomain, at most ``max_len``), checked without a regex."""
    if len(value) > max_len:
        return [
            _az(
                where,
                f"Error! Invalid {param}",
                f"Parameter {param} can be a maximum of {max_len} characters. Specify a shorter name and try again.",
            )
        ]
    if value and set(value) <= _NAME_CHARS and value[0] in _ALNUM and value[-1] in _ALNUM:
        return []
    if value and (value[0] == "-" or value[-1] == "-"):
        return [_az(where, f"Error! Invalid {param}", f"Parameter {param} cannot begin or end with a hyphen.")]
    if value and (value[0] == "." or value[-1] == "."):
        return [_az(where, f"Error! Invalid {param}", f"Parameter {param} cannot begin or end with a period.")]
    return [
        _az(
            where,
            f"Error! Invalid {param}",
            f"Parameter {param} can only contain lowercase alphanumeric characters, hyphens, and periods",
        )
    ]


def _url_problem(url: Any, where: str, schemes: Sequence[str]) -> list[str]:
    if isinstance(url, str) and url.lower().startswith(tuple(schemes)):
        return []
    listed = ", ".join(repr(s) for s in schemes)
    return [_az(where, "Error! Invalid --url.", f"Url must begin with one of [{listed}]")]


def _durations(block: Mapping[str, Any], where: str, fields: Mapping[str, str]) -> Iterator[str]:
    for key, param in fields.items():
        value = block.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            yield _az(
                f"{where}.{key}", f"Error! Invalid {param}.", "Specify a positive number of seconds and try again"
            )


def is_http(url: str) -> bool:
    return url.lower().startswith(HTTP_SCHEMES)


def git_spec_problems(git: Mapping[str, Any]) -> list[str]:
    """URL scheme, exactly one repositoryRef, durations."""
    where = "spec.gitRepository"
    out = _url_problem(git.get("url"), f"{where}.url", GIT_SCHEMES)
    refs = [k for k in REF_FIELDS if (git.get("repositoryRef") or {}).get(k)]
    if not refs:
        out.append(
            _az(
                f"{where}.repositoryRef",
                "Error! Repository reference is invalid",
                "Specifying one of [--branch, --tag, --semver, --commit] is required",
            )
        )
    elif len(refs) > 1:
        out.append(
            _az(
                f"{where}.repositoryRef",
                "Error! Repository reference is invalid",
                f"Specifying more than one repository ref argument is invalid (set: {', '.join(refs)})",
            )
        )
    out.extend(_durations(git, where, {"syncIntervalInSeconds": "sync-interval", "timeoutInSeconds": "timeout"}))
    known = git.get("sshKnownHosts")
    if known:
        decoded = b64decode(str(known))
        if decoded is None:
            out.append(
                _az(
                    f"{where}.sshKnownHosts",
                    "Error! ssh known_hosts is not a valid utf-8 base64 encoded string",
                    "Verify that the string provided safely decodes into a valid utf-8 format",
                )
            )
        elif problem := known_hosts_problem(decoded):
            out.append(
                _az(
                    f"{where}.sshKnownHosts",
                    "Error! ssh known_hosts provided in wrong format",
                    f"Verify that all lines in the known_hosts contents are provided in a valid sshd(8) format ({problem})",
                )
            )
    return out


def git_auth_problems(git: Mapping[str, Any], protected: Mapping[str, bytes]) -> list[str]:
    """Which credentials go with which kind of URL (the URL itself already checked)."""
    where, out = "spec.gitRepository", []
    url = str(git.get("url") or "")
    https_user, https_key = bool(git.get("httpsUser")), "httpsKey" in protected
    if is_http(url):
        if "sshPrivateKey" in protected:
            out.append(
                _az(
                    where,
                    "Error! An --ssh-private-key cannot be used with an http(s) url",
                    "Verify the url provided is a valid ssh url and not an http(s) url",
                )
            )
        if git.get("sshKnownHosts"):
            out.append(
                _az(
                    f"{where}.sshKnownHosts",
                    "Error! --ssh-known-hosts cannot be used with an http(s) url",
                    "Verify the url provided is a valid ssh url and not an http(s) url",
                )
            )
    elif https_user or https_key:
        out.append(
            _az(
                where,
                "Error! https auth (--https-user and --https-key) cannot be used with a non-http(s) url",
                "Verify the url provided is a valid http(s) url and not an ssh url",
            )
        )
    if https_user != https_key:
        out.append(
            _az(
                where,
                "Error! --https-user and --https-key cannot be used separately",
                "Try providing both --https-user and --https-key together (httpsKey goes in the protected parameters)",
            )
        )
    if git.get("localAuthRef") and (https_user or https_key or "sshPrivateKey" in protected):
        out.append(f"{where}.localAuthRef: cannot be combined with httpsUser/httpsKey or sshPrivateKey; use one")
    return out


def bucket_auth_problems(bucket: Mapping[str, Any], protected: Mapping[str, bytes]) -> list[str]:
    where, out = "spec.bucket", []
    keys = bool(bucket.get("accessKey")) and "bucketSecretKey" in protected
    if not keys and not bucket.get("localAuthRef"):
        out.append(
            _az(
                where,
                "Error! Auth properties must be specified for kind 'bucket'",
                "Provide either both of '--secret-key' and '--access-key' or '--local-auth-ref'",
            )
        )
    elif keys and bucket.get("localAuthRef"):
        out.append(f"{where}.localAuthRef: cannot be combined with accessKey/bucketSecretKey; use one")
    return out


def azure_blob_auth_problems(blob: Mapping[str, Any], protected: Mapping[str, bytes]) -> list[str]:
    where, out = "spec.azureBlob", []
    sp = blob.get("servicePrincipal") or None
    if sp is not None:
        secret, cert = "clientSecret" in protected, "clientCertificate" in protected
        if not (sp.get("clientId") and sp.get("tenantId") and (secret or cert)):
            out.append(
                _az(
                    f"{where}.servicePrincipal",
                    "Error! Service principal is invalid because it is missing value(s)",
                    "Provide '--sp-client-id', '--sp-tenant-id', and either '--sp-client-secret' or '--sp-client-cert'",
                )
            )
        if secret and cert:
            out.append(
                _az(
                    f"{where}.servicePrincipal",
                    "Error! Too many authentication methods provided for service principal",
                    "Provide either '--sp-client-secret' or '--sp-client-cert'",
                )
            )
        if "clientCertificatePassword" in protected and not cert:
            out.append(
                _az(
                    f"{where}.servicePrincipal",
                    "Error! Service principal certificate password is invalid",
                    "Provide '--sp-client-id', '--sp-tenant-id', and '--sp-client-cert' with your '--sp-cert-password",
                )
            )
    methods = [
        sp is not None,
        "accountKey" in protected,
        "sasToken" in protected,
        bool(blob.get("localAuthRef")),
        bool(blob.get("managedIdentity")),
    ]
    if sum(methods) > 1:
        out.append(
            _az(
                where,
                "Error! Too many authentication methods provided for Azure Blob",
                "Specify one of the available authentication methods from the list: '--local-auth-ref', "
                "'--account-key', '--sas-token', '--mi-client-id', or service principal with '--sp-client-id', "
                "'--sp-tenant-id', and either '--sp-client-secret' or '--sp-client-cert'",
            )
        )
    return out


def _store_spec_problems(block: Mapping[str, Any], where: str, schemes: Sequence[str]) -> list[str]:
    out = _url_problem(block.get("url"), f"{where}.url", schemes)
    out.extend(_durations(block, where, {"syncIntervalInSeconds": "sync-interval", "timeoutInSeconds": "timeout"}))
    return out


def kustomization_problems(config: str, kustomizations: Mapping[str, Any]) -> list[str]:
    """Entry names (alone and joined to the config's), durations, dependsOn against the other entries, cycles."""
    out: list[str] = []
    for entry, body in kustomizations.items():
        where = f"spec.kustomizations.{entry}"
        problems = name_problems(entry, where, "name")
        out.extend(problems)
        if not problems and len(kustomization_name(config, entry)) > MAX_COMBINED + 1:
            out.append(
                _az(
                    where,
                    f"Error! Invalid Kustomization list. Flux configuration name '{config}' combined with kustomization"
                    f" name '{entry}' cannot be greater than {MAX_COMBINED} characters",
                    "Shorten the flux configuration or the kustomization name and try again",
                )
            )
        body = body or {}
        out.extend(
            _durations(
                body,
                where,
                {
                    "syncIntervalInSeconds": "sync-interval",
                    "timeoutInSeconds": "timeout",
                    "retryIntervalInSeconds": "retry-interval",
                },
            )
        )
        for dep in body.get("dependsOn") or ():
            if dep not in kustomizations:
                out.append(
                    f"{where}.dependsOn: '{dep}' is not a kustomization of this configuration "
                    f"(entries: {', '.join(sorted(kustomizations))})"
                )
            elif dep == entry:
                out.append(f"{where}.dependsOn: a kustomization cannot depend on itself")
    if not out:
        cycle = find_cycle({k: list((v or {}).get("dependsOn") or ()) for k, v in kustomizations.items()})
        if cycle:
            out.append(f"spec.kustomizations: dependsOn forms a cycle: {' -> '.join(cycle)}")
    return out


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """A dependency cycle as its path (first node repeated at the end), or []; iterative, so any depth is safe."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack: list[Iterator[str]] = [iter(graph.get(root, ()))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph.get(nxt, ())))
    return []


def spec_problems(config: str, namespace: str, spec: Spec) -> list[str]:
    """Problems of the FluxConfig's own fields: an edit of the spec is the only fix (Stalled)."""
    out = name_problems(config, "metadata.name", "--name")
    wanted_ns = spec.get("namespace")
    if wanted_ns and wanted_ns != namespace:
        out.append(
            f"spec.namespace: '{wanted_ns}' differs from the FluxConfig's namespace '{namespace}'; the configuration's"
            " objects are created in the FluxConfig's namespace: create it there, or leave spec.namespace unset"
        )
    kind = source_kind(spec)
    blocks = {
        "GitRepository": "gitRepository",
        "Bucket": "bucket",
        "AzureBlob": "azureBlob",
        "OCIRepository": "ociRepository",
    }
    wanted = blocks.get(kind)
    if wanted is None:
        out.append(f"spec.sourceKind: '{kind}' is not one of {', '.join(blocks)}")
    elif not spec.get(wanted):
        out.append(f"spec.{wanted} is required when spec.sourceKind is {kind}")
    for other in blocks.values():
        if other != wanted and spec.get(other):
            out.append(f"spec.{other} is set but spec.sourceKind is {kind}; remove it (it would be ignored)")
    block = spec.get(wanted) if wanted else None
    if wanted == "gitRepository" and block:
        out.extend(git_spec_problems(block))
    elif wanted == "ociRepository" and block:
        out.extend(_store_spec_problems(block, "spec.ociRepository", ("oci://",)))
    elif wanted in ("bucket", "azureBlob") and block:
        out.extend(_store_spec_problems(block, f"spec.{wanted}", HTTP_SCHEMES))
    out.extend(kustomization_problems(config, spec.get("kustomizations") or {}))
    return out


def auth_problems(spec: Spec, protected: Mapping[str, bytes]) -> list[str]:
    """Problems of the source's credentials, spec and protected parameters together: an edit of either fixes
    them, so they are retried rather than stalled. Only run once :func:`spec_problems` found none."""
    kind = source_kind(spec)
    if kind == "GitRepository":
        return git_auth_problems(spec.get("gitRepository") or {}, protected)
    if kind == "Bucket":
        return bucket_auth_problems(spec.get("bucket") or {}, protected)
    if kind == "AzureBlob":
        return azure_blob_auth_problems(spec.get("azureBlob") or {}, protected)
    return []
