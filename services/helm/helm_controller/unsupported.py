"""HelmRelease spec fields this controller does not implement, refused when set (see gitops_mesh.reconcile.unsupported).

Refused before a HelmChart is written or helm runs: each of these, ignored, would change what is released
where (another cluster's release made on this one, a custom resource reported ready unchecked, an unverified chart).
"""

from __future__ import annotations

from gitops_mesh.reconcile.unsupported import Unsupported, refuse_unsupported

HELMRELEASE: tuple[Unsupported, ...] = (
    Unsupported(
        "kubeConfig.configMapRef",
        "secret-less authentication to a remote cluster (workload identity) is not implemented; use "
        "kubeConfig.secretRef — ignoring it would install the release on this cluster",
    ),
    Unsupported(
        "healthCheckExprs",
        "CEL health checks are not implemented; ignoring them would report custom resources ready unchecked",
    ),
    Unsupported(
        "dependsOn[].readyExpr",
        "CEL readiness expressions are not implemented; ignoring one would proceed on a dependency's Ready alone",
    ),
    Unsupported(
        "chart.spec.verify.provider",
        "notation signatures are not implemented (cosign is: the HelmChart verifies the chart's signature); "
        "ignoring it would release an unverified chart",
        allowed=frozenset({"cosign"}),
    ),
    Unsupported("waitStrategy.name", "only the poller wait strategy is implemented", allowed=frozenset({"poller"})),
    Unsupported(
        "upgrade.chartNameChangeStrategy",
        "reinstalling on a chart name change is not implemented",
        allowed=frozenset({"InPlaceUpdate"}),
    ),
    Unsupported("upgrade.preserveValues", "reusing the last release's values is not implemented"),
)

__all__ = ["HELMRELEASE", "refuse_unsupported"]
