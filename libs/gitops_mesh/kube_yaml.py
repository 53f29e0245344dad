"""Kubernetes manifests read as Go reads them: libyaml loading with sigs.k8s.io/yaml's resolutions.

Where it sits: every controller that turns manifest text into objects it sends to the apiserver (kustomize's
build output, a Helm release's rendered manifest) loads it with :class:`ManifestLoader` through
:mod:`gitops_mesh.tenant_yaml` (the caps are the caller's).

PyYAML resolves YAML 1.1 as Go's YAML decoder does for booleans (``yes``, ``on``), octals and nulls; three
resolutions differ, and are made Go's here:

* plain timestamps stay the strings they were written as (JSON has no time type; the apiserver wants the text);
* ``1:20`` is the string it looks like, not the sexagesimal 80;
* a mapping key that resolves to something else than a string (``on:`` is true, ``1:`` is 1) becomes the string
  sigs.k8s.io/yaml's YAML→JSON conversion makes of it (``"true"``, ``"1"``), so every object can be written as
  JSON; a float key is written as Go's ``strconv.FormatFloat(f, 'g', -1, 64)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

try:
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


class ManifestLoader(_Loader):  # type: ignore[misc]
    """Safe loading with Go's resolutions of timestamps, sexagesimals and non-string keys (see the module)."""


def _int_or_sexagesimal(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
    value = loader.construct_scalar(node)
    if isinstance(value, str) and ":" in value:
        return value
    return loader.construct_yaml_int(node)


def _float_or_sexagesimal(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
    value = loader.construct_scalar(node)
    if isinstance(value, str) and ":" in value:
        return value
    return loader.construct_yaml_float(node)


def go_key(key: Any) -> Any:
    """A mapping key as sigs.k8s.io/yaml writes it into JSON (strings, and whatever is not a scalar, untouched)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return go_float(key)
    if key is None:
        return "null"
    return key


def go_float(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'g', -1, 64)``: the shortest digits, the exponent form below 1e-4 or from 1e6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # digits before the decimal point
    exp = point - 1
    # Go's shortest 'g': the exponent form when exp < -4 or exp >= 6 (strconv ftoa's eprec for shortest).
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return ("-" if sign else "") + out


def _json_mapping(loader: SafeConstructor, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    data: dict[Any, Any] = {}
    yield data
    value = loader.construct_mapping(node)
    data.update((go_key(k), v) for k, v in value.items())


ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)
ManifestLoader.add_constructor("tag:yaml.org,2002:int", _int_or_sexagesimal)
ManifestLoader.add_constructor("tag:yaml.org,2002:float", _float_or_sexagesimal)
ManifestLoader.add_constructor("tag:yaml.org,2002:map", _json_mapping)
