"""The scheduling framework: extension points, plugin statuses, one profile's plugins.

As upstream's framework, a profile (one `schedulerName`) is a set of plugins
at extension points, each a plain method of a plain Python class:

- `pre_enqueue(pod) -> Status | None`: may the pod enter the active queue yet;
- `pre_filter(state, pod) -> PreFilterResult | Status | None`: once per cycle,
  before filters; a `Skip` status skips the plugin's `filter` for this pod, a
  `PreFilterResult` narrows the nodes looked at; with it, optionally,
  `pre_filter_add_pod(state, pod, pod_info, node)` and
  `pre_filter_remove_pod(...)` keep that state right when a pod nominated to
  a node is counted there, or a preemption victim is taken away;
- `filter(state, pod, node) -> Status | None`: per node; None is success;
- `post_filter(state, pod, statuses) -> (nominated node | None, Status)`: when
  no node fits (preemption);
- `pre_score(state, pod, nodes) -> Status | None` (`Skip` skips `score`),
  `score(state, pod, node) -> int`, `normalize_score(state, pod, scores)`;
  a score plugin may also offer `score_nodes(state, pod, nodes) -> list[int]`,
  used instead of `score` to score every node in one call (for speed);
- `reserve` / `unreserve`, `permit` (may return a `Wait` status with a
  timeout), `pre_bind`, `bind` (async or not), `post_bind`.

Plugin methods get the pod as the API's dict and a node as a `NodeInfo`; the
`CycleState` carries per-cycle data between a plugin's methods (and
`state.pod_info`, the pod's precomputed requests). A class is constructed
with keyword arguments `args` (its `pluginConfig` args) and `handle` (this
`Framework`: the client, informers, cache and queue) when its `__init__`
names them. `events`, a set of cluster events (`NODE_ADD`...), says which
events may make a pod this plugin rejected schedulable; without it, every
event does.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kubik.scheduler.nodeinfo import NodeInfo, PodInfo

if TYPE_CHECKING:
    from kubik.client.api import Client
    from kubik.client.events import EventRecorder
    from kubik.client.informer import InformerFactory
    from kubik.scheduler.cache import Cache
    from kubik.scheduler.config import Profile
    from kubik.scheduler.queue import SchedulingQueue

log = logging.getLogger(__name__)

Object = dict[str, Any]

MAX_NODE_SCORE = 100
MAX_PERMIT_WAIT = 15 * 60.0

# cluster events that may make an unschedulable pod schedulable
NODE_ADD = "Node/Add"
NODE_UPDATE = "Node/Update"
POD_ADD = "Pod/Add"  # a pod was bound (assigned pods only, as the next two)
POD_UPDATE = "Pod/Update"
POD_DELETE = "Pod/Delete"
UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"  # every plugin cares

# extension point (configuration name) → plugin method
POINTS = {
    "preEnqueue": "pre_enqueue",
    "preFilter": "pre_filter",
    "filter": "filter",
    "postFilter": "post_filter",
    "preScore": "pre_score",
    "score": "score",
    "reserve": "reserve",
    "permit": "permit",
    "preBind": "pre_bind",
    "bind": "bind",
    "postBind": "post_bind",
}

# name → plugin class; built-in plugins and plugin modules register with @register
PLUGINS: dict[str, type] = {}


def register(cls: type) -> type:
    """Make a plugin class known by its `name`."""
    PLUGINS[cls.name] = cls
    return cls


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3  # preemption cannot help
    WAIT = 4
    SKIP = 5
    PENDING = 6


_REJECTED = (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, Code.PENDING)


class Status:
    """A plugin's answer: a code and the reasons (messages) behind it."""

    __slots__ = ("code", "reasons", "plugin", "timeout")

    def __init__(
        self, code: Code = Code.SUCCESS, *reasons: str, plugin: str = "", timeout: float = 0.0
    ) -> None:
        self.code = code
        self.reasons = list(reasons)
        self.plugin = plugin
        self.timeout = timeout  # how long a Wait status from permit lasts

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @property
    def success(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def rejected(self) -> bool:
        return self.code in _REJECTED

    def __repr__(self) -> str:
        return f"Status({self.code.name}, {self.message!r}, plugin={self.plugin!r})"


SUCCESS = Status()


def ok(status: Status | None) -> bool:
    return status is None or status.code == Code.SUCCESS


class SchedulingError(Exception):
    """A plugin failed (not a rejection): the pod is retried after a backoff."""


class PreFilterResult:
    """The only nodes worth filtering, found by pre_filter plugins (`plugins`, set when merged)."""

    __slots__ = ("node_names", "plugins")

    def __init__(self, node_names: Iterable[str], plugins: Iterable[str] = ()) -> None:
        self.node_names = set(node_names)
        self.plugins = sorted(plugins)


class CycleState(dict):
    """Data of one scheduling cycle, by key; `clone` for simulations (preemption)."""

    __slots__ = ("pod_info", "skip_filter", "skip_score")

    def __init__(self, pod_info: PodInfo | None = None, *args: Any) -> None:
        super().__init__(*args)
        self.pod_info = pod_info
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def clone(self) -> CycleState:
        copy = CycleState(
            self.pod_info,
            {k: v.clone() if hasattr(v, "clone") else v for k, v in self.items()},
        )
        copy.skip_filter = set(self.skip_filter)
        copy.skip_score = set(self.skip_score)
        return copy


class Diagnosis:
    """Why no node fits: each rejected node's status, and what earlier phases said."""

    def __init__(self) -> None:
        self.statuses: dict[str, Status] = {}
        self.absent_status: Status | None = None  # for nodes not in `statuses`
        self.unschedulable_plugins: set[str] = set()
        self.pre_filter_msg = ""
        self.post_filter_msg = ""


class FitError(Exception):
    """No node fits the pod; the message is upstream's ("0/3 nodes are available: ...")."""

    def __init__(self, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        diagnosis = self.diagnosis
        text = f"0/{self.num_all_nodes} nodes are available:"
        if diagnosis.pre_filter_msg:
            text += f" {diagnosis.pre_filter_msg}."
        else:
            counts: Counter[str] = Counter()
            for status in diagnosis.statuses.values():
                counts.update(status.reasons)
            absent = self.num_all_nodes - len(diagnosis.statuses)
            if diagnosis.absent_status is not None and absent > 0:
                for reason in diagnosis.absent_status.reasons:
                    counts[reason] += absent
            histogram = sorted(f"{count} {reason}" for reason, count in counts.items())
            if histogram:
                text += f" {', '.join(histogram)}."
        if diagnosis.post_filter_msg:
            text += f" {diagnosis.post_filter_msg}."
        return text


def default_normalize_score(scores: list[int], *, reverse: bool = False) -> None:
    """Scale scores to 0..MAX_NODE_SCORE by the highest (reversed: the lowest scores best)."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    if reverse:
        scores[:] = [MAX_NODE_SCORE - MAX_NODE_SCORE * s // highest for s in scores]
    else:
        scores[:] = [MAX_NODE_SCORE * s // highest for s in scores]


class WaitingPod:
    """A pod held at permit until all waiting plugins allow it, one rejects it, or time is up."""

    def __init__(self, pod: Object, timeouts: dict[str, float]) -> None:
        loop = asyncio.get_running_loop()
        self.pod = pod
        self.pending = set(timeouts)
        self._result: asyncio.Future[Status] = loop.create_future()
        self._timers = [
            loop.call_later(
                seconds,
                self.reject,
                plugin,
                f"rejected due to timeout after waiting {seconds:g}s at plugin {plugin}",
            )
            for plugin, seconds in timeouts.items()
        ]

    def allow(self, plugin: str) -> None:
        self.pending.discard(plugin)
        if not self.pending:
            self._finish(Status())

    def reject(self, plugin: str, message: str) -> None:
        self._finish(Status(Code.UNSCHEDULABLE, message, plugin=plugin))

    def _finish(self, status: Status) -> None:
        if not self._result.done():
            self._result.set_result(status)
        for timer in self._timers:
            timer.cancel()

    async def wait(self) -> Status:
        return await self._result


def _instantiate(cls: type, args: Object, handle: Framework) -> Any:
    """Construct a plugin, passing `args` and `handle` when its constructor names them."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}
    kwargs: dict[str, Any] = {}
    if "args" in parameters:
        kwargs["args"] = args
    if "handle" in parameters:
        kwargs["handle"] = handle
    return cls(**kwargs)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Framework:
    """The plugins of one profile, run at each extension point in configured order."""

    def __init__(
        self,
        profile: Profile,
        *,
        client: Client | None = None,
        informers: InformerFactory | None = None,
        cache: Cache | None = None,
        queue: SchedulingQueue | None = None,
        recorder: EventRecorder | None = None,
    ) -> None:
        self.profile_name = profile.scheduler_name
        self.percentage_of_nodes_to_score = profile.percentage_of_nodes_to_score
        self.client = client
        self.informers = informers
        self.cache = cache
        self.queue = queue
        self.recorder = recorder
        self.plugins: dict[str, Any] = {}
        self._points: dict[str, list[tuple[str, Callable]]] = {}
        self._weights: dict[str, int] = {}
        self._normalizers: dict[str, Callable] = {}
        self._batch_scorers: dict[str, Callable] = {}
        self._unreservers: list[tuple[str, Callable]] = []
        self.waiting_pods: dict[str, WaitingPod] = {}
        for point, method in POINTS.items():
            entries = []
            for name, weight in profile.plugins.get(point, []):
                plugin = self.plugins.get(name)
                if plugin is None:
                    plugin = _instantiate(
                        profile.classes[name], profile.plugin_args.get(name, {}), self
                    )
                    self.plugins[name] = plugin
                entries.append((name, getattr(plugin, method)))
                if point == "score":
                    self._weights[name] = weight or 1
                    score_nodes = getattr(plugin, "score_nodes", None)
                    if score_nodes is not None:
                        self._batch_scorers[name] = score_nodes
                    normalize = getattr(plugin, "normalize_score", None)
                    if normalize is not None:
                        self._normalizers[name] = normalize
                if point == "reserve" and hasattr(plugin, "unreserve"):
                    self._unreservers.append((name, plugin.unreserve))
            self._points[point] = entries
        self._unreservers.reverse()
        self._events = {name: getattr(p, "events", None) for name, p in self.plugins.items()}
        # pre_filter plugins that keep their state right as simulations add or remove pods
        self._pre_filter_extensions = {
            added: [
                (name, getattr(self.plugins[name], method))
                for name, _ in self._points["preFilter"]
                if hasattr(self.plugins[name], method)
            ]
            for added, method in ((True, "pre_filter_add_pod"), (False, "pre_filter_remove_pod"))
        }

    # ------------------------------------------------------------- helpers

    def has(self, point: str) -> bool:
        return bool(self._points[point])

    def interested(self, plugins: set[str], event: str) -> bool:
        """Whether `event` may make schedulable a pod these plugins rejected."""
        if not plugins or event == UNSCHEDULABLE_TIMEOUT:
            return True
        for name in plugins:
            events = self._events.get(name)
            if events is None or event in events:
                return True
        return False

    def registered_events(self) -> set[str] | None:
        """Every event some plugin cares about; None when one cares about all."""
        events: set[str] = set()
        for registered in self._events.values():
            if registered is None:
                return None
            events |= set(registered)
        return events

    # ---------------------------------------------------------- queueing

    def run_pre_enqueue(self, pod: Object) -> Status | None:
        for name, check in self._points["preEnqueue"]:
            status = check(pod)
            if not ok(status):
                status.plugin = name
                return status
        return None

    # ---------------------------------------------------------- filtering

    def run_pre_filter(
        self, state: CycleState, pod: Object
    ) -> tuple[PreFilterResult | None, Status]:
        """Merged node narrowing (None: all nodes) and the overall status."""
        result: PreFilterResult | None = None
        narrowing: list[str] = []
        for name, pre_filter in self._points["preFilter"]:
            try:
                out = pre_filter(state, pod)
            except Exception as exc:
                log.exception("PreFilter plugin %s failed", name)
                raise SchedulingError(f'running PreFilter plugin "{name}": {exc}') from exc
            if out is None:
                continue
            if isinstance(out, PreFilterResult):
                narrowing.append(name)
                names = out.node_names if result is None else result.node_names & out.node_names
                result = PreFilterResult(names, narrowing)
                continue
            if out.code == Code.SKIP:
                state.skip_filter.add(name)
            elif out.rejected:
                out.plugin = name
                return None, out
            elif not out.success:
                raise SchedulingError(f'running PreFilter plugin "{name}": {out.message}')
        if result is not None and not result.node_names:
            return None, Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                f"node(s) didn't satisfy plugin(s) [{' '.join(result.plugins)}] simultaneously",
                plugin=narrowing[0],
            )
        return result, SUCCESS

    def filters(self, state: CycleState) -> list[tuple[str, Callable]]:
        """The filter plugins this cycle runs (those whose pre_filter did not skip)."""
        skipped = state.skip_filter
        return [entry for entry in self._points["filter"] if entry[0] not in skipped]

    def run_filters(
        self,
        state: CycleState,
        pod: Object,
        node: NodeInfo,
        filters: list[tuple[str, Callable]] | None = None,
    ) -> Status | None:
        """The first rejection of `node` (None: it fits); raises SchedulingError on errors."""
        name = ""
        try:
            for name, check in filters if filters is not None else self.filters(state):
                status = check(state, pod, node)
                if status is not None and status.code:
                    if status.code == Code.ERROR:
                        raise SchedulingError(f'running Filter plugin "{name}": {status.message}')
                    status.plugin = name
                    return status
        except SchedulingError:
            raise
        except Exception as exc:
            log.exception("Filter plugin %s failed", name)
            raise SchedulingError(f'running Filter plugin "{name}": {exc}') from exc
        return None

    def run_filters_with_nominated_pods(
        self, state: CycleState, pod: Object, node: NodeInfo, filters: list | None = None
    ) -> Status | None:
        """Filters as if pods nominated to the node with at least this priority were there.

        The pod must fit both with them (they will run there) and without
        them (they may end up elsewhere), as upstream checks.
        """
        with_nominated = self._with_nominated_pods(state, pod, node)
        if with_nominated is not None:
            status = self.run_filters(with_nominated[0], pod, with_nominated[1], filters)
            if status is not None:
                return status
        return self.run_filters(state, pod, node, filters)

    def _with_nominated_pods(
        self, state: CycleState, pod: Object, node: NodeInfo
    ) -> tuple[CycleState, NodeInfo] | None:
        if self.queue is None:
            return None
        priority = state.pod_info.priority if state.pod_info else 0
        uid = pod["metadata"].get("uid")
        nominated = [
            info
            for info in self.queue.nominated_pods_for_node(node.name)
            if info.priority >= priority and info.uid != uid
        ]
        if not nominated:
            return None
        state, node = state.clone(), node.clone()
        for info in nominated:
            node.add_pod(info)
            self.run_pre_filter_extensions(state, pod, info, node, added=True)
        return state, node

    def run_pre_filter_extensions(
        self, state: CycleState, pod: Object, info: PodInfo, node: NodeInfo, *, added: bool
    ) -> None:
        """Tell pre_filter plugins that `info` was added to (or removed from) a copy of `node`.

        Simulations change a node's pods after pre_filter computed its state:
        nominated pods counted there, preemption victims taken away.
        """
        for name, extension in self._pre_filter_extensions[added]:
            if name not in state.skip_filter:
                extension(state, pod, info, node)

    def run_post_filter(
        self, state: CycleState, pod: Object, statuses: dict[str, Status]
    ) -> tuple[str | None, Status]:
        """(node to nominate or None, status) from the post_filter plugins (preemption)."""
        nominated: str | None = None
        reasons: list[str] = []
        rejector = ""
        for name, post_filter in self._points["postFilter"]:
            try:
                result, status = post_filter(state, pod, statuses)
            except Exception as exc:
                log.exception("PostFilter plugin %s failed", name)
                return None, Status(Code.ERROR, f'running PostFilter plugin "{name}": {exc}')
            if status.success or status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                status.plugin = name
                return result, status
            if not status.rejected:
                return None, Status(Code.ERROR, status.message, plugin=name)
            if result is not None:
                nominated = result
            reasons += status.reasons
            rejector = rejector or name
        return nominated, Status(Code.UNSCHEDULABLE, *reasons, plugin=rejector)

    # ------------------------------------------------------------ scoring

    def run_pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> None:
        for name, pre_score in self._points["preScore"]:
            try:
                status = pre_score(state, pod, nodes)
            except Exception as exc:
                log.exception("PreScore plugin %s failed", name)
                raise SchedulingError(f'running PreScore plugin "{name}": {exc}') from exc
            if status is None or status.success:
                continue
            if status.code == Code.SKIP:
                state.skip_score.add(name)
            else:
                raise SchedulingError(f'running PreScore plugin "{name}": {status.message}')

    def run_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> list[int]:
        """Each node's weighted total over the score plugins (normalized, 0..100 each)."""
        totals = [0] * len(nodes)
        for name, score in self._points["score"]:
            if name in state.skip_score:
                continue
            try:
                score_nodes = self._batch_scorers.get(name)
                if score_nodes is not None:
                    scores = score_nodes(state, pod, nodes)
                else:
                    scores = [score(state, pod, node) for node in nodes]
                normalize = self._normalizers.get(name)
                if normalize is not None:
                    normalize(state, pod, scores)
            except Exception as exc:
                log.exception("Score plugin %s failed", name)
                raise SchedulingError(f'running Score plugin "{name}": {exc}') from exc
            if scores and (min(scores) < 0 or max(scores) > MAX_NODE_SCORE):
                raise SchedulingError(
                    f'plugin "{name}" returns an invalid score, '
                    f"it should be in the range of [0, {MAX_NODE_SCORE}] after normalizing"
                )
            weight = self._weights[name]
            if weight == 1:
                totals = [t + s for t, s in zip(totals, scores, strict=True)]
            else:
                totals = [t + s * weight for t, s in zip(totals, scores, strict=True)]
        return totals

    # ------------------------------------------------ reserving and permit

    def run_reserve(self, state: CycleState, pod: Object, node: str) -> Status:
        for name, reserve in self._points["reserve"]:
            try:
                status = reserve(state, pod, node)
            except Exception as exc:
                log.exception("Reserve plugin %s failed", name)
                return Status(Code.ERROR, f'running Reserve plugin "{name}": {exc}', plugin=name)
            if not ok(status):
                status.plugin = name
                return status
        return SUCCESS

    def run_unreserve(self, state: CycleState, pod: Object, node: str) -> None:
        for name, unreserve in self._unreservers:
            try:
                unreserve(state, pod, node)
            except Exception:
                log.exception("Unreserve of plugin %s failed", name)

    def run_permit(self, state: CycleState, pod: Object, node: str) -> Status:
        """Success, a rejection, or Wait (the pod then waits in `wait_on_permit`)."""
        waits: dict[str, float] = {}
        for name, permit in self._points["permit"]:
            try:
                status = permit(state, pod, node)
            except Exception as exc:
                log.exception("Permit plugin %s failed", name)
                return Status(Code.ERROR, f'running Permit plugin "{name}": {exc}', plugin=name)
            if ok(status):
                continue
            if status.code == Code.WAIT:
                waits[name] = min(status.timeout or MAX_PERMIT_WAIT, MAX_PERMIT_WAIT)
                continue
            status.plugin = name
            return status
        if waits:
            self.waiting_pods[pod["metadata"].get("uid", "")] = WaitingPod(pod, waits)
            return Status(Code.WAIT, "one or more plugins asked to wait")
        return SUCCESS

    async def wait_on_permit(self, pod: Object) -> Status:
        uid = pod["metadata"].get("uid", "")
        waiting = self.waiting_pods.get(uid)
        if waiting is None:
            return SUCCESS
        try:
            return await waiting.wait()
        finally:
            self.waiting_pods.pop(uid, None)

    def reject_waiting_pod(self, uid: str, message: str = "removed") -> None:
        waiting = self.waiting_pods.get(uid)
        if waiting is not None:
            waiting.reject("", message)

    # ------------------------------------------------------------- binding

    async def run_pre_bind(self, state: CycleState, pod: Object, node: str) -> Status:
        for name, pre_bind in self._points["preBind"]:
            try:
                status = await _maybe_await(pre_bind(state, pod, node))
            except Exception as exc:
                log.exception("PreBind plugin %s failed", name)
                return Status(Code.ERROR, f'running PreBind plugin "{name}": {exc}', plugin=name)
            if not ok(status) and status.code != Code.SKIP:
                status.plugin = name
                return status
        return SUCCESS

    async def run_bind(self, state: CycleState, pod: Object, node: str) -> Status:
        """The first bind plugin that does not skip binds the pod."""
        for name, bind in self._points["bind"]:
            try:
                status = await _maybe_await(bind(state, pod, node))
            except Exception as exc:
                log.exception("Bind plugin %s failed", name)
                return Status(Code.ERROR, f'running Bind plugin "{name}": {exc}', plugin=name)
            if ok(status):
                return SUCCESS
            if status.code == Code.SKIP:
                continue
            if not status.rejected:
                status = Status(Code.ERROR, f'running Bind plugin "{name}": {status.message}')
            status.plugin = name
            return status
        return Status(Code.SKIP, "no bind plugin bound the pod")

    def run_post_bind(self, state: CycleState, pod: Object, node: str) -> None:
        for name, post_bind in self._points["postBind"]:
            try:
                post_bind(state, pod, node)
            except Exception:
                log.exception("PostBind plugin %s failed", name)
