"""Bucket spec.sts against the stack's real servers: SeaweedFS's STS (AssumeRoleWithLDAPIdentity) on a second S3
gateway of the same filer, authenticating against the stack's LDAP directory; objects uploaded with the first
gateway's access keys, read by the controller with the temporary credentials only. Bad input with Flux's reasons
and words, the CRD's rules, and no LDAP password or temporary key in status, events, the bus or the log."""

from __future__ import annotations

import io
import tarfile
from urllib.parse import urlencode

import aiohttp
import pytest

from gitops_mesh.errors import Invalid
from gitops_mesh.kube import KubeClient
from gitops_mesh.kube.objects import KubeObject
from gitops_mesh.reconcile import conditions as c
from tests.integration.source.bucket.conftest import (
    API,
    S3,
    Controller,
    bucket,
    dumped,
    get,
    need,
    request_reconcile,
    secret,
    wait_failed,
    wait_ready,
)

pytestmark = pytest.mark.stack


def sts_env(stack_env: dict[str, str]) -> tuple[str, str, str, str]:
    need(
        stack_env,
        "S3_STS_ENDPOINT",
        "S3_STS_ROLE_ARN",
        "S3_STS_S3_ENDPOINT",
        "S3_STS_LDAP_USERNAME",
        "S3_STS_LDAP_PASSWORD",
    )
    # SeaweedFS takes the role from the endpoint's query (Flux posts only the LDAP credentials).
    query = urlencode({"RoleArn": stack_env["S3_STS_ROLE_ARN"], "RoleSessionName": "flux"})
    return (
        f"{stack_env['S3_STS_ENDPOINT']}?{query}",
        stack_env["S3_STS_S3_ENDPOINT"].split("://", 1)[1].rstrip("/"),
        stack_env["S3_STS_LDAP_USERNAME"],
        stack_env["S3_STS_LDAP_PASSWORD"],
    )


def ready_message(obj: KubeObject) -> str:
    ready = c.get(obj, c.ConditionType.READY)
    assert ready is not None
    return ready["message"]


async def members(url: str) -> dict[str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        blob = await r.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def ldap_bucket(
    name: str, namespace: str, endpoint: str, bucket_name: str, sts_endpoint: str, **sts: object
) -> KubeObject:
    return bucket(
        name,
        namespace,
        interval="10m",
        provider="generic",
        endpoint=endpoint,
        insecure=True,
        bucketName=bucket_name,
        sts={"provider": "ldap", "endpoint": sts_endpoint, **sts},
    )


async def test_ldap_sts_credentials_fetch_the_bucket(
    kube: KubeClient, namespace: str, controller: Controller, s3: S3, stack_env: dict[str, str]
) -> None:
    sts_endpoint, endpoint, username, password = sts_env(stack_env)
    await s3.put("deploy/app.yaml", "kind: ConfigMap\n")
    await s3.put("README.md", "hello\n")
    await kube.create(secret("ldap", namespace, {"username": username, "password": password}))
    await kube.create(ldap_bucket("app", namespace, endpoint, s3.bucket, sts_endpoint, secretRef={"name": "ldap"}))

    obj = await wait_ready(kube, namespace, "app")
    files = await members(obj["status"]["artifact"]["url"])
    assert files == {"deploy/app.yaml": b"kind: ConfigMap\n", "README.md": b"hello\n"}

    # A new object is listed and fetched with fresh temporary credentials on the next reconcile.
    await s3.put("deploy/more.yaml", "kind: Secret\n")
    old = obj["status"]["artifact"]["revision"]
    obj = await request_reconcile(kube, namespace, "app", "changed")
    assert c.is_ready(obj)
    assert obj["status"]["artifact"]["revision"] != old
    assert (await members(obj["status"]["artifact"]["url"]))["deploy/more.yaml"] == b"kind: Secret\n"

    # The same gateway refuses the bucket to anonymous requests: the STS credentials did the work.
    await kube.create(
        bucket("anonymous", namespace, interval="10m", endpoint=endpoint, insecure=True, bucketName=s3.bucket)
    )
    anonymous = await wait_failed(kube, namespace, "anonymous", s3.bucket)
    assert c.get_reason(anonymous, "Ready") == "BucketOperationFailed"

    events = (await kube.list("v1", "Event", namespace=namespace)).items
    text = dumped(await get(kube, namespace, "app"), events, [e.message for e in controller.bus.events])
    assert password not in text
    assert password not in controller.log.read_text()
    assert "ASIA" not in text  # no temporary access key id


async def test_bad_sts_input_with_fluxs_reasons(
    kube: KubeClient, namespace: str, controller: Controller, s3: S3, stack_env: dict[str, str]
) -> None:
    sts_endpoint, endpoint, username, password = sts_env(stack_env)
    wrong = "not-the-password-" + namespace
    await kube.create(secret("wrong", namespace, {"username": username, "password": wrong}))
    await kube.create(secret("half", namespace, {"username": username}))
    await kube.create(ldap_bucket("wrong", namespace, endpoint, s3.bucket, sts_endpoint, secretRef={"name": "wrong"}))
    await kube.create(ldap_bucket("half", namespace, endpoint, s3.bucket, sts_endpoint, secretRef={"name": "half"}))
    await kube.create(ldap_bucket("later", namespace, endpoint, s3.bucket, sts_endpoint, secretRef={"name": "later"}))
    # Static keys win over spec.sts, as in Flux (the STS is never asked; its Secret is still read).
    await kube.create(secret("keys", namespace, {"accesskey": s3.access_key, "secretkey": s3.secret_key}))
    await kube.create(
        bucket(
            "static",
            namespace,
            interval="10m",
            provider="aws",
            endpoint=s3.endpoint,
            insecure=True,
            bucketName=s3.bucket,
            secretRef={"name": "keys"},
            sts={"provider": "aws", "endpoint": "https://sts.us-east-1.amazonaws.com"},
        )
    )
    # provider aws without a Secret is the controller's IAM chain (with the STS endpoint): refused by name.
    await kube.create(
        bucket(
            "iam",
            namespace,
            interval="10m",
            provider="aws",
            endpoint="s3.amazonaws.com",
            bucketName="b",
            sts={"provider": "aws", "endpoint": "https://sts.us-east-1.amazonaws.com"},
        )
    )

    obj = await wait_failed(kube, namespace, "wrong", "AccessDenied")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
    assert f"failed to confirm existence of '{s3.bucket}' bucket: STS AssumeRoleWithLDAPIdentity" in ready_message(obj)
    obj = await wait_failed(kube, namespace, "half", "required fields username, password")
    assert c.get_reason(obj, "Ready") == "AuthenticationFailed"
    assert (
        ready_message(obj) == "invalid 'half' secret data for 'ldap' STS provider: required fields username, password"
    )
    obj = await wait_failed(kube, namespace, "later", f"failed to get STS secret '{namespace}/later'")
    assert c.get_reason(obj, "Ready") == "AuthenticationFailed"
    assert not c.is_true(obj, "Stalled")
    await wait_ready(kube, namespace, "static")
    obj = await wait_failed(kube, namespace, "iam", "spec.sts.endpoint")
    assert c.get_reason(obj, "Ready") == "UnsupportedField"
    assert c.is_true(obj, "Stalled")

    # The Secret created later heals it.
    await kube.create(secret("later", namespace, {"username": username, "password": password}))
    await request_reconcile(kube, namespace, "later", "now")
    await wait_ready(kube, namespace, "later")

    # The CRD's rules (Flux's) refuse the pairs Flux does not take, before any controller sees them.
    for name, provider, sts, words in (
        ("g-aws", "generic", {"provider": "aws"}, "'ldap' is the only supported STS provider for the 'generic'"),
        ("a-ldap", "aws", {"provider": "ldap"}, "'aws' is the only supported STS provider for the 'aws'"),
        ("az", "azure", {"provider": "ldap"}, "STS configuration is only supported for the 'aws' and 'generic'"),
        ("a-sec", "aws", {"provider": "aws", "secretRef": {"name": "x"}}, "spec.sts.secretRef is not required"),
    ):
        spec = {"provider": provider, "endpoint": "e", "bucketName": "b", "interval": "1m"}
        body = {"apiVersion": API, "kind": "Bucket", "metadata": {"name": name, "namespace": namespace}}
        with pytest.raises(Invalid) as e:
            await kube.create({**body, "spec": {**spec, "sts": {"endpoint": "https://sts.example.com", **sts}}})
        assert words in str(e.value)

    objs = [await get(kube, namespace, n) for n in ("wrong", "half", "later", "static", "iam")]
    events = (await kube.list("v1", "Event", namespace=namespace)).items
    text = dumped(objs, events, [e.message for e in controller.bus.events], controller.log.read_text())
    assert wrong not in text
    assert password not in text


async def test_sts_endpoint_over_tls_with_its_cert_secret(
    kube: KubeClient, namespace: str, controller: Controller, s3: S3, stack_env: dict[str, str]
) -> None:
    _, endpoint, username, password = sts_env(stack_env)
    need(stack_env, "S3_STS_ENDPOINT_TLS", "S3_STS_TLS_CA")
    query = urlencode({"RoleArn": stack_env["S3_STS_ROLE_ARN"], "RoleSessionName": "flux"})
    tls_endpoint = f"{stack_env['S3_STS_ENDPOINT_TLS']}?{query}"
    with open(stack_env["S3_STS_TLS_CA"]) as f:
        ca = f.read()
    await s3.put("app.yaml", "kind: ConfigMap\n")
    await kube.create(secret("ldap", namespace, {"username": username, "password": password}))
    await kube.create(secret("sts-ca", namespace, {"ca.crt": ca}))
    common = {"secretRef": {"name": "ldap"}}
    await kube.create(
        ldap_bucket("trusted", namespace, endpoint, s3.bucket, tls_endpoint, certSecretRef={"name": "sts-ca"}, **common)
    )
    # Without spec.sts.certSecretRef the stack's CA is not trusted: the STS's certificate is refused.
    await kube.create(ldap_bucket("untrusted", namespace, endpoint, s3.bucket, tls_endpoint, **common))

    obj = await wait_ready(kube, namespace, "trusted")
    assert await members(obj["status"]["artifact"]["url"]) == {"app.yaml": b"kind: ConfigMap\n"}
    obj = await wait_failed(kube, namespace, "untrusted", "certificate verify failed")
    assert c.get_reason(obj, "Ready") == "BucketOperationFailed"
