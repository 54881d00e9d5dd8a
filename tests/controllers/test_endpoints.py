"""The endpoints and EndpointSlice controllers.

Their pure parts first (subset packing, slice reconciling), then end to end:
a real `kubik server` running just these two controllers, with the test as
the kubelet (pods bound at creation, their IPs and readiness patched in).
"""

from __future__ import annotations

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.controllers import endpoints as ep
from kubik.controllers import endpointslice as eps
from tests.support.cluster import KubikServer, free_port
from tests.support.polling import eventually

NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
SERVICES = builtin.lookup("", "v1", "services")
ENDPOINTS = builtin.lookup("", "v1", "endpoints")
SLICES = builtin.lookup("discovery.k8s.io", "v1", "endpointslices")


# ------------------------------------------------------------------ pure parts


def make_pod(name: str, ip: str, *, ready=True, ports=(), labels=None, node="n1") -> dict:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": list(ports)}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def make_service(ports, **spec) -> dict:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"a": "b"}},
        "spec": {"clusterIP": "10.43.0.10", "ipFamilies": ["IPv4"], "ports": ports, **spec},
    }


def test_addresses_with_the_same_ports_share_a_subset():
    service = make_service(
        [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "m", "port": 9, "targetPort": 9},
        ]
    )
    pods = [
        make_pod("a", "10.0.0.2", ports=[{"name": "web", "containerPort": 8080}]),
        make_pod("b", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}], ready=False),
        make_pod("c", "10.0.0.3", ports=[{"name": "web", "containerPort": 8081}]),
        make_pod("d", "10.0.0.4", ports=[]),  # no port named web: only the numeric one
    ]
    subsets = ep.build_subsets(service, pods)

    def shape(subset):
        return (
            sorted(a["ip"] for a in subset.get("addresses") or []),
            sorted(a["ip"] for a in subset.get("notReadyAddresses") or []),
            sorted((p["name"], p["port"]) for p in subset["ports"]),
        )

    assert sorted(map(shape, subsets)) == [
        (["10.0.0.2"], ["10.0.0.1"], [("http", 8080)]),
        (["10.0.0.2", "10.0.0.3", "10.0.0.4"], ["10.0.0.1"], [("m", 9)]),
        (["10.0.0.3"], [], [("http", 8081)]),
    ]
    address = next(a for s in subsets for a in s.get("addresses") or [] if a["ip"] == "10.0.0.2")
    assert address == {
        "ip": "10.0.0.2",
        "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
    }


def test_pods_that_ended_or_have_no_ip_are_no_endpoints():
    service = make_service([{"port": 80, "targetPort": 80}])
    done = make_pod("done", "10.0.0.1")
    done["status"]["phase"] = "Succeeded"
    no_ip = make_pod("new", "")
    assert ep.build_subsets(service, [done, no_ip]) == []


def test_a_headless_service_without_ports_lists_bare_addresses():
    service = make_service([], clusterIP="None")
    subsets = ep.build_subsets(service, [make_pod("a", "10.0.0.1")])
    assert [[a["ip"] for a in s["addresses"]] for s in subsets] == [["10.0.0.1"]]
    assert "ports" not in subsets[0]


def many_pods(count: int, start: int = 0) -> list[dict]:
    return [make_pod(f"p{i:03}", f"10.1.{i // 200}.{i % 200 + 1}") for i in range(start, count)]


def as_stored(plan: eps.Plan, existing: list[dict]) -> list[dict]:
    """The slices after the plan is carried out, named as the server would name them."""
    gone = {s["metadata"]["name"] for s in plan.delete}
    updated = {s["metadata"]["name"]: s for s in plan.update}
    slices = [updated.get(s["metadata"]["name"], s) for s in existing]
    slices = [s for s in slices if s["metadata"]["name"] not in gone]
    for number, created in enumerate(plan.create):
        created["metadata"]["name"] = f"web-{len(existing)}-{number}"
        slices.append(created)
    return slices


def test_slices_hold_at_most_100_endpoints_and_change_in_place():
    service = make_service([{"name": "http", "port": 80, "targetPort": 80}])
    nodes = {"n1": {"metadata": {"name": "n1", "labels": {eps.ZONE: "z1"}}}}.get
    plan = eps.reconcile(service, many_pods(250), nodes, [])
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]
    assert not plan.update and not plan.delete
    first = plan.create[0]
    assert first["metadata"]["labels"] == {
        "a": "b",
        eps.SERVICE_NAME: "web",
        eps.MANAGED_BY: eps.CONTROLLER_NAME,
    }
    assert first["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert first["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert first["endpoints"][0]["zone"] == "z1"
    slices = as_stored(plan, [])

    # nothing changed: nothing to do
    again = eps.reconcile(service, many_pods(250), nodes, slices)
    assert not again.create and not again.update and not again.delete

    # ten pods go, five come: the five fill the slice that lost endpoints, no new slice
    pods = many_pods(250)[10:] + many_pods(255, 250)
    plan = eps.reconcile(service, pods, nodes, slices)
    assert not plan.create and not plan.delete
    assert len(plan.update) == 1
    slices = as_stored(plan, slices)
    counted = sorted(e["targetRef"]["name"] for s in slices for e in s["endpoints"])
    assert counted == sorted(p["metadata"]["name"] for p in pods)
    assert max(len(s["endpoints"]) for s in slices) <= 100

    # one pod turns not ready: only its slice is updated, and the endpoint stays in place
    pods[0]["status"]["conditions"][0]["status"] = "False"
    plan = eps.reconcile(service, pods, nodes, slices)
    assert len(plan.update) == 1 and not plan.create and not plan.delete
    changed = [e for e in plan.update[0]["endpoints"] if e["targetRef"]["name"] == "p010"]
    assert changed[0]["conditions"] == {"ready": False, "serving": False, "terminating": False}


def test_a_service_without_endpoints_keeps_one_placeholder():
    service = make_service([{"name": "http", "port": 80, "targetPort": 80}])
    plan = eps.reconcile(service, [], {}.get, [])
    assert len(plan.create) == 1
    placeholder = plan.create[0]
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    slices = as_stored(plan, [])
    again = eps.reconcile(service, [], {}.get, slices)
    assert not again.create and not again.update and not again.delete

    # the first pod reuses the placeholder instead of a delete and a create
    nodes = {"n1": {"metadata": {"name": "n1"}}}.get
    plan = eps.reconcile(service, many_pods(1), nodes, slices)
    assert not plan.create and not plan.delete
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert len(plan.update[0]["endpoints"]) == 1


def test_pods_on_unknown_nodes_are_left_out_and_reported():
    service = make_service([{"port": 80, "targetPort": 80}])
    plan = eps.reconcile(service, many_pods(2), {}.get, [])
    assert plan.nodeless == ["p000", "p001"]
    assert [s["endpoints"] for s in plan.create] == [[]]


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("endpoints"),
        extra_args=[
            "--controllers",
            "endpoint,endpointslice",
            "--controller-metrics-address",
            f"127.0.0.1:{free_port()}",
        ],
    ).start()
    yield kubik
    kubik.stop()


async def ensure_node(client: Client, name: str, zone: str) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {eps.ZONE: zone}},
    }
    try:
        await client.create(NODES, node)
    except ApiError as exc:
        if not exc.already_exists:
            raise


async def create_pod(client: Client, namespace: str, name: str, app: str, port: int) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {
            "nodeName": "n1",
            "containers": [
                {"name": "c", "image": "nginx", "ports": [{"name": "web", "containerPort": port}]}
            ],
        },
    }
    await client.create(PODS, pod)


async def set_pod(client: Client, namespace: str, name: str, ip: str, ready: bool) -> None:
    """What the kubelet reports: running, the pod's IP, and its readiness."""
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }
    await client.patch(PODS, namespace, name, status, subresource="status")


async def create_service(client: Client, namespace: str, name: str, **spec) -> dict:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"tier": "front"}},
        "spec": {
            "selector": {"app": name},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web"},
                {"name": "admin", "port": 9000, "targetPort": 9000},
            ],
            **spec,
        },
    }
    return await client.create(SERVICES, service)


async def endpoints_of(client: Client, namespace: str, name: str) -> dict | None:
    try:
        return await client.get(ENDPOINTS, namespace, name)
    except ApiError as exc:
        if exc.not_found:
            return None
        raise


async def slices_of(client: Client, namespace: str, name: str) -> list[dict]:
    listing = await client.list(SLICES, namespace, label_selector=f"{eps.SERVICE_NAME}={name}")
    return listing["items"]


def addresses(endpoints: dict | None) -> set[tuple[str, str, int]]:
    """(ready | notReady, ip, port) of every address and port of an Endpoints object."""
    found = set()
    for subset in (endpoints or {}).get("subsets") or []:
        for field, state in (("addresses", "ready"), ("notReadyAddresses", "notReady")):
            for address in subset.get(field) or []:
                for port in subset.get("ports") or []:
                    found.add((state, address["ip"], port["port"]))
    return found


def slice_endpoints(slices: list[dict]) -> dict[str, tuple]:
    """pod name → (ready, serving, terminating, ports) over all slices."""
    found = {}
    for slice_ in slices:
        ports = tuple(sorted(p["port"] for p in slice_.get("ports") or []))
        for endpoint in slice_.get("endpoints") or []:
            conditions = endpoint["conditions"]
            found[endpoint["targetRef"]["name"]] = (
                conditions["ready"],
                conditions["serving"],
                conditions["terminating"],
                ports,
            )
    return found


async def test_endpoints_and_slices_follow_pod_readiness(client):
    await ensure_node(client, "n1", "zone-a")
    service = await create_service(client, "default", "web")
    await create_pod(client, "default", "web-1", "web", 8080)
    await create_pod(client, "default", "web-2", "web", 8081)
    await set_pod(client, "default", "web-1", "10.42.0.5", ready=True)
    await set_pod(client, "default", "web-2", "10.42.0.6", ready=False)

    first = {
        ("ready", "10.42.0.5", 8080),
        ("ready", "10.42.0.5", 9000),
        ("notReady", "10.42.0.6", 8081),
        ("notReady", "10.42.0.6", 9000),
    }

    async def endpoints_are(wanted):
        endpoints = await endpoints_of(client, "default", "web")
        return endpoints if addresses(endpoints) == wanted else None

    endpoints = await eventually(lambda: endpoints_are(first), "the first endpoints")
    assert endpoints["metadata"]["labels"] == {"tier": "front"}
    ready = [a for s in endpoints["subsets"] for a in s.get("addresses") or []]
    assert ready[0]["nodeName"] == "n1"
    assert ready[0]["targetRef"]["kind"] == "Pod" and ready[0]["targetRef"]["name"] == "web-1"
    assert ready[0]["targetRef"]["uid"]

    async def slices_are(wanted):
        slices = await slices_of(client, "default", "web")
        return slices if slice_endpoints(slices) == wanted else None

    slices = await eventually(
        lambda: slices_are(
            {
                "web-1": (True, True, False, (8080, 9000)),
                "web-2": (False, False, False, (8081, 9000)),
            }
        ),
        "the first slices",
    )
    assert len(slices) == 2  # the pods' named ports differ: one slice per port set
    for slice_ in slices:
        assert slice_["addressType"] == "IPv4"
        assert slice_["metadata"]["labels"] == {
            "tier": "front",
            eps.SERVICE_NAME: "web",
            eps.MANAGED_BY: eps.CONTROLLER_NAME,
        }
        owner = slice_["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "Service",
            service["metadata"]["uid"],
            True,
        )
        endpoint = slice_["endpoints"][0]
        assert endpoint["nodeName"] == "n1" and endpoint["zone"] == "zone-a"
        assert endpoint["addresses"] in (["10.42.0.5"], ["10.42.0.6"])

    await set_pod(client, "default", "web-2", "10.42.0.6", ready=True)
    await set_pod(client, "default", "web-1", "10.42.0.5", ready=False)
    second = {
        ("notReady", "10.42.0.5", 8080),
        ("notReady", "10.42.0.5", 9000),
        ("ready", "10.42.0.6", 8081),
        ("ready", "10.42.0.6", 9000),
    }
    await eventually(lambda: endpoints_are(second), "the endpoints after readiness flipped")
    await eventually(
        lambda: slices_are(
            {
                "web-1": (False, False, False, (8080, 9000)),
                "web-2": (True, True, False, (8081, 9000)),
            }
        ),
        "the slices after readiness flipped",
    )


async def test_a_terminating_pod_leaves_the_endpoints_and_is_marked_in_slices(client):
    await ensure_node(client, "n1", "zone-a")
    await create_service(client, "default", "term")
    await create_pod(client, "default", "term-1", "term", 8080)
    await set_pod(client, "default", "term-1", "10.42.1.5", ready=True)

    async def listed():
        return addresses(await endpoints_of(client, "default", "term"))

    await eventually(listed, "the pod in the endpoints")
    # bound to a node, the pod is deleted gracefully: it stays, terminating
    await client.delete(PODS, "default", "term-1", grace_period=30)

    async def gone_from_endpoints():
        endpoints = await endpoints_of(client, "default", "term")
        return endpoints is not None and not addresses(endpoints)

    await eventually(gone_from_endpoints, "the terminating pod to leave the endpoints")

    async def terminating_in_slices():
        found = slice_endpoints(await slices_of(client, "default", "term"))
        return found.get("term-1") == (False, True, True, (8080, 9000))

    await eventually(terminating_in_slices, "the slice endpoint to be terminating")


async def test_publish_not_ready_addresses(client):
    await ensure_node(client, "n1", "zone-a")
    await create_service(client, "default", "eager", publishNotReadyAddresses=True)
    await create_pod(client, "default", "eager-1", "eager", 8080)
    await set_pod(client, "default", "eager-1", "10.42.2.5", ready=False)

    async def published():
        return addresses(await endpoints_of(client, "default", "eager")) == {
            ("ready", "10.42.2.5", 8080),
            ("ready", "10.42.2.5", 9000),
        }

    await eventually(published, "the not-ready pod among the ready addresses")

    async def ready_in_slices():
        found = slice_endpoints(await slices_of(client, "default", "eager"))
        return found.get("eager-1") == (True, False, False, (8080, 9000))

    await eventually(ready_in_slices, "the not-ready pod to be ready in slices")


async def test_a_new_service_without_pods_gets_empty_endpoints_and_a_placeholder_slice(client):
    service = await create_service(client, "default", "lonely")

    async def written():
        return await endpoints_of(client, "default", "lonely")

    endpoints = await eventually(written, "the endpoints of a service without pods")
    assert "subsets" not in endpoints
    annotations = endpoints["metadata"]["annotations"]
    # first written for the service's creation
    assert annotations[ep.TRIGGER_TIME] == service["metadata"]["creationTimestamp"]

    async def placeholder():
        return await slices_of(client, "default", "lonely")

    slices = await eventually(placeholder, "the placeholder slice")
    assert len(slices) == 1
    assert not slices[0]["endpoints"] and not slices[0].get("ports")
    assert slices[0]["metadata"]["annotations"][ep.TRIGGER_TIME] == annotations[ep.TRIGGER_TIME]


async def test_services_without_selector_are_left_alone_and_deleted_services_cleaned_up(client):
    manual = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "external", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    }
    await client.create(SERVICES, manual)
    own = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "external", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}],
    }
    written = await client.create(ENDPOINTS, own)
    await create_service(client, "default", "doomed")

    async def doomed_written():
        endpoints = await endpoints_of(client, "default", "doomed")
        slices = await slices_of(client, "default", "doomed")
        return endpoints is not None and slices

    await eventually(doomed_written, "the endpoints of a service with a selector")
    # the controllers are running, and the selector-less service's endpoints are as written
    kept = await endpoints_of(client, "default", "external")
    assert kept["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert await slices_of(client, "default", "external") == []

    await client.delete(SERVICES, "default", "doomed")

    async def cleaned_up():
        endpoints = await endpoints_of(client, "default", "doomed")
        return endpoints is None and not await slices_of(client, "default", "doomed")

    await eventually(cleaned_up, "the endpoints and slices of the deleted service to go")
