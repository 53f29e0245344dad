"""The build pipeline of a Kustomization, in Flux's order: generate → decrypt sources → kustomize → decrypt → substitute.

The source tree is shared (a TreeCache lease) and never written: the build works in a private copy
whose files are hard links, and every write there replaces a file instead of writing through it.
Blocking work (copying, walking, YAML) runs in threads; kustomize and sops are subprocesses killed with
their process group on timeout or cancellation. ``commonMetadata`` is set last, after substitution, as
Flux sets it just before applying; owner labels are left to the applier.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gitops_mesh.errors import InvalidSpec, NotFound
from gitops_mesh.kube.client import KubeClient
from gitops_mesh.kube.secrets import secret_data
from kustomize_controller.build import decrypt, generator, graph, substitute, workdir
from kustomize_controller.build import kustomize as kustomize_cli
from kustomize_controller.build.errors import BuildFailed, DecryptionFailed

T = TypeVar("T")
KubeObject = dict[str, Any]


async def build(
    tree: Path,
    spec: Mapping[str, Any],
    *,
    kustomize: Path,
    sops: Path | None,
    kube: KubeClient | None,
    namespace: str,
    no_remote_bases: bool,
    timeout: float,
    strict_substitution: bool = False,
    age_keys: Sequence[str] = (),
    work_root: Path | None = None,
) -> list[KubeObject]:
    """The objects ``spec`` builds from the unpacked artifact ``tree``, in kustomize's order.

    ``namespace`` is the Kustomization's (where substituteFrom and decryption Secrets are read);
    ``age_keys`` are controller-wide identities used besides the decryption Secret's (Flux's
    --sops-age-secret); ``timeout`` bounds the whole build. Raises BuildFailed (retried at the
    Kustomization's retryInterval by the runner), InvalidSpec for a spec of the wrong shape, and the kube
    client's errors reading Secrets and ConfigMaps.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _build(
                tree,
                spec,
                kustomize_bin=kustomize,
                sops=sops,
                kube=kube,
                namespace=namespace,
                no_remote_bases=no_remote_bases,
                timeout=timeout,
                strict=strict_substitution,
                age_keys=age_keys,
                work_root=work_root,
            )
    except TimeoutError:
        raise BuildFailed(f"build timed out after {timeout:g}s") from None


async def _build(
    tree: Path,
    spec: Mapping[str, Any],
    *,
    kustomize_bin: Path,
    sops: Path | None,
    kube: KubeClient | None,
    namespace: str,
    no_remote_bases: bool,
    timeout: float,
    strict: bool,
    age_keys: Sequence[str],
    work_root: Path | None,
) -> list[KubeObject]:
    decryptor = await _decryptor(spec, sops=sops, kube=kube, namespace=namespace, age_keys=age_keys, timeout=timeout)
    post_build = spec.get("postBuild")
    if post_build is not None and not isinstance(post_build, Mapping):
        raise InvalidSpec("spec.postBuild must be a map")
    variables = await substitute.load_variables(kube, namespace, post_build) if post_build else {}

    # One mkdir, done inline: from a thread, a cancellation could lose the path and leak the directory.
    work = workdir.make_workdir(work_root)
    try:
        root = work / "src"
        directory = await _blocking(_prepare, tree, root, spec, no_remote_bases)
        if decryptor is not None:
            await decryptor.decrypt_sources(root, directory)
        output = await kustomize_cli.kustomize_build(
            kustomize_bin, root, directory, timeout=timeout, no_remote_bases=no_remote_bases
        )
    finally:
        await _blocking(shutil.rmtree, work, True)

    objects = await _blocking(kustomize_cli.parse_objects, output)
    if decryptor is not None:
        objects = [await decryptor.decrypt_object(obj) for obj in objects]
    if variables:
        objects = await substitute.substitute_in_thread(objects, variables, strict=strict)
    common = spec.get("commonMetadata")
    if isinstance(common, Mapping):
        generator.set_common_metadata(objects, common.get("labels"), common.get("annotations"))
    return objects


def _prepare(tree: Path, root: Path, spec: Mapping[str, Any], no_remote_bases: bool) -> Path:
    """Copy the tree, write the kustomization of spec.path, check what it references; the build directory."""
    workdir.materialize(tree, root)
    path = spec.get("path") or ""
    if not isinstance(path, str):
        raise InvalidSpec("spec.path must be a string")
    directory = workdir.build_dir(root, path)
    generator.write_kustomization(root, directory, spec)
    graph.check_references(root, directory, no_remote_bases=no_remote_bases)
    return directory


async def _decryptor(
    spec: Mapping[str, Any],
    *,
    sops: Path | None,
    kube: KubeClient | None,
    namespace: str,
    age_keys: Sequence[str],
    timeout: float,
) -> decrypt.Decryptor | None:
    decryption = spec.get("decryption")
    if decryption is None:
        return None
    if not isinstance(decryption, Mapping):
        raise InvalidSpec("spec.decryption must be a map")
    provider = decryption.get("provider")
    if provider != "sops":
        raise InvalidSpec(f"spec.decryption.provider must be 'sops', not {provider!r}")
    if sops is None:
        raise DecryptionFailed("spec.decryption is set but no sops binary is configured")
    identities = list(age_keys)
    secret_ref = decryption.get("secretRef")
    if secret_ref is not None:
        name = secret_ref.get("name") if isinstance(secret_ref, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InvalidSpec("spec.decryption.secretRef must have a name")
        if kube is None:
            raise DecryptionFailed(f"decryption Secret '{namespace}/{name}': no Kubernetes client to read it with")
        try:
            data = await secret_data(kube, namespace, name)
        except NotFound as e:
            raise DecryptionFailed(f"decryption Secret '{namespace}/{name}' not found") from e
        # The decryption Secret's keys come first, as Flux prefers them to the controller's own.
        identities = decrypt.age_identities(data) + identities
    return decrypt.Decryptor(sops, identities, timeout=timeout)


async def _blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn`` in a thread; if we are cancelled meanwhile, the thread is let finish before the cancel goes on.

    A thread cannot be stopped, and the callers remove the work tree it may still be writing into.
    """
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise
