"""Server-side Tables: upstream's columns and cells for each built-in kind, and real kubectl.

Cell values are checked against what upstream's printers print for the same
objects (pkg/printers/internalversion, 1.32). Ages are computed against a
frozen clock, so the expected texts ("5m", "2d3h") are exact.
"""

from __future__ import annotations

import ast
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kubik.api import printers, tables
from kubik.api.builtin import BUILTIN
from kubik.api.printers.cells import format_label_selector, selector_string
from kubik.api.printers.jsonpath import JSONPathError, compile_path
from kubik.api.registry import Resource
from tests.support.cluster import KubikServer

NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
RESOURCES = {(r.group, r.kind): r for r in BUILTIN}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(tables, "now", lambda: NOW)


def ago(seconds: int) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str = "x", created: int = 300, **extra) -> dict:
    return {"name": name, "creationTimestamp": ago(created), **extra}


def render(group: str, kind: str, *objects: dict, include: str = "Metadata") -> dict:
    return tables.table(RESOURCES[(group, kind)], list(objects), "v1", include=include)


def cells(group: str, kind: str, obj: dict) -> list:
    return render(group, kind, obj)["rows"][0]["cells"]


def headers(group: str, kind: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in render(group, kind)["columnDefinitions"]]


# ------------------------------------------------------------------ basics


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (301, "5m1s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (7 * 3600 + 5 * 60, "7h5m"),
        (47 * 3600, "47h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400, "8d"),
        (2 * 365 * 86400 + 10 * 86400, "2y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds, text):
    assert tables.human_duration(seconds) == text


def test_age_of_unset_or_unreadable_timestamps_is_unknown():
    assert tables.age({"metadata": {}}) == "<unknown>"
    assert tables.age({"metadata": {"creationTimestamp": "yesterday"}}) == "<unknown>"
    assert tables.age({"metadata": {"creationTimestamp": ago(3 * 86400)}}) == "3d"


def test_table_shape_and_included_objects():
    ns = {"metadata": meta("default", uid="u1"), "status": {"phase": "Active"}}
    table = render("", "Namespace", ns)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    name_column = table["columnDefinitions"][0]
    assert name_column["format"] == "name" and name_column["type"] == "string"
    assert name_column["description"].startswith("Name must be unique within a namespace.")
    row = table["rows"][0]
    assert row["cells"] == ["default", "Active", "5m"]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": ns["metadata"],
    }
    assert render("", "Namespace", ns, include="Object")["rows"][0]["object"] is ns
    assert "object" not in render("", "Namespace", ns, include="None")["rows"][0]


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("", "LimitRange"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ],
)
def test_kinds_without_a_printer_get_name_and_created_at(group, kind):
    table = render(group, kind, {"metadata": meta("admin", created=90)}, {"metadata": {}})
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert [row["cells"] for row in table["rows"]] == [
        ["admin", ago(90)],
        ["", "0001-01-01T00:00:00Z"],
    ]


def test_every_listable_builtin_kind_has_columns():
    for resource in BUILTIN:
        if "list" not in resource.verbs:
            continue
        table = tables.table(resource, [{"metadata": meta()}], "v1")
        columns = table["columnDefinitions"]
        assert columns[0]["name"] in ("Name", "Last Seen"), resource.kind
        assert len(table["rows"][0]["cells"]) == len(columns), resource.kind
        assert all(c["description"] for c in columns), resource.kind


@pytest.mark.parametrize(
    "module", ["kubik.api.tables", "kubik.api.printers", "kubik.api.printers.custom"]
)
def test_any_import_order_registers_every_printer(module):
    """tables imports the printers and they import tables: each may be imported first."""
    script = (
        f"import json, {module}; from kubik.api import tables; "
        "print(json.dumps(sorted(tables._PRINTERS)))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    registered = {tuple(key) for key in json.loads(result.stdout)}
    assert registered == set(tables._PRINTERS) == declared_printers()


def declared_printers() -> set[tuple[str, str]]:
    """(group, kind) of every `printer(...)` call in the printers package, read from its
    source: what importing it must register."""
    declared = set()
    for path in Path(printers.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "printer":
                group, kind = (ast.literal_eval(arg) for arg in node.args[:2])
                declared.add((group, kind))
    return declared


# ---------------------------------------------------------------------- pods

POD_HEADERS = [
    ("Name", 0),
    ("Ready", 0),
    ("Status", 0),
    ("Restarts", 0),
    ("Age", 0),
    ("IP", 1),
    ("Node", 1),
    ("Nominated Node", 1),
    ("Readiness Gates", 1),
]


def pod(containers=("app",), init=(), statuses=(), init_statuses=(), **status) -> dict:
    return {
        "metadata": meta("p"),
        "spec": {
            "containers": [{"name": c, "image": "img"} for c in containers],
            "initContainers": list(init),
            "nodeName": "n1",
        },
        "status": {
            "containerStatuses": list(statuses),
            "initContainerStatuses": list(init_statuses),
            **status,
        },
    }


def running(name="app", ready=True, restarts=0, **extra) -> dict:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(60)}},
        **extra,
    }


def waiting(name="app", reason="ContainerCreating") -> dict:
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason}},
    }


def terminated(name="app", **state) -> dict:
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


def test_pod_columns():
    assert headers("", "Pod") == POD_HEADERS


@pytest.mark.parametrize(
    ("obj", "ready", "status"),
    [
        (pod(phase="Pending"), "0/1", "Pending"),
        (pod(statuses=[running()], phase="Running"), "1/1", "Running"),
        (pod(statuses=[running(ready=False)], phase="Running"), "0/1", "Running"),
        (
            pod(statuses=[waiting(reason="CrashLoopBackOff")], phase="Running"),
            "0/1",
            "CrashLoopBackOff",
        ),
        (pod(statuses=[waiting(reason="")], phase="Pending"), "0/1", "Pending"),
        (
            pod(statuses=[terminated(reason="Completed", exitCode=0)], phase="Succeeded"),
            "0/1",
            "Completed",
        ),
        (pod(statuses=[terminated(exitCode=3)], phase="Failed"), "0/1", "ExitCode:3"),
        (pod(statuses=[terminated(exitCode=0, signal=9)], phase="Failed"), "0/1", "Signal:9"),
        (pod(phase="Failed", reason="Evicted"), "0/1", "Evicted"),
        # the first container's reason wins: containers are walked last to first
        (
            pod(
                ["a", "b"],
                statuses=[waiting("a", "ErrImagePull"), waiting("b", "ImagePullBackOff")],
                phase="Pending",
            ),
            "0/2",
            "ErrImagePull",
        ),
        # a finished container beside a running one: Running if the pod is Ready
        (
            pod(
                ["a", "b"],
                statuses=[terminated("a", reason="Completed"), running("b")],
                phase="Running",
                conditions=[{"type": "Ready", "status": "True"}],
            ),
            "1/2",
            "Running",
        ),
        (
            pod(
                ["a", "b"],
                statuses=[terminated("a", reason="Completed"), running("b")],
                phase="Running",
                conditions=[{"type": "Ready", "status": "False"}],
            ),
            "1/2",
            "NotReady",
        ),
        (
            pod(
                phase="Pending",
                conditions=[
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ],
            ),
            "0/1",
            "SchedulingGated",
        ),
    ],
)
def test_pod_status(obj, ready, status):
    assert cells("", "Pod", obj)[1:3] == [ready, status]


INIT = [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}]


@pytest.mark.parametrize(
    ("init_statuses", "status"),
    [
        ([waiting("i1", "PodInitializing"), waiting("i2")], "Init:0/2"),
        ([terminated("i1", exitCode=0), running("i2", ready=False)], "Init:1/2"),
        ([waiting("i1", "CrashLoopBackOff"), waiting("i2")], "Init:CrashLoopBackOff"),
        ([terminated("i1", reason="Error", exitCode=1), waiting("i2")], "Init:Error"),
        ([terminated("i1", exitCode=2), waiting("i2")], "Init:ExitCode:2"),
        ([terminated("i1", exitCode=2, signal=15), waiting("i2")], "Init:Signal:15"),
    ],
)
def test_pod_status_while_initializing(init_statuses, status):
    obj = pod(
        init=INIT,
        init_statuses=init_statuses,
        statuses=[waiting(reason="PodInitializing")],
        phase="Pending",
    )
    assert cells("", "Pod", obj)[1:3] == ["0/1", status]


def test_pod_sidecars_count_as_containers_once_started():
    sidecar = {"name": "proxy", "image": "x", "restartPolicy": "Always"}
    obj = pod(
        init=[{"name": "setup", "image": "x"}, sidecar],
        init_statuses=[
            terminated("setup", reason="Completed", exitCode=0),
            running(
                "proxy",
                started=True,
                restarts=2,
                lastState={"terminated": {"finishedAt": ago(120)}},
            ),
        ],
        statuses=[running()],
        phase="Running",
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    assert cells("", "Pod", obj)[1:4] == ["2/2", "Running", "2 (2m ago)"]


def test_pod_terminating_and_node_lost():
    deleting = pod(statuses=[running()], phase="Running")
    deleting["metadata"]["deletionTimestamp"] = ago(1)
    assert cells("", "Pod", deleting)[2] == "Terminating"
    lost = pod(statuses=[running()], phase="Running", reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = ago(1)
    assert cells("", "Pod", lost)[2] == "Unknown"
    finished = pod(statuses=[terminated(reason="Completed")], phase="Succeeded")
    finished["metadata"]["deletionTimestamp"] = ago(1)
    assert cells("", "Pod", finished)[2] == "Completed"


def test_pod_restarts_say_when_the_last_restart_was():
    restarted = running("a", restarts=3, lastState={"terminated": {"finishedAt": ago(300)}})
    older = running("b", restarts=2, lastState={"terminated": {"finishedAt": ago(7200)}})
    assert cells("", "Pod", pod(["a", "b"], statuses=[restarted, older]))[3] == "5 (5m ago)"
    assert cells("", "Pod", pod(statuses=[running(restarts=4)]))[3] == "4"
    assert cells("", "Pod", pod(statuses=[running()]))[3] == "0"


def test_pod_wide_cells():
    obj = pod(
        statuses=[running()],
        phase="Running",
        podIPs=[{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
        conditions=[{"type": "example.com/gate", "status": "True"}],
    )
    obj["spec"]["readinessGates"] = [
        {"conditionType": "example.com/gate"},
        {"conditionType": "example.com/other"},
    ]
    assert cells("", "Pod", obj)[4:] == ["5m", "10.0.0.5", "n1", "<none>", "1/2"]
    bare = {"metadata": meta("p"), "spec": {"containers": []}}
    assert cells("", "Pod", bare) == [
        "p",
        "0/0",
        "",
        "0",
        "5m",
        "<none>",
        "<none>",
        "<none>",
        "<none>",
    ]


def test_finished_pods_mark_their_rows_completed():
    table = render("", "Pod", pod(phase="Succeeded"), pod(phase="Failed"), pod(phase="Running"))
    assert table["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert table["rows"][1]["conditions"][0]["reason"] == "Failed"
    assert "conditions" not in table["rows"][2]


# ------------------------------------------------------------------ services


def service(kind: str, **spec) -> dict:
    return {"metadata": meta("svc"), "spec": {"type": kind, **spec}}


def test_service_columns():
    assert headers("", "Service") == [
        ("Name", 0),
        ("Type", 0),
        ("Cluster-IP", 0),
        ("External-IP", 0),
        ("Port(s)", 0),
        ("Age", 0),
        ("Selector", 1),
    ]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            service(
                "ClusterIP",
                clusterIPs=["10.0.0.1"],
                ports=[{"port": 443, "protocol": "TCP"}],
                selector={"b": "2", "a": "1"},
            ),
            ["ClusterIP", "10.0.0.1", "<none>", "443/TCP", "5m", "a=1,b=2"],
        ),
        (
            service("ClusterIP", clusterIPs=["None"], externalIPs=["1.2.3.4", "5.6.7.8"]),
            ["ClusterIP", "None", "1.2.3.4,5.6.7.8", "<none>", "5m", "<none>"],
        ),
        (
            service(
                "NodePort",
                clusterIPs=["10.0.0.2"],
                ports=[
                    {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "nodePort": 30053, "protocol": "UDP"},
                ],
            ),
            ["NodePort", "10.0.0.2", "<none>", "80:30080/TCP,53:30053/UDP", "5m", "<none>"],
        ),
        (
            service("LoadBalancer", clusterIPs=["10.0.0.3"]),
            ["LoadBalancer", "10.0.0.3", "<pending>", "<none>", "5m", "<none>"],
        ),
        (
            service("ExternalName", externalName="db.example.com"),
            ["ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"],
        ),
    ],
)
def test_service_cells(obj, expected):
    assert cells("", "Service", obj) == ["svc", *expected]


def test_load_balancer_addresses_are_sorted_unique_and_not_clipped():
    obj = service("LoadBalancer", clusterIPs=["10.0.0.3"], externalIPs=["9.9.9.9"])
    obj["status"] = {
        "loadBalancer": {
            "ingress": [
                {"hostname": "a-very-long-balancer-name.example.com"},
                {"ip": "203.0.113.10"},
                {"ip": "203.0.113.10"},
            ]
        }
    }
    assert cells("", "Service", obj)[3] == (
        "203.0.113.10,a-very-long-balancer-name.example.com,9.9.9.9"
    )


@pytest.mark.parametrize(
    ("subsets", "text"),
    [
        ([], "<none>"),
        (
            [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 443}]}],
            "10.0.0.1:80,10.0.0.1:443",
        ),
        ([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}], "10.0.0.1,10.0.0.2"),
        ([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}], "[fd00::1]:80"),
        (
            [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...",
        ),
        ([{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}], ""),
    ],
)
def test_endpoints_cells(subsets, text):
    assert cells("", "Endpoints", {"metadata": meta("ep"), "subsets": subsets}) == [
        "ep",
        text,
        "5m",
    ]


def test_endpointslice_cells():
    eps = {
        "metadata": meta("eps"),
        "addressType": "IPv4",
        "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9090}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}],
    }
    assert cells("discovery.k8s.io", "EndpointSlice", eps) == [
        "eps",
        "IPv4",
        "80,metrics,* + 1 more...",
        "10.0.0.1,10.0.0.2,10.0.0.3",
        "5m",
    ]
    empty = {"metadata": meta("e"), "addressType": "IPv6"}
    assert cells("discovery.k8s.io", "EndpointSlice", empty) == [
        "e",
        "IPv6",
        "<unset>",
        "<unset>",
        "5m",
    ]


# ------------------------------------------------------------- core others


def test_configmap_secret_serviceaccount_cells():
    cm = {"metadata": meta("cm"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert headers("", "ConfigMap") == [("Name", 0), ("Data", 0), ("Age", 0)]
    assert cells("", "ConfigMap", cm) == ["cm", 3, "5m"]
    assert cells("", "ConfigMap", {"metadata": meta("e")}) == ["e", 0, "5m"]
    secret = {"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "k": ""}}
    assert headers("", "Secret") == [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]
    assert cells("", "Secret", secret) == ["s", "kubernetes.io/tls", 2, "5m"]
    sa = {"metadata": meta("default"), "secrets": [{"name": "t"}]}
    assert headers("", "ServiceAccount") == [("Name", 0), ("Secrets", 0), ("Age", 0)]
    assert cells("", "ServiceAccount", sa) == ["default", 1, "5m"]


def test_node_cells():
    node = {
        "metadata": meta(
            "n1",
            created=86400 * 3,
            labels={
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/": "",
                "kubernetes.io/role": "worker",
            },
        ),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "192.168.1.10"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "kubik://0.1",
            },
        },
    }
    assert headers("", "Node") == [
        ("Name", 0),
        ("Status", 0),
        ("Roles", 0),
        ("Age", 0),
        ("Version", 0),
        ("Internal-IP", 1),
        ("External-IP", 1),
        ("OS-Image", 1),
        ("Kernel-Version", 1),
        ("Container-Runtime", 1),
    ]
    assert cells("", "Node", node) == [
        "n1",
        "Ready,SchedulingDisabled",
        "control-plane,worker",
        "3d",
        "v1.32.0",
        "192.168.1.10",
        "<none>",
        "Debian",
        "6.1",
        "kubik://0.1",
    ]
    bare = {
        "metadata": meta("n2"),
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
    }
    assert cells("", "Node", bare)[1:5] == ["NotReady", "<none>", "5m", ""]
    assert cells("", "Node", {"metadata": meta("n3")})[1] == "Unknown"
    assert cells("", "Node", {"metadata": meta("n3")})[7:] == ["<unknown>"] * 3


def test_core_event_cells():
    event = {
        "metadata": meta("p.17a", namespace="default"),
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled",
        "message": "  Image pulled\n",
        "type": "Normal",
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(60),
        "count": 4,
        "source": {"component": "kubelet", "host": "n1"},
    }
    assert headers("", "Event") == [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]
    assert cells("", "Event", event) == [
        "60s",
        "Normal",
        "Pulled",
        "pod/p",
        "spec.containers{app}",
        "kubelet, n1",
        "Image pulled",
        "10m",
        4,
        "p.17a",
    ]


def test_new_style_events_print_alike_in_both_groups():
    event = {
        "metadata": meta("e1"),
        "eventTime": ago(900),
        "series": {"count": 7, "lastObservedTime": ago(30)},
        "reportingController": "kubik-scheduler",
        "reportingInstance": "kubik-scheduler-n1",
        "type": "Warning",
        "reason": "FailedScheduling",
        "note": "0/1 nodes are available",
        "regarding": {"kind": "Pod", "name": "p"},
    }
    expected = [
        "30s",
        "Warning",
        "FailedScheduling",
        "pod/p",
        "",
        "kubik-scheduler, kubik-scheduler-n1",
        "0/1 nodes are available",
        "15m",
        7,
        "e1",
    ]
    assert cells("events.k8s.io", "Event", event) == expected
    core = {**event, "message": event["note"], "involvedObject": event["regarding"]}
    assert cells("", "Event", core) == expected
    singleton = {"metadata": meta("e2"), "eventTime": ago(5), "involvedObject": {"kind": "Node"}}
    assert cells("", "Event", singleton)[:4] == ["5s", "", "", "node"]
    assert cells("", "Event", singleton)[8] == 1


def test_resource_quota_cells():
    quota = {
        "metadata": meta("q"),
        "status": {
            "hard": {
                "pods": "10",
                "requests.cpu": "2",
                "limits.memory": "2048Mi",
                "limits.cpu": "4",
            },
            "used": {"pods": "3", "requests.cpu": "0.5", "limits.cpu": "1"},
        },
    }
    assert headers("", "ResourceQuota") == [("Name", 0), ("Request", 0), ("Limit", 0), ("Age", 0)]
    assert cells("", "ResourceQuota", quota) == [
        "q",
        "pods: 3/10, requests.cpu: 500m/2",
        "limits.cpu: 1/4, limits.memory: 0/2Gi",
        "5m",
    ]


def test_persistent_volume_and_claim_cells():
    pv = {
        "metadata": meta("pv1", annotations={"volume.beta.kubernetes.io/storage-class": "old"}),
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "fast",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    assert [n for n, _ in headers("", "PersistentVolume")] == [
        "Name",
        "Capacity",
        "Access Modes",
        "Reclaim Policy",
        "Status",
        "Claim",
        "StorageClass",
        "VolumeAttributesClass",
        "Reason",
        "Age",
        "VolumeMode",
    ]
    assert cells("", "PersistentVolume", pv) == [
        "pv1",
        "10Gi",
        "RWO,RWX",
        "Retain",
        "Bound",
        "default/data",
        "old",
        "<unset>",
        "",
        "5m",
        "Filesystem",
    ]
    pv["metadata"]["deletionTimestamp"] = ago(1)
    assert cells("", "PersistentVolume", pv)[4] == "Terminating"

    pending = {
        "metadata": meta("data"),
        "spec": {"storageClassName": "fast"},
        "status": {"phase": "Pending"},
    }
    assert [n for n, _ in headers("", "PersistentVolumeClaim")] == [
        "Name",
        "Status",
        "Volume",
        "Capacity",
        "Access Modes",
        "StorageClass",
        "VolumeAttributesClass",
        "Age",
        "VolumeMode",
    ]
    assert cells("", "PersistentVolumeClaim", pending) == [
        "data",
        "Pending",
        "",
        "",
        "",
        "fast",
        "<unset>",
        "5m",
        "<unset>",
    ]
    bound = {
        "metadata": meta("data"),
        "spec": {"volumeName": "pv1", "volumeMode": "Block"},
        "status": {
            "phase": "Bound",
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOncePod"],
        },
    }
    assert cells("", "PersistentVolumeClaim", bound) == [
        "data",
        "Bound",
        "pv1",
        "10Gi",
        "RWOP",
        "",
        "<unset>",
        "5m",
        "Block",
    ]


# ---------------------------------------------------------------------- apps

TEMPLATE = {
    "spec": {
        "containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]
    }
}


def test_deployment_cells():
    deploy = {
        "metadata": meta("web"),
        "spec": {
            "replicas": 3,
            "template": TEMPLATE,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["front", "edge"]}
                ],
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert headers("apps", "Deployment") == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert cells("apps", "Deployment", deploy) == [
        "web",
        "2/3",
        3,
        2,
        "5m",
        "web,log",
        "nginx:1.27,busybox",
        "app=web,tier in (edge,front)",
    ]
    fresh = {
        "metadata": meta("new"),
        "spec": {
            "replicas": 1,
            "selector": {"matchExpressions": [{"key": "x", "operator": "Bogus"}]},
        },
    }
    assert cells("apps", "Deployment", fresh) == ["new", "0/1", 0, 0, "5m", "", "", "<invalid>"]


def test_replicaset_statefulset_daemonset_cells():
    rs = {
        "metadata": meta("web-1"),
        "spec": {"replicas": 3, "template": TEMPLATE, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    assert [n for n, _ in headers("apps", "ReplicaSet")] == [
        "Name",
        "Desired",
        "Current",
        "Ready",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    assert cells("apps", "ReplicaSet", rs) == [
        "web-1",
        3,
        3,
        1,
        "5m",
        "web,log",
        "nginx:1.27,busybox",
        "app=web",
    ]
    sts = {
        "metadata": meta("db"),
        "spec": {"replicas": 2, "template": TEMPLATE},
        "status": {"readyReplicas": 1},
    }
    assert headers("apps", "StatefulSet") == [
        ("Name", 0),
        ("Ready", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
    ]
    assert cells("apps", "StatefulSet", sts) == ["db", "1/2", "5m", "web,log", "nginx:1.27,busybox"]
    ds = {
        "metadata": meta("agent"),
        "spec": {
            "template": {"spec": {**TEMPLATE["spec"], "nodeSelector": {"os": "linux"}}},
            "selector": {},
        },
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert [n for n, _ in headers("apps", "DaemonSet")] == [
        "Name",
        "Desired",
        "Current",
        "Ready",
        "Up-to-date",
        "Available",
        "Node Selector",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    assert cells("apps", "DaemonSet", ds) == [
        "agent",
        3,
        3,
        2,
        3,
        2,
        "os=linux",
        "5m",
        "web,log",
        "nginx:1.27,busybox",
        "<none>",
    ]


def test_controller_revision_cells():
    owned = {
        "metadata": meta(
            "agent-5d8f",
            ownerReferences=[
                {"apiVersion": "v1", "kind": "Pod", "name": "other"},
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": True},
            ],
        ),
        "revision": 4,
    }
    assert headers("apps", "ControllerRevision") == [
        ("Name", 0),
        ("Controller", 0),
        ("Revision", 0),
        ("Age", 0),
    ]
    assert cells("apps", "ControllerRevision", owned) == [
        "agent-5d8f",
        "daemonset.apps/agent",
        4,
        "5m",
    ]
    core_owned = {
        "metadata": meta(
            "r",
            ownerReferences=[{"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}],
        ),
        "revision": 1,
    }
    assert cells("apps", "ControllerRevision", core_owned)[1] == "pod/p"
    assert cells("apps", "ControllerRevision", {"metadata": meta("r")})[1:3] == ["<none>", 0]


# --------------------------------------------------------------------- batch


def job(conditions=(), deleting=False, **spec_and_status) -> dict:
    status = {
        k: v
        for k, v in spec_and_status.items()
        if k in ("succeeded", "startTime", "completionTime")
    }
    spec = {k: v for k, v in spec_and_status.items() if k not in status}
    obj = {
        "metadata": meta("j"),
        "spec": {"template": TEMPLATE, "selector": {"matchLabels": {"job": "j"}}, **spec},
        "status": {**status, "conditions": [{"type": t, "status": s} for t, s in conditions]},
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = ago(1)
    return obj


def test_job_columns():
    assert headers("batch", "Job") == [
        ("Name", 0),
        ("Status", 0),
        ("Completions", 0),
        ("Duration", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (job(), "Running"),
        (job([("Complete", "True")]), "Complete"),
        (job([("Failed", "True")], deleting=True), "Failed"),
        (job([("Complete", "False")], deleting=True), "Terminating"),
        (job([("Suspended", "True")]), "Suspended"),
        (job([("FailureTarget", "True")]), "FailureTarget"),
        (job([("SuccessCriteriaMet", "True")]), "Running"),
    ],
)
def test_job_status(obj, status):
    assert cells("batch", "Job", obj)[1] == status


@pytest.mark.parametrize(
    ("obj", "completions", "duration"),
    [
        (job(), "0/1", ""),
        (job(completions=5, succeeded=2, startTime=ago(90)), "2/5", "90s"),
        (
            job(parallelism=3, succeeded=1, startTime=ago(3600), completionTime=ago(600)),
            "1/1 of 3",
            "50m",
        ),
        (job(parallelism=1, startTime=ago(30)), "0/1", "30s"),
    ],
)
def test_job_completions_and_duration(obj, completions, duration):
    assert cells("batch", "Job", obj)[2:4] == [completions, duration]
    assert cells("batch", "Job", obj)[5:] == ["web,log", "nginx:1.27,busybox", "job=j"]


def test_cronjob_cells():
    cj = {
        "metadata": meta("nightly"),
        "spec": {
            "schedule": "0 3 * * *",
            "timeZone": "Etc/UTC",
            "suspend": False,
            "jobTemplate": {"spec": {"template": TEMPLATE}},
        },
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(7200)},
    }
    assert [(c["name"], c["type"]) for c in render("batch", "CronJob")["columnDefinitions"]][
        :6
    ] == [
        ("Name", "string"),
        ("Schedule", "string"),
        ("Timezone", "string"),
        ("Suspend", "boolean"),
        ("Active", "integer"),
        ("Last Schedule", "string"),
    ]
    assert cells("batch", "CronJob", cj) == [
        "nightly",
        "0 3 * * *",
        "Etc/UTC",
        "False",
        1,
        "120m",
        "5m",
        "web,log",
        "nginx:1.27,busybox",
        "<none>",
    ]
    bare = {"metadata": meta("c"), "spec": {"schedule": "@hourly"}}
    assert cells("batch", "CronJob", bare)[2:6] == ["<none>", "<unset>", 0, "<none>"]


# -------------------------------------------------------------- other groups


def test_lease_pdb_priorityclass_cells():
    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "n1_abc"}}
    assert cells("coordination.k8s.io", "Lease", lease) == ["kube-scheduler", "n1_abc", "5m"]
    assert cells("coordination.k8s.io", "Lease", {"metadata": meta("l")}) == ["l", "", "5m"]

    pdb = {
        "metadata": meta("pdb"),
        "spec": {"minAvailable": 2},
        "status": {"disruptionsAllowed": 1},
    }
    assert [n for n, _ in headers("policy", "PodDisruptionBudget")] == [
        "Name",
        "Min Available",
        "Max Unavailable",
        "Allowed Disruptions",
        "Age",
    ]
    assert cells("policy", "PodDisruptionBudget", pdb) == ["pdb", "2", "N/A", 1, "5m"]
    pct = {"metadata": meta("pdb"), "spec": {"maxUnavailable": "25%"}}
    assert cells("policy", "PodDisruptionBudget", pct) == ["pdb", "N/A", "25%", 0, "5m"]

    pc = {
        "metadata": meta("high"),
        "value": 1000,
        "globalDefault": True,
        "preemptionPolicy": "Never",
    }
    assert headers("scheduling.k8s.io", "PriorityClass") == [
        ("Name", 0),
        ("Value", 0),
        ("Global-Default", 0),
        ("Age", 0),
        ("PreemptionPolicy", 0),
    ]
    assert cells("scheduling.k8s.io", "PriorityClass", pc) == ["high", 1000, True, "5m", "Never"]


def test_hpa_cells():
    hpa = {
        "metadata": meta("web"),
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "1000"},
                    },
                },
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "queue"},
                        "target": {"type": "AverageValue", "averageValue": "30"},
                    },
                },
            ],
        },
        "status": {
            "currentReplicas": 3,
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": 45}},
                },
            ],
        },
    }
    assert [n for n, _ in headers("autoscaling", "HorizontalPodAutoscaler")] == [
        "Name",
        "Reference",
        "Targets",
        "MinPods",
        "MaxPods",
        "Replicas",
        "Age",
    ]
    assert cells("autoscaling", "HorizontalPodAutoscaler", hpa) == [
        "web",
        "Deployment/web",
        "cpu: 45%/80%, <unknown>/1k + 1 more...",
        "2",
        10,
        3,
        "5m",
    ]
    hpa["spec"]["metrics"] = hpa["spec"]["metrics"][2:] + [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "memory",
                "container": "c",
                "target": {"type": "Utilization"},
            },
        }
    ]
    del hpa["spec"]["minReplicas"]
    assert cells("autoscaling", "HorizontalPodAutoscaler", hpa)[2:4] == [
        "<unknown>/30 (avg), memory: <unknown>/<auto>",
        "<unset>",
    ]
    hpa["spec"]["metrics"] = []
    assert cells("autoscaling", "HorizontalPodAutoscaler", hpa)[2] == "<none>"


def test_binding_cells():
    binding = {
        "metadata": meta("edit"),
        "roleRef": {"kind": "ClusterRole", "name": "edit", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
        ],
    }
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        assert headers("rbac.authorization.k8s.io", kind) == [
            ("Name", 0),
            ("Role", 0),
            ("Age", 0),
            ("Users", 1),
            ("Groups", 1),
            ("ServiceAccounts", 1),
        ]
        assert cells("rbac.authorization.k8s.io", kind, binding) == [
            "edit",
            "ClusterRole/edit",
            "5m",
            "alice, bob",
            "devs",
            "tools/ci",
        ]
    described = render("rbac.authorization.k8s.io", "RoleBinding")["columnDefinitions"]
    assert described[3]["description"] == "Users in the roleBinding"


@pytest.mark.parametrize(
    ("selector", "text", "formatted"),
    [
        (None, "", "<none>"),
        ({}, "", "<none>"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", "a=1,b=2"),
        (
            {
                "matchExpressions": [
                    {"key": "z", "operator": "Exists"},
                    {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
                    {"key": "gone", "operator": "DoesNotExist"},
                ]
            },
            "env notin (dev,prod),!gone,z",
            "env notin (dev,prod),!gone,z",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, None, "<error>"),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            None,
            "<error>",
        ),
    ],
)
def test_label_selectors_print_as_apimachinery_does(selector, text, formatted):
    assert selector_string(selector) == text
    assert format_label_selector(selector) == formatted


# ---------------------------------------------------------- custom resources

WIDGET = {
    "metadata": meta("w1", created=7200),
    "spec": {
        "replicas": 3,
        "ratio": 0.25,
        "size": 1.5e7,
        "paused": False,
        "labels": {"b": "<2>", "a": 1},
        "owner": None,
    },
    "status": {
        "conditions": [
            {"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True", "lastTransitionTime": ago(600)},
        ]
    },
}


def test_custom_resource_columns_from_the_crd_version():
    version = {
        "name": "v1",
        "additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {
                "name": "Ready",
                "type": "string",
                "description": "Readiness",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            },
            {
                "name": "Since",
                "type": "date",
                "jsonPath": ".status.conditions[?(@.type=='Ready')].lastTransitionTime",
            },
            {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1},
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "Labels", "type": "string", "jsonPath": ".spec.labels"},
            {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
            {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing.here"},
            {"name": "Wrong", "type": "integer", "jsonPath": ".spec.paused"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    table = tables.custom_resource_table(version, [WIDGET], "v1", include="None")
    columns = table["columnDefinitions"]
    assert columns[0] == tables.NAME
    assert columns[1] == {
        "name": "Replicas",
        "type": "integer",
        "format": "",
        "priority": 0,
        "description": "Custom resource definition column (in JSONPath format): .spec.replicas",
    }
    assert columns[2]["description"] == "Readiness" and columns[4]["priority"] == 1
    assert table["rows"] == [
        {
            "cells": [
                "w1",
                3,
                "True",
                "10m",
                0.25,
                False,
                '{"a":1,"b":"\\u003c2\\u003e"}',
                "1.5e+07",
                "<no value>",
                None,
                None,
                "120m",
            ]
        }
    ]


def test_custom_resources_without_columns_print_name_and_age():
    table = tables.custom_resource_table({"name": "v1"}, [WIDGET], "v1")
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    assert table["rows"][0]["cells"] == ["w1", "120m"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_custom_resource_columns_stop_at_an_unparsable_path():
    version = {
        "additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Bad", "type": "string", "jsonPath": ".spec[oops"},
            {"name": "Later", "type": "string", "jsonPath": ".spec.paused"},
        ]
    }
    table = tables.custom_resource_table(version, [WIDGET], "v1")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Replicas"]
    assert table["rows"][0]["cells"] == ["w1", 3]


def test_registered_custom_resources_print_their_versions_columns():
    v1 = Resource("stable.example.com", "v1", "CronTab", "crontabs", True)
    v2 = Resource("stable.example.com", "v2", "CronTab", "crontabs", True)
    spec = [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}]
    crontab = {"metadata": meta("every-minute"), "spec": {"cronSpec": "* * * * *"}}
    tables.register_custom_resource(v1, {"name": "v1", "additionalPrinterColumns": spec})
    tables.register_custom_resource(v2, {"name": "v2"})
    try:
        assert tables.table(v1, [crontab], "v1")["rows"][0]["cells"] == [
            "every-minute",
            "* * * * *",
        ]
        assert tables.table(v2, [crontab], "v1")["rows"][0]["cells"] == ["every-minute", "5m"]
    finally:
        tables.unregister_custom_resource(v1)
        tables.unregister_custom_resource(v2)
    assert tables.table(v1, [crontab], "v1")["rows"][0]["cells"] == ["every-minute", ago(300)]


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (".spec.replicas", [3]),
        ("{.spec.replicas}", [3]),
        (".items[0].name", ["a"]),
        (".items[-1].name", ["c"]),
        (".items[-2:].name", ["b", "c"]),
        (".items[0:3:2].name", ["a", "c"]),
        (".items[*].name", ["a", "b", "c"]),
        (".items[?(@.n > 1)].name", ["b", "c"]),
        (".items[?(@.n != 2)].name", ["a", "c"]),
        (".items[?(@.tag)].name", ["b"]),
        (".labels.app\\.kubernetes\\.io/name", ["web"]),
        (".labels['app.kubernetes.io/name']", ["web"]),
        ("..name", ["a", "b", "c"]),
        (".spec.*", [3]),
        (".nothing.at.all", []),
    ],
)
def test_jsonpath(path, found):
    data = {
        "spec": {"replicas": 3},
        "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2, "tag": "x"}, {"name": "c", "n": 3}],
        "labels": {"app.kubernetes.io/name": "web"},
    }
    assert compile_path(path)(data) == found


@pytest.mark.parametrize(
    ("path", "data"),
    [
        (".items[5]", {"items": [1]}),
        (".items[0]", {"items": {"a": 1}}),
        (".items[?(@.n == 'x')]", {"items": [{"n": 1}]}),
    ],
)
def test_jsonpath_errors(path, data):
    with pytest.raises(JSONPathError):
        compile_path(path)(data)


# ------------------------------------------------------- real kubectl, end to end

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # no controllers: the rows show the objects exactly as the test made them
    kubik = KubikServer(
        tmp_path_factory.mktemp("kubik-tables"),
        extra_args=["--disable-controller-manager", "--disable-scheduler"],
    ).start()
    yield kubik
    kubik.stop()


def columns_of(output: str) -> list[list[str]]:
    """kubectl's table lines split into cells (cells are at least three spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]


def test_kubectl_prints_upstream_columns(server):
    namespaces = columns_of(server.ok("get", "ns"))
    assert namespaces[0] == ["NAME", "STATUS", "AGE"]
    assert ["default", "Active"] in [row[:2] for row in namespaces[1:]]

    server.ok("create", "service", "externalname", "db", "--external-name", "db.example.com")
    services = columns_of(server.ok("get", "svc", "-A", "-o", "wide"))
    assert services[0] == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
        "SELECTOR",
    ]
    rows = {row[1]: row for row in services[1:]}
    cluster_ip = server.ok("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
    assert rows["kubernetes"][:6] == [
        "default",
        "kubernetes",
        "ClusterIP",
        cluster_ip,
        "<none>",
        "443/TCP",
    ]
    assert rows["kubernetes"][7] == "<none>"
    assert rows["db"][:6] == ["default", "db", "ExternalName", "<none>", "db.example.com", "<none>"]
    assert rows["db"][7] == "app=db"

    server.ok("create", "configmap", "settings", "--from-literal=a=1", "--from-literal=b=2")
    configmaps = columns_of(server.ok("get", "cm"))
    assert configmaps[0] == ["NAME", "DATA", "AGE"]
    assert ["settings", "2"] in [row[:2] for row in configmaps[1:]]

    server.ok("apply", "--validate=false", "-f", "-", stdin=json.dumps(DEPLOYMENT))
    deployments = columns_of(server.ok("get", "deploy"))
    assert deployments[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deployments[1][:4] == ["web", "0/2", "0", "0"]
    assert re.fullmatch(r"\d+s", deployments[1][4])
    wide = columns_of(server.ok("get", "deploy", "web", "-o", "wide"))
    assert wide[0][-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1][-3:] == ["web", "nginx:1.27", "app=web"]
