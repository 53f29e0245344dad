"""Topic and consumer-group names under one prefix."""

from __future__ import annotations

from gitops_mesh.bus.topics import DEFAULT_PREFIX, Topic, Topics


def test_names_and_groups_share_the_prefix() -> None:
    assert Topics().name(Topic.APPLIED) == f"{DEFAULT_PREFIX}applied"
    mine, theirs = Topics("t1."), Topics("t2.")
    assert mine.name(Topic.APPLIED) == "t1.applied"
    # Two installations (or two tests) on one Kafka: apart in topics, apart in groups, no shared rebalances.
    assert mine.group("kustomize-controller") == "t1.kustomize-controller"
    assert mine.group("kustomize-controller") != theirs.group("kustomize-controller")
