"""gitops-mesh shared runtime: kube access, reconcile workers, event bus, observability, settings."""

__version__ = "0.1.0"
