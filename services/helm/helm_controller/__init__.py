"""helm-controller: HelmRelease reconciled with the real `helm` binary on the shared runtime."""
