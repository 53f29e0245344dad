"""gitops-mesh shared runtime: kube access, reconcile engine, event bus, observability, settings."""

__version__ = "0.1.0"
