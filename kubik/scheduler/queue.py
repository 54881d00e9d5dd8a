"""The scheduling queue: active, backoff and unschedulable pods, as upstream's priority queue.

- *active*: pods to schedule, highest `spec.priority` first, then the
  earliest queued (upstream's PrioritySort);
- *backoff*: pods that failed, waiting out a backoff that doubles with
  every attempt (1 s, 2 s, ... up to 10 s by default) before going active;
- *unschedulable*: pods no node fitted. A cluster event that may make them
  fit (a node added or changed, a bound pod deleted) moves them back to
  active, or to backoff while their backoff lasts; only events that one of
  the plugins that rejected the pod cares about do. Pods left there for 5
  minutes are moved anyway. Pods held by a pre_enqueue plugin (scheduling
  gates) wait there too, until an update of the pod lets them in.

A pod that fails while an event it cares about happened during its cycle
goes to backoff rather than unschedulable: the event may have been the one
that makes it fit. Pods nominated to a node by preemption are tracked here
too (the "nominator"), so filters can count them on that node.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, KeysView
from typing import Any

from kubik.scheduler.framework import UNSCHEDULABLE_TIMEOUT, Status, ok
from kubik.scheduler.nodeinfo import PodInfo, pod_key

Object = dict[str, Any]

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
MAX_IN_UNSCHEDULABLE = 300.0
_IGNORED_METADATA = ("resourceVersion", "generation", "managedFields")


class QueuedPodInfo:
    """A pod in the queue, with its scheduling history."""

    __slots__ = (
        "info",
        "timestamp",
        "attempts",
        "unschedulable_plugins",
        "gated",
        "cycle",
        "initial",
    )

    def __init__(self, info: PodInfo, timestamp: float) -> None:
        self.info = info
        self.timestamp = timestamp  # when it was (re)queued
        self.initial = timestamp  # when it first entered the queue (for the SLI)
        self.attempts = 0
        self.unschedulable_plugins: set[str] = set()
        self.gated = False
        self.cycle = 0  # the scheduling cycle that popped it last

    @property
    def pod(self) -> Object:
        return self.info.pod

    @property
    def key(self) -> str:
        return self.info.key

    def __repr__(self) -> str:
        return f"QueuedPodInfo({self.key}, attempts={self.attempts})"


def _spec_changed(old: Object, new: Object) -> bool:
    """Whether an update changed more than status and bookkeeping metadata."""

    def essence(pod: Object) -> tuple:
        metadata = {k: v for k, v in pod["metadata"].items() if k not in _IGNORED_METADATA}
        return metadata, pod.get("spec")

    return essence(old) != essence(new)


class SchedulingQueue:
    def __init__(
        self,
        *,
        pre_enqueue: Callable[[Object], Status | None] = lambda pod: None,
        interested: Callable[[QueuedPodInfo, str], bool] = lambda queued, event: True,
        relevant_events: set[str] | None = None,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_in_unschedulable: float = MAX_IN_UNSCHEDULABLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pre_enqueue = pre_enqueue
        self._interested = interested
        self.relevant_events = relevant_events  # None: every event may matter
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_in_unschedulable = max_in_unschedulable
        self._clock = clock
        self._seq = itertools.count()
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._active: dict[str, tuple[QueuedPodInfo, int]] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._backoff: dict[str, tuple[QueuedPodInfo, int]] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._updated_in_flight: set[str] = set()
        self._event_cycles: dict[str, int] = {}  # event → the scheduling cycle it last happened in
        self.scheduling_cycle = 0
        self._nominated: dict[str, dict[str, PodInfo]] = {}  # node → pod key → pod
        self._nominated_node: dict[str, str] = {}  # pod key → node
        self._wakeup = asyncio.Event()

    # ---------------------------------------------------------------- reads

    def counts(self) -> dict[str, int]:
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
            "in_flight": len(self._in_flight),
        }

    def pending_counts(self) -> dict[str, int]:
        """Pods waiting, by queue as upstream's metric names them (gated ones apart)."""
        gated = sum(1 for queued in self._unschedulable.values() if queued.gated)
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable) - gated,
            "gated": gated,
        }

    def where(self, key: str) -> str | None:
        """ "active", "backoff", "unschedulable", "in_flight", or None."""
        for name, place in (
            ("active", self._active),
            ("backoff", self._backoff),
            ("unschedulable", self._unschedulable),
            ("in_flight", self._in_flight),
        ):
            if key in place:
                return name
        return None

    def get(self, key: str) -> QueuedPodInfo | None:
        for place in (self._active, self._backoff):
            entry = place.get(key)
            if entry is not None:
                return entry[0]
        return self._unschedulable.get(key) or self._in_flight.get(key)

    def backoff_duration(self, queued: QueuedPodInfo) -> float:
        if queued.attempts == 0:
            return 0.0
        duration = self._initial_backoff
        for _ in range(1, queued.attempts):
            duration *= 2
            if duration >= self._max_backoff:
                return self._max_backoff
        return min(duration, self._max_backoff)

    def _backing_off(self, queued: QueuedPodInfo, now: float) -> bool:
        return queued.timestamp + self.backoff_duration(queued) > now

    # ------------------------------------------------------------ changes

    def add(self, pod: Object) -> None:
        """A new unscheduled pod."""
        key = pod_key(pod)
        if self.where(key) is not None:
            self.update(pod)
            return
        queued = QueuedPodInfo(PodInfo(pod), self._clock())
        self._update_nominated(queued.info)
        self._admit(queued)

    def update(self, pod: Object) -> None:
        """A changed unscheduled pod: keep its place, or give it another chance."""
        key = pod_key(pod)
        info = PodInfo(pod)
        self._update_nominated(info)
        if key in self._in_flight:
            self._updated_in_flight.add(key)
            return
        entry = self._active.get(key) or self._backoff.get(key)
        if entry is not None:
            queued = entry[0]
            priority_changed = queued.info.priority != info.priority
            queued.info = info
            if priority_changed and key in self._active:
                self._push_active(queued)
            return
        queued = self._unschedulable.get(key)
        if queued is None:
            self.add(pod)
            return
        old = queued.pod
        queued.info = info
        if queued.gated:
            del self._unschedulable[key]
            self._admit(queued)
        elif _spec_changed(old, pod):
            del self._unschedulable[key]
            self._requeue(queued, self._clock())

    def delete(self, pod: Object) -> None:
        key = pod_key(pod)
        self._active.pop(key, None)
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        self.delete_nominated(key)

    def _admit(self, queued: QueuedPodInfo) -> None:
        """Into active, unless a pre_enqueue plugin holds it back."""
        status = self._pre_enqueue(queued.pod)
        queued.gated = not ok(status)
        if queued.gated:
            queued.unschedulable_plugins = {status.plugin}
            self._unschedulable[queued.key] = queued
        else:
            self._push_active(queued)

    def _push_active(self, queued: QueuedPodInfo) -> None:
        seq = next(self._seq)
        self._active[queued.key] = (queued, seq)
        heapq.heappush(
            self._active_heap, (-queued.info.priority, queued.timestamp, seq, queued.key)
        )
        self._wakeup.set()

    def _push_backoff(self, queued: QueuedPodInfo) -> None:
        seq = next(self._seq)
        self._backoff[queued.key] = (queued, seq)
        expiry = queued.timestamp + self.backoff_duration(queued)
        heapq.heappush(self._backoff_heap, (expiry, seq, queued.key))
        self._wakeup.set()

    def _requeue(self, queued: QueuedPodInfo, now: float) -> None:
        if self._backing_off(queued, now):
            self._push_backoff(queued)
        else:
            self._push_active(queued)

    # -------------------------------------------------------------- popping

    async def pop(self) -> QueuedPodInfo:
        """The next pod to schedule, waiting for one if need be."""
        while True:
            now = self._clock()
            self._flush_backoff(now)
            while self._active_heap:
                _, _, seq, key = heapq.heappop(self._active_heap)
                entry = self._active.get(key)
                if entry is None or entry[1] != seq:
                    continue  # deleted or requeued since
                del self._active[key]
                queued = entry[0]
                queued.attempts += 1
                self.scheduling_cycle += 1
                queued.cycle = self.scheduling_cycle
                self._in_flight[key] = queued
                return queued
            delay = self._backoff_heap[0][0] - now if self._backoff_heap else None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                pass

    def _flush_backoff(self, now: float) -> None:
        heap = self._backoff_heap
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = self._backoff.get(key)
            if entry is not None and entry[1] == seq:
                del self._backoff[key]
                self._push_active(entry[0])

    def done(self, key: str) -> None:
        """The pod's cycle is over (bound, or back in the queue)."""
        self._in_flight.pop(key, None)
        self._updated_in_flight.discard(key)

    def add_unschedulable_if_not_present(self, queued: QueuedPodInfo) -> None:
        """Back into the queue after a failed attempt (unless an update already put it back)."""
        key = queued.key
        updated = key in self._updated_in_flight
        self.done(key)
        if key in self._active or key in self._backoff or key in self._unschedulable:
            return
        queued.timestamp = self._clock()
        errored = not queued.unschedulable_plugins
        missed_event = any(
            cycle >= queued.cycle and self._interested(queued, event)
            for event, cycle in self._event_cycles.items()
        )
        if errored or updated or missed_event:
            self._push_backoff(queued)
        else:
            self._unschedulable[key] = queued

    # --------------------------------------------------------------- events

    def move_all_to_active_or_backoff(self, event: str) -> None:
        """A cluster event: unschedulable pods it may help are given another chance."""
        if self.relevant_events is not None and event not in self.relevant_events:
            return
        self._event_cycles[event] = self.scheduling_cycle
        if not self._unschedulable:
            return
        now = self._clock()
        moved = [
            queued
            for queued in self._unschedulable.values()
            if not queued.gated and self._interested(queued, event)
        ]
        for queued in moved:
            del self._unschedulable[queued.key]
            self._requeue(queued, now)

    def activate(self, key: str) -> None:
        """Move a waiting pod to active now: what it waited for will not come (a failed
        preemption, say), so it should not sit out its backoff or an event."""
        queued = self._unschedulable.get(key)
        if queued is not None and not queued.gated:
            del self._unschedulable[key]
            self._push_active(queued)
            return
        entry = self._backoff.pop(key, None)
        if entry is not None:
            self._push_active(entry[0])

    def flush_unschedulable_leftover(self) -> None:
        """Pods unschedulable for too long are tried again, whatever the events."""
        now = self._clock()
        stale = [
            queued
            for queued in self._unschedulable.values()
            if not queued.gated and now - queued.timestamp > self._max_in_unschedulable
        ]
        for queued in stale:
            del self._unschedulable[queued.key]
            self._requeue(queued, now)
        if stale:
            self._event_cycles[UNSCHEDULABLE_TIMEOUT] = self.scheduling_cycle

    # ------------------------------------------------------------ nominator

    def _update_nominated(self, info: PodInfo) -> None:
        node = (info.pod.get("status") or {}).get("nominatedNodeName") or ""
        if node:
            self.add_nominated(info, node)
        else:
            self.delete_nominated(info.key)

    def add_nominated(self, info: PodInfo, node: str) -> None:
        self.delete_nominated(info.key)
        self._nominated.setdefault(node, {})[info.key] = info
        self._nominated_node[info.key] = node

    def delete_nominated(self, key: str) -> None:
        node = self._nominated_node.pop(key, None)
        if node is not None:
            pods = self._nominated[node]
            pods.pop(key, None)
            if not pods:
                del self._nominated[node]

    def nominated_nodes(self) -> KeysView[str]:
        """The nodes some pods are nominated to (empty when there are none)."""
        return self._nominated.keys()

    def nominated_pods_for_node(self, node: str) -> list[PodInfo]:
        return list(self._nominated.get(node, {}).values())
