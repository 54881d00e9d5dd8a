"""The Node a real agent registers (inside `kubik server`, in a netns of the test's own):
labels, taints, capacity and allocatable from the machine, node info, conditions, the
Lease, status reposted when someone else overwrites it, and a restart adopting the node."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from tests.support.node import KubikNode
from tests.support.polling import wait_for

CUSTOM_TAINT = {"key": "example.com/dedicated", "value": "tests", "effect": "PreferNoSchedule"}
WEB_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "kubik.local/busybox:latest",
                "imagePullPolicy": "IfNotPresent",
                "command": ["httpd", "-f", "-p", "8080", "-h", "/etc"],
            }
        ]
    },
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    kubik = KubikNode(
        tmp_path_factory.mktemp("node"),
        extra_args=[
            "--node-labels",
            "tier=test,example.com/team=kubik",
            "--register-with-taints",
            "example.com/dedicated=tests:PreferNoSchedule",
            "--max-pods",
            "50",
            "--kube-reserved",
            "cpu=100m,memory=256Mi",
            "--system-reserved",
            "memory=64Mi",
        ],
    ).start()
    yield kubik
    kubik.stop()


def conditions(node_object: dict) -> dict[str, dict]:
    return {c["type"]: c for c in node_object["status"]["conditions"]}


def meminfo_kib(field: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/meminfo")


def test_kubectl_shows_the_node_ready(node):
    rows = node.ok("get", "nodes", "--no-headers").splitlines()
    assert len(rows) == 1
    name, status, roles = rows[0].split()[:3]
    assert (name, status, roles) == (node.node_name, "Ready", "control-plane")


def test_labels_and_taints(node):
    labels = node.get("node", node.node_name)["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == node.node_name
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert labels["node-role.kubernetes.io/control-plane"] == "true"
    assert labels["tier"] == "test"
    assert labels["example.com/team"] == "kubik"
    taints = node.get("node", node.node_name)["spec"].get("taints") or []
    assert CUSTOM_TAINT in taints


def test_capacity_and_allocatable_come_from_the_machine(node):
    status = node.get("node", node.node_name)["status"]
    cpus = len(os.sched_getaffinity(0))
    memory = meminfo_kib("MemTotal")
    disk = os.statvfs(node.data_dir)
    assert status["capacity"]["cpu"] == str(cpus)
    assert status["capacity"]["memory"] == f"{memory}Ki"
    assert status["capacity"]["pods"] == "50"
    assert status["capacity"]["hugepages-2Mi"] == "0"
    assert status["capacity"]["ephemeral-storage"] == f"{disk.f_blocks * disk.f_frsize // 1024}Ki"
    # reserved: 100m CPU; 256Mi + 64Mi memory, plus the 100Mi hard eviction threshold
    assert status["allocatable"]["cpu"] == f"{cpus * 1000 - 100}m"
    assert status["allocatable"]["memory"] == f"{memory - (256 + 64 + 100) * 1024}Ki"
    assert status["allocatable"]["pods"] == "50"
    storage = int(status["allocatable"]["ephemeral-storage"])
    assert storage == disk.f_blocks * disk.f_frsize - -(-disk.f_blocks * disk.f_frsize // 10)


def test_addresses_endpoint_and_node_info(node):
    status = node.get("node", node.node_name)["status"]
    # the netns has only its loopback: the agent falls back to 127.0.0.1
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": node.node_name},
    ]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.")
    assert info["kubeletVersion"].startswith("v1.32.")
    assert info["operatingSystem"] == "linux"
    assert info["architecture"] == "amd64"
    assert info["kernelVersion"] == os.uname().release
    with open("/proc/sys/kernel/random/boot_id") as handle:
        assert info["bootID"] == handle.read().strip()
    with open("/etc/os-release") as handle:
        assert f'PRETTY_NAME="{info["osImage"]}"' in handle.read()
    names = {name for image in status["images"] for name in image["names"]}
    assert {"kubik.local/pause:3.9", "kubik.local/busybox:latest"} <= names


def test_conditions(node):
    found = conditions(node.get("node", node.node_name))
    assert found["Ready"]["status"] == "True"
    assert found["Ready"]["reason"] == "KubeletReady"
    assert found["Ready"]["message"] == "kubelet is posting ready status"
    for kind, reason in (
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ):
        assert (found[kind]["status"], found[kind]["reason"]) == ("False", reason)


def test_the_pod_network_follows_the_pod_cidr(node):
    cidr = node.get("node", node.node_name)["spec"]["podCIDR"]
    assert cidr.startswith("10.42.") and cidr.endswith(".0/24")
    conflist = node.data_dir / "agent" / "containerd" / "cni" / "net.d" / "10-kubik.conflist"
    bridge = json.loads(conflist.read_text())["plugins"][0]
    assert bridge["ipam"]["ranges"] == [[{"subnet": cidr}]]


def test_the_lease_is_renewed(node):
    def renew_time() -> str:
        return node.get("lease", "-n", "kube-node-lease", node.node_name)["spec"]["renewTime"]

    lease = node.get("lease", "-n", "kube-node-lease", node.node_name)
    assert lease["spec"]["holderIdentity"] == node.node_name
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["name"] == node.node_name
    first = renew_time()
    wait_for(lambda: renew_time() != first, "the lease to be renewed", seconds=40)


def test_a_status_overwritten_by_someone_else_is_reported_again(node):
    unknown = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "overwritten by the test",
                }
            ]
        }
    }
    node.ok(
        "patch",
        "node",
        node.node_name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(unknown),
    )

    def reported() -> bool:
        found = conditions(node.get("node", node.node_name))
        return found.get("Ready", {}).get("reason") == "KubeletReady" and len(found) == 4

    wait_for(reported, "the agent to report its conditions again", seconds=30)


def answers(node: KubikNode, ip: str) -> bool:
    url = f"http://{ip}:8080/hostname"
    done = node.exec_in_netns(["curl", "-s", "-m", "5", url])
    return done.returncode == 0 and done.stdout.strip() == "web"


def test_a_pod_runs_on_the_node_and_answers_on_its_ip(node):
    node.ok("apply", "-f", "-", stdin=json.dumps(WEB_POD))

    def running() -> dict | None:
        pod = node.get("pod", "web")
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(running, "the pod to run", seconds=60)
    cidr = node.get("node", node.node_name)["spec"]["podCIDR"]
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(cidr)
    assert pod["spec"]["nodeName"] == node.node_name
    wait_for(lambda: answers(node, pod["status"]["podIP"]), "the pod to answer", seconds=30)


def test_a_restarted_agent_adopts_its_node_and_pods(node):
    before = node.get("node", node.node_name)
    pod_before = node.get("pod", "web")
    token = node.node_token
    node.extra_args += ["--node-labels", "restarted=yes"]
    node.restart()
    after = node.get("node", node.node_name)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"]["podCIDR"] == before["spec"]["podCIDR"]
    assert after["metadata"]["labels"]["restarted"] == "yes"
    assert node.node_token == token
    pod_after = node.get("pod", "web")
    assert pod_after["status"]["podIP"] == pod_before["status"]["podIP"]
    assert pod_after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert answers(node, pod_after["status"]["podIP"])
