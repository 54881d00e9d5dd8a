"""A stand-in kubelet for tests: pods get a node and run, without containers.

Tests run no kubelet (and usually no nodes to schedule onto), so pods made
by controllers would stay Pending forever. `run_pods(client)` plays the
scheduler and the kubelet of one node, through the API only:

- a pod with no node is bound to `node` (POST pods/<name>/binding);
- a pod on `node` is reported Running, with the conditions PodScheduled,
  Initialized, ContainersReady and Ready, ready containerStatuses and a
  podIP — Ready "True" unless `ready` (a bool, or a function of the pod)
  says otherwise;
- a pod on `node` being deleted is removed at once (grace period 0), as a
  kubelet does once the containers stopped;
- pods bound elsewhere are left alone.

No Node object is registered. The pod GC controller deletes the pods of a
node missing for 40 s, so tests that run it next to this kubelet should be
quicker than that (or leave `podgc` out of `--controllers`).

Async tests run it as a task (`task = asyncio.create_task(run_pods(client))`,
then `task.cancel()`); synchronous tests use `with FakeKubelet(kubeconfig):`,
which runs it on a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.client.informer import Informer, key_of, split_key
from kubik.client.workqueue import ShutDown, WorkQueue

PODS = builtin.lookup("", "v1", "pods")
Pod = dict[str, Any]
Readiness = bool | Callable[[Pod], bool]
_WORKERS = 16


async def run_pods(
    client: Client, *, namespace: str | None = None, node: str = "node-1", ready: Readiness = True
) -> None:
    """Act as the scheduler and kubelet of `node` for the pods of `namespace` (all if None),
    until cancelled."""
    pods = Informer(client, PODS, namespace=namespace or "")
    queue = WorkQueue("fake-kubelet")
    pods.add_handlers(
        on_add=lambda pod: queue.add(key_of(pod)), on_update=lambda _, pod: queue.add(key_of(pod))
    )
    addresses = itertools.count()
    pods.start()

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                pod = pods.get(key)
                if pod is not None:
                    await _step(client, pod, node, ready, addresses)
            except ApiError as exc:
                if not (exc.not_found or exc.conflict):
                    queue.add_after(key, 0.1)
            finally:
                queue.done(key)

    try:
        await asyncio.gather(*(worker() for _ in range(_WORKERS)))
    finally:
        await queue.shutdown()
        await pods.stop()


async def _step(
    client: Client, pod: Pod, node: str, ready: Readiness, addresses: itertools.count
) -> None:
    """One move toward what a kubelet would report for `pod`."""
    namespace, name = split_key(key_of(pod))
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    on_node = spec.get("nodeName", "")
    if pod["metadata"].get("deletionTimestamp"):
        if on_node == node:
            await client.delete(PODS, namespace, name, grace_period=0, uid=pod["metadata"]["uid"])
        return
    if not on_node:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        await client.post_subresource(PODS, namespace, name, "binding", binding)
        return
    if on_node != node or status.get("phase") in ("Succeeded", "Failed"):
        return
    want = ready(pod) if callable(ready) else ready
    if status.get("phase") == "Running" and _is_ready(pod) == want:
        return
    await client.patch(
        PODS,
        namespace,
        name,
        {"status": _running(pod, want, addresses)},
        subresource="status",
    )


def _is_ready(pod: Pod) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _running(pod: Pod, ready: bool, addresses: itertools.count) -> Pod:
    """The status of a pod whose containers run (and are ready, or not)."""
    status = pod.get("status") or {}
    now = meta.now()
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    flag = "True" if ready else "False"
    waiting = (
        {}
        if ready
        else {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{' '.join(containers)}]",
        }
    )
    conditions = [
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
        {
            "type": "Ready",
            "status": flag,
            "lastProbeTime": None,
            "lastTransitionTime": now,
            **waiting,
        },
        {
            "type": "ContainersReady",
            "status": flag,
            "lastProbeTime": None,
            "lastTransitionTime": now,
            **waiting,
        },
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        },
    ]
    n = next(addresses)
    ip = status.get("podIP") or f"10.244.{n // 250}.{n % 250 + 2}"
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": status.get("startTime") or now,
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "containerID": f"containerd://{pod['metadata']['uid'].replace('-', '')}{i}",
                "ready": ready,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for i, container in enumerate(pod["spec"].get("containers") or [])
        ],
    }


class FakeKubelet:
    """`run_pods` on a thread of its own, for tests that are not async."""

    def __init__(self, kubeconfig: str, **options: Any) -> None:
        self._kubeconfig = kubeconfig
        self._options = options
        self._started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    async def _main(self) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        client = Client.from_kubeconfig(self._kubeconfig, user_agent="fake-kubelet")
        self._started.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await run_pods(client, **self._options)
        finally:
            await client.close()

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)
