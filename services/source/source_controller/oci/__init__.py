"""source-controller's side of OCI registries: what a spec's Secrets say about reaching one (credentials,
TLS, proxy), for OCIRepository and the OCI Helm kinds. The protocol itself is :mod:`gitops_mesh.oci`'s."""

from source_controller.oci.access import RegistryAccess, registry_access

__all__ = ["RegistryAccess", "registry_access"]
