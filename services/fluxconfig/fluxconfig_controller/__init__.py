"""fluxconfig-controller: a FluxConfig (clusterconfig.azure.com/v1alpha1) becomes a source, Kustomizations, auth and RBAC."""
