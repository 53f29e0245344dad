"""Kustomization build: generate kustomization.yaml, run kustomize, decrypt with sops, substitute variables."""

from kustomize_controller.build.decrypt import Decryptor, age_identities
from kustomize_controller.build.envsubst import SubstitutionSyntaxError, UnsetVariable, expand
from kustomize_controller.build.errors import (
    BuildFailed,
    DecryptionFailed,
    InvalidManifest,
    KustomizeFailed,
    PathNotFound,
    RemoteBaseRefused,
    SubstitutionFailed,
    UnsafeReference,
    VariablesNotFound,
)
from kustomize_controller.build.generator import apply_overlays, set_common_metadata, write_kustomization
from kustomize_controller.build.graph import check_references
from kustomize_controller.build.kustomize import kustomize_build, parse_objects
from kustomize_controller.build.pipeline import build
from kustomize_controller.build.substitute import load_variables, merge_variables, substitute_objects

__all__ = [
    "BuildFailed",
    "DecryptionFailed",
    "Decryptor",
    "InvalidManifest",
    "KustomizeFailed",
    "PathNotFound",
    "RemoteBaseRefused",
    "SubstitutionFailed",
    "SubstitutionSyntaxError",
    "UnsafeReference",
    "UnsetVariable",
    "VariablesNotFound",
    "age_identities",
    "apply_overlays",
    "build",
    "check_references",
    "expand",
    "kustomize_build",
    "load_variables",
    "merge_variables",
    "parse_objects",
    "set_common_metadata",
    "substitute_objects",
    "write_kustomization",
]
