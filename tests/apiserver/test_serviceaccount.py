"""API access for pods against a real `kubik server`: the ServiceAccount admission's token
volume, and the root CA publisher's `kube-root-ca.crt` in every namespace."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from kubik.api import builtin
from kubik.apiserver.admission import serviceaccount
from kubik.client.api import ApiError
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

PODS = builtin.lookup("", "v1", "pods")
CONFIG_MAPS = builtin.lookup("", "v1", "configmaps")
SERVICE_ACCOUNTS = builtin.lookup("", "v1", "serviceaccounts")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("serviceaccount"),
        extra_args=["--controllers", "root-ca-cert-publisher", "--disable-scheduler"],
    ).start()
    yield kubik
    kubik.stop()


def pod(name: str, **spec) -> dict:
    spec.setdefault("containers", [{"name": "main", "image": "busybox"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def token_volumes(created: dict) -> list[dict]:
    return [
        v
        for v in created["spec"].get("volumes") or []
        if v["name"].startswith(serviceaccount.VOLUME_PREFIX)
    ]


async def test_pods_get_the_default_account_and_its_token_volume(client, namespace):
    spec = {
        "initContainers": [{"name": "setup", "image": "busybox"}],
        "containers": [
            {"name": "main", "image": "busybox"},
            {
                "name": "own",
                "image": "busybox",
                "volumeMounts": [{"name": "mine", "mountPath": serviceaccount.MOUNT_PATH}],
            },
        ],
        "volumes": [{"name": "mine", "emptyDir": {}}],
    }
    created = await client.create(PODS, pod("web", **spec), namespace=namespace)
    assert created["spec"]["serviceAccountName"] == "default"
    (volume,) = token_volumes(created)
    assert len(volume["name"]) == len(serviceaccount.VOLUME_PREFIX) + 5
    assert volume["projected"] == {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }
    mount = {"name": volume["name"], "readOnly": True, "mountPath": serviceaccount.MOUNT_PATH}
    containers = {c["name"]: c for c in created["spec"]["containers"]}
    assert created["spec"]["initContainers"][0]["volumeMounts"] == [mount]
    assert containers["main"]["volumeMounts"] == [mount]
    assert containers["own"]["volumeMounts"] == spec["containers"][1]["volumeMounts"]


async def test_automount_is_the_pods_choice_then_the_accounts(client, namespace):
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "quiet"},
        "automountServiceAccountToken": False,
        "imagePullSecrets": [{"name": "registry"}],
    }
    await client.create(SERVICE_ACCOUNTS, account, namespace=namespace)

    off = await client.create(
        PODS, pod("off", automountServiceAccountToken=False), namespace=namespace
    )
    assert token_volumes(off) == []
    assert "volumeMounts" not in off["spec"]["containers"][0]

    quiet = await client.create(PODS, pod("quiet", serviceAccountName="quiet"), namespace=namespace)
    assert token_volumes(quiet) == []
    assert quiet["spec"]["imagePullSecrets"] == [{"name": "registry"}]

    loud = await client.create(
        PODS,
        pod("loud", serviceAccountName="quiet", automountServiceAccountToken=True),
        namespace=namespace,
    )
    assert len(token_volumes(loud)) == 1


def cluster_ca(kubeconfig: str) -> str:
    with open(kubeconfig) as handle:
        config = yaml.safe_load(handle)
    return base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()


async def test_every_namespace_gets_the_cluster_ca(server, client, namespace):
    ca = cluster_ca(server.kubeconfig)
    assert ca.startswith("-----BEGIN CERTIFICATE-----")

    async def published():
        try:
            return await client.get(CONFIG_MAPS, namespace, "kube-root-ca.crt")
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    config_map = await eventually(published, "kube-root-ca.crt in the new namespace")
    assert config_map["data"] == {"ca.crt": ca}
    assert "kube-apiserver" in config_map["metadata"]["annotations"]["kubernetes.io/description"]

    config_map["data"] = {"ca.crt": "tampered"}
    await client.update(CONFIG_MAPS, config_map)

    async def restored():
        current = await published()
        return current and current["data"] == {"ca.crt": ca}

    await eventually(restored, "the CA to be put back")
    await client.delete(CONFIG_MAPS, namespace, "kube-root-ca.crt")
    await eventually(restored, "the deleted ConfigMap to be made again")


async def test_the_token_volume_belongs_to_no_manager(server, client, namespace):
    """managedFields come from the request, before mutating admission (as upstream): the
    creator owns what it sent, with defaults, but not the token volume and mounts admission
    added; so a server-side apply of the same manifest again keeps them."""
    for name, verb in (("created", ["create"]), ("applied", ["apply", "--server-side"])):
        manifest = pod(name)
        manifest["metadata"]["namespace"] = namespace
        server.ok(*verb, "-f", "-", stdin=json.dumps(manifest))
        stored = await client.get(PODS, namespace, name)
        (volume,) = token_volumes(stored)
        owned = json.dumps(stored["metadata"]["managedFields"])
        assert '"f:containers"' in owned
        assert '"f:image"' in owned
        for admitted in ("f:volumes", "f:volumeMounts", volume["name"]):
            assert admitted not in owned, (name, admitted)
    server.ok("apply", "--server-side", "-f", "-", stdin=json.dumps(manifest))
    again = await client.get(PODS, namespace, "applied")
    assert token_volumes(again) == token_volumes(stored)
    assert again["spec"]["containers"] == stored["spec"]["containers"]
