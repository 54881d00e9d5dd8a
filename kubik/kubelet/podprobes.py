"""The probe workers of one pod and what they found, for its pod worker.

One `ProbeWorker` (probes.py) per running container and probe kind, keyed by
the container's id: a restarted container is a new id, so its workers start
from upstream's initial results (not ready, alive, not started). Liveness and
readiness wait for the startup probe. A changed result wakes the pod worker,
which reads the verdicts here: readiness and startup for the status, failed
liveness and startup probes to restart the container.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubik.kubelet.probes import LIVENESS, READINESS, STARTUP, ProbeWorker
from kubik.kubelet.runtimestate import PodRuntime

log = logging.getLogger(__name__)

Object = dict[str, Any]
_KINDS = ((STARTUP, "startupProbe"), (LIVENESS, "livenessProbe"), (READINESS, "readinessProbe"))


class PodProbes:
    def __init__(
        self,
        runtime: Any,
        *,
        on_change: Callable[[], None],
        on_event: Callable[[str, str, str], None],
    ) -> None:
        self._runtime = runtime
        self._on_change = on_change
        self._on_event = on_event
        self._workers: dict[tuple[str, str], ProbeWorker] = {}
        self.readiness: dict[str, bool] = {}
        self.started: dict[str, bool] = {}
        self.liveness_failed: set[str] = set()
        self.startup_failed: set[str] = set()

    async def sync(self, pod: Object, state: PodRuntime, pod_ip: str) -> None:
        """Workers for exactly the running containers that have probes."""
        wanted: set[tuple[str, str]] = set()
        for container in (pod.get("spec") or {}).get("containers") or []:
            record = state.latest(container["name"])
            if record is None or not record.running:
                continue
            for kind, field in _KINDS:
                probe = container.get(field)
                if not probe:
                    continue
                key = (record.id, kind)
                wanted.add(key)
                if key in self._workers:
                    continue
                has_startup = bool(container.get("startupProbe"))
                worker = ProbeWorker(
                    kind,
                    probe,
                    pod=pod,
                    container=container,
                    container_id=record.id,
                    pod_ip=pod_ip,
                    runtime=self._runtime,
                    on_result=self._recorder(record.id),
                    started_at=record.started_at / 1e9 if record.started_at else None,
                    gate=self._gate(record.id) if has_startup and kind != STARTUP else None,
                    on_event=self._on_event,
                )
                self._workers[key] = worker
                worker.start()
        for key in [k for k in self._workers if k not in wanted]:
            await self._workers.pop(key).stop()
        live = {cid for cid, _ in wanted}
        for verdicts in (self.readiness, self.started):
            for cid in [c for c in verdicts if c not in live]:
                del verdicts[cid]
        self.liveness_failed &= live
        self.startup_failed &= live

    def _gate(self, container_id: str) -> Callable[[], bool]:
        return lambda: self.started.get(container_id, False)

    def _recorder(self, container_id: str) -> Callable[[str, bool], None]:
        def record(kind: str, ok: bool) -> None:
            if kind == READINESS:
                self.readiness[container_id] = ok
            elif kind == STARTUP:
                self.started[container_id] = ok
                (self.startup_failed.discard if ok else self.startup_failed.add)(container_id)
            elif kind == LIVENESS:
                (self.liveness_failed.discard if ok else self.liveness_failed.add)(container_id)
            self._on_change()

        return record

    async def stop(self) -> None:
        for worker in self._workers.values():
            await worker.stop()
        self._workers.clear()
