"""Prometheus metrics of the scheduler, under upstream's names (`scheduler_*`).

- `scheduler_schedule_attempts_total{result, profile}`: scheduling attempts
  by outcome: `scheduled`, `unschedulable` or `error`;
- `scheduler_scheduling_attempt_duration_seconds{result, profile}`: one
  attempt, from popping the pod to its binding (or failure);
- `scheduler_pod_scheduling_sli_duration_seconds{attempts}`: end to end,
  from the pod entering the queue to its binding, over all its attempts;
- `scheduler_pending_pods{queue}`: pods waiting, by queue (`active`,
  `backoff`, `unschedulable`, `gated`), read when scraped;
- `scheduler_preemption_attempts_total` and `scheduler_preemption_victims`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

# upstream's exponential buckets: 1 ms doubling fifteen times (up to ~16 s)
_DURATION_BUCKETS = tuple(0.001 * 2**i for i in range(15))
# the SLI's: 10 ms doubling twenty times
_SLI_BUCKETS = tuple(0.01 * 2**i for i in range(20))

SCHEDULE_ATTEMPTS = Counter(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result",
    ["result", "profile"],
    registry=REGISTRY,
)
ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
    ["result", "profile"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
SLI_DURATION = Histogram(
    "scheduler_pod_scheduling_sli_duration_seconds",
    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue",
    ["attempts"],
    buckets=_SLI_BUCKETS,
    registry=REGISTRY,
)
PENDING_PODS = Gauge(
    "scheduler_pending_pods",
    "Number of pending pods, by the queue type",
    ["queue"],
    registry=REGISTRY,
)
PREEMPTION_ATTEMPTS = Counter(
    "scheduler_preemption_attempts_total",
    "Total preemption attempts in the cluster till now",
    registry=REGISTRY,
)
PREEMPTION_VICTIMS = Histogram(
    "scheduler_preemption_victims",
    "Number of selected preemption victims",
    buckets=tuple(2**i for i in range(7)),
    registry=REGISTRY,
)

SCHEDULED = "scheduled"
UNSCHEDULABLE = "unschedulable"
ERROR = "error"
QUEUES = ("active", "backoff", "unschedulable", "gated")


def track_pending(counts: Callable[[], dict[str, int]]) -> None:
    """Read the pending pods from `counts()` whenever the metrics are scraped."""
    for queue in QUEUES:
        PENDING_PODS.labels(queue).set_function(lambda queue=queue: counts().get(queue, 0))


def attempt(result: str, profile: str, seconds: float) -> None:
    SCHEDULE_ATTEMPTS.labels(result, profile).inc()
    ATTEMPT_DURATION.labels(result, profile).observe(seconds)
