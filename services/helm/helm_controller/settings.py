"""helm-controller's flags: the shared ones plus Flux's helm-controller flags and where helm runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gitops_mesh.settings import Settings, parse_as


@dataclass(frozen=True, slots=True)
class HelmSettings(Settings):
    helm_path: str = ""
    #: empty: a fresh private directory per process for helm's homes and chart files
    temp_dir: str = ""
    artifact_max_size: int = 50 << 20
    #: how often the readiness of a release's objects is looked at while it rolls out
    health_poll: float = 2.0
    #: helm processes at once (each is 55-85 MiB resident); 0: as many as --concurrent
    helm_processes: int = 0
    #: Flux's --default-to-retry-on-failure: RetryOnFailure when a HelmRelease names no strategy
    default_to_retry_on_failure: bool = False
    #: the kustomize binary post-renderers run (empty: $KUSTOMIZE, else `kustomize` on PATH)
    kustomize_path: str = ""
    #: Flux's --insecure-kubeconfig-exec / --insecure-kubeconfig-tls: what a spec.kubeConfig Secret may do
    insecure_kubeconfig_exec: bool = False
    insecure_kubeconfig_tls: bool = False


_HELP = {
    "helm_path": "the helm binary (default: $HELM, else `helm` on PATH)",
    "temp_dir": "directory for helm's homes and chart files (default: a fresh private directory per process)",
    "artifact_max_size": "largest chart artifact fetched, in bytes",
    "health_poll": "interval between looks at a release's objects while they roll out",
    "helm_processes": "most helm processes run at once (0: --concurrent); reconciles beyond it wait for a slot",
    "default_to_retry_on_failure": "use the RetryOnFailure strategy when a HelmRelease names none",
    "kustomize_path": "the kustomize binary post-renderers run (default: $KUSTOMIZE, else `kustomize` on PATH)",
    "insecure_kubeconfig_exec": "allow the user.exec section in kubeconfigs provided for remote apply",
    "insecure_kubeconfig_tls": "allow that kubeconfigs provided for remote apply can disable TLS verification",
}


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> HelmSettings:
    return parse_as(HelmSettings(), argv, prog="helm-controller", help=_HELP, env=env)
