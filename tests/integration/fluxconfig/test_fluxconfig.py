"""FluxConfig end to end: fluxconfig-controller → source/Kustomizations/auth/RBAC → source- and kustomize-controller."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gitops_mesh.errors import Invalid, NotFound
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from gitops_mesh_dev.gitserver import GitServer
from gitops_mesh_dev.repos import Repo
from tests.integration.conftest import eventually
from tests.integration.fluxconfig.conftest import (
    API,
    KS,
    SRC,
    FluxMesh,
    b64,
    configmap,
    fluxconfig,
    gone,
    protected,
)
from tests.support.fixtures import PASSWORD, USERNAME
from tests.support.sshd import Sshd

pytestmark = pytest.mark.stack

LABELS = ("clusterconfig.azure.com/is-managed", "clusterconfig.azure.com/name", "clusterconfig.azure.com/namespace")


def ready(obj: KubeObject) -> bool:
    return c.is_ready(obj) and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


async def test_https_basic_auth_dependson_entry_removal_and_deletion(
    mesh: FluxMesh, git_https: GitServer, make_repo: Callable[..., Repo]
) -> None:
    kube, ns = mesh.kube, mesh.namespace
    repo = make_repo("main")
    repo.commit({"infra/cm.yaml": configmap("infra-cm"), "apps/cm.yaml": configmap("apps-cm")})
    repo.push()
    assert git_https.tls is not None
    await protected(kube, ns, "cfg", {"httpsKey": PASSWORD})
    spec = {
        "scope": "namespace",
        "gitRepository": {
            "url": git_https.url(repo.name),
            "repositoryRef": {"branch": "main"},
            "httpsUser": USERNAME,
            "httpsCACert": b64(git_https.tls.ca_pem),
        },
        "kustomizations": {
            "infra": {"path": "./infra", "prune": True},
            "apps": {"path": "./apps", "prune": True, "dependsOn": ["infra"]},
        },
    }
    await kube.create(fluxconfig(ns, "cfg", spec))
    cfg = await mesh.until_config("cfg", ready)
    assert cfg["status"]["provisioningState"] == "Succeeded"
    assert "errorMessage" not in cfg["status"]

    source = await mesh.until_ready(SRC, "GitRepository", "cfg")
    assert source["spec"]["secretRef"] == {"name": "cfg-auth"}
    infra = await mesh.until_ready(KS, "Kustomization", "cfg-infra")
    apps = await mesh.until_ready(KS, "Kustomization", "cfg-apps")
    assert apps["spec"]["dependsOn"] == [{"name": "cfg-infra"}]
    assert apps["spec"]["serviceAccountName"] == "flux-applier"
    assert infra["status"]["lastAppliedRevision"] == apps["status"]["lastAppliedRevision"]
    await kube.get("v1", "ConfigMap", "infra-cm", namespace=ns)
    await kube.get("v1", "ConfigMap", "apps-cm", namespace=ns)
    auth = await kube.get("v1", "Secret", "cfg-auth", namespace=ns)
    assert set(auth["data"]) == {"username", "password", "ca.crt"}
    for obj in (source, infra, apps, auth):
        labels = obj["metadata"]["labels"]
        assert [labels.get(k) for k in LABELS] == ["true", "cfg", ns]
    # namespace scope: a RoleBinding to admin, no cluster-wide binding
    binding = await kube.get("rbac.authorization.k8s.io/v1", "RoleBinding", "flux-applier-binding", namespace=ns)
    assert binding["roleRef"]["name"] == "admin"
    assert await gone(lambda: kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"flux-applier-{ns}"))

    # Removing an entry removes its Kustomization (and, prune: true, what it applied).
    await kube.patch(API, "FluxConfig", "cfg", {"spec": {"kustomizations": {"apps": None}}}, namespace=ns)

    async def apps_gone() -> bool:
        return await gone(lambda: kube.get(KS, "Kustomization", "cfg-apps", namespace=ns)) and await gone(
            lambda: kube.get("v1", "ConfigMap", "apps-cm", namespace=ns)
        )

    await eventually(apps_gone, timeout=30)
    await kube.get(KS, "Kustomization", "cfg-infra", namespace=ns)

    # Deleting the config removes everything it made; prune: true takes the workloads with it.
    await kube.delete(API, "FluxConfig", "cfg", namespace=ns)

    async def all_gone() -> bool:
        checks = [
            lambda: kube.get(API, "FluxConfig", "cfg", namespace=ns),
            lambda: kube.get(KS, "Kustomization", "cfg-infra", namespace=ns),
            lambda: kube.get(SRC, "GitRepository", "cfg", namespace=ns),
            lambda: kube.get("v1", "Secret", "cfg-auth", namespace=ns),
            lambda: kube.get("v1", "ConfigMap", "infra-cm", namespace=ns),
            lambda: kube.get("v1", "ServiceAccount", "flux-applier", namespace=ns),
            lambda: kube.get("rbac.authorization.k8s.io/v1", "RoleBinding", "flux-applier-binding", namespace=ns),
        ]
        return all([await gone(check) for check in checks])

    await eventually(all_gone, timeout=30)
    # the protected parameters are the agent's, not ours
    await kube.get("v1", "Secret", "cfg-protected-parameters", namespace=ns)


async def test_ssh_with_a_generated_deploy_key(mesh: FluxMesh, sshd: Sshd, make_repo: Callable[..., Repo]) -> None:
    kube, ns = mesh.kube, mesh.namespace
    repo = make_repo("main")
    repo.commit({"deploy/cm.yaml": configmap("over-ssh")})
    repo.push()
    spec = {
        "scope": "cluster",
        "gitRepository": {
            "url": sshd.url(repo.bare),
            "repositoryRef": {"branch": "main"},
            "sshKnownHosts": b64(sshd.known_hosts()),
        },
        "kustomizations": {"deploy": {"path": "./deploy"}},
    }
    await kube.create(fluxconfig(ns, "ssh", spec))
    cfg = await mesh.until_config("ssh", lambda o: bool((o.get("status") or {}).get("repositoryPublicKey")))
    public = cfg["status"]["repositoryPublicKey"]
    assert public.startswith("ssh-ed25519 ")
    # The user adds it as a deploy key: here, to the real sshd's authorized_keys.
    authorized = sshd.workdir / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + public + "\n")
    try:
        # The GitRepository retries with backoff; ask it now rather than wait.
        await kube.patch(
            SRC, "GitRepository", "ssh",
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": str(time.time())}}}, namespace=ns,
        )  # fmt: skip
        await mesh.until_ready(SRC, "GitRepository", "ssh", timeout=60)
        await mesh.until_ready(KS, "Kustomization", "ssh-deploy", timeout=60)
        await kube.get("v1", "ConfigMap", "over-ssh", namespace=ns)
        # cluster scope: the ServiceAccount is bound to cluster-admin
        crb = await kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"flux-applier-{ns}")
        assert crb["roleRef"]["name"] == "cluster-admin"
        # The key is kept for the config's lifetime: a spec edit does not replace it.
        await kube.patch(
            API,
            "FluxConfig",
            "ssh",
            {"spec": {"kustomizations": {"deploy": {"syncIntervalInSeconds": 300}}}},
            namespace=ns,
        )
        cfg = await mesh.until_config("ssh", ready)
        assert cfg["status"]["repositoryPublicKey"] == public
        await kube.delete(API, "FluxConfig", "ssh", namespace=ns)

        async def cleaned() -> bool:
            return await gone(lambda: kube.get("v1", "Secret", "ssh-ssh-keypair", namespace=ns)) and await gone(
                lambda: kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"flux-applier-{ns}")
            )

        await eventually(cleaned, timeout=30)
    finally:
        authorized.write_text(before)


async def test_namespace_scope_cannot_write_elsewhere_cluster_scope_can(
    mesh: FluxMesh, git_https: GitServer, make_repo: Callable[..., Repo], unique: str
) -> None:
    kube, ns = mesh.kube, mesh.namespace
    other = f"{unique}-other"
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        repo = make_repo("main")
        repo.commit({"x/cm.yaml": configmap("tenant-escape", other)})
        repo.push()
        assert git_https.tls is not None
        await protected(kube, ns, "tenant", {"httpsKey": PASSWORD})
        spec = {
            "scope": "namespace",
            "gitRepository": {
                "url": git_https.url(repo.name),
                "repositoryRef": {"branch": "main"},
                "httpsUser": USERNAME,
                "httpsCACert": b64(git_https.tls.ca_pem),
            },
            "kustomizations": {"x": {"path": "./x", "retryIntervalInSeconds": 1}},
        }
        await kube.create(fluxconfig(ns, "tenant", spec))

        async def refused() -> bool:
            ks = await kube.get(KS, "Kustomization", "tenant-x", namespace=ns)
            return c.is_false(ks, "Ready") and "forbidden" in c.get_message(ks, "Ready").lower()

        await eventually(refused, timeout=60)
        assert await gone(lambda: kube.get("v1", "ConfigMap", "tenant-escape", namespace=other))

        # cluster scope binds flux-applier to cluster-admin: the same manifests now apply
        await kube.patch(API, "FluxConfig", "tenant", {"spec": {"scope": "cluster"}}, namespace=ns)
        await mesh.until_ready(KS, "Kustomization", "tenant-x", timeout=60)
        await kube.get("v1", "ConfigMap", "tenant-escape", namespace=other)
    finally:
        await kube.delete("v1", "Namespace", other)


async def test_bad_input_creates_nothing(mesh: FluxMesh) -> None:
    kube, ns = mesh.kube, mesh.namespace
    git = {"url": "https://git.example.com/r", "repositoryRef": {"branch": "main"}}

    # Refused at admission by the CRD's CEL rules, with the CLI's words.
    with pytest.raises(Invalid) as err:
        await kube.create(fluxconfig(ns, "bad-url", {"gitRepository": {**git, "url": "ftp://h/r"}}))
    assert "Url must begin with one of" in str(err.value)
    with pytest.raises(Invalid) as err:
        await kube.create(
            fluxconfig(ns, "two-refs", {"gitRepository": {**git, "repositoryRef": {"branch": "a", "tag": "b"}}})
        )
    assert "Repository reference is invalid" in str(err.value)
    with pytest.raises(Invalid):
        await kube.create(fluxconfig(ns, "dep", {"gitRepository": git, "kustomizations": {"a": {"dependsOn": ["zz"]}}}))

    # Refused by the controller: the protected parameters it needs are missing.
    await kube.create(
        fluxconfig(ns, "nosecret", {"gitRepository": {**git, "httpsUser": "alice"}, "kustomizations": {"a": {}}})
    )
    cfg = await mesh.until_config("nosecret", lambda o: c.is_false(o, "Ready"))
    assert c.get_reason(cfg, "Ready") == "AuthenticationFailed"
    assert "nosecret-protected-parameters" in c.get_message(cfg, "Ready")
    assert cfg["status"]["provisioningState"] == "Failed"

    # An SSH key that does not parse: the CLI's message; the key itself is never shown.
    await protected(kube, ns, "badkey", {"sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key\n"})
    await kube.create(
        fluxconfig(ns, "badkey", {"gitRepository": {**git, "url": "ssh://git@h/r"}, "kustomizations": {"a": {}}})
    )
    cfg = await mesh.until_config("badkey", lambda o: c.is_false(o, "Ready"))
    assert "--ssh-private-key provided in invalid format" in c.get_message(cfg, "Ready")
    assert "not-a-key" not in str(cfg["status"])

    # An SSH key with an http URL (the CLI's mutual exclusion), and a localAuthRef that does not exist.
    await protected(kube, ns, "sshhttp", {"sshPrivateKey": "whatever"})
    await kube.create(fluxconfig(ns, "sshhttp", {"gitRepository": git}))
    await kube.create(fluxconfig(ns, "noref", {"gitRepository": {**git, "localAuthRef": "missing"}}))
    cfg = await mesh.until_config("sshhttp", lambda o: c.is_false(o, "Ready"))
    assert "An --ssh-private-key cannot be used with an http(s) url" in c.get_message(cfg, "Ready")
    cfg = await mesh.until_config("noref", lambda o: c.is_false(o, "Ready"))
    assert f"'{ns}/missing' named by localAuthRef was not found" in c.get_message(cfg, "Ready")

    # An unsupported field stalls with the reason every controller uses.
    await kube.create(fluxconfig(ns, "waits", {"gitRepository": git, "waitForReconciliation": True}))
    cfg = await mesh.until_config("waits", lambda o: c.is_stalled(o))
    assert c.get_reason(cfg, "Ready") == "UnsupportedField"

    # Nothing was created for any of them.
    for api, kind in ((SRC, "GitRepository"), (KS, "Kustomization")):
        assert (await kube.list(api, kind, namespace=ns)).items == []
    assert await gone(lambda: kube.get("v1", "ServiceAccount", "flux-applier", namespace=ns))
    secrets = [s["metadata"]["name"] for s in (await kube.list("v1", "Secret", namespace=ns)).items]
    assert not [s for s in secrets if not s.endswith("-protected-parameters")]
    # a failure is on the bus for each (Alerts route on it), without the secret values
    failed = {
        e.involved_object.name for e in mesh.bus.events if e.kind == "failed" and e.involved_object.kind == "FluxConfig"
    }
    assert {"nosecret", "badkey", "sshhttp", "noref", "waits"} <= failed
    with pytest.raises(NotFound):
        await kube.get(API, "FluxConfig", "bad-url", namespace=ns)
