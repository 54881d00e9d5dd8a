"""The `kubik` command as a real process: roles, clean shutdown, bad flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

KUBIK = [sys.executable, "-m", "kubik.cli.main"]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*KUBIK, *args], capture_output=True, text=True, timeout=timeout)


def test_version():
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("kubik v")


def test_server_starts_the_store_and_stops_cleanly_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [*KUBIK, "server", "--data-dir", str(tmp_path), "--disable-agent"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "store is ready" in line:
                break
        assert any("store is ready" in line for line in lines), "".join(lines)
        assert os.path.exists(tmp_path / "db" / "state.db")
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "received SIGTERM" in rest and "stopping store" in rest
    assert "Traceback" not in rest


def test_unparseable_endpoints_fail_clearly(tmp_path):
    for endpoint, message in [
        ("foo://x", "unknown scheme 'foo'"),
        ("etcd://127.0.0.1:abc", "is not host:port"),
        ("127.0.0.1:2379", "has no scheme"),
    ]:
        result = run(
            "server",
            "--data-dir",
            str(tmp_path),
            "--disable-agent",
            "--datastore-endpoint",
            endpoint,
        )
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "db")


def test_unreachable_etcd_fails_clearly(tmp_path):
    started = time.monotonic()
    # 127.0.0.1:9 (discard) has nothing listening here
    result = run(
        "server",
        "--data-dir",
        str(tmp_path),
        "--disable-agent",
        "--datastore-endpoint",
        "etcd://127.0.0.1:9",
    )
    assert result.returncode == 1
    assert "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 25


def test_roles_not_built_yet_say_so():
    result = run("proxy")
    assert result.returncode == 2
    assert "not built yet" in result.stderr


def test_concurrent_sync_flags_use_upstream_names():
    from kubik.cli.main import _concurrency

    assert _concurrency(
        [
            "--concurrent-gc-syncs=3",
            "--concurrent-service-endpoint-syncs=2",
            "--concurrent-cron-job-syncs=1",
            "--concurrent-deployment-syncs=9",
        ]
    ) == {"garbagecollector": 3, "endpointslice": 2, "cronjob": 1, "deployment": 9}


def test_unknown_flags_are_refused():
    result = run("controller-manager", "--kubeconfig", "/nonexistent", "--bogus=1")
    assert result.returncode != 0
    assert "--bogus=1" in result.stderr


def test_a_role_imports_only_its_own_components():
    """The controller manager, say, carries neither the API server nor the CRI's gRPC stubs."""
    check = (
        "import sys, kubik.cli.main; "
        "print(sorted(m for m in ('grpc', 'kubik.apiserver.rest', 'kubik.kubelet.agent', "
        "'kubik.scheduler.scheduler', 'kubik.controllers.manager') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
