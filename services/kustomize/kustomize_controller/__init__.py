"""kustomize-controller: Kustomizations built, substituted, server-side applied, health-checked and pruned."""
