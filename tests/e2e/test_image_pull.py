"""Pods whose image comes from a real registry that asks for credentials.

One `KubikNode` (server + agent in a netns) and, in the same netns, a
`docker-registry` on 127.0.0.1 with basic auth holding busybox as
`kubik/busybox:v1` and `:v2`. With a kubernetes.io/dockerconfigjson pull secret the pod
runs; without it, or for an image the registry lacks, the container waits with
ErrImagePull and then ImagePullBackOff, carrying the registry's own answer.

Each failing pod is created with a scheduling gate and watched by name before
the gate is removed, so the watch sees every status the kubelet writes (the
ErrImagePull one lasts only until the next sync).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time

import pytest

from tests.support.cluster import KUBECTL
from tests.support.node import KubikNode
from tests.support.polling import wait_for
from tests.support.registry import running_registry

USER, PASSWORD = "puller", "pull-secret-pw"
NAMESPACE = "pulls"
GATE = "example.com/hold"
UNGATE = '[{"op": "remove", "path": "/spec/schedulingGates"}]'
WAITING = (
    "{.status.containerStatuses[0].state.waiting.reason}|"
    '{.status.containerStatuses[0].state.waiting.message}{"\\n"}'
)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    kubik = KubikNode(tmp_path_factory.mktemp("pull")).start()
    yield kubik
    kubik.stop()


@pytest.fixture(scope="module")
def registry(node):
    with running_registry(node.netns, users={USER: PASSWORD}) as registry:
        for tag in ("v1", "v2"):  # v2 is never pulled with the secret: no copy on the node
            registry.push(registry.image(tag=tag), creds=(USER, PASSWORD))
        yield registry


@pytest.fixture(scope="module")
def namespace(node, registry):
    node.ok("create", "namespace", NAMESPACE)
    node.ok(
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        NAMESPACE,
        f"--docker-server={registry.host}",
        f"--docker-username={USER}",
        f"--docker-password={PASSWORD}",
    )
    return NAMESPACE


def pod(name: str, image: str, *, secret: bool, gated: bool = False) -> str:
    spec: dict = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": image, "command": ["sh", "-c", "sleep 100000"]}],
    }
    if secret:
        spec["imagePullSecrets"] = [{"name": "regcred"}]
    if gated:
        spec["schedulingGates"] = [{"name": GATE}]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def get_pod(node: KubikNode, name: str) -> dict:
    return json.loads(node.ok("get", "pod", name, "-n", NAMESPACE, "-o", "json"))


def events_of(node: KubikNode, name: str) -> list[tuple[str, str]]:
    listed = node.get("events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={name}")
    return [(e["reason"], e["message"]) for e in listed["items"]]


def wait_for_phase(node: KubikNode, name: str, phase: str, seconds: float = 120.0) -> dict:
    deadline = time.monotonic() + seconds
    while (current := get_pod(node, name))["status"].get("phase") != phase:
        if time.monotonic() > deadline:
            events = events_of(node, name)
            raise AssertionError(f"{name} not {phase}: {current['status']}; events {events}")
        time.sleep(0.5)
    return current


def waiting_reasons(node: KubikNode, name: str, until: str, seconds: float = 120.0) -> dict:
    """Release the pod's scheduling gate and watch it: waiting reason → first message seen,
    up to the first `until`."""
    cache = tempfile.mkdtemp(prefix="kubectl-cache-")
    argv = [
        *node.wrapper,
        KUBECTL,
        "--kubeconfig",
        node.kubeconfig,
        "--cache-dir",
        cache,
        "get",
        "pod",
        name,
        "-n",
        NAMESPACE,
        "--watch",
        "-o",
        f"jsonpath={WAITING}",
    ]
    watch = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "HOME": cache}
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in watch.stdout:
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    seen: dict[str, str] = {}
    try:
        lines.get(timeout=60)  # the gated pod as it is: the watch is in place
        node.ok("patch", "pod", name, "-n", NAMESPACE, "--type=json", "-p", UNGATE)
        deadline = time.monotonic() + seconds
        while until not in seen:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            reason, _, message = line.rstrip("\n").partition("|")
            if reason:
                seen.setdefault(reason, message)
    except queue.Empty:
        raise AssertionError(f"{name}: no {until} within {seconds}s; saw {seen}") from None
    finally:
        watch.kill()  # by its own PID (nsenter execs kubectl)
        watch.wait()
        reader.join()
    return seen


def test_pod_with_a_pull_secret_runs(node, registry, namespace):
    image = registry.image()
    node.ok("apply", "-n", namespace, "-f", "-", stdin=pod("with-secret", image, secret=True))

    current = wait_for_phase(node, "with-secret", "Running")
    status = current["status"]["containerStatuses"][0]
    assert status["image"] == image
    assert status["imageID"]
    messages = dict(events_of(node, "with-secret"))
    assert messages["Pulling"] == f'Pulling image "{image}"'
    assert messages["Pulled"].startswith(f'Successfully pulled image "{image}" in ')


@pytest.mark.parametrize(
    ("name", "tag", "secret", "answer"),
    [
        ("no-secret", "v2", False, "401 Unauthorized"),
        ("missing-image", "no-such-tag", True, "no-such-tag: not found"),
    ],
)
def test_failed_pull_is_err_image_pull_then_back_off(
    node, registry, namespace, name, tag, secret, answer
):
    image = registry.image(tag=tag)
    manifest = pod(name, image, secret=secret, gated=True)
    node.ok("apply", "-n", namespace, "-f", "-", stdin=manifest)
    seen = waiting_reasons(node, name, until="ImagePullBackOff")
    assert "ErrImagePull" in seen, seen
    assert seen["ErrImagePull"].startswith(f'Failed to pull image "{image}": ')
    assert answer in seen["ErrImagePull"]
    assert seen["ImagePullBackOff"].startswith(f'Back-off pulling image "{image}"')
    assert answer in seen["ImagePullBackOff"]
    assert get_pod(node, name)["status"]["phase"] == "Pending"

    def backoff_events():
        events = events_of(node, name)
        return events if ("BackOff", f'Back-off pulling image "{image}"') in events else None

    events = wait_for(backoff_events, "the BackOff event")
    assert ("Failed", "Error: ErrImagePull") in events
    assert ("Failed", "Error: ImagePullBackOff") in events
    failed = [m for r, m in events if r == "Failed" and m.startswith("Failed to pull image")]
    assert failed and answer in failed[0]
