"""Prometheus metrics of the controllers: queue depth, sync latency, sync errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

SYNC_SECONDS = Histogram(
    "kubik_controller_sync_duration_seconds",
    "Time taken by one sync of one key",
    ["controller"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10),
)
SYNC_ERRORS = Counter(
    "kubik_controller_sync_errors_total",
    "Syncs that failed and were requeued",
    ["controller"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "kubik_workqueue_depth",
    "Keys waiting in a controller's work queue",
    ["name"],
    registry=REGISTRY,
)


def track_queue(name: str, queue) -> None:
    """Report the queue's length whenever the metrics are scraped."""
    QUEUE_DEPTH.labels(name).set_function(lambda: len(queue))
