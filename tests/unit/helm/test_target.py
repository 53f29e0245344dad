"""spec.kubeConfig, pure parts: the Secret reference, the watch index, helm's access to the remote cluster."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from gitops_mesh.errors import InvalidSpec
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.config import KubeConfig
from gitops_mesh.kube.remote import parse_remote
from helm_controller.action_requests import action_request
from helm_controller.actions import _with_kubeconfig, install_args
from helm_controller.target import RemoteTarget, kubeconfig_ref, kubeconfig_refs

TOKEN = "s3cret-remote-token"
KUBECONFIG = orjson.dumps(
    {
        "clusters": [{"name": "c", "cluster": {"server": "https://10.9.8.7:6443"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
)


def release(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "apps"}, "spec": {"chart": {}, **spec}}


def test_secret_ref_with_and_without_key() -> None:
    assert kubeconfig_ref(release()) is None
    assert kubeconfig_ref(release(kubeConfig={"secretRef": {"name": "far"}})) == ("far", None)
    assert kubeconfig_ref(release(kubeConfig={"secretRef": {"name": "far", "key": "kc"}})) == ("far", "kc")
    with pytest.raises(InvalidSpec, match=r"exactly one of \.spec\.kubeConfig\.configMapRef or"):
        kubeconfig_ref(release(kubeConfig={"secretRef": {}}))


def test_the_kubeconfig_secret_is_indexed_for_the_watch_label() -> None:
    assert kubeconfig_refs(release(kubeConfig={"secretRef": {"name": "far"}})) == ["Secret/apps/far"]
    assert kubeconfig_refs(release()) == []
    assert kubeconfig_refs(release(kubeConfig={"configMapRef": {"name": "x"}})) == []


async def test_helm_acts_as_the_service_account_on_the_remote_cluster(tmp_path: Path) -> None:
    remote = parse_remote(KUBECONFIG, origin="KubeConfig secret 'apps/far' key 'value'")
    target = RemoteTarget(remote, KubeClient(KubeConfig(host="https://10.9.8.7:6443")), "1")
    plain = target.access(release(), "")
    assert plain.kubeconfig is None
    assert plain.as_user is None
    assert plain.client is target.client
    access = target.access(release(serviceAccountName="deployer"), "")
    assert access.as_user == "system:serviceaccount:apps:deployer"
    assert target.access(release(), "fallback").as_user == "system:serviceaccount:apps:fallback"
    assert TOKEN not in repr(access)
    # Each action writes the kubeconfig 0600 into its own directory; argv names the file, never its content.
    req = _with_kubeconfig(action_request(release(serviceAccountName="deployer"), "install", kube=access), tmp_path)
    assert req.kube.kubeconfig == tmp_path / "kubeconfig"
    assert stat.S_IMODE(req.kube.kubeconfig.stat().st_mode) == 0o600
    written = orjson.loads(req.kube.kubeconfig.read_bytes())
    assert written["users"][0]["user"] == {"token": TOKEN}
    argv = install_args(req, tmp_path / "values.yaml")
    assert argv[argv.index("--kubeconfig") + 1] == str(tmp_path / "kubeconfig")
    assert argv[argv.index("--kube-as-user") + 1] == "system:serviceaccount:apps:deployer"
    assert not any(TOKEN in a for a in argv)
    await target.client.close()
