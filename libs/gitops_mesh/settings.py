"""Flux-like flags shared by every controller, each with an environment-variable twin.

A flag ``--kafka-bootstrap`` reads ``KAFKA_BOOTSTRAP`` when not given on the command line; the
command line wins. Controllers add their own flags to the parser before parsing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go-style duration ('1m30s', '750ms', '2h') to seconds; raises ValueError on anything else."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return total


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """The flags every controller takes."""

    concurrent: int = 4
    requeue_dependency: float = 30.0
    watch_label_selector: str = ""
    watch_all_namespaces: bool = True
    watch_namespace: str = ""
    no_cross_namespace_refs: bool = False
    default_service_account: str = ""
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "gitops."
    metrics_addr: str = ":8080"
    health_addr: str = ""
    log_level: str = "info"
    leader_elect: bool = False
    leader_election_namespace: str = ""
    kubeconfig: str = ""
    instance: str = ""


_HELP = {
    "concurrent": "number of objects reconciled at the same time",
    "requeue_dependency": "interval at which an object waiting on a dependency is checked again",
    "watch_label_selector": "watch only objects matching this label selector (sharding)",
    "watch_all_namespaces": "watch every namespace, not only --watch-namespace",
    "watch_namespace": "the namespace watched when --watch-all-namespaces=false",
    "no_cross_namespace_refs": "refuse references to objects in other namespaces",
    "default_service_account": "service account impersonated when an object names none",
    "kafka_bootstrap": "Kafka bootstrap servers, host:port[,host:port]",
    "topic_prefix": "prefix of every bus topic",
    "metrics_addr": "address of the /metrics endpoint (and /healthz, /readyz unless --health-addr)",
    "health_addr": "address of /healthz and /readyz when apart from /metrics",
    "log_level": "debug, info or error",
    "leader_elect": "hold a coordination.k8s.io Lease before reconciling (replicated deployments)",
    "leader_election_namespace": "namespace of the leader-election Lease",
    "kubeconfig": "path of a kubeconfig (in-cluster configuration when empty and KUBECONFIG is unset)",
    "instance": "name of this instance in events (default: hostname)",
}


#: A controller's settings class: Settings or its subclass with the controller's own flags.
SettingsT = TypeVar("SettingsT", bound=Settings)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return field.upper()


def add_flags(
    parser: argparse.ArgumentParser, defaults: Settings | None = None, help: Mapping[str, str] | None = None
) -> None:
    """A flag for every field of ``defaults``' class (Settings or a controller's subclass of it).

    The flag's type follows the field's default: bool, int, float (a Go-style duration) or str.
    """
    d = defaults or Settings()
    texts = {**_HELP, **(help or {})}
    for f in fields(d):
        default = getattr(d, f.name)
        kind: Any
        if isinstance(default, bool):
            kind = _bool
        elif isinstance(default, int):
            kind = int
        elif isinstance(default, float):
            kind = parse_duration
        else:
            kind = str
        shown = f"{default}s" if isinstance(default, float) else default
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            type=kind,
            default=None,
            nargs="?" if kind is _bool else None,
            const=True if kind is _bool else None,
            help=f"{texts.get(f.name, '')} (env {env_name(f.name)}; default {shown!r})",
        )


def resolve(
    ns: argparse.Namespace, cls: type[SettingsT], env: Mapping[str, str] | None = None, base: SettingsT | None = None
) -> SettingsT:
    """Build ``cls`` (Settings or a controller's subclass) from parsed flags, then env, then defaults."""
    env = os.environ if env is None else env
    base = base or cls()
    values: dict[str, Any] = {}
    for f in fields(cls):
        given = getattr(ns, f.name, None)
        if given is None and env_name(f.name) in env:
            raw = env[env_name(f.name)]
            default = getattr(base, f.name)
            if isinstance(default, bool):
                given = _bool(raw)
            elif isinstance(default, int):
                given = int(raw)
            elif isinstance(default, float):
                given = parse_duration(raw)
            else:
                given = raw
        values[f.name] = getattr(base, f.name) if given is None else given
    return cls(**values)


def parse(
    argv: Sequence[str] | None = None, *, prog: str | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Parse the shared flags only (controllers with flags of their own use :func:`parse_as`)."""
    return parse_as(Settings(), argv, prog=prog or "controller", env=env)


def parse_as(
    defaults: SettingsT,
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    help: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> SettingsT:
    """Parse a controller's settings: ``defaults`` is an instance of its Settings subclass."""
    parser = argparse.ArgumentParser(prog=prog)
    add_flags(parser, defaults, help)
    return resolve(parser.parse_args(argv), type(defaults), env, base=defaults)


def tool_path(configured: str, env_var: str, name: str) -> str | None:
    """A tool's binary: the flag's value, else the environment (the local stack exports KUSTOMIZE, HELM,
    SOPS), else PATH; None when there is none."""
    return configured or os.environ.get(env_var) or shutil.which(name)
