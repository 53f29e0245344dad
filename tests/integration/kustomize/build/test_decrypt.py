"""SOPS round trips through the build: encrypted by the real sops here, decrypted by the pipeline's sops."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from gitops_mesh.kube import KubeClient
from kustomize_controller.build import DecryptionFailed, build
from tests.integration.conftest import until_available
from tests.integration.kustomize.build.conftest import AgeKey, Binaries, snapshot, sops_encrypt, write_tree

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: hunter2
data:
  token: aGVsbG8=
"""


async def decryption_secret(kube: KubeClient, namespace: str, key: AgeKey, name: str = "sops-age") -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"identity.agekey": key.identity + "\n", "unrelated": "not a key"},
    }
    await until_available(lambda: kube.create(secret))


async def run(
    tree: Path, spec: dict[str, Any], binaries: Binaries, kube: KubeClient, namespace: str
) -> list[dict[str, Any]]:
    return await build(
        tree,
        spec,
        kustomize=binaries.kustomize,
        sops=binaries.sops,
        kube=kube,
        namespace=namespace,
        no_remote_bases=True,
        timeout=60.0,
    )


DECRYPTION = {"provider": "sops", "secretRef": {"name": "sops-age"}}


async def test_secret_round_trip(
    tmp_path: Path, binaries: Binaries, age_key: AgeKey, kube: KubeClient, namespace: str
) -> None:
    encrypted = sops_encrypt(
        binaries, age_key.recipient, SECRET.encode(), "yaml", cwd=tmp_path, regex="^(data|stringData)$"
    )
    assert b"hunter2" not in encrypted
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": "resources: [secret.enc.yaml, cm.yaml]\n",
            "app/secret.enc.yaml": encrypted,
            "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata: {a: b}\n",
        },
    )
    await decryption_secret(kube, namespace, age_key)
    # targetNamespace and a label change the document, so sops's MAC no longer matches: Flux ignores it too
    spec = {
        "path": "app",
        "decryption": DECRYPTION,
        "targetNamespace": "shop",
        "commonMetadata": {"labels": {"a": "b"}},
    }
    objects = await run(tree, spec, binaries, kube, namespace)
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["stringData"] == {"password": "hunter2"}
    assert base64.b64decode(secret["data"]["token"]) == b"hello"
    assert "sops" not in secret
    assert secret["metadata"] == {"name": "db", "namespace": "shop", "labels": {"a": "b"}}
    assert next(o for o in objects if o["kind"] == "ConfigMap")["data"] == {"a": "b"}


async def test_secret_generator_files_are_decrypted(
    tmp_path: Path, binaries: Binaries, age_key: AgeKey, kube: KubeClient, namespace: str
) -> None:
    env = sops_encrypt(binaries, age_key.recipient, b"USER=admin\nPASS=s3cret\n", "dotenv", cwd=tmp_path)
    token = sops_encrypt(binaries, age_key.recipient, b"my-secret-token", "binary", cwd=tmp_path)
    config = sops_encrypt(binaries, age_key.recipient, b'{"url": "https://db"}', "json", cwd=tmp_path)
    tree = write_tree(
        tmp_path / "repo",
        {
            "app/kustomization.yaml": (
                "secretGenerator:\n"
                "- name: creds\n  envs: [creds.env]\n"
                "- name: files\n  files: [token=token.encrypted, config.json=config.json.encrypted]\n"
                "generatorOptions: {disableNameSuffixHash: true}\n"
            ),
            "app/creds.env": env,
            "app/token.encrypted": token,
            "app/config.json.encrypted": config,
        },
    )
    before = snapshot(tree)
    await decryption_secret(kube, namespace, age_key)
    objects = await run(tree, {"path": "app", "decryption": DECRYPTION}, binaries, kube, namespace)
    secrets = {o["metadata"]["name"]: o for o in objects}
    creds = {k: base64.b64decode(v).decode() for k, v in secrets["creds"]["data"].items()}
    assert creds == {"USER": "admin", "PASS": "s3cret"}
    files = {k: base64.b64decode(v).decode() for k, v in secrets["files"]["data"].items()}
    assert files["token"] == "my-secret-token"
    assert files["config.json"].replace(" ", "").replace("\n", "").replace("\t", "") == '{"url":"https://db"}'
    assert snapshot(tree) == before, "decrypted files were written to the work tree, never to the shared tree"


async def test_encrypted_data_value_is_decrypted_after_the_build(
    tmp_path: Path, binaries: Binaries, age_key: AgeKey, kube: KubeClient, namespace: str
) -> None:
    """A Secret whose data value is a whole SOPS document, as a secretGenerator of an unknown file makes."""
    inner = sops_encrypt(binaries, age_key.recipient, b"key: value\n", "yaml", cwd=tmp_path)
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: wrapped\n"
        f"data:\n  conf.yaml: {base64.b64encode(inner).decode()}\n  plain: {base64.b64encode(b'x').decode()}\n"
    )
    tree = write_tree(tmp_path / "repo", {"app/secret.yaml": secret})
    await decryption_secret(kube, namespace, age_key)
    objects = await run(tree, {"path": "app", "decryption": DECRYPTION}, binaries, kube, namespace)
    data = objects[0]["data"]
    assert base64.b64decode(data["conf.yaml"]).decode().strip() == "key: value"
    assert base64.b64decode(data["plain"]) == b"x"


async def test_disabled_annotation_and_no_decryption_leave_objects_encrypted(
    tmp_path: Path, binaries: Binaries, age_key: AgeKey, kube: KubeClient, namespace: str
) -> None:
    annotated = SECRET.replace(
        "  name: db\n", "  name: db\n  annotations:\n    kustomize.toolkit.fluxcd.io/decrypt: Disabled\n"
    )
    encrypted = sops_encrypt(
        binaries, age_key.recipient, annotated.encode(), "yaml", cwd=tmp_path, regex="^(data|stringData)$"
    )
    tree = write_tree(tmp_path / "repo", {"app/secret.yaml": encrypted})
    await decryption_secret(kube, namespace, age_key)
    objects = await run(tree, {"path": "app", "decryption": DECRYPTION}, binaries, kube, namespace)
    assert "sops" in objects[0]
    assert objects[0]["stringData"]["password"].startswith("ENC[")
    objects = await run(tree, {"path": "app"}, binaries, kube, namespace)
    assert "sops" in objects[0]


async def test_wrong_key_names_the_object_and_never_shows_a_key(
    tmp_path: Path, binaries: Binaries, age_key: AgeKey, other_age_key: AgeKey, kube: KubeClient, namespace: str
) -> None:
    encrypted = sops_encrypt(
        binaries, age_key.recipient, SECRET.encode(), "yaml", cwd=tmp_path, regex="^(data|stringData)$"
    )
    tree = write_tree(tmp_path / "repo", {"app/secret.yaml": encrypted})
    await decryption_secret(kube, namespace, other_age_key)
    with pytest.raises(DecryptionFailed, match=re.escape("failed to decrypt 'Secret/db'")) as info:
        await run(tree, {"path": "app", "decryption": DECRYPTION}, binaries, kube, namespace)
    message = str(info.value)
    assert other_age_key.identity not in message
    assert "AGE-SECRET-KEY" not in message


async def test_missing_decryption_secret(tmp_path: Path, binaries: Binaries, kube: KubeClient, namespace: str) -> None:
    tree = write_tree(tmp_path / "repo", {"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"})
    with pytest.raises(DecryptionFailed, match=re.escape(f"decryption Secret '{namespace}/sops-age' not found")):
        await run(tree, {"path": "app", "decryption": DECRYPTION}, binaries, kube, namespace)


async def test_keys_never_reach_argv(
    tmp_path: Path, binaries: Binaries, age_key: AgeKey, kube: KubeClient, namespace: str
) -> None:
    log = tmp_path / "argv.log"
    wrapper = tmp_path / "sops-wrapper"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\nexec {binaries.sops} "$@"\n')
    wrapper.chmod(0o700)
    encrypted = sops_encrypt(
        binaries, age_key.recipient, SECRET.encode(), "yaml", cwd=tmp_path, regex="^(data|stringData)$"
    )
    tree = write_tree(tmp_path / "repo", {"app/secret.yaml": encrypted})
    await decryption_secret(kube, namespace, age_key)
    objects = await build(
        tree,
        {"path": "app", "decryption": DECRYPTION},
        kustomize=binaries.kustomize,
        sops=wrapper,
        kube=kube,
        namespace=namespace,
        no_remote_bases=True,
        timeout=60.0,
    )
    assert objects[0]["stringData"] == {"password": "hunter2"}
    argv = log.read_text()
    assert "decrypt" in argv
    assert age_key.identity not in argv
    assert "AGE-SECRET-KEY" not in argv
