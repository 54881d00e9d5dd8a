"""Pod requests, node accounting and host ports, as upstream computes them."""

from __future__ import annotations

from kubik.scheduler.nodeinfo import (
    DEFAULT_MEMORY_REQUEST,
    NodeInfo,
    PodInfo,
    Resource,
    normalized_image,
)
from tests.scheduler.objects import container, node, pod


def test_init_containers_count_at_their_peak():
    # upstream's example: containers add up (3 CPU, 2G); the largest init container wins memory
    spec = pod(
        "p",
        containers=[
            container("c1", requests={"cpu": "2", "memory": "1G"}),
            container("c2", requests={"cpu": "1", "memory": "1G"}),
        ],
        initContainers=[
            container("i1", requests={"cpu": "2", "memory": "1G"}),
            container("i2", requests={"cpu": "2", "memory": "3G"}),
        ],
    )
    requests = PodInfo(spec).requests
    assert (requests.milli_cpu, requests.memory) == (3000, 3 * 10**9)


def test_sidecars_run_beside_later_init_containers_and_the_main_ones():
    spec = pod(
        "p",
        containers=[container("main", requests={"cpu": "1"})],
        initContainers=[
            container("sidecar", requests={"cpu": "1"}, restartPolicy="Always"),
            container("setup", requests={"cpu": "3"}),
        ],
    )
    # the setup container runs beside the sidecar (4); afterwards main + sidecar need 2
    assert PodInfo(spec).requests.milli_cpu == 4000


def test_overhead_and_pod_level_requests():
    spec = pod(
        "p",
        requests={"cpu": "500m", "memory": "1Gi"},
        overhead={"cpu": "250m"},
        resources={"requests": {"memory": "2Gi"}},
    )
    requests = PodInfo(spec).requests
    assert requests.milli_cpu == 750
    assert requests.memory == 2 * 2**30


def test_non_zero_requests_fill_in_missing_cpu_and_memory():
    info = PodInfo(pod("p", containers=[container("a"), container("b", requests={"cpu": "1"})]))
    assert info.requests.milli_cpu == 1000 and info.requests.memory == 0
    assert info.non_zero.milli_cpu == 1100
    assert info.non_zero.memory == 2 * DEFAULT_MEMORY_REQUEST


def test_extended_resources_and_rounding():
    info = PodInfo(pod("p", requests={"cpu": "0.0001", "example.com/gpu": "2", "storage": "1"}))
    assert info.requests.milli_cpu == 1  # rounded up to a millicore
    assert info.requests.scalar == {"example.com/gpu": 2}


def test_node_accounts_pods_and_their_ports():
    info = NodeInfo("n")
    info.set_node(node("n", cpu="2", extra={"example.com/gpu": "4"}))
    assert info.allocatable.milli_cpu == 2000
    assert info.allocatable.allowed_pods == 110
    assert info.allocatable.scalar == {"example.com/gpu": 4}
    web = PodInfo(
        pod(
            "web",
            containers=[
                container(
                    requests={"cpu": "500m"},
                    ports=[{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}],
                )
            ],
        )
    )
    info.add_pod(web)
    assert info.requested.milli_cpu == 500
    assert info.port_conflict(("0.0.0.0", "TCP", 8080))
    assert info.port_conflict(("10.0.0.1", "TCP", 8080))  # the pod binds every address
    assert not info.port_conflict(("0.0.0.0", "UDP", 8080))
    assert not info.port_conflict(("0.0.0.0", "TCP", 81))  # no host port
    info.remove_pod(web.key)
    assert info.requested.milli_cpu == 0
    assert not info.port_conflict(("0.0.0.0", "TCP", 8080))


def test_a_port_on_one_address_conflicts_with_the_same_port_on_any_address():
    info = NodeInfo("n")
    info.add_pod(
        PodInfo(
            pod(
                "p",
                containers=[
                    container(
                        ports=[
                            {
                                "containerPort": 53,
                                "hostPort": 53,
                                "hostIP": "10.0.0.1",
                                "protocol": "UDP",
                            }
                        ]
                    )
                ],
            )
        )
    )
    assert info.port_conflict(("0.0.0.0", "UDP", 53))
    assert info.port_conflict(("10.0.0.1", "UDP", 53))
    assert not info.port_conflict(("10.0.0.2", "UDP", 53))


def test_clone_is_independent():
    info = NodeInfo("n")
    info.set_node(node("n"))
    copy = info.clone()
    copy.add_pod(PodInfo(pod("p", requests={"cpu": "1"})))
    assert info.requested.milli_cpu == 0 and not info.pods
    assert copy.requested.milli_cpu == 1000


def test_unparsable_quantities_count_as_nothing():
    assert Resource.from_list({"cpu": "lots", "memory": "1Ki"}).memory == 1024


def test_image_names_get_the_latest_tag_when_they_have_none():
    assert normalized_image("nginx") == "nginx:latest"
    assert normalized_image("registry:5000/nginx") == "registry:5000/nginx:latest"
    assert normalized_image("nginx:1.25") == "nginx:1.25"
