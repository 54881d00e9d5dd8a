"""The scheduling queue: order, backoff, unschedulable pods and the events that free them."""

from __future__ import annotations

import asyncio
import time

from kubik.scheduler.framework import NODE_ADD, POD_DELETE, Code, Status
from kubik.scheduler.queue import SchedulingQueue
from tests.scheduler.objects import pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 0.001) -> None:
        self.now += seconds


async def pop_all(queue: SchedulingQueue) -> list[str]:
    names = []
    while queue.counts()["active"]:
        names.append((await queue.pop()).pod["metadata"]["name"])
    return names


async def fail(queue: SchedulingQueue, plugins: set[str] | None = None):
    """Pop the next pod and report it unschedulable (by `plugins`; none: an error)."""
    queued = await queue.pop()
    queued.unschedulable_plugins = set(plugins or ())
    queue.add_unschedulable_if_not_present(queued)
    return queued


async def test_higher_priority_first_then_the_earliest():
    clock = Clock()
    queue = SchedulingQueue(clock=clock)
    for name, priority in [("low", 0), ("high", 100), ("low-later", 0), ("high-later", 100)]:
        queue.add(pod(name, priority=priority))
        clock.tick()
    assert await pop_all(queue) == ["high", "high-later", "low", "low-later"]


def test_backoff_doubles_from_one_second_up_to_ten():
    queue = SchedulingQueue()
    queue.add(pod("p"))
    queued = queue.get("default/p")
    durations = []
    for attempts in range(1, 7):
        queued.attempts = attempts
        durations.append(queue.backoff_duration(queued))
    assert durations == [1, 2, 4, 8, 10, 10]


async def test_an_unschedulable_pod_waits_for_an_event_that_may_help():
    clock = Clock()
    interested = {("default/p", NODE_ADD)}
    queue = SchedulingQueue(clock=clock, interested=lambda q, event: (q.key, event) in interested)
    queue.add(pod("p"))
    await fail(queue, {"NodeResourcesFit"})
    assert queue.where("default/p") == "unschedulable"
    queue.move_all_to_active_or_backoff(POD_DELETE)  # not an event this pod waits for
    assert queue.where("default/p") == "unschedulable"
    queue.move_all_to_active_or_backoff(NODE_ADD)
    assert queue.where("default/p") == "backoff"  # its 1 s backoff is not over yet
    clock.tick(1.5)
    assert (await queue.pop()).key == "default/p"


async def test_a_pod_whose_backoff_is_over_goes_straight_to_active():
    clock = Clock()
    queue = SchedulingQueue(clock=clock)
    queue.add(pod("p"))
    await fail(queue, {"NodeResourcesFit"})
    clock.tick(5)
    queue.move_all_to_active_or_backoff(NODE_ADD)
    assert queue.where("default/p") == "active"


async def test_an_error_is_retried_after_a_backoff():
    clock = Clock()
    queue = SchedulingQueue(clock=clock)
    queue.add(pod("p"))
    queued = await fail(queue)
    assert queue.where("default/p") == "backoff"
    clock.tick(0.5)
    assert queue.counts()["active"] == 0
    clock.tick(0.6)
    assert (await queue.pop()) is queued
    assert queued.attempts == 2


async def test_an_event_during_the_attempt_sends_the_pod_to_backoff():
    clock = Clock()
    queue = SchedulingQueue(clock=clock)
    queue.add(pod("p"))
    queued = await queue.pop()
    queue.move_all_to_active_or_backoff(NODE_ADD)  # while the pod is being scheduled
    queued.unschedulable_plugins = {"NodeResourcesFit"}
    queue.add_unschedulable_if_not_present(queued)
    assert queue.where("default/p") == "backoff"


async def test_an_update_during_the_attempt_sends_the_pod_to_backoff():
    queue = SchedulingQueue()
    original = pod("p")
    queue.add(original)
    queued = await queue.pop()
    queue.update({**original, "metadata": {**original["metadata"], "labels": {"a": "b"}}})
    assert queue.where("default/p") == "in_flight"
    queued.unschedulable_plugins = {"NodeResourcesFit"}
    queue.add_unschedulable_if_not_present(queued)
    assert queue.where("default/p") == "backoff"


async def test_only_a_real_change_of_an_unschedulable_pod_requeues_it():
    clock = Clock()
    queue = SchedulingQueue(clock=clock)
    original = pod("p")
    queue.add(original)
    await fail(queue, {"NodeAffinity"})
    clock.tick(5)
    status_only = {**original, "status": {"phase": "Pending", "conditions": []}}
    status_only["metadata"] = {**original["metadata"], "resourceVersion": "7"}
    queue.update(status_only)
    assert queue.where("default/p") == "unschedulable"
    relabelled = {**original, "metadata": {**original["metadata"], "labels": {"x": "y"}}}
    queue.update(relabelled)
    assert queue.where("default/p") == "active"
    assert queue.get("default/p").pod is relabelled


async def test_gated_pods_wait_until_their_gates_are_removed():
    def gates(obj):
        if obj["spec"].get("schedulingGates"):
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "gated", plugin="SchedulingGates")
        return None

    queue = SchedulingQueue(pre_enqueue=gates)
    gated = pod("p", schedulingGates=[{"name": "wait"}])
    queue.add(gated)
    assert queue.where("default/p") == "unschedulable"
    queue.move_all_to_active_or_backoff(NODE_ADD)
    queue.flush_unschedulable_leftover()
    assert queue.where("default/p") == "unschedulable"
    queue.update({**gated, "spec": {**gated["spec"], "schedulingGates": []}})
    assert queue.where("default/p") == "active"


async def test_pods_left_unschedulable_too_long_are_retried():
    clock = Clock()
    queue = SchedulingQueue(clock=clock, interested=lambda q, event: False)
    queue.add(pod("p"))
    await fail(queue, {"NodeAffinity"})
    clock.tick(299)
    queue.flush_unschedulable_leftover()
    assert queue.where("default/p") == "unschedulable"
    clock.tick(2)
    queue.flush_unschedulable_leftover()
    assert queue.where("default/p") == "active"


async def test_deleted_pods_leave_every_queue():
    clock = Clock()
    queue = SchedulingQueue(clock=clock)
    for name in ("a", "b", "c"):
        queue.add(pod(name))
    await fail(queue, {"X"})  # a: unschedulable
    await fail(queue)  # b: backoff
    for name in ("a", "b", "c"):
        queue.delete(pod(name))
    clock.tick(60)
    queue.move_all_to_active_or_backoff(NODE_ADD)
    assert queue.counts() == {"active": 0, "backoff": 0, "unschedulable": 0, "in_flight": 0}


async def test_events_no_plugin_registered_for_are_ignored_cheaply():
    queue = SchedulingQueue(relevant_events={NODE_ADD})
    queue.add(pod("p"))
    queued = await queue.pop()
    queue.move_all_to_active_or_backoff(POD_DELETE)
    queued.unschedulable_plugins = {"NodeAffinity"}
    queue.add_unschedulable_if_not_present(queued)
    assert queue.where("default/p") == "unschedulable"


async def test_pop_waits_for_a_backoff_to_end():
    queue = SchedulingQueue(initial_backoff=0.2)
    queue.add(pod("p"))
    await fail(queue)
    started = time.monotonic()
    queued = await asyncio.wait_for(queue.pop(), 5)
    assert queued.key == "default/p"
    assert time.monotonic() - started >= 0.15


async def test_pop_wakes_up_for_a_new_pod():
    queue = SchedulingQueue()
    waiting = asyncio.create_task(queue.pop())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    queue.add(pod("p"))
    assert (await asyncio.wait_for(waiting, 5)).key == "default/p"


def test_nominated_pods_are_tracked_by_node():
    queue = SchedulingQueue()
    nominated = pod("p", priority=10)
    nominated["status"]["nominatedNodeName"] = "n1"
    queue.add(nominated)
    assert [info.key for info in queue.nominated_pods_for_node("n1")] == ["default/p"]
    assert "n1" in queue.nominated_nodes()
    queue.delete(nominated)
    assert not queue.nominated_nodes()
