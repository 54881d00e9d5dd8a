"""A container's environment: sources, precedence, expansion and upstream's errors."""

from __future__ import annotations

import base64

import pytest

from kubik.kubelet.envvars import container_env, expand, references, service_env
from kubik.kubelet.errors import ContainerConfigError


class FakeObjects:
    def __init__(self, **objects):
        self.objects = objects  # "configmaps/name" → object
        self.reads = []

    async def get(self, resource, namespace, name):
        self.reads.append((resource, namespace, name))
        return self.objects.get(f"{resource}/{name}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_pod(container, **spec):
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "1234-5678",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": 'say "hi"\n'},
        },
        "spec": {
            "nodeName": "node-1",
            "serviceAccountName": "builder",
            "containers": [container],
            **spec,
        },
        "status": {
            "hostIP": "192.0.2.1",
            "podIP": "10.1.0.5",
            "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}],
        },
    }


def service(name, namespace, ip, ports):
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": ip, "ports": ports},
    }


KUBERNETES = service("kubernetes", "default", "10.43.0.1", [{"name": "https", "port": 443}])


async def test_values_and_expansion_refer_to_earlier_variables():
    container = {
        "name": "c",
        "env": [
            {"name": "A", "value": "one"},
            {"name": "B", "value": "$(A)-two"},
            {"name": "C", "value": "$$(A) $(MISSING) $(A"},
            {"name": "D", "value": "$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "E"},
        ],
    }
    env = dict(
        await container_env(make_pod(container), container, objects=FakeObjects(), services=[])
    )
    assert env["B"] == "one-two"
    assert env["C"] == "$(A) $(MISSING) $(A"
    assert env["D"] == "$(LATER)"  # only variables defined before are expanded
    assert env["E"] == ""


def test_expand_rules():
    env = {"X": "1", "EMPTY": ""}
    assert expand("$(X)$(X)", env) == "11"
    assert expand("$$(X)", env) == "$(X)"
    assert expand("$$$(X)", env) == "$1"
    assert expand("a$b$", env) == "a$b$"
    assert expand("$()", env) == "$()"
    assert expand("$(EMPTY)!", env) == "!"
    assert expand("--flag=$(X)", [("X", "v")]) == "--flag=v"
    assert references("$(A) $$(B) $(C") == ["A"]


async def test_field_refs():
    def ref(path):
        return {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}

    names = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "APP": "metadata.labels['app']",
        "NOTE": "metadata.annotations['note']",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "HOST_IP": "status.hostIP",
        "HOST_IPS": "status.hostIPs",
        "POD_IP": "status.podIP",
        "POD_IPS": "status.podIPs",
    }
    container = {"name": "c", "env": [{"name": k, "valueFrom": ref(v)} for k, v in names.items()]}
    env = dict(
        await container_env(make_pod(container), container, objects=FakeObjects(), services=[])
    )
    assert env == {
        "NAME": "web",
        "NS": "shop",
        "UID": "1234-5678",
        "APP": "web",
        "NOTE": 'say "hi"\n',
        "NODE": "node-1",
        "SA": "builder",
        "HOST_IP": "192.0.2.1",
        "HOST_IPS": "192.0.2.1",
        "POD_IP": "10.1.0.5",
        "POD_IPS": "10.1.0.5,fd00::5",
    }
    # the kubelet's own knowledge of the sandbox's address wins over a status not yet written
    env = dict(
        await container_env(
            make_pod(container),
            container,
            objects=FakeObjects(),
            services=[],
            pod_ips=["10.9.9.9"],
            host_ips=["198.51.100.7"],
        )
    )
    assert env["POD_IP"] == "10.9.9.9" and env["HOST_IP"] == "198.51.100.7"


async def test_resource_field_refs_with_divisors_and_allocatable_defaults():
    def ref(resource, divisor=None):
        selector = {"resource": resource}
        if divisor:
            selector["divisor"] = divisor
        return {"resourceFieldRef": selector}

    container = {
        "name": "c",
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1500m"}},
        "env": [
            {"name": "CPU_LIMIT", "valueFrom": ref("limits.cpu")},
            {"name": "CPU_LIMIT_M", "valueFrom": ref("limits.cpu", "1m")},
            {"name": "CPU_REQUEST", "valueFrom": ref("requests.cpu")},
            {"name": "MEM_REQUEST_MI", "valueFrom": ref("requests.memory", "1Mi")},
            {"name": "MEM_LIMIT", "valueFrom": ref("limits.memory")},
            {"name": "DISK_REQUEST", "valueFrom": ref("requests.ephemeral-storage")},
            {"name": "DISK_LIMIT_GI", "valueFrom": ref("limits.ephemeral-storage", "1Gi")},
        ],
    }
    allocatable = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"}
    env = dict(
        await container_env(
            make_pod(container),
            container,
            objects=FakeObjects(),
            services=[],
            allocatable=allocatable,
        )
    )
    assert env == {
        "CPU_LIMIT": "2",  # 1.5 cores, rounded up
        "CPU_LIMIT_M": "1500",
        "CPU_REQUEST": "1",
        "MEM_REQUEST_MI": "64",
        "MEM_LIMIT": str(8 * 1024**3),  # no limit: the node's allocatable
        "DISK_REQUEST": "0",
        "DISK_LIMIT_GI": "100",
    }


async def test_config_map_and_secret_keys():
    objects = FakeObjects(
        **{
            "configmaps/settings": {"data": {"mode": "fast"}},
            "secrets/creds": {"data": {"password": b64("s3cret")}},
        }
    )
    container = {
        "name": "c",
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {
                "name": "GONE",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}},
            },
            {
                "name": "NOKEY",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "x", "optional": True}},
            },
        ],
    }
    env = dict(await container_env(make_pod(container), container, objects=objects, services=[]))
    assert env == {"MODE": "fast", "PASS": "s3cret"}
    assert objects.reads.count(("secrets", "shop", "creds")) == 1  # read once per environment


@pytest.mark.parametrize(
    ("value_from", "message"),
    [
        ({"configMapKeyRef": {"name": "absent", "key": "k"}}, 'configmap "absent" not found'),
        ({"secretKeyRef": {"name": "absent", "key": "k"}}, 'secret "absent" not found'),
        (
            {"configMapKeyRef": {"name": "settings", "key": "k"}},
            "couldn't find key k in ConfigMap shop/settings",
        ),
        (
            {"secretKeyRef": {"name": "creds", "key": "k"}},
            "couldn't find key k in Secret shop/creds",
        ),
    ],
)
async def test_missing_references_are_config_errors(value_from, message):
    objects = FakeObjects(**{"configmaps/settings": {"data": {}}, "secrets/creds": {"data": {}}})
    container = {"name": "c", "env": [{"name": "X", "valueFrom": value_from}]}
    with pytest.raises(ContainerConfigError) as caught:
        await container_env(make_pod(container), container, objects=objects, services=[])
    assert caught.value.message == message


async def test_env_from_with_prefix_invalid_keys_and_precedence():
    objects = FakeObjects(
        **{
            "configmaps/base": {"data": {"HOST": "db", "PORT": "5432", "1bad": "x", "a-b.c": "ok"}},
            "secrets/creds": {"data": {"USER": b64("admin")}},
        }
    )
    warnings = []
    container = {
        "name": "c",
        "envFrom": [
            {"configMapRef": {"name": "base"}},
            {"secretRef": {"name": "creds"}, "prefix": "DB_"},
            {"configMapRef": {"name": "missing", "optional": True}},
        ],
        "env": [{"name": "PORT", "value": "6543"}, {"name": "URL", "value": "$(HOST):$(PORT)"}],
    }
    env = await container_env(
        make_pod(container),
        container,
        objects=objects,
        services=[],
        warn=lambda reason, message: warnings.append((reason, message)),
    )
    values = dict(env)
    assert values["PORT"] == "6543"  # env wins over envFrom
    assert values["URL"] == "db:6543"
    assert values["DB_USER"] == "admin"
    assert values["a-b.c"] == "ok"
    assert "1bad" not in values
    assert len(env) == len(values)  # each name once
    assert warnings == [
        (
            "InvalidEnvironmentVariableNames",
            "Keys [1bad] from the EnvFrom configMap shop/base were skipped since they are "
            "considered invalid environment variable names.",
        )
    ]
    with pytest.raises(ContainerConfigError, match='configmap "nope" not found'):
        bad = {"name": "c", "envFrom": [{"configMapRef": {"name": "nope"}}]}
        await container_env(make_pod(bad), bad, objects=objects, services=[])


def test_service_link_variables():
    services = [
        KUBERNETES,
        service(
            "redis-master",
            "shop",
            "10.43.0.11",
            [
                {"name": "redis", "port": 6379, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
        ),
        service("9lives", "shop", "10.43.0.12", [{"port": 80}]),
        service("headless", "shop", "None", [{"port": 80}]),
        service("elsewhere", "other", "10.43.0.13", [{"port": 80}]),
    ]
    env = service_env(services, "shop", enable_links=True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.43.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.43.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_PROTO"] == "tcp"
    assert env["KUBERNETES_PORT_443_TCP_PORT"] == "443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.43.0.1"
    assert env["REDIS_MASTER_SERVICE_HOST"] == "10.43.0.11"
    assert env["REDIS_MASTER_SERVICE_PORT"] == "6379"
    assert env["REDIS_MASTER_SERVICE_PORT_REDIS"] == "6379"
    assert env["REDIS_MASTER_SERVICE_PORT_DNS"] == "53"
    assert env["REDIS_MASTER_PORT"] == "tcp://10.43.0.11:6379"
    assert env["REDIS_MASTER_PORT_53_UDP"] == "udp://10.43.0.11:53"
    assert env["REDIS_MASTER_PORT_53_UDP_PROTO"] == "udp"
    assert env["_9LIVES_SERVICE_HOST"] == "10.43.0.12"
    assert not any(k.startswith(("HEADLESS_", "ELSEWHERE_")) for k in env)

    without_links = service_env(services, "shop", enable_links=False)
    assert set(without_links) == {k for k in env if k.startswith("KUBERNETES_")}


async def test_explicit_env_wins_over_service_links_and_can_use_them():
    container = {
        "name": "c",
        "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "override"},
            {
                "name": "API",
                "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)",
            },
        ],
    }
    pod = make_pod(container, enableServiceLinks=False)
    env = await container_env(pod, container, objects=FakeObjects(), services=[KUBERNETES])
    values = dict(env)
    assert values["KUBERNETES_SERVICE_HOST"] == "override"
    assert values["API"] == "https://override:443"
    assert [name for name, _ in env].count("KUBERNETES_SERVICE_HOST") == 1
    assert env[0] == ("KUBERNETES_SERVICE_HOST", "override")  # declared variables come first
