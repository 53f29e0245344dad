"""The reconciler's pure parts: its status fields, the Secrets it is woken by, credential and suspend checks."""

from __future__ import annotations

from typing import Any

import pytest

from fluxconfig_controller.fluxconfig import assemble_status, check_credentials
from fluxconfig_controller.plan import AuthProblem
from fluxconfig_controller.references import secret_refs
from fluxconfig_controller.settings import parse
from fluxconfig_controller.sshkeys import KeyAlgorithm, generate, known_hosts_problem
from fluxconfig_controller.suspending import is_suspended


def test_status_on_success_and_failure() -> None:
    status: dict[str, Any] = {"errorMessage": "old", "complianceState": "Pending"}
    assemble_status(status, error=None, public_key="ssh-ed25519 AAAA x")
    assert status == {
        "provisioningState": "Succeeded",
        "repositoryPublicKey": "ssh-ed25519 AAAA x",
        "complianceState": "Pending",
    }
    assemble_status(status, error="boom", public_key=None)
    assert status == {"provisioningState": "Failed", "errorMessage": "boom", "complianceState": "Pending"}


def test_secret_refs_name_the_protected_parameters_and_local_auth() -> None:
    obj = {"metadata": {"name": "cfg", "namespace": "ns"}, "spec": {"gitRepository": {"localAuthRef": "mine"}}}
    assert secret_refs(obj) == ["Secret/ns/cfg-protected-parameters", "Secret/ns/mine"]


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.ED25519, KeyAlgorithm.RSA])
def test_generated_keys_parse_as_given_keys(algorithm: KeyAlgorithm) -> None:
    key = generate(algorithm, "c")
    check_credentials({}, {"sshPrivateKey": key.private})
    prefix = "ssh-ed25519 " if algorithm is KeyAlgorithm.ED25519 else "ssh-rsa "
    assert key.public.startswith(prefix)
    assert known_hosts_problem(f"host {key.public}\n".encode()) is None


def test_a_key_that_does_not_parse_is_named_not_shown() -> None:
    with pytest.raises(AuthProblem) as err:
        check_credentials({}, {"sshPrivateKey": b"-----BEGIN OPENSSH PRIVATE KEY-----\nsecretstuff\n"})
    assert "--ssh-private-key provided in invalid format" in str(err.value)
    assert "secretstuff" not in str(err.value)
    assert err.value.reason == "AuthenticationFailed"


def test_known_hosts_limits() -> None:
    assert known_hosts_problem(b"x" * (256 * 1024 + 1)) is not None
    assert known_hosts_problem(b"\xff\xfe") == "known_hosts is not valid utf-8"
    assert known_hosts_problem(b"# comment\n\n") is None
    assert known_hosts_problem(b"onlyhost\n") == "known_hosts line 1: not enough fields (hosts, key type, key)"


def test_suspended_unless_deleting() -> None:
    assert is_suspended({"spec": {"suspend": True}, "metadata": {}})
    assert not is_suspended({"spec": {"suspend": True}, "metadata": {"deletionTimestamp": "t"}})
    assert not is_suspended({"spec": {}, "metadata": {}})


def test_flags() -> None:
    s = parse(["--retry-interval=2s", "--resync-interval=5m", "--deletion-poll=500ms"], env={})
    assert (s.retry_interval, s.resync_interval, s.deletion_poll) == (2.0, 300.0, 0.5)
