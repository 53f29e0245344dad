"""Every Prometheus metric the runtime exports, with Flux's and controller-runtime's names.

Metrics live in prometheus-client's default registry, defined once here so that a process can host
several controllers (and tests several instances) without registering a name twice.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_OBJ = ("kind", "name", "namespace")

# Flux's own names, so existing dashboards keep working.
reconcile_duration = Histogram(
    "gotk_reconcile_duration_seconds",
    "The duration in seconds of a GitOps Toolkit resource reconciliation.",
    _OBJ,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
reconcile_condition = Gauge(
    "gotk_reconcile_condition",
    "The current condition status of a GitOps Toolkit resource reconciliation.",
    (*_OBJ, "type", "status"),
)
suspend_status = Gauge("gotk_suspend_status", "The current suspend status of a GitOps Toolkit resource.", _OBJ)

#: The metrics with a series per object (labelled kind, name, namespace): forgotten with the object.
_PER_OBJECT: tuple[MetricWrapperBase, ...] = (reconcile_duration, reconcile_condition, suspend_status)


def forget_object(kind: str, namespace: str, name: str) -> None:
    """Remove every series of a deleted object (each condition type and status, suspend, durations).

    Flux's recorder deletes them when the object goes (fluxcd/pkg#612); left in place, a deleted object
    would be scraped as Ready (or as failing) forever, and a busy cluster's churn would grow the registry
    without bound.
    """
    labels = {"kind": kind, "namespace": namespace, "name": name}
    for metric in _PER_OBJECT:
        metric.remove_by_labels(labels)


# controller-runtime's names.
reconcile_total = Counter(
    "controller_runtime_reconcile_total", "Total number of reconciliations per controller", ("controller", "result")
)
reconcile_errors = Counter(
    "controller_runtime_reconcile_errors_total", "Total number of reconciliation errors per controller", ("controller",)
)
active_workers = Gauge(
    "controller_runtime_active_workers", "Number of currently used workers per controller", ("controller",)
)
max_concurrent = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller",
    ("controller",),
)
workqueue_depth = Gauge("workqueue_depth", "Current depth of workqueue", ("name",))
workqueue_adds = Counter("workqueue_adds_total", "Total number of adds handled by workqueue", ("name",))
workqueue_retries = Counter("workqueue_retries_total", "Total number of retries handled by workqueue", ("name",))
workqueue_queue_duration = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested",
    ("name",),
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60),
)
workqueue_work_duration = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes",
    ("name",),
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60),
)

# Kube access.
informer_events = Counter(
    "gitops_informer_events_total", "Watch events received per resource and type", ("resource", "type")
)
informer_relists = Counter(
    "gitops_informer_relists_total", "Full relists per resource (410 Gone, start)", ("resource",)
)
informer_watch_errors = Counter(
    "gitops_informer_watch_errors_total", "Watch disconnects and errors per resource", ("resource",)
)
kube_requests = Counter("gitops_kube_requests_total", "Requests to the apiserver", ("verb", "code"))

# The bus.
bus_published = Counter("gitops_bus_published_total", "Messages acknowledged by Kafka", ("topic",))
bus_publish_errors = Counter("gitops_bus_publish_errors_total", "Failed publish attempts (retried)", ("topic",))
bus_buffered = Gauge("gitops_bus_buffered_messages", "Messages waiting to be acknowledged by Kafka")
bus_connected = Gauge("gitops_bus_connected", "1 while the producer reaches Kafka, else 0")
bus_consumed = Counter("gitops_bus_consumed_total", "Messages handled by consumers", ("topic", "result"))
bus_dlq = Counter("gitops_bus_dead_lettered_total", "Messages sent to the dead-letter topic", ("topic", "reason"))
bus_dropped = Counter(
    "gitops_bus_dropped_total",
    "Events not published: the buffer was full, the message can never be accepted, or shutdown timed out",
    ("topic",),
)

# Artifacts: the source's storage and file server, the consumers' fetches and unpacked-tree cache.
artifact_pack_duration = Histogram(
    "gitops_artifact_pack_duration_seconds",
    "Time to archive a source tree into a stored artifact",
    ("kind",),
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
artifact_stored_bytes = Counter(
    "gitops_artifact_stored_bytes_total", "Bytes of artifacts written to storage", ("kind",)
)
artifact_gc_removed = Counter(
    "gitops_artifact_gc_removed_total", "Artifact files removed by garbage collection", ("kind",)
)
artifact_requests = Counter("gitops_artifact_requests_total", "Requests to the artifact file server", ("code",))
artifact_served_bytes = Counter(
    "gitops_artifact_served_bytes_total", "Bytes of artifact content sent by the file server (200 and 206)"
)
artifact_fetched_bytes = Counter("gitops_artifact_fetched_bytes_total", "Bytes of artifacts downloaded by consumers")
artifact_fetch_errors = Counter("gitops_artifact_fetch_errors_total", "Failed artifact downloads by cause", ("reason",))
artifact_tree_cache = Counter(
    "gitops_artifact_tree_cache_total",
    "Unpacked-tree cache lookups: hit (ready), shared (joined an unpack in flight), miss (unpacked)",
    ("result",),
)

# notification-controller: matching, rate limiting, delivery, receivers.
notification_events = Counter(
    "gitops_notification_events_total",
    "Events consumed by the notification-controller: matched (at least one Alert), unmatched, rate_limited",
    ("result",),
)
notification_deliveries = Counter(
    "gitops_notification_deliveries_total",
    "Deliveries (an event for one Alert) by provider type: delivered, skipped, retried (a failed attempt), "
    "handed_over (to the retry lane), parked (on the dead-letter topic), rate_limited",
    ("type", "result"),
)
notification_attempts = Counter(
    "gitops_notification_delivery_attempts_total",
    "Delivery attempts by provider type and outcome (delivered, skipped, retry, rejected)",
    ("type", "outcome"),
)
notification_latency = Histogram(
    "gitops_notification_delivery_latency_seconds",
    "Time from an event to its delivery, by provider type",
    ("type",),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
notification_retry_pending = Gauge(
    "gitops_notification_retry_pending", "Deliveries this process knows to be waiting in the retry lane"
)
notification_receiver_requests = Counter(
    "gitops_notification_receiver_requests_total",
    "Receiver webhook requests by receiver type and answer",
    ("type", "code"),
)
