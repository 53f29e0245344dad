"""The pure plan: a FluxConfig and its secrets → the Flux objects, auth Secret and RBAC it wants."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fluxconfig_controller import model as m
from fluxconfig_controller.known_hosts import DEFAULT_KNOWN_HOSTS
from fluxconfig_controller.plan import (
    AuthProblem,
    decode_protected,
    flux_git_url,
    plan,
    protected_needed_by,
    rbac_plan,
    stale,
    wanted_key_algorithm,
)
from fluxconfig_controller.sshkeys import KeyAlgorithm, KeyPair, generate
from gitops_mesh.kube.objects import KubeObject


def config(spec: dict[str, Any], name: str = "cfg", ns: str = "team", **meta: Any) -> KubeObject:
    return {
        "apiVersion": m.API_VERSION,
        "kind": m.KIND,
        "metadata": {"name": name, "namespace": ns, "uid": "u-1", **meta},
        "spec": spec,
    }


def git(**extra: Any) -> dict[str, Any]:
    return {"url": "https://git.example.com/org/repo", "repositoryRef": {"branch": "main"}, **extra}


def by_kind(objs: list[KubeObject], kind: str) -> list[KubeObject]:
    return [o for o in objs if o["kind"] == kind]


def secret_text(secret: KubeObject, key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def test_git_source_and_kustomizations_with_defaults() -> None:
    spec = {
        "sourceKind": "GitRepository",
        "gitRepository": git(),
        "kustomizations": {
            "infra": {"path": "./infrastructure"},
            "apps": {"path": "./apps", "dependsOn": ["infra"], "prune": True, "retryIntervalInSeconds": 30},
        },
    }
    p = plan(config(spec), {}, None)
    (source,) = by_kind(p.objects, "GitRepository")
    assert source["metadata"]["name"] == "cfg"
    assert source["spec"] == {
        "url": "https://git.example.com/org/repo",
        "ref": {"branch": "main"},
        "interval": "600s",
        "timeout": "600s",
        "suspend": False,
    }
    assert by_kind(p.objects, "Secret") == []  # a public repository needs no Secret
    kustomizations = {k["metadata"]["name"]: k["spec"] for k in by_kind(p.objects, "Kustomization")}
    assert kustomizations["cfg-infra"] == {
        "sourceRef": {"kind": "GitRepository", "name": "cfg"},
        "interval": "600s",
        "timeout": "600s",
        "prune": False,
        "force": False,
        "wait": True,
        "serviceAccountName": "flux-applier",
        "suspend": False,
        "path": "./infrastructure",
    }
    assert kustomizations["cfg-apps"]["dependsOn"] == [{"name": "cfg-infra"}]
    assert kustomizations["cfg-apps"]["prune"] is True
    assert kustomizations["cfg-apps"]["retryInterval"] == "30s"
    # multi-tenancy: nothing the config makes points into another namespace
    assert all("namespace" not in k["sourceRef"] for k in kustomizations.values())
    assert p.public_key is None


def test_every_object_is_labelled_and_owned() -> None:
    spec = {"gitRepository": git(httpsUser="alice"), "kustomizations": {"a": {}}}
    p = plan(config(spec, labels={m.OPERATION_ID: "op-7"}), {"httpsKey": b"pw"}, None)
    assert len(p.objects) == 3
    for obj in p.objects:
        labels = obj["metadata"]["labels"]
        assert labels == {
            m.MANAGED_LABEL: "true",
            m.NAME_LABEL: "cfg",
            m.NAMESPACE_LABEL: "team",
            m.OPERATION_ID: "op-7",
        }
        assert obj["metadata"]["namespace"] == "team"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "u-1"


@pytest.mark.parametrize(
    ("ref", "wanted"),
    [
        ({"branch": "b", "tag": "t", "semver": "1.x", "commit": "abc"}, {"commit": "abc"}),
        ({"branch": "b", "tag": "t", "semver": "1.x"}, {"semver": "1.x"}),
        ({"branch": "b", "tag": "t"}, {"tag": "t"}),
        ({"branch": "b"}, {"branch": "b"}),
    ],
)
def test_repository_ref_precedence(ref: dict[str, str], wanted: dict[str, str]) -> None:
    p = plan(config({"gitRepository": git(repositoryRef=ref)}), {}, None)
    assert by_kind(p.objects, "GitRepository")[0]["spec"]["ref"] == wanted


def test_https_basic_auth_and_ca_in_flux_keys() -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"
    spec = {"gitRepository": git(httpsUser="alice", httpsCACert=base64.b64encode(ca).decode())}
    p = plan(config(spec), {"httpsKey": b"s3cret"}, None)
    (secret,) = by_kind(p.objects, "Secret")
    assert secret["metadata"]["name"] == "cfg-auth"
    assert secret_text(secret, "username") == b"alice"
    assert secret_text(secret, "password") == b"s3cret"
    assert secret_text(secret, "ca.crt") == ca
    assert by_kind(p.objects, "GitRepository")[0]["spec"]["secretRef"] == {"name": "cfg-auth"}


def test_ssh_with_a_given_key_and_default_known_hosts() -> None:
    spec = {"gitRepository": git(url="git@github.com:org/repo.git")}
    p = plan(config(spec), {"sshPrivateKey": b"PRIVATE"}, None)
    (secret,) = by_kind(p.objects, "Secret")
    assert secret_text(secret, "identity") == b"PRIVATE"
    assert secret_text(secret, "known_hosts") == DEFAULT_KNOWN_HOSTS
    assert by_kind(p.objects, "GitRepository")[0]["spec"]["url"] == "ssh://git@github.com/org/repo.git"
    assert p.public_key is None


def test_ssh_without_a_key_uses_the_generated_pair_and_shows_its_public_key() -> None:
    key = generate(KeyAlgorithm.ED25519, "c")
    known = b"[127.0.0.1]:2222 " + DEFAULT_KNOWN_HOSTS.split(b" ", 1)[1].split(b"\n")[0] + b"\n"
    spec = {"gitRepository": git(url="ssh://git@h/r", sshKnownHosts=base64.b64encode(known).decode())}
    assert wanted_key_algorithm(spec, {}) is KeyAlgorithm.ED25519
    p = plan(config(spec), {}, key)
    auth, keypair = sorted(by_kind(p.objects, "Secret"), key=lambda s: s["metadata"]["name"])
    assert auth["metadata"]["name"] == "cfg-auth"
    assert secret_text(auth, "identity") == key.private
    assert secret_text(auth, "known_hosts") == known
    assert keypair["metadata"]["name"] == "cfg-ssh-keypair"
    assert keypair["metadata"]["annotations"][m.KEY_ALGORITHM_ANNOTATION] == "ed25519"
    assert p.public_key == key.public


def test_rsa_is_generated_on_request() -> None:
    spec = {"gitRepository": git(url="ssh://git@h/r", sshKeyAlgorithm="rsa")}
    assert wanted_key_algorithm(spec, {}) is KeyAlgorithm.RSA
    assert wanted_key_algorithm(spec, {"sshPrivateKey": b"k"}) is None
    assert wanted_key_algorithm({"gitRepository": git()}, {}) is None


def test_a_kept_key_is_not_used_once_the_user_gives_one() -> None:
    key = KeyPair(KeyAlgorithm.ED25519, b"GEN", "ssh-ed25519 AAAA c")
    p = plan(config({"gitRepository": git(url="ssh://git@h/r")}), {"sshPrivateKey": b"MINE"}, key)
    names = {s["metadata"]["name"]: s for s in by_kind(p.objects, "Secret")}
    assert set(names) == {"cfg-auth", "cfg-ssh-keypair"}  # kept for the config's lifetime
    assert secret_text(names["cfg-auth"], "identity") == b"MINE"
    assert p.public_key is None


def test_local_auth_ref_replaces_the_auth_secret() -> None:
    p = plan(config({"gitRepository": git(localAuthRef="mine")}), {}, None)
    assert by_kind(p.objects, "Secret") == []
    assert by_kind(p.objects, "GitRepository")[0]["spec"]["secretRef"] == {"name": "mine"}


def test_bucket_generic() -> None:
    spec = {
        "sourceKind": "Bucket",
        "bucket": {"url": "http://minio.local:9000", "bucketName": "b", "accessKey": "AK", "timeoutInSeconds": 60},
    }
    p = plan(config(spec), {"bucketSecretKey": b"SK"}, None)
    (bucket,) = by_kind(p.objects, "Bucket")
    assert bucket["spec"] == {
        "interval": "600s",
        "timeout": "60s",
        "suspend": False,
        "secretRef": {"name": "cfg-auth"},
        "provider": "generic",
        "bucketName": "b",
        "endpoint": "minio.local:9000",
        "insecure": True,
    }
    (secret,) = by_kind(p.objects, "Secret")
    assert (secret_text(secret, "accesskey"), secret_text(secret, "secretkey")) == (b"AK", b"SK")


def test_azure_blob_is_a_bucket_with_provider_azure() -> None:
    spec = {
        "sourceKind": "AzureBlob",
        "azureBlob": {
            "url": "https://acct.blob.core.windows.net",
            "containerName": "c",
            "servicePrincipal": {"clientId": "cid", "tenantId": "tid"},
        },
        "kustomizations": {"k": {}},
    }
    p = plan(config(spec), {"clientSecret": b"cs"}, None)
    (bucket,) = by_kind(p.objects, "Bucket")
    assert bucket["spec"]["provider"] == "azure"
    assert bucket["spec"]["bucketName"] == "c"
    assert bucket["spec"]["endpoint"] == "https://acct.blob.core.windows.net"
    (secret,) = by_kind(p.objects, "Secret")
    assert {k: secret_text(secret, k) for k in secret["data"]} == {
        "tenantId": b"tid",
        "clientId": b"cid",
        "clientSecret": b"cs",
    }
    assert by_kind(p.objects, "Kustomization")[0]["spec"]["sourceRef"] == {"kind": "Bucket", "name": "cfg"}


def test_oci_ref_precedence() -> None:
    spec = {
        "sourceKind": "OCIRepository",
        "ociRepository": {"url": "oci://r/x", "repositoryRef": {"tag": "t", "digest": "sha256:1"}},
    }
    (oci,) = by_kind(plan(config(spec), {}, None).objects, "OCIRepository")
    assert oci["spec"]["ref"] == {"digest": "sha256:1"}


def test_suspend_is_carried_into_every_flux_object() -> None:
    p = plan(config({"gitRepository": git(), "suspend": True, "kustomizations": {"a": {}}}), {}, None)
    assert all(o["spec"]["suspend"] is True for o in p.objects if o["kind"] != "Secret")


def test_protected_values_are_base64_as_arm_takes_them() -> None:
    data = {"httpsKey": base64.b64encode(b"pw"), "unrelated": b"x"}
    assert decode_protected("s", data) == {"httpsKey": b"pw"}
    with pytest.raises(AuthProblem) as err:
        decode_protected("s", {"httpsKey": b"not base64!"})
    assert "'httpsKey'" in str(err.value)
    assert "not base64!" not in str(err.value)


def test_what_needs_the_protected_parameters() -> None:
    assert protected_needed_by({"gitRepository": git()}) is None
    assert "httpsUser" in (protected_needed_by({"gitRepository": git(httpsUser="a")}) or "")


def test_git_urls() -> None:
    assert flux_git_url("git@github.com:org/r.git") == "ssh://git@github.com/org/r.git"
    assert flux_git_url("https://h/r") == "https://h/r"


def test_stale_objects_are_those_the_plan_dropped() -> None:
    p = plan(config({"gitRepository": git(), "kustomizations": {"a": {}}}), {}, None)
    existing = [
        {"kind": "Kustomization", "metadata": {"name": "cfg-a"}},
        {"kind": "Kustomization", "metadata": {"name": "cfg-removed"}},
        {"kind": "Bucket", "metadata": {"name": "cfg"}},  # the source kind changed
    ]
    assert [o["metadata"]["name"] for o in stale(existing, p)] == ["cfg-removed", "cfg"]


def test_rbac_by_scope_shared_by_the_namespace() -> None:
    cluster = config({"scope": "cluster"}, name="a")
    namespaced = config({"scope": "namespace"}, name="b")
    both = rbac_plan("team", [cluster, namespaced])
    kinds = {o["kind"]: o for o in both.apply}
    assert set(kinds) == {"ServiceAccount", "RoleBinding", "ClusterRoleBinding"}
    assert kinds["RoleBinding"]["roleRef"]["name"] == "admin"
    assert kinds["ClusterRoleBinding"]["roleRef"]["name"] == "cluster-admin"
    assert kinds["ClusterRoleBinding"]["metadata"]["name"] == "flux-applier-team"
    assert kinds["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "flux-applier", "namespace": "team"}
    ]
    assert both.delete == []
    only_ns = rbac_plan("team", [namespaced])
    assert {o["kind"] for o in only_ns.apply} == {"ServiceAccount", "RoleBinding"}
    assert [d[1] for d in only_ns.delete] == ["ClusterRoleBinding"]
    deleting = config({"scope": "namespace"}, name="b", deletionTimestamp="2026-01-01T00:00:00Z")
    gone = rbac_plan("team", [deleting])
    assert gone.apply == []
    assert {d[1] for d in gone.delete} == {"ServiceAccount", "RoleBinding", "ClusterRoleBinding"}


def test_multi_tenancy_opt_out_leaves_flux_s_default_identity() -> None:
    spec = {"gitRepository": git(), "kustomizations": {"a": {}}}
    (enforced,) = by_kind(plan(config(spec), {}, None).objects, "Kustomization")
    assert enforced["spec"]["serviceAccountName"] == "flux-applier"
    (opted_out,) = by_kind(plan(config(spec), {}, None, impersonate=False).objects, "Kustomization")
    assert "serviceAccountName" not in opted_out["spec"]
