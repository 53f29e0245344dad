"""The build pipeline's own errors, each naming the file or object at fault."""

# GitopsMeshError
# └── TransientError
#     └── BuildFailed                   reason BuildFailed: generate, kustomize, decrypt or substitute failed
#         ├── PathNotFound              reason ArtifactFailed: spec.path is not a directory of the artifact
#         ├── InvalidManifest           a file under spec.path is not Kubernetes YAML (kustomization generation)
#         ├── UnsafeReference           a kustomization points outside the artifact
#         ├── RemoteBaseRefused         a remote base while --no-remote-bases is set
#         ├── KustomizeFailed           `kustomize build` exited non-zero, timed out, or printed non-objects
#         ├── DecryptionFailed          sops could not decrypt an object or a file, or has no keys
#         └── SubstitutionFailed        a bad variable name, a parse error, an unset variable in strict mode
#             └── VariablesNotFound     a substituteFrom ConfigMap/Secret that is not optional is missing
#
# Why transient: Flux marks a failed build Ready=False/BuildFailed and retries it every retryInterval, never
# Stalled, because what broke it may change without the Kustomization changing (a new source revision, a
# ConfigMap created later, a decryption Secret rotated). The Kustomization runner's retry policy
# (``runner.retry_interval_of``) retries it at spec.retryInterval, else spec.interval, as Flux does,
# rather than with the work queue's exponential backoff.

from __future__ import annotations

from gitops_mesh.errors import TransientError


class BuildFailed(TransientError):
    """The manifests of a revision could not be turned into objects."""

    reason = "BuildFailed"


class PathNotFound(BuildFailed):
    """spec.path does not name a directory of the artifact."""

    reason = "ArtifactFailed"


class InvalidManifest(BuildFailed):
    """A YAML file kustomization generation would list does not decode as Kubernetes objects."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        #: the file, relative to the artifact root
        self.path = path


class UnsafeReference(BuildFailed):
    """A kustomization refers to a path outside the artifact (absolute, or too many ``..``)."""


class RemoteBaseRefused(BuildFailed):
    """A kustomization refers to a remote base and remote bases are disabled."""


class KustomizeFailed(BuildFailed):
    """``kustomize build`` failed; the message is kustomize's, with artifact-relative paths."""


class DecryptionFailed(BuildFailed):
    """SOPS decryption of an object or a generator file failed."""


class SubstitutionFailed(BuildFailed):
    """postBuild variable substitution failed for an object, or the variables are unusable."""


class VariablesNotFound(SubstitutionFailed):
    """A substituteFrom ConfigMap or Secret that is not optional does not exist (it may be created later)."""
