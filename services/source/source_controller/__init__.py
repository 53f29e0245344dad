"""source-controller: GitRepository, HelmRepository, HelmChart, Bucket and OCIRepository to artifacts."""
