"""Kube access: client (REST over one pool), informers, events, finalizers and leader election."""

from gitops_mesh.kube.api_status import AlreadyExists
from gitops_mesh.kube.client import KubeClient, ObjectList, PatchType
from gitops_mesh.kube.config import KubeConfig, load_config
from gitops_mesh.kube.events import EventRecorder, EventType
from gitops_mesh.kube.finalizers import add_finalizer, has_finalizer, remove_finalizer
from gitops_mesh.kube.informer import Informer, diff_relist
from gitops_mesh.kube.leases import LeaderElector
from gitops_mesh.kube.mapping import ResourceInfo, RESTMapper
from gitops_mesh.kube.objects import KubeObject, ObjectKey, object_key

__all__ = [
    "AlreadyExists",
    "EventRecorder",
    "EventType",
    "Informer",
    "KubeClient",
    "KubeConfig",
    "KubeObject",
    "LeaderElector",
    "ObjectKey",
    "ObjectList",
    "PatchType",
    "RESTMapper",
    "ResourceInfo",
    "add_finalizer",
    "diff_relist",
    "has_finalizer",
    "load_config",
    "object_key",
    "remove_finalizer",
]
