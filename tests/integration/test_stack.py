"""The local stack's own life cycle: up brings everything, status says so, down leaves nothing behind.

Runs a second, throw-away stack (own directory and ports) so the shared one other tests use stays up.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gitops_mesh_dev.stack import STACK_SCRIPT, read_stack_env

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kafka",
    "oci-registry",
    "oci-registry-tls",
    "seaweedfs",
    "azurite",
    "fake-gcs-server",
    "ldap",
    "seaweedfs-sts",
)
SERVER_KEYS = (
    "OCI_REGISTRY",
    "OCI_REGISTRY_TLS",
    "OCI_REGISTRY_TLS_CA",
    "OCI_REGISTRY_TLS_USERNAME",
    "OCI_REGISTRY_TLS_PASSWORD",
    "S3_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "AZURE_BLOB_ENDPOINT",
    "AZURE_ACCOUNT_NAME",
    "AZURE_ACCOUNT_KEY",
    "GCS_ENDPOINT",
    "LDAP_URL",
    "S3_STS_S3_ENDPOINT",
    "S3_STS_ENDPOINT",
    "S3_STS_ENDPOINT_TLS",
    "S3_STS_TLS_CA",
    "S3_STS_ROLE_ARN",
    "S3_STS_LDAP_USERNAME",
    "S3_STS_LDAP_PASSWORD",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[str]:
    hits = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            hits.append(f"{proc.name}: {cmdline[:200]}")
    return hits


def _sts_refusal(endpoint: str, ca: str) -> str:
    """An AssumeRoleWithLDAPIdentity without credentials over TLS: the STS's error document."""
    context = ssl.create_default_context(cafile=ca)
    body = b"Action=AssumeRoleWithLDAPIdentity&Version=2011-06-15"
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, data=body), timeout=10, context=context) as r:
            answer: bytes = r.read()
            return answer.decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.read().decode(errors="replace")


@pytest.mark.stack
def test_up_status_down_leaves_nothing(tmp_path: Path) -> None:
    stack_dir = tmp_path / "stack"
    # Fixed ports below Linux's ephemeral range (32768-60999): there a client socket of an earlier test can
    # hold the port (Kafka once failed to bind 39092 so). Apart from the shared stack's 23790/26443/29092.
    env = {
        **os.environ,
        "STACK_DIR": str(stack_dir),
        "ETCD_PORT": "24790",
        "APISERVER_PORT": "27443",
        "KAFKA_PORT": "30092",
        "KAFKA_CONTROLLER_PORT": "30093",
        "OCI_REGISTRY_PORT": "25100",
        "OCI_REGISTRY_TLS_PORT": "25543",
        "S3_PORT": "28433",
        "AZURITE_BLOB_PORT": "20110",
        "GCS_PORT": "24180",
        # The STS gateway takes three ports from S3_STS_PORT on (S3/STS, gRPC, HTTPS).
        "LDAP_PORT": "20489",
        "S3_STS_PORT": "28443",
        "KWOK_NODES": "1",
    }

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(STACK_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)

    try:
        up = run("up")
        assert up.returncode == 0, up.stderr
        status = run("status", timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        for c in COMPONENTS:
            assert f"{c:<24} running  pid " in status.stdout, c
        assert "stopped" not in status.stdout
        assert "kube-apiserver ready" in status.stdout
        assert "kafka ready" in status.stdout
        for server in (
            "oci-registry ready",
            "oci-registry-tls ready",
            "seaweedfs s3 ready",
            "azurite blob ready",
            "fake-gcs-server ready",
            f"seaweedfs sts ready     http://127.0.0.1:{env['S3_STS_PORT']} (LDAP 127.0.0.1:{env['LDAP_PORT']})",
        ):
            assert server in status.stdout
        assert "nodes ready             1" in status.stdout
        exported = read_stack_env(stack_dir / "env")
        for key in ("KUBECONFIG", "KAFKA_BOOTSTRAP", "KUBECTL", "HELM", "KUSTOMIZE", *SERVER_KEYS):
            assert exported.get(key), key
        assert exported["KAFKA_BOOTSTRAP"] == f"127.0.0.1:{env['KAFKA_PORT']}"
        assert exported["OCI_REGISTRY"] == f"127.0.0.1:{env['OCI_REGISTRY_PORT']}"
        assert exported["S3_ENDPOINT"] == f"http://127.0.0.1:{env['S3_PORT']}"
        assert exported["AZURE_BLOB_ENDPOINT"] == f"http://127.0.0.1:{env['AZURITE_BLOB_PORT']}/devstoreaccount1"
        assert exported["GCS_ENDPOINT"] == f"http://127.0.0.1:{env['GCS_PORT']}"
        assert exported["LDAP_URL"] == f"ldap://127.0.0.1:{env['LDAP_PORT']}"
        sts_port = int(env["S3_STS_PORT"])
        assert exported["S3_STS_S3_ENDPOINT"] == f"http://127.0.0.1:{sts_port}"
        assert exported["S3_STS_ENDPOINT"] == f"http://127.0.0.1:{sts_port}/"
        assert exported["S3_STS_ENDPOINT_TLS"] == f"https://127.0.0.1:{sts_port + 2}/"
        # The STS's TLS port answers as STS with a certificate the exported CA verifies.
        assert "<Code>MissingParameter</Code>" in _sts_refusal(
            exported["S3_STS_ENDPOINT_TLS"], exported["S3_STS_TLS_CA"]
        )
        # The env file carries the servers' local credentials: the owner's alone.
        assert (stack_dir / "env").stat().st_mode & 0o077 == 0
        pids = {c: int((stack_dir / "run" / f"{c}.pid").read_text()) for c in COMPONENTS}
        assert all(_alive(p) for p in pids.values())
    finally:
        down = run("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert not [c for c, p in pids.items() if _alive(p)], "processes left running after down"
    assert _processes_mentioning(str(stack_dir)) == []
    after = run("status", timeout=60)
    assert after.returncode != 0
    assert after.stdout.count("stopped") == len(COMPONENTS)
