"""The `fluxconfig-controller` console script: the FluxConfig runner, woken by its protected Secrets."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Sequence

from fluxconfig_controller import model as m
from fluxconfig_controller.fluxconfig import FluxConfigReconciler
from fluxconfig_controller.references import secret_refs
from fluxconfig_controller.settings import FluxConfigSettings, parse
from fluxconfig_controller.status_feed import TOPICS, StatusFeed
from fluxconfig_controller.suspending import Suspender
from gitops_mesh.process import (
    ProcessContext,
    follow_labelled_references,
    kind_runner,
    on_bus_watches,
    own_cache,
    platform,
    run,
    run_with_bus,
)

CONTROLLER = "fluxconfig-controller"


@contextlib.asynccontextmanager
async def setup(ctx: ProcessContext[FluxConfigSettings]) -> AsyncIterator[None]:
    s = ctx.settings
    async with platform(ctx) as p:
        configs = own_cache(ctx, p, m.API_VERSION, m.KIND)
        reconciler = FluxConfigReconciler(kube=p.kube, settings=s, configs=configs)
        runner = kind_runner(ctx, p, reconciler, retry_interval=lambda _: s.retry_interval)
        # The protected parameters and localAuthRef Secrets, when labelled reconcile.fluxcd.io/watch: Enabled,
        # wake the config at once; unlabelled ones are found by the retry.
        follow_labelled_references(p, runner, secret_refs)
        # The runner does not reconcile a suspended config; its Flux objects are suspended from here.
        suspender = Suspender(p.kube, configs)
        ctx.spawn(suspender.run(), name="fluxconfig/suspend")
        # Compliance (statuses[], complianceState, ...) is the status feed's, fed by the bus and the caches.
        feed = StatusFeed(
            kube=p.kube,
            configs=configs,
            caches=p.caches,
            publisher=p.publisher,
            controller=ctx.controller,
            instance=ctx.instance,
            recorder=p.recorder,
        )
        handler = feed.handler(on_bus_watches([runner]))
        async with run_with_bus(ctx, p, [runner], topics=list(TOPICS), handler=handler), feed.running(ctx.spawn):
            yield


def main(argv: Sequence[str] | None = None) -> int:
    return run(CONTROLLER, parse(argv), setup)


if __name__ == "__main__":
    sys.exit(main())
