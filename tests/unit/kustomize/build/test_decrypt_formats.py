"""SOPS detection, formats and the files a kustomization feeds to secretGenerator (pure, no sops binary)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kustomize_controller.build.decrypt import (
    Format,
    age_identities,
    decryption_disabled,
    detect_format,
    format_for_path,
    generator_sources,
    is_encrypted_object,
)


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("a.yaml", Format.YAML),
        ("a.yml", Format.YAML),
        ("a.json", Format.JSON),
        (".dockerconfigjson", Format.JSON),
        ("config.env", Format.DOTENV),
        ("a.ini", Format.INI),
        ("token.encrypted", Format.BINARY),
        ("token", Format.BINARY),
    ],
)
def test_format_for_path(path: str, fmt: Format) -> None:
    assert format_for_path(path) is fmt


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"a: ENC[x]\nsops:\n    mac: ENC[AES256_GCM,data:x]\n", Format.YAML),
        (b'{"data": "ENC[x]", "sops": {"mac": "ENC[AES256_GCM,data:x]"}}', Format.JSON),
        (b"A=ENC[x]\nsops_mac=ENC[AES256_GCM,data:x]\n", Format.DOTENV),
        (b"[sec]\na = ENC[x]\n[sops]\nmac = ENC[x]\n", Format.INI),
        (b"plain: text\n", None),
    ],
)
def test_detect_format(data: bytes, fmt: Format | None) -> None:
    assert detect_format(data) is fmt


def test_encrypted_object_needs_a_sops_mac() -> None:
    assert is_encrypted_object({"kind": "Secret", "sops": {"mac": "ENC[x]"}})
    assert not is_encrypted_object({"kind": "Secret", "sops": {}})
    assert not is_encrypted_object({"kind": "Secret", "sops": "x"})
    assert not is_encrypted_object({"kind": "Secret"})


def test_decrypt_disabled_annotation() -> None:
    assert decryption_disabled({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/decrypt": "Disabled"}}})
    assert not decryption_disabled({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/decrypt": "Enabled"}}})
    assert not decryption_disabled({"metadata": {}})


def test_age_identities_are_the_agekey_entries() -> None:
    data = {"b.agekey": b"AGE-SECRET-KEY-2\n", "a.agekey": b"AGE-SECRET-KEY-1", "identity.asc": b"pgp", "x": b"y"}
    assert age_identities(data) == ["AGE-SECRET-KEY-1", "AGE-SECRET-KEY-2"]


def test_generator_sources(tmp_path: Path) -> None:
    files = {
        "app/kustomization.yaml": (
            "resources: [../base]\n"
            "secretGenerator:\n"
            "- name: s\n  files: [token.encrypted, config.json=cfg.enc, missing.bin]\n  envs: [vars.env, more.txt]\n"
            "patches:\n- path: patch.yaml\n- patch: 'inline'\n"
        ),
        "app/token.encrypted": "x",
        "app/cfg.enc": "x",
        "app/vars.env": "x",
        "app/more.txt": "x",
        "app/patch.yaml": "x",
        "base/kustomization.yaml": "secretGenerator:\n- name: t\n  env: legacy.env\n",
        "base/legacy.env": "x",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = [
        (s.path.relative_to(tmp_path).as_posix(), s.format, s.referrer)
        for s in generator_sources(tmp_path, tmp_path / "app")
    ]
    assert found == [
        ("app/token.encrypted", Format.BINARY, "app/kustomization.yaml"),
        ("app/cfg.enc", Format.JSON, "app/kustomization.yaml"),
        ("app/vars.env", Format.DOTENV, "app/kustomization.yaml"),
        ("app/more.txt", Format.DOTENV, "app/kustomization.yaml"),
        ("app/patch.yaml", Format.YAML, "app/kustomization.yaml"),
        ("base/legacy.env", Format.DOTENV, "base/kustomization.yaml"),
    ]
