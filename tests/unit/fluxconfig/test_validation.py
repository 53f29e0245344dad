"""The az-style checks of a FluxConfig spec and of its credentials, pure."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fluxconfig_controller.known_hosts import DEFAULT_KNOWN_HOSTS
from fluxconfig_controller.validation import auth_problems, find_cycle, name_problems, spec_problems


def git_spec(**git: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"url": "https://example.com/org/repo", "repositoryRef": {"branch": "main"}}
    return {"sourceKind": "GitRepository", "gitRepository": {**base, **git}, "kustomizations": {"apps": {}}}


def test_a_valid_spec_has_no_problems() -> None:
    assert spec_problems("cfg", "ns", git_spec()) == []
    assert auth_problems(git_spec(), {}) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("a" * 64, "can be a maximum of 63 characters"),
        ("-abc", "cannot begin or end with a hyphen"),
        ("abc.", "cannot begin or end with a period"),
        ("Abc", "can only contain lowercase alphanumeric characters, hyphens, and periods"),
        ("a_b", "can only contain lowercase alphanumeric characters"),
    ],
)
def test_names_are_checked_as_the_cli_does(name: str, fragment: str) -> None:
    (problem,) = name_problems(name, "metadata.name", "--name")
    assert "Error! Invalid --name" in problem
    assert fragment in problem


def test_names_the_cli_accepts() -> None:
    assert name_problems("a", "x", "--name") == []
    assert name_problems("a.b-c9", "x", "--name") == []


@pytest.mark.parametrize("url", ["https://h/r", "http://h/r", "ssh://git@h/r", "git@github.com:org/repo"])
def test_git_url_schemes_accepted(url: str) -> None:
    assert spec_problems("cfg", "ns", git_spec(url=url)) == []


@pytest.mark.parametrize("url", ["ftp://h/r", "file:///etc", "h/r", ""])
def test_git_url_schemes_refused(url: str) -> None:
    problems = spec_problems("cfg", "ns", git_spec(url=url))
    assert any("Error! Invalid --url." in p and "'git@'" in p for p in problems)


def test_exactly_one_repository_ref() -> None:
    none = spec_problems("cfg", "ns", git_spec(repositoryRef={}))
    assert any("Specifying one of [--branch, --tag, --semver, --commit] is required" in p for p in none)
    two = spec_problems("cfg", "ns", git_spec(repositoryRef={"branch": "main", "tag": "v1"}))
    assert any("Specifying more than one repository ref argument is invalid" in p for p in two)


def test_an_ssh_key_with_an_http_url_is_refused() -> None:
    problems = auth_problems(git_spec(), {"sshPrivateKey": b"key"})
    assert problems == [
        "spec.gitRepository: Error! An --ssh-private-key cannot be used with an http(s) url "
        "Verify the url provided is a valid ssh url and not an http(s) url"
    ]


def test_known_hosts_with_an_http_url_is_refused() -> None:
    known = base64.b64encode(DEFAULT_KNOWN_HOSTS).decode()
    problems = auth_problems(git_spec(sshKnownHosts=known), {})
    assert any("--ssh-known-hosts cannot be used with an http(s) url" in p for p in problems)


def test_https_user_and_key_go_together() -> None:
    alone = auth_problems(git_spec(httpsUser="alice"), {})
    assert any("--https-user and --https-key cannot be used separately" in p for p in alone)
    key_alone = auth_problems(git_spec(), {"httpsKey": b"pw"})
    assert any("cannot be used separately" in p for p in key_alone)
    assert auth_problems(git_spec(httpsUser="alice"), {"httpsKey": b"pw"}) == []


def test_https_auth_with_an_ssh_url_is_refused() -> None:
    problems = auth_problems(git_spec(url="ssh://git@h/r", httpsUser="alice"), {"httpsKey": b"pw"})
    assert any("cannot be used with a non-http(s) url" in p for p in problems)


def test_known_hosts_must_decode_and_parse() -> None:
    not_b64 = spec_problems("cfg", "ns", git_spec(url="ssh://git@h/r", sshKnownHosts="%%%"))
    assert any("not a valid utf-8 base64 encoded string" in p for p in not_b64)
    garbage = base64.b64encode(b"host ssh-ed25519 notakey\n").decode()
    wrong = spec_problems("cfg", "ns", git_spec(url="ssh://git@h/r", sshKnownHosts=garbage))
    assert any("ssh known_hosts provided in wrong format" in p and "line 1" in p for p in wrong)
    good = base64.b64encode(DEFAULT_KNOWN_HOSTS).decode()
    assert spec_problems("cfg", "ns", git_spec(url="ssh://git@h/r", sshKnownHosts=good)) == []


def test_durations_must_be_positive() -> None:
    spec = git_spec(syncIntervalInSeconds=0)
    spec["kustomizations"] = {"apps": {"retryIntervalInSeconds": -5}}
    problems = spec_problems("cfg", "ns", spec)
    assert any("syncIntervalInSeconds: Error! Invalid sync-interval." in p for p in problems)
    assert any("retryIntervalInSeconds: Error! Invalid retry-interval." in p for p in problems)


def test_kustomization_names_and_length_with_the_config_name() -> None:
    spec = git_spec()
    spec["kustomizations"] = {"Bad_Name": {}, "b" * 40: {}}
    problems = spec_problems("c" * 30, "ns", spec)
    assert any("spec.kustomizations.Bad_Name" in p for p in problems)
    assert any("cannot be greater than 62 characters" in p for p in problems)


def test_depends_on_an_unknown_entry_or_itself() -> None:
    spec = git_spec()
    spec["kustomizations"] = {"apps": {"dependsOn": ["infra"]}, "self": {"dependsOn": ["self"]}}
    problems = spec_problems("cfg", "ns", spec)
    assert any("'infra' is not a kustomization of this configuration" in p for p in problems)
    assert any("cannot depend on itself" in p for p in problems)


def test_a_dependency_cycle_is_named() -> None:
    spec = git_spec()
    spec["kustomizations"] = {"a": {"dependsOn": ["b"]}, "b": {"dependsOn": ["c"]}, "c": {"dependsOn": ["a"]}}
    (problem,) = spec_problems("cfg", "ns", spec)
    assert "a -> b -> c -> a" in problem


def test_find_cycle_on_a_deep_chain_does_not_recurse() -> None:
    graph = {str(i): [str(i + 1)] for i in range(5000)}
    assert find_cycle(graph) == []
    graph["5000"] = ["0"]
    assert len(find_cycle(graph)) == 5002


def test_source_kind_needs_its_block_and_no_other() -> None:
    spec = git_spec()
    spec["sourceKind"] = "Bucket"
    problems = spec_problems("cfg", "ns", spec)
    assert "spec.bucket is required when spec.sourceKind is Bucket" in problems
    assert any("spec.gitRepository is set but spec.sourceKind is Bucket" in p for p in problems)


def test_spec_namespace_must_be_the_objects_namespace() -> None:
    spec = git_spec()
    spec["namespace"] = "elsewhere"
    assert any("differs from the FluxConfig's namespace 'ns'" in p for p in spec_problems("cfg", "ns", spec))
    spec["namespace"] = "ns"
    assert spec_problems("cfg", "ns", spec) == []


def test_bucket_needs_keys_or_local_auth() -> None:
    spec: dict[str, Any] = {"sourceKind": "Bucket", "bucket": {"url": "https://s3.example.com", "bucketName": "b"}}
    assert any("Auth properties must be specified for kind 'bucket'" in p for p in auth_problems(spec, {}))
    spec["bucket"]["accessKey"] = "AK"
    assert auth_problems(spec, {"bucketSecretKey": b"sk"}) == []


def test_azure_blob_service_principal_and_methods() -> None:
    spec: dict[str, Any] = {
        "sourceKind": "AzureBlob",
        "azureBlob": {
            "url": "https://acct.blob.core.windows.net",
            "containerName": "c",
            "servicePrincipal": {"clientId": "x"},
        },
    }
    assert any("missing value(s)" in p for p in auth_problems(spec, {"clientSecret": b"s"}))
    spec["azureBlob"]["servicePrincipal"]["tenantId"] = "t"
    assert auth_problems(spec, {"clientSecret": b"s"}) == []
    both = auth_problems(spec, {"clientSecret": b"s", "clientCertificate": b"c"})
    assert any("Too many authentication methods provided for service principal" in p for p in both)
    many = auth_problems(spec, {"clientSecret": b"s", "accountKey": b"k"})
    assert any("Too many authentication methods provided for Azure Blob" in p for p in many)
