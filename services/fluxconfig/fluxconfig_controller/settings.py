"""fluxconfig-controller's flags: the shared ones plus how often a FluxConfig is re-applied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gitops_mesh.settings import Settings, parse_as


@dataclass(frozen=True, slots=True)
class FluxConfigSettings(Settings):
    #: a FluxConfig's objects are re-applied this often (drift repair: a deleted Kustomization comes back)
    resync_interval: float = 600.0
    #: a failed FluxConfig (a Secret missing, an apply refused) is tried again after this
    retry_interval: float = 30.0
    #: how often a deletion looks again at the Kustomizations it waits for (their finalizers prune)
    deletion_poll: float = 2.0
    #: Azure's multiTenancy.enforce: the Kustomizations impersonate flux-applier (false: Flux's default)
    multi_tenancy_enforce: bool = True


_HELP = {
    "resync_interval": "interval at which a FluxConfig's objects are applied again",
    "retry_interval": "interval at which a failed FluxConfig is tried again",
    "deletion_poll": "interval at which a deleted FluxConfig looks again at the Kustomizations being removed",
    "multi_tenancy_enforce": (
        "the Kustomizations impersonate the namespace's flux-applier (Azure's multiTenancy.enforce); false leaves"
        " them Flux's default identity"
    ),
}


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> FluxConfigSettings:
    return parse_as(FluxConfigSettings(), argv, prog="fluxconfig-controller", help=_HELP, env=env)
