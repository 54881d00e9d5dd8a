"""The scheduler inside a real `kubik server`: Node objects made by the test, no kubelet.

Fits by requests, selectors and affinity, taints, host ports; upstream's
message for a pod no node fits; a waiting pod scheduled once a node fits;
and `kubik scheduler --config` with a plugin module changing placement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kubik.client.api import ApiError
from tests.scheduler.live import EVENTS, PODS, create, event, names, node_of, unschedulable
from tests.scheduler.objects import container, node, pod, taint


async def test_requests_decide_where_a_pod_fits(client, namespace, nodes):
    small, big = names(namespace, "small", "big")
    group = {"group": namespace}
    await nodes(node(small, cpu="1", labels=group), node(big, cpu="4", labels=group))
    await create(client, namespace, pod("fits", requests={"cpu": "2"}, nodeSelector=group))
    await create(client, namespace, pod("too-big", requests={"cpu": "8"}, nodeSelector=group))
    assert await node_of(client, namespace, "fits") == big
    scheduled = await event(client, namespace, "fits", "Scheduled")
    assert scheduled["message"] == f"Successfully assigned {namespace}/fits to {big}"
    assert scheduled["source"]["component"] == "default-scheduler"
    message = await unschedulable(client, namespace, "too-big")
    assert message == (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
        "2 No preemption victims found for incoming pod.."
    )


async def test_the_message_of_a_pod_no_node_fits(client, namespace, nodes):
    unreachable = taint("node.kubernetes.io/unreachable", effect="NoExecute")
    small, gone_1, gone_2 = names(namespace, "small", "gone-1", "gone-2")
    await nodes(
        node(small, cpu="1"), node(gone_1, taints=[unreachable]), node(gone_2, taints=[unreachable])
    )
    await create(client, namespace, pod("p", requests={"cpu": "2"}))
    expected = (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.."
    )
    assert await unschedulable(client, namespace, "p") == expected
    warning = await event(client, namespace, "p", "FailedScheduling")
    assert (warning["type"], warning["message"]) == ("Warning", expected)


async def test_node_selector_and_affinity(client, namespace, nodes):
    zone_a, zone_b = names(namespace, "a", "b")
    await nodes(
        node(zone_a, labels={"group": namespace, "zone": "a"}),
        node(zone_b, labels={"group": namespace, "zone": "b", "disk": "ssd"}),
    )
    await create(client, namespace, pod("selected", nodeSelector={"group": namespace, "zone": "b"}))

    def terms(*expressions):
        return {"nodeSelectorTerms": [{"matchExpressions": list(expressions)}]}

    in_group = {"key": "group", "operator": "In", "values": [namespace]}
    required = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": terms(
                in_group, {"key": "zone", "operator": "NotIn", "values": ["b"]}
            )
        }
    }
    preferred = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": terms(in_group),
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]},
                }
            ],
        }
    }
    nowhere = {"nodeSelector": {"group": namespace, "zone": "c"}}
    await create(client, namespace, pod("required", affinity=required))
    await create(client, namespace, pod("preferred", affinity=preferred))
    await create(client, namespace, pod("nowhere", **nowhere))
    assert await node_of(client, namespace, "selected") == zone_b
    assert await node_of(client, namespace, "required") == zone_a
    assert await node_of(client, namespace, "preferred") == zone_b
    message = await unschedulable(client, namespace, "nowhere")
    assert message.endswith(
        "2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    )


async def test_taints_and_tolerations(client, namespace, nodes):
    dedicated, cordoned = names(namespace, "dedicated", "cordoned")
    group = {"group": namespace}
    await nodes(
        node(dedicated, labels=group, taints=[taint("dedicated", "gpu")]),
        node(cordoned, labels=group, unschedulable=True),
    )
    await create(client, namespace, pod("intolerant", nodeSelector=group))
    tolerations = [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    ]
    await create(client, namespace, pod("tolerant", nodeSelector=group, tolerations=tolerations))
    assert await node_of(client, namespace, "tolerant") == dedicated
    assert await unschedulable(client, namespace, "intolerant") == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "1 node(s) were unschedulable. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    )


async def test_host_ports_take_one_pod_per_node(client, namespace, nodes):
    group = {"group": namespace}
    await nodes(*(node(name, labels=group) for name in names(namespace, "1", "2")))
    port = [{"containerPort": 80, "hostPort": 8080}]
    for name in ("web-1", "web-2", "web-3"):
        await create(
            client, namespace, pod(name, containers=[container(ports=port)], nodeSelector=group)
        )
    placed = {await node_of(client, namespace, name) for name in ("web-1", "web-2")}
    assert placed == set(names(namespace, "1", "2"))
    assert await unschedulable(client, namespace, "web-3") == (
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. "
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
    )


async def test_a_waiting_pod_is_scheduled_once_a_node_fits(client, namespace, nodes):
    group = {"group": namespace}
    small, large = names(namespace, "small", "large")
    await nodes(node(small, cpu="1", labels=group))
    await create(client, namespace, pod("waits", requests={"cpu": "3"}, nodeSelector=group))
    assert await unschedulable(client, namespace, "waits") == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
    )
    await nodes(node(large, cpu="4", labels=group))
    assert await node_of(client, namespace, "waits") == large


async def not_touched(client, namespace: str, name: str, node_name: str = "") -> None:
    """The pod is as it was made: bound only if it came so, no conditions, no events."""
    found = await client.get(PODS, namespace, name)
    assert found["spec"].get("nodeName", "") == node_name
    assert found["status"]["phase"] == "Pending"
    assert not found["status"].get("conditions")
    listing = await client.list(EVENTS, namespace)
    assert not [e for e in listing["items"] if e["involvedObject"]["name"] == name]


async def test_pods_that_are_not_ours_to_place_are_left_alone(client, namespace, nodes):
    """A pod for a scheduler we do not run, and a pod that names its node (one that
    does not exist): the scheduler neither binds nor reports on them. As upstream, the
    pod on the missing node is the pod garbage collector's, after its quarantine (see
    tests/controllers/test_podgc.py)."""
    group = {"group": namespace}
    await nodes(node(f"{namespace}-n", labels=group))
    elsewhere = pod("elsewhere", nodeSelector=group)
    elsewhere["spec"]["schedulerName"] = "someone-else"
    await create(client, namespace, elsewhere)
    await create(client, namespace, pod("named", nodeName=f"{namespace}-ghost"))
    # pods are handled in the order they are made: once a later one is scheduled
    # (and its event sent), the scheduler has seen the two before it
    await create(client, namespace, pod("later", nodeSelector=group))
    assert await node_of(client, namespace, "later") == f"{namespace}-n"
    await event(client, namespace, "later", "Scheduled")
    await not_touched(client, namespace, "elsewhere")
    await not_touched(client, namespace, "named", f"{namespace}-ghost")


async def test_the_api_refuses_a_malformed_node_affinity_term(client, namespace):
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]
            }
        }
    }
    with pytest.raises(ApiError) as caught:
        await create(client, namespace, pod("bad", affinity=affinity))
    assert caught.value.code == 422
    assert caught.value.status["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "field": "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].values",
        }
    ]


PLUGIN = """
from kubik.scheduler.framework import MAX_NODE_SCORE, register


@register
class PreferLabelled:
    '''Scores nodes with a label (the `label` arg) highest, others 0.'''

    name = "PreferLabelled"

    def __init__(self, args):
        self.label = args.get("label", "preferred")

    def score(self, state, pod, node):
        return MAX_NODE_SCORE if self.label in node.labels else 0
"""

CONFIG = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {leaderElect: false}
pluginModules: [kubik_e2e_plugin]
profiles:
- schedulerName: kubik-custom
  plugins:
    score:
      enabled: [{name: PreferLabelled, weight: 50}]
  pluginConfig:
  - name: PreferLabelled
    args: {label: example.com/fancy}
"""


@pytest.fixture
def custom_scheduler(server, tmp_path):
    """`kubik scheduler` with the configuration above, its plugin module on its path."""
    (tmp_path / "kubik_e2e_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "scheduler.yaml").write_text(CONFIG)
    log_path = tmp_path / "scheduler.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubik.cli.main",
                "scheduler",
                "--kubeconfig",
                server.kubeconfig,
                "--config",
                str(tmp_path / "scheduler.yaml"),
                "--metrics-address",
                "127.0.0.1:0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    yield log_path
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0, log_path.read_text()


async def test_a_plugin_from_the_configuration_changes_placement(
    client, namespace, nodes, custom_scheduler
):
    group = {"group": namespace}
    roomy, fancy = names(namespace, "roomy", "fancy")
    await nodes(
        node(roomy, cpu="16", labels=group),
        node(fancy, cpu="4", labels={**group, "example.com/fancy": "yes"}),
    )
    for i in range(3):
        custom = pod(f"custom-{i}", requests={"cpu": "1"}, nodeSelector=group)
        custom["spec"]["schedulerName"] = "kubik-custom"
        await create(client, namespace, custom)
    await create(client, namespace, pod("default", requests={"cpu": "1"}, nodeSelector=group))
    assert await node_of(client, namespace, "default") == roomy  # least allocated
    for i in range(3):
        where = await node_of(client, namespace, f"custom-{i}")
        assert where == fancy, custom_scheduler.read_text()
    scheduled = await event(client, namespace, "custom-0", "Scheduled")
    assert scheduled["source"]["component"] == "kubik-custom"


def test_a_bad_configuration_stops_the_scheduler_with_a_reason(server, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "profiles:\n- plugins: {filter: {enabled: [{name: Nope}]}}\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubik.cli.main",
            "scheduler",
            "--kubeconfig",
            server.kubeconfig,
            "--config",
            str(tmp_path / "bad.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown plugin 'Nope'" in result.stderr
    assert "Traceback" not in result.stderr
