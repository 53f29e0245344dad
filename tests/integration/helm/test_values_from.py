"""valuesFrom read from the real apiserver, and our --set parser, YAML typing and merge against the real helm.

Helm's own behaviour is the reference for the pieces Flux takes from it: ``helm template`` of a tiny chart
that prints ``toJson .Values`` is run with the same ``--set``/``--set-string``/``--set-literal`` and ``-f``
inputs, and its values must equal ours.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh import commands
from gitops_mesh.helmcli import helm_env
from gitops_mesh.kube import KubeClient
from helm_controller import strvals
from helm_controller.values import ValuesReferenceError, compose_values, merge_maps
from helm_controller.values_yaml import read_values

# --- valuesFrom against the apiserver ---------------------------------------------------------------------


async def test_values_from_config_maps_and_secrets(kube: KubeClient, namespace: str) -> None:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "base", "namespace": namespace},
            "data": {"values.yaml": "image:\n  tag: '1.0'\n  pullPolicy: Always\nreplicas: 1\nenabled: yes\n"},
        }
    )
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": namespace},
            "stringData": {"password": "s3cret,with=commas", "bad": "s3cret,leaked", "prod.yaml": "replicas: 3\n"},
        }
    )
    spec: dict[str, Any] = {
        "values": {"image": {"tag": "2.0"}},
        "valuesFrom": [
            {"kind": "ConfigMap", "name": "base"},
            {"kind": "Secret", "name": "creds", "valuesKey": "prod.yaml"},
            {
                "kind": "Secret",
                "name": "creds",
                "valuesKey": "password",
                "targetPath": "auth.password",
                "literal": True,
            },
            {"kind": "Secret", "name": "not-there", "optional": True},
            {"kind": "ConfigMap", "name": "base", "valuesKey": "absent.yaml", "optional": True},
        ],
    }
    values = await compose_values(kube, namespace, spec)
    assert values == {
        "image": {"tag": "2.0", "pullPolicy": "Always"},
        "replicas": 3,
        "enabled": True,
        "auth": {"password": "s3cret,with=commas"},
    }

    spec["valuesFrom"].append({"kind": "Secret", "name": "not-there"})
    with pytest.raises(ValuesReferenceError) as e:
        await compose_values(kube, namespace, spec)
    assert e.value.reason == "ValuesError"
    assert str(e.value) == (
        f"could not resolve Secret chart values reference '{namespace}/not-there' with key 'values.yaml': "
        'secrets "not-there" not found'
    )

    # A --set value that Helm's parser refuses: the message says so without quoting the Secret.
    # (unescaped, "s3cret,with=commas" is two assignments: auth.pw=s3cret and with=commas, as in Helm)
    spec["valuesFrom"][-1] = {"kind": "Secret", "name": "creds", "valuesKey": "password", "targetPath": "auth.pw"}
    assert (await compose_values(kube, namespace, spec))["with"] == "commas"
    spec["valuesFrom"][-1] = {"kind": "Secret", "name": "creds", "valuesKey": "bad", "targetPath": "auth.pw"}
    with pytest.raises(ValuesReferenceError) as e:
        await compose_values(kube, namespace, spec)
    assert "s3cret" not in str(e.value)
    assert "leaked" not in str(e.value)
    assert str(e.value).endswith("with key 'bad': the value does not parse as a Helm --set value")


# --- the same inputs through the real helm ----------------------------------------------------------------

CHART_YAML = "apiVersion: v2\nname: show\nversion: 0.1.0\n"
SHOW = "# values\n{{ toJson .Values }}\n"


@pytest.fixture
async def show_chart(tmp_path: Path) -> Path:
    chart = tmp_path / "show"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "values.yaml").write_text("")
    (chart / "templates" / "show.yaml").write_text(SHOW)
    return chart


async def helm_values(stack_env: dict[str, str], chart: Path, home: Path, *args: str) -> dict[str, Any] | None:
    """What ``.Values`` is in helm's templates for these flags; None when helm refuses them."""
    argv = [stack_env["HELM"], "template", "x", str(chart), *args]
    done = await commands.run(argv, env=helm_env(home), timeout=60, check=False)
    if done.returncode != 0:
        return None
    out = done.stdout.decode()
    line = out.split("# values\n", 1)[1].splitlines()[0]
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


SETS: list[tuple[str, list[str]]] = [
    ("--set", ["a.b.c=v"]),
    ("--set", ["a\\.b=v"]),
    ("--set", ["a[2]=v"]),
    ("--set", ["a[0].b=1,a[0].c=x", "a[1]=true"]),
    ("--set", ["a[0][1]=null"]),
    ("--set", ["a={1,two,TRUE}"]),
    ("--set", ["a=007", "b=-12", "c=1.5", "d=0"]),
    ("--set", ["a=x\\,y"]),
    ("--set", ["a=1", "a.b=2"]),
    ("--set", ["a.b=1", "a=2"]),
    ("--set", ["a[1", "b=1"]),
    ("--set", ["a=x,y"]),
    ("--set", ["a[-1]=x"]),
    ("--set", ["a[x]=1"]),
    ("--set", ["a={x,y"]),
    ("--set", ["a=s", "a.b=x"]),
    ("--set-string", ["a=true", "b=12", "c[0]={1,2}"]),
    ("--set-literal", ["a={x,y}=z,w\\"]),
]


def ours(flag: str, assignments: list[str]) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    try:
        for a in assignments:
            if flag == "--set-literal":
                path, _, value = a.partition("=")
                strvals.parse_into(f"{path}={strvals.escape_literal(value)}", values, as_string=True)
            else:
                strvals.parse_into(a, values, as_string=flag == "--set-string")
    except strvals.StrvalsError:
        return None
    return values


async def test_set_paths_equal_helm_s(stack_env: dict[str, str], show_chart: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    theirs = await asyncio.gather(
        *(
            helm_values(stack_env, show_chart, home, *[x for a in assignments for x in (flag, a)])
            for flag, assignments in SETS
        )
    )
    for (flag, assignments), helm_says in zip(SETS, theirs, strict=True):
        assert ours(flag, assignments) == helm_says, (flag, assignments)


DOCUMENTS = [
    "a: yes\nb: y\nc: On\nd: 0x1F\ne: 017\nf: 1e3\ng: 2020-01-01\nh: 1:30\ni: ~\nk: 1_000\nl: .5\nm: 08\n",
    "1: int key\ntrue: bool key\n1.5: float key\nnested:\n  n: no\n  list: [off, 'yes', \"1\"]\n",
    "base: &b {p: 1, q: [1, 2]}\nuse:\n  <<: *b\n  q: 3\n",
]
# Not compared: a stream of several documents. Helm 4's ``-f`` merges them all; Flux reads valuesFrom with
# chartutil's ReadValues, which takes the first document only (test_values.py pins that).


async def test_values_documents_equal_helm_s(stack_env: dict[str, str], show_chart: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    files = []
    for i, doc in enumerate(DOCUMENTS):
        f = tmp_path / f"v{i}.yaml"
        f.write_text(doc)
        files.append(f)
    theirs = await asyncio.gather(*(helm_values(stack_env, show_chart, home, "-f", str(f)) for f in files))
    for doc, helm_says in zip(DOCUMENTS, theirs, strict=True):
        assert read_values(doc, what="test") == helm_says, doc
    # several -f files: helm merges them with the same MergeMaps Flux uses
    merged = await helm_values(stack_env, show_chart, home, *[x for f in files[:3] for x in ("-f", str(f))])
    expected: dict[str, Any] = {}
    for doc in DOCUMENTS[:3]:
        expected = merge_maps(expected, read_values(doc, what="test"))
    assert merged == expected
