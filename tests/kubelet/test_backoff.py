"""Restart and pull back-off: 10 s doubling to 5 minutes, forgotten after 10 quiet minutes."""

from __future__ import annotations

from kubik.kubelet.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_failure_restarts_at_once_then_waits_doubling_to_the_cap():
    clock = Clock()
    backoff = Backoff(clock=clock)
    key = "uid_app"
    assert not backoff.in_backoff_since(key, clock.now)  # never failed: go
    backoff.next(key, clock.now)
    delays = []
    for _ in range(8):
        died = clock.now
        assert backoff.in_backoff_since(key, died)
        delays.append(backoff.remaining(key, died))
        clock.now += backoff.remaining(key, died)
        assert not backoff.in_backoff_since(key, died)
        backoff.next(key, died)
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_a_long_run_resets_the_delay():
    clock = Clock()
    backoff = Backoff(clock=clock)
    for _ in range(4):
        backoff.next("k", clock.now)
    assert backoff.delay("k") == 80
    clock.now += 601  # ran more than 10 minutes before failing again
    assert not backoff.in_backoff_since("k", clock.now)
    backoff.next("k", clock.now)
    assert backoff.delay("k") == 10


def test_pull_backoff_counts_from_the_last_attempt():
    clock = Clock()
    backoff = Backoff(clock=clock)
    assert backoff.remaining_since_update("pull") == 0
    backoff.next("pull", clock.now)
    assert backoff.remaining_since_update("pull") == 10
    clock.now += 4
    assert backoff.remaining_since_update("pull") == 6
    clock.now += 6
    assert backoff.remaining_since_update("pull") == 0
    backoff.next("pull", clock.now)
    assert backoff.remaining_since_update("pull") == 20


def test_forget_and_gc():
    clock = Clock()
    backoff = Backoff(clock=clock)
    backoff.next("a_x", clock.now)
    backoff.next("a_y", clock.now)
    backoff.next("b_x", clock.now)
    backoff.forget("a_")
    assert backoff.delay("a_x") == backoff.delay("a_y") == 0
    assert backoff.delay("b_x") == 10
    clock.now += 601
    backoff.gc()
    assert backoff.delay("b_x") == 0
