"""The controller manager as real processes: leader election hand-over, metrics, health."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.support.cluster import KubikServer, free_port
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    """An API server with no controllers of its own."""
    kubik = KubikServer(
        tmp_path_factory.mktemp("cm"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


def start_manager(server: KubikServer, port: int, log_path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubik.cli.main",
            "controller-manager",
            "--kubeconfig",
            server.kubeconfig,
            "--controllers",
            "serviceaccount",
            "--controller-metrics-address",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc


def holder(server: KubikServer) -> str:
    out = server.kubectl(
        "get",
        "lease",
        "kube-controller-manager",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


def test_leadership_moves_to_the_standby_when_the_leader_dies(bare_server, tmp_path):
    ports = [free_port(), free_port()]
    managers = [
        start_manager(bare_server, port, tmp_path / f"cm{i}.log") for i, port in enumerate(ports)
    ]
    try:
        first = wait_for(lambda: holder(bare_server), "a leader", 30, every=0.3)
        bare_server.ok("create", "namespace", "before")
        wait_for(
            lambda: bare_server.kubectl("get", "sa", "default", "-n", "before").returncode == 0,
            "the default service account",
            30,
            every=0.3,
        )
        # exactly one manager leads: the other's identity is not the holder
        leader_index = next(
            i
            for i, port in enumerate(ports)
            if "kubik_controller_sync_duration_seconds_count" in metrics(port)
            and 'controller="serviceaccount"' in metrics(port)
        )
        managers[leader_index].send_signal(signal.SIGKILL)
        managers[leader_index].wait()
        second = wait_for(
            lambda: (h := holder(bare_server)) != first and h, "a new leader", 40, every=0.3
        )
        assert second != first
        bare_server.ok("create", "namespace", "after")
        wait_for(
            lambda: bare_server.kubectl("get", "sa", "default", "-n", "after").returncode == 0,
            "the standby to act",
            30,
            every=0.3,
        )
        accounts = json.loads(bare_server.ok("get", "sa", "-A", "-o", "json"))["items"]
        defaults = [a for a in accounts if a["metadata"]["name"] == "default"]
        namespaces = {a["metadata"]["namespace"] for a in defaults}
        assert len(defaults) == len(namespaces)  # no duplicates
    finally:
        for proc in managers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)


def test_health_and_metrics_are_served(bare_server, tmp_path):
    port = free_port()
    proc = start_manager(bare_server, port, tmp_path / "cm.log")
    try:

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.read() == b"ok"
            except OSError:
                return False

        wait_for(healthy, "/healthz", 30, every=0.3)

        def queue_reported():
            text = metrics(port)
            return text if 'kubik_workqueue_depth{name="serviceaccount"}' in text else ""

        text = wait_for(queue_reported, "queue depth in /metrics", 30, every=0.3)
        assert 'kubik_workqueue_depth{name="serviceaccount"}' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
