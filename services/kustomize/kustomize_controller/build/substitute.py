"""Step 4 of a build: postBuild variable substitution on each built object's YAML, and the variables' sources.

Flux's rules (fluxcd/pkg kustomize ``SubstituteVariables`` and kustomize-controller's docs):

* variables come from ``substituteFrom`` in list order (a later ConfigMap/Secret overwrites an earlier
  one's keys), then ``substitute`` on top (inline wins); newlines are removed from every value;
* a ``substituteFrom`` entry that does not exist fails the build unless ``optional: true``, in which
  case it counts as present and empty;
* nothing is substituted when there are no variables at all (so ``${x:=default}`` stays as written);
* every variable name must match ``^[_[:alpha:]][_[:alpha:][:digit:]]*$`` (ASCII, as in Go's RE2);
* an object labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled`` is left alone;
* the object is serialised to YAML, expanded as text (:mod:`.envsubst`), and parsed back, so a value
  can change a scalar's type (``${quote}${id}${quote}`` is how Flux users keep numbers strings);
* an undefined variable without a default expands to the empty string, or fails the build in strict
  mode (Flux's ``StrictPostBuildSubstitutions`` feature gate, off by default).

Ours, since variables and manifests are tenant input: each expansion is bounded (:class:`.envsubst.Limits`:
RE2 globs, capped glob and value lengths and nesting, at most 8 MiB produced per object) and a build's
expansions together produce at most :data:`MAX_BUILD_OUTPUT` characters; going over fails the build with
SubstitutionFailed. :func:`substitute_in_thread` runs the work in a thread, which is acceptable because every
step between two checkpoints is linear in capped input: when the build times out or is cancelled the thread
stops at its next step instead of running on unkillable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from gitops_mesh import stoppable, tenant_yaml
from gitops_mesh.errors import InvalidSpec, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.secrets import configmap_data, secret_data
from kustomize_controller.build import envsubst, manifests
from kustomize_controller.build.errors import SubstitutionFailed, VariablesNotFound

SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED = "disabled"
VAR_NAME_RULE = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
_VAR_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*\Z")
#: Characters all expansions of one build may produce (what they add; the manifests themselves are not counted).
MAX_BUILD_OUTPUT = 64 * 1024 * 1024


def merge_variables(sources: Iterable[Mapping[str, str]], inline: Mapping[str, Any] | None) -> dict[str, str]:
    """Variables from ``substituteFrom`` data (in order, later wins) with ``substitute`` on top."""
    merged: dict[str, str] = {}
    for data in sources:
        for key, value in data.items():
            merged[key] = value.replace("\n", "")
    for key, value in (inline or {}).items():
        if not isinstance(value, str):
            raise SubstitutionFailed(f"spec.postBuild.substitute['{key}'] must be a string, not {type(value).__name__}")
        merged[key] = value.replace("\n", "")
    return merged


def check_names(variables: Iterable[str]) -> None:
    """Raise SubstitutionFailed for the first variable name Flux would refuse."""
    for name in variables:
        if not _VAR_NAME.match(name):
            raise SubstitutionFailed(f"'{name}' var name is invalid, must match '{VAR_NAME_RULE}'")


def substitution_disabled(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return labels.get(SUBSTITUTE_KEY) == DISABLED or annotations.get(SUBSTITUTE_KEY) == DISABLED


def substitute_object(
    obj: dict[str, Any],
    variables: Mapping[str, str],
    *,
    strict: bool = False,
    checkpoint: envsubst.Checkpoint = envsubst.no_checkpoint,
    budget: envsubst.OutputBudget | None = None,
) -> dict[str, Any]:
    """``obj`` with its YAML expanded; the same object when its YAML has no ``$``. Raises SubstitutionFailed.

    ``checkpoint`` and ``budget`` are :func:`.envsubst.expand`'s (stop between steps; a build-wide cap).
    """
    text = manifests.dump(obj)
    if "$" not in text:
        return obj
    try:
        expanded = envsubst.expand(text, variables.get, strict=strict, checkpoint=checkpoint, budget=budget)
    except (envsubst.SubstitutionSyntaxError, envsubst.UnsetVariable, envsubst.LimitExceeded) as e:
        raise SubstitutionFailed(f"post build substitution failed for '{manifests.describe(obj)}': {e}") from e
    if expanded == text:
        return obj
    try:
        # Capped: a variable holding an alias bomb is refused here, before apply serialises the object.
        result = manifests.load(expanded, what="the substituted YAML")
    except tenant_yaml.UnsafeYaml as e:
        raise SubstitutionFailed(f"post build substitution failed for '{manifests.describe(obj)}': {e}") from None
    except yaml.YAMLError as e:
        raise SubstitutionFailed(
            f"post build substitution failed for '{manifests.describe(obj)}': "
            f"the substituted YAML does not parse: {tenant_yaml.problem(e)}"
        ) from e
    if not isinstance(result, dict):
        raise SubstitutionFailed(
            f"post build substitution failed for '{manifests.describe(obj)}': the result is not an object"
        )
    return result


def substitute_objects(
    objects: Sequence[dict[str, Any]],
    variables: Mapping[str, str],
    *,
    strict: bool = False,
    checkpoint: envsubst.Checkpoint = envsubst.no_checkpoint,
) -> list[dict[str, Any]]:
    """Every object substituted (unless disabled), in order. Pure; raises SubstitutionFailed.

    ``checkpoint`` is called between steps and may raise to stop the work (see :func:`substitute_in_thread`).
    """
    if not variables:
        return list(objects)
    checked = False
    budget = envsubst.OutputBudget(MAX_BUILD_OUTPUT, "in this build")
    out: list[dict[str, Any]] = []
    for obj in objects:
        checkpoint()
        if substitution_disabled(obj):
            out.append(obj)
            continue
        if not checked:
            # Flux validates the names when it substitutes an object, so all-disabled builds never fail here.
            check_names(variables)
            checked = True
        out.append(substitute_object(obj, variables, strict=strict, checkpoint=checkpoint, budget=budget))
    return out


async def substitute_in_thread(
    objects: Sequence[dict[str, Any]], variables: Mapping[str, str], *, strict: bool = False
) -> list[dict[str, Any]]:
    """:func:`substitute_objects` in a worker thread that stops at its next step when this task is cancelled
    (the build's timeout). Raises SubstitutionFailed.

    On cancellation the thread is told to stop and waited for, which is short: one step, linear in capped input.
    """
    stop = stoppable.Stop(what="substitution")
    return await stoppable.in_thread(
        lambda: substitute_objects(objects, variables, strict=strict, checkpoint=stop.check), stop
    )


async def load_variables(kube: KubeClient | None, namespace: str, post_build: Mapping[str, Any]) -> dict[str, str]:
    """The variables of ``spec.postBuild``: substituteFrom read from ``namespace``, then substitute on top.

    Raises VariablesNotFound for a missing source that is not optional; other apiserver errors propagate.
    """
    references = post_build.get("substituteFrom") or []
    if not isinstance(references, list):
        raise InvalidSpec("spec.postBuild.substituteFrom must be a list")
    sources: list[dict[str, str]] = []
    for index, ref in enumerate(references):
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
            raise InvalidSpec(f"spec.postBuild.substituteFrom[{index}] must have a kind and a name")
        kind, name, optional = ref.get("kind"), ref["name"], bool(ref.get("optional"))
        if kind not in ("ConfigMap", "Secret"):
            raise InvalidSpec(f"spec.postBuild.substituteFrom[{index}].kind must be ConfigMap or Secret, not {kind!r}")
        if kube is None:
            raise SubstitutionFailed(f"substitute from '{kind}/{name}': no Kubernetes client to read it with")
        try:
            if kind == "ConfigMap":
                sources.append(await configmap_data(kube, namespace, name))
            else:
                raw = await secret_data(kube, namespace, name)
                sources.append({key: value.decode(errors="replace") for key, value in raw.items()})
        except NotFound as e:
            if optional:
                continue
            raise VariablesNotFound(
                f"substitute from '{kind}/{name}' error: {kind} '{namespace}/{name}' not found"
            ) from e
    inline = post_build.get("substitute")
    if inline is not None and not isinstance(inline, Mapping):
        raise InvalidSpec("spec.postBuild.substitute must be a map of strings")
    return merge_variables(sources, inline)
