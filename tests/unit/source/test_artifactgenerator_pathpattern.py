"""spec.pathPattern: directories matched with captures, artifacts rendered per directory, Flux's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.errors import InvalidSpec, TransientError
from gitops_mesh.kube.objects import KubeObject
from source_controller.artifactgenerator_plan import drift, external_artifact, rendered_outputs, validate
from source_controller.generator.pathpattern import PathPatternError, match_directories, parse_path_pattern, render


def tree(root: Path, *dirs: str) -> Path:
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    return root


def test_directories_match_with_their_captures_in_walk_order(tmp_path: Path) -> None:
    root = tree(tmp_path, "apps/Auth/envs/prod", "apps/Auth/envs/dev", "apps/web/envs/prod/extra", "apps/web/base")
    (tmp_path / "apps/file-envs").write_text("not a directory")
    pattern = parse_path_pattern("@mono/apps/{app}/envs/{env}")
    assert pattern.alias == "mono"
    assert match_directories(root, pattern) == [
        ("apps/Auth/envs/dev", {"app": "Auth", "env": "dev"}),
        ("apps/Auth/envs/prod", {"app": "Auth", "env": "prod"}),
        ("apps/web/envs/prod", {"app": "web", "env": "prod"}),
    ]
    # A capture is one segment; literal text around it must match too.
    assert parse_path_pattern("@m/apps/{app}-svc").match("apps/a/b-svc") is None
    assert parse_path_pattern("@m/apps/{app}-svc").match("apps/web-svc") == {"app": "web"}
    assert parse_path_pattern("@m/a.b/{x}").match("axb/y") is None, "literal dots are not regex wildcards"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("apps/{app}", "invalid pathPattern format"),
        ("@m/apps/{app", "missing closing brace"),
        ("@m/apps/app}", "missing opening brace"),
        ("@m/apps/{}", "empty capture variable"),
        ("@m/apps/{a-b}", "must be a valid capture name"),
        ("@m/{app}/{app}", "duplicate capture variable 'app'"),
        ("@m/{_app}", "not a valid Kubernetes label key"),
    ],
)
def test_malformed_patterns_are_refused(spec: str, message: str) -> None:
    with pytest.raises(PathPatternError, match=message):
        parse_path_pattern(spec)


def test_render_uses_the_captures_and_refuses_unknown_ones() -> None:
    assert render("{app}-{env}", {"app": "web", "env": "prod"}) == "web-prod"
    with pytest.raises(PathPatternError, match="'team' is not defined by pathPattern"):
        render("{team}", {"app": "web"})


def generator(pattern: str, *artifacts: dict[str, Any]) -> KubeObject:
    return {
        "metadata": {"name": "gen", "namespace": "apps", "uid": "u", "generation": 1},
        "spec": {
            "sources": [{"alias": "mono", "kind": "GitRepository", "name": "mono"}],
            "pathPattern": pattern,
            "artifacts": list(artifacts)
            or [
                {
                    "name": "{app}-{env}",
                    "originRevision": "@mono",
                    "copy": [{"from": "@mono/apps/{app}/envs/{env}/**", "to": "@artifact/"}],
                }
            ],
        },
    }


def test_each_matched_directory_renders_the_artifacts_lowercased_names_original_paths() -> None:
    spec = validate(generator("@mono/apps/{app}/envs/{env}"))
    matches = [
        ("apps/Auth/envs/prod", {"app": "Auth", "env": "prod"}),
        ("apps/web/envs/dev", {"app": "web", "env": "dev"}),
    ]
    outputs = rendered_outputs(spec, matches)
    assert [(o.name, dict(o.labels), o.origin_revision) for o in outputs] == [
        ("auth-prod", {"app": "auth", "env": "prod"}, "mono"),
        ("web-dev", {"app": "web", "env": "dev"}, "mono"),
    ]
    assert outputs[0].copy[0].pattern == "apps/Auth/envs/prod/**", "copy paths keep the directory's own case"
    body = external_artifact(
        {"metadata": {"name": "gen", "namespace": "apps", "uid": "u"}, "spec": {}},
        "auth-prod",
        controller="source-controller",
        labels=outputs[0].labels,
    )
    assert body["metadata"]["labels"]["app"] == "auth"
    assert body["metadata"]["labels"]["source.extensions.fluxcd.io/generator"] == "u"


@pytest.mark.parametrize(
    ("matches", "message"),
    [
        ([("apps/Auth", {"app": "Auth"}), ("apps/auth", {"app": "auth"})], "both resolve to artifact name 'auth'"),
        ([("apps/.hidden", {"app": ".hidden"})], "not a valid Kubernetes label value"),
        ([("apps/" + "a" * 64, {"app": "a" * 64})], "not a valid Kubernetes label value"),
    ],
)
def test_directory_names_flux_refuses_stall_the_generator(
    matches: list[tuple[str, dict[str, str]]], message: str
) -> None:
    spec = validate(
        generator("@mono/apps/{app}", {"name": "{app}", "copy": [{"from": "@mono/apps/{app}/", "to": "@artifact/"}]})
    )
    with pytest.raises(InvalidSpec, match=message) as e:
        rendered_outputs(spec, matches)
    assert e.value.reason == "BuildFailed"


def test_a_rendered_copy_that_escapes_fails_the_build() -> None:
    spec = validate(
        generator("@mono/{app}", {"name": "{app}", "copy": [{"from": "@mono/{app}/../../x", "to": "@artifact/"}]})
    )
    with pytest.raises(TransientError, match="must stay inside its root") as e:
        rendered_outputs(spec, [("web", {"app": "web"})])
    assert e.value.reason == "BuildFailed"


def test_the_pattern_is_checked_with_the_spec() -> None:
    with pytest.raises(InvalidSpec, match="source alias other not found") as e:
        validate(generator("@other/apps/{app}"))
    assert e.value.reason == "BuildFailed"
    with pytest.raises(InvalidSpec, match="duplicate capture variable"):
        validate(generator("@mono/{a}/{a}"))


def test_the_number_of_artifacts_is_no_drift_with_a_pattern() -> None:
    obj = generator("@mono/apps/{app}")
    obj["status"] = {
        "observedGeneration": 1,
        "observedSourcesDigest": "d",
        "inventory": [],
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "", "lastTransitionTime": ""}
        ],
    }
    assert drift(obj, validate(obj), "d", stored=lambda *_: True, generated=[]) is None
