"""kube-scheduler: picks a node for every pod that has none, and binds it there.

The component watches pods and nodes. Unscheduled pods whose
`spec.schedulerName` is one of the profiles go to the scheduling queue;
bound pods and nodes feed the cache. One loop pops a pod, runs its
profile's plugins over the cached nodes without awaiting (so the cache is
consistent for the whole cycle), assumes the pod on the chosen node and
binds it in the background (POST pods/binding); the next pod is scheduled
meanwhile. A pod no node fits gets `PodScheduled=False` (reason
Unschedulable, upstream's message) and a FailedScheduling event and waits
for a cluster event that may help; a bound pod gets a `Scheduled` event.
Only the leader of the `kube-scheduler` Lease schedules; each leadership
term starts from fresh informers, cache and queue.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import Any

from kubik import component
from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.client.leaderelection import LeaderElector
from kubik.metricsserver import MetricsServer
from kubik.scheduler import config as scheduler_config
from kubik.scheduler import metrics
from kubik.scheduler.cache import Cache
from kubik.scheduler.config import DEFAULT_SCHEDULER_NAME, SchedulerConfig
from kubik.scheduler.cycle import Algorithm, NoNodesAvailable
from kubik.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    POD_ADD,
    POD_DELETE,
    POD_UPDATE,
    UNSCHEDULABLE_TIMEOUT,
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    SchedulingError,
    Status,
)
from kubik.scheduler.nodeinfo import PodInfo, pod_key
from kubik.scheduler.queue import QueuedPodInfo, SchedulingQueue

log = logging.getLogger(__name__)

Object = dict[str, Any]

PODS = builtin.lookup("", "v1", "pods")
NODES = builtin.lookup("", "v1", "nodes")

NOTE_LENGTH_LIMIT = 1024  # an event message's limit
# API calls of binding cycles and status updates at once: beyond the client's pool of
# keep-alive connections every extra call would pay (and make the server pay) a TLS handshake
API_CONCURRENCY = 16
HOUSEKEEPING_PERIOD = 1.0  # expiring assumed pods
LEFTOVER_FLUSH_PERIOD = 30.0  # retrying pods unschedulable for too long


def _assigned(pod: Object) -> bool:
    return bool(pod["spec"].get("nodeName"))


def _terminal(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _scheduler_name(pod: Object) -> str:
    return pod["spec"].get("schedulerName") or DEFAULT_SCHEDULER_NAME


def _ref(pod: Object) -> Object:
    """What the event recorder needs of a pod (listed items carry no kind)."""
    return {"kind": "Pod", "apiVersion": "v1", "metadata": pod["metadata"]}


def _node_changed(old: Object, new: Object) -> bool:
    """Whether a node update may let pods fit (not a mere heartbeat)."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    return (
        old_spec.get("unschedulable") != new_spec.get("unschedulable")
        or old_spec.get("taints") != new_spec.get("taints")
        or old["metadata"].get("labels") != new["metadata"].get("labels")
        or (old.get("status") or {}).get("allocatable")
        != (new.get("status") or {}).get("allocatable")
    )


def _truncate(message: str) -> str:
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    return message[: NOTE_LENGTH_LIMIT - 4] + " ..."


class Session:
    """One leadership term: informers, cache, queue, profiles, and the scheduling loop."""

    def __init__(self, client: Client, config: SchedulerConfig) -> None:
        self.client = client
        self.informers = InformerFactory(client)
        self.cache = Cache()
        self.queue = SchedulingQueue(
            pre_enqueue=self._pre_enqueue,
            interested=self._interested,
            initial_backoff=config.initial_backoff,
            max_backoff=config.max_backoff,
        )
        self.recorders = {
            p.scheduler_name: EventRecorder(client, p.scheduler_name) for p in config.profiles
        }
        self.profiles = {
            p.scheduler_name: Framework(
                p,
                client=client,
                informers=self.informers,
                cache=self.cache,
                queue=self.queue,
                recorder=self.recorders[p.scheduler_name],
            )
            for p in config.profiles
        }
        self.queue.relevant_events = self._relevant_events()
        self.algorithm = Algorithm(
            self.cache, self.queue, percentage_of_nodes_to_score=config.percentage_of_nodes_to_score
        )
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.nodes.add_handlers(
            on_add=self._node_added, on_update=self._node_updated, on_delete=self.cache.remove_node
        )
        self._tasks: set[asyncio.Task] = set()
        self._api_calls = asyncio.Semaphore(API_CONCURRENCY)
        self._attempt_started: dict[str, float] = {}  # pod key → when its attempt began
        metrics.track_pending(self.queue.pending_counts)

    def _relevant_events(self) -> set[str] | None:
        events = {UNSCHEDULABLE_TIMEOUT}
        for fw in self.profiles.values():
            registered = fw.registered_events()
            if registered is None:
                return None
            events |= registered
        return events

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        for recorder in self.recorders.values():
            recorder.start()
        self.informers.start()
        await self.informers.wait_synced()
        log.info(
            "scheduler caches synced: %d nodes; profiles %s",
            self.cache.num_nodes(),
            ", ".join(self.profiles),
        )
        await asyncio.gather(self._schedule_loop(), self._housekeeping())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.informers.stop()
        for recorder in self.recorders.values():
            await recorder.stop()

    async def _schedule_loop(self) -> None:
        while True:
            queued = await self.queue.pop()
            try:
                self.schedule_one(queued)
            except Exception:
                log.exception("scheduling %s failed", queued.key)
                self._attempt_started.pop(queued.key, None)
                self.queue.done(queued.key)
            await asyncio.sleep(0)  # let watch events and bindings in between pods

    async def _housekeeping(self) -> None:
        since_flush = 0.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_PERIOD)
            self.cache.expire_assumed()
            since_flush += HOUSEKEEPING_PERIOD
            if since_flush >= LEFTOVER_FLUSH_PERIOD:
                since_flush = 0.0
                self.queue.flush_unschedulable_leftover()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------ queue callbacks

    def _pre_enqueue(self, pod: Object) -> Status | None:
        fw = self.profiles.get(_scheduler_name(pod))
        return fw.run_pre_enqueue(pod) if fw is not None else None

    def _interested(self, queued: QueuedPodInfo, event: str) -> bool:
        fw = self.profiles.get(_scheduler_name(queued.pod))
        return fw is None or fw.interested(queued.unschedulable_plugins, event)

    # ------------------------------------------------------------- events

    def _responsible(self, pod: Object) -> bool:
        return _scheduler_name(pod) in self.profiles

    def _pod_added(self, pod: Object) -> None:
        if _terminal(pod):
            return
        if _assigned(pod):
            self.cache.add_pod(pod)
            self.queue.move_all_to_active_or_backoff(POD_ADD)
        elif self._responsible(pod):
            self.queue.add(pod)

    def _pod_updated(self, old: Object, new: Object) -> None:
        if _assigned(old):
            if _terminal(new):
                self._pod_deleted(old)
            else:
                self.cache.update_pod(new)
                self.queue.move_all_to_active_or_backoff(POD_UPDATE)
        elif _assigned(new):
            self.queue.delete(old)  # bound by us (or someone else): not ours to schedule any more
            self._pod_added(new)
        elif self._responsible(new):
            if _terminal(new):
                self._pod_deleted(old)
            else:
                self.queue.update(new)

    def _pod_deleted(self, pod: Object) -> None:
        if _assigned(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff(POD_DELETE)
            return
        self.queue.delete(pod)
        fw = self.profiles.get(_scheduler_name(pod))
        if fw is not None:
            fw.reject_waiting_pod(pod["metadata"].get("uid", ""), "pod was deleted")

    def _node_added(self, node: Object) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(NODE_ADD)

    def _node_updated(self, old: Object, new: Object) -> None:
        self.cache.update_node(new)
        if _node_changed(old, new):
            self.queue.move_all_to_active_or_backoff(NODE_UPDATE)

    # ------------------------------------------------------------ one pod

    def schedule_one(self, queued: QueuedPodInfo) -> None:
        """One scheduling cycle; the binding cycle continues in the background."""
        pod, key = queued.pod, queued.key
        fw = self.profiles.get(_scheduler_name(pod))
        if fw is None or self.cache.is_assumed(key):
            self.queue.done(key)
            return
        if pod["metadata"].get("deletionTimestamp"):
            self.recorders[fw.profile_name].record(
                _ref(pod),
                "Warning",
                "FailedScheduling",
                f"skip schedule deleting pod: {pod['metadata'].get('namespace')}/"
                f"{pod['metadata']['name']}",
            )
            self.queue.done(key)
            return
        self._attempt_started[key] = time.monotonic()
        state = CycleState(queued.info)
        try:
            result = self.algorithm.schedule(fw, state, pod)
        except FitError as error:
            nominated: str | None = ""
            if fw.has("postFilter"):
                nominated, status = fw.run_post_filter(state, pod, error.diagnosis.statuses)
                error.diagnosis.post_filter_msg = status.message
            queued.unschedulable_plugins = error.diagnosis.unschedulable_plugins
            self._fail(fw, queued, Status(Code.UNSCHEDULABLE, str(error)), nominated)
            return
        except NoNodesAvailable as error:
            queued.unschedulable_plugins = set()
            self._fail(fw, queued, Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, str(error)), "")
            return
        except SchedulingError as error:
            log.warning("scheduling %s: %s", key, error)
            queued.unschedulable_plugins = set()
            self._fail(fw, queued, Status(Code.ERROR, str(error)), "")
            return
        host = result.node
        log.debug(
            "%s fits %s (%d nodes evaluated, %d feasible)",
            key,
            host,
            result.evaluated,
            result.feasible,
        )
        assumed = {**pod, "spec": {**pod["spec"], "nodeName": host}}
        try:
            self.cache.assume_pod(queued.info.with_pod(assumed), host)
        except ValueError as error:  # already in the cache: bound meanwhile, say
            queued.unschedulable_plugins = set()
            self._fail(fw, queued, Status(Code.ERROR, str(error)), "")
            return
        self.queue.delete_nominated(key)
        status = fw.run_reserve(state, assumed, host)
        if status.success:
            status = fw.run_permit(state, assumed, host)
        if status.code in (Code.SUCCESS, Code.WAIT):
            self._spawn(self._binding_cycle(fw, state, queued, assumed, host))
            return
        fw.run_unreserve(state, assumed, host)
        self.cache.forget_pod(key)
        self._fail(fw, queued, self._on_one_node(queued, host, status), "")

    @staticmethod
    def _on_one_node(queued: QueuedPodInfo, host: str, status: Status) -> Status:
        """A rejection after the node was chosen, worded as a fit error over that node."""
        if not status.rejected:
            queued.unschedulable_plugins = set()
            return status
        diagnosis = Diagnosis()
        diagnosis.statuses[host] = status
        queued.unschedulable_plugins = {status.plugin}
        return Status(status.code, str(FitError(1, diagnosis)))

    async def _binding_cycle(
        self, fw: Framework, state: CycleState, queued: QueuedPodInfo, pod: Object, host: str
    ) -> None:
        key = queued.key
        status = await fw.wait_on_permit(pod)
        if status.success:
            self.queue.done(key)
            async with self._api_calls:
                status = await fw.run_pre_bind(state, pod, host)
                if status.success:
                    status = await fw.run_bind(state, pod, host)
        self.cache.finish_binding(key)
        if status.success:
            now = time.monotonic()
            started = self._attempt_started.pop(key, now)
            metrics.attempt(metrics.SCHEDULED, fw.profile_name, now - started)
            metrics.SLI_DURATION.labels(str(queued.attempts)).observe(now - queued.initial)
            metadata = pod["metadata"]
            self.recorders[fw.profile_name].record(
                _ref(pod),
                "Normal",
                "Scheduled",
                f"Successfully assigned {metadata.get('namespace')}/{metadata['name']} to {host}",
            )
            fw.run_post_bind(state, pod, host)
            return
        log.info("binding %s to %s failed: %s", key, host, status.message)
        fw.run_unreserve(state, pod, host)
        self.cache.forget_pod(key)
        self.queue.move_all_to_active_or_backoff(POD_DELETE)  # what it held is free again
        self._fail(fw, queued, self._on_one_node(queued, host, status), "")

    # ------------------------------------------------------------ failures

    def _fail(
        self, fw: Framework, queued: QueuedPodInfo, status: Status, nominated: str | None
    ) -> None:
        """Requeue the pod, say why in an event and its PodScheduled condition.

        `nominated`: the node to nominate it to, "" to clear a nomination,
        None to leave it as it is.
        """
        pod, key = queued.pod, queued.key
        started = self._attempt_started.pop(key, None)
        if started is not None:
            result = metrics.UNSCHEDULABLE if status.rejected else metrics.ERROR
            metrics.attempt(result, fw.profile_name, time.monotonic() - started)
        current = self.pods.get(key)
        if current is None or _assigned(current):
            self.queue.done(key)
        else:
            if current is not pod:
                queued.info = PodInfo(current)
            self.queue.add_unschedulable_if_not_present(queued)
        if nominated:
            self.queue.add_nominated(queued.info, nominated)
        elif nominated == "":
            self.queue.delete_nominated(key)
        message = _truncate(status.message)
        self.recorders[fw.profile_name].record(_ref(pod), "Warning", "FailedScheduling", message)
        reason = "Unschedulable" if status.rejected else "SchedulerError"
        patch = self._status_patch(current or pod, reason, status.message, nominated)
        if patch is not None and current is not None:
            self._spawn(self._patch_status(current, patch))

    @staticmethod
    def _status_patch(
        pod: Object, reason: str, message: str, nominated: str | None
    ) -> Object | None:
        """The pods/status patch that records the failure, or None when nothing changes."""
        status = pod.get("status") or {}
        patch: Object = {}
        if nominated is not None and (status.get("nominatedNodeName") or "") != nominated:
            patch["nominatedNodeName"] = nominated or None
        existing = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        changed = existing is None or (
            existing.get("status"),
            existing.get("reason"),
            existing.get("message"),
        ) != ("False", reason, message)
        if changed:
            keep_time = existing is not None and existing.get("status") == "False"
            patch["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": existing.get("lastTransitionTime")
                    if keep_time
                    else meta.now(),
                }
            ]
        return {"status": patch} if patch else None

    async def _patch_status(self, pod: Object, patch: Object) -> None:
        metadata = pod["metadata"]
        try:
            async with self._api_calls:
                await self.client.patch(
                    PODS,
                    metadata.get("namespace", ""),
                    metadata["name"],
                    patch,
                    patch_type="strategic",
                    subresource="status",
                )
        except ApiError as exc:
            if not exc.not_found:
                log.warning("updating the status of pod %s: %s", pod_key(pod), exc)


class Scheduler(component.Component):
    """The scheduler component: leader election around a `Session`.

    `/healthz` and `/metrics` (Prometheus text) are served over plain HTTP on
    `metrics_address` (upstream's secure port is 10259), by every instance,
    leading or not; None serves nothing.
    """

    name = "scheduler"

    def __init__(
        self,
        *,
        kubeconfig: str,
        config: SchedulerConfig | None = None,
        leader_elect: bool | None = None,
        metrics_address: tuple[str, int] | None = None,
    ) -> None:
        super().__init__()
        self._kubeconfig = kubeconfig
        self.config = config or scheduler_config.load(None)
        for profile in self.config.profiles:
            try:  # plugins check their args when constructed: fail now, not once leading
                Framework(profile, cache=Cache(), queue=SchedulingQueue())
            except Exception as exc:
                raise scheduler_config.ConfigError(
                    f"profile {profile.scheduler_name}: {exc}"
                ) from exc
        self._leader_elect = self.config.leader_elect if leader_elect is None else leader_elect
        self.identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        self._client: Client | None = None
        self._task: asyncio.Task | None = None
        self.session: Session | None = None
        self._metrics_address = metrics_address
        self._http: MetricsServer | None = None
        self.metrics_port = 0

    async def start(self) -> None:
        self._client = Client.from_kubeconfig(self._kubeconfig, user_agent="kube-scheduler")
        if self._metrics_address is not None:
            self._http = MetricsServer(metrics.REGISTRY)
            self.metrics_port = await self._http.listen(*self._metrics_address)
            log.info(
                "scheduler /healthz and /metrics on %s:%d",
                self._metrics_address[0],
                self.metrics_port,
            )
        self._task = asyncio.create_task(self._run(), name="scheduler")
        self.ready.set()

    async def _run(self) -> None:
        if self._leader_elect:
            elector = LeaderElector(
                self._client,
                name=self.config.lease_name,
                namespace=self.config.lease_namespace,
                identity=self.identity,
            )
            await elector.run(self._lead)  # a failed term ends as a lost leadership does
            return
        while True:
            try:
                await self._lead()
            except Exception:
                log.exception("the scheduler failed; starting again")
            await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        session = Session(self._client, self.config)
        self.session = session
        try:
            await session.run()
        finally:
            self.session = None
            await session.stop()

    async def stop(self) -> None:
        await component.cancel_and_wait(self._task)
        if self._http is not None:
            await self._http.close()
        if self._client is not None:
            await self._client.close()
