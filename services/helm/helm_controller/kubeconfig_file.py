"""The kubeconfig file helm runs with: the controller's own, or one written for the pod (paths to its token, never the token)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from helm_controller.settings import HelmSettings

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_kubeconfig(environ: Mapping[str, str], service_account_dir: Path) -> dict[str, object]:
    """A kubeconfig for helm that points at the pod's own token and CA files (paths, never their contents)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise SystemExit("helm-controller: no kubeconfig (--kubeconfig, $KUBECONFIG) and not in a cluster")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "in-cluster",
                "cluster": {"server": server, "certificate-authority": str(service_account_dir / "ca.crt")},
            }
        ],
        "users": [{"name": "helm-controller", "user": {"tokenFile": str(service_account_dir / "token")}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "helm-controller"}}],
        "current-context": "in-cluster",
    }


def helm_kubeconfig(settings: HelmSettings, workdir: Path, environ: Mapping[str, str]) -> Path:
    """The kubeconfig helm runs with: ours when we have a file, else one for the pod, written 0600."""
    configured = settings.kubeconfig or environ.get("KUBECONFIG", "")
    if configured and os.pathsep not in configured:
        return Path(configured)
    if configured:
        raise SystemExit("helm-controller: helm needs one kubeconfig file, not a $KUBECONFIG list")
    path = workdir / "kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(in_cluster_kubeconfig(environ, SERVICE_ACCOUNT_DIR)))
    return path
