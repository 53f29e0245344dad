"""Dev tooling: deleting a test's or a benchmark's namespace once its controllers are gone.

Our controllers put finalizers on the toolkit objects they reconcile; with the processes stopped nobody
removes them, and the namespace would stay Terminating for ever, its objects piling up in the stack
(the namespace controller retries them all, and every later test and benchmark pays for it).
"""

from __future__ import annotations

import contextlib

from gitops_mesh.errors import GitopsMeshError, NotFound
from gitops_mesh.kube import KubeClient

#: Every namespaced kind in deploy/crds/, at its served version.
TOOLKIT_KINDS = (
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    ("source.toolkit.fluxcd.io/v1", "HelmChart"),
    ("source.toolkit.fluxcd.io/v1", "Bucket"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
    ("source.toolkit.fluxcd.io/v1", "ExternalArtifact"),
    ("source.extensions.fluxcd.io/v1beta1", "ArtifactGenerator"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("notification.toolkit.fluxcd.io/v1beta3", "Provider"),
    ("notification.toolkit.fluxcd.io/v1beta3", "Alert"),
    ("notification.toolkit.fluxcd.io/v1", "Receiver"),
    ("clusterconfig.azure.com/v1alpha1", "FluxConfig"),
)


async def drop_finalizers(kube: KubeClient, namespace: str) -> None:
    """Best effort: a kind that is not served, or an apiserver that is away, leaves the rest to do."""
    for api_version, kind in TOOLKIT_KINDS:
        with contextlib.suppress(GitopsMeshError):
            for obj in (await kube.list(api_version, kind, namespace=namespace)).items:
                if obj["metadata"].get("finalizers"):
                    with contextlib.suppress(NotFound):
                        patch = {"metadata": {"finalizers": None}}
                        await kube.patch(api_version, kind, obj["metadata"]["name"], patch, namespace=namespace)
