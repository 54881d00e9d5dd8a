"""The OpenAPI documents: their index, caching, operations, schemas; then real kubectl."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import orjson
import pytest

from kubik.api import builtin
from kubik.api.errors import APIError
from kubik.api.registry import Resource
from kubik.apiserver.http import Request
from kubik.apiserver.openapi import PATCH_TYPES, OpenAPI, custom_schema_name
from tests.support.cluster import KubikServer, kubectl_version

CRON_TAB = Resource(
    "stable.example.com", "v1", "CronTab", "crontabs", True, subresources=("status",)
)
CRON_TAB_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "cronSpec": {"type": "string", "description": "when to run"},
                "replicas": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
            },
        }
    },
}


def get(openapi: OpenAPI, path: str, headers: dict | None = None, **query: str):
    request = Request(
        "GET", path, {k: [v] for k, v in query.items()}, headers or {}, b"", None, "127.0.0.1:1"
    )
    return openapi.serve(path, request)


def document(openapi: OpenAPI, key: str) -> dict:
    return orjson.loads(get(openapi, f"/openapi/v3/{key}").body)


@pytest.fixture
def openapi() -> OpenAPI:
    return OpenAPI(builtin.builtin_registry())


def walk(node, path=()):
    """Every (path, dict) pair in a JSON document."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))


def operations(doc: dict):
    for url, item in doc["paths"].items():
        for method in ("get", "put", "post", "patch", "delete"):
            if method in item:
                yield url, method, item[method]


# ------------------------------------------------------------------ index


def test_index_names_every_group_version_with_the_hash_of_its_document(openapi):
    index = orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    expected = {"api/v1"} | {f"apis/{r.group}/{r.version}" for r in builtin.BUILTIN if r.group}
    assert set(index) == expected
    for key, entry in index.items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{key}?hash=")
        body = get(openapi, f"/openapi/v3/{key}").body
        assert url.rsplit("=", 1)[1] == hashlib.sha512(body).hexdigest().upper()


def test_hashes_are_stable_across_renderings():
    first = get(OpenAPI(builtin.builtin_registry()), "/openapi/v3").body
    second = get(OpenAPI(builtin.builtin_registry()), "/openapi/v3").body
    assert first == second


def test_caching_headers_redirects_and_not_found(openapi):
    index = orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    current = index["apis/apps/v1"]["serverRelativeURL"].rsplit("=", 1)[1]
    path = "/openapi/v3/apis/apps/v1"

    pinned = get(openapi, path, hash=current)
    assert pinned.status == 200
    assert ("Cache-Control", "public, immutable") in pinned.headers
    assert ("ETag", f'"{current}"') in pinned.headers
    assert ("Cache-Control", "no-cache, private") in get(openapi, path).headers

    stale = get(openapi, path, hash="0BSOLETE")
    assert stale.status == 301
    assert ("Location", f"{path}?hash={current}") in stale.headers

    assert get(openapi, path, {"if-none-match": f'"{current}"'}).status == 304

    with pytest.raises(APIError) as missing:
        get(openapi, "/openapi/v3/apis/nothing.example.com/v1")
    assert missing.value.code == 404


# ------------------------------------------------------------- operations


def test_every_write_names_field_validation_and_every_patch_its_kind(openapi):
    index = orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    patches = 0
    for key in index:
        for url, method, operation in operations(document(openapi, key)):
            names = {p["name"] for p in operation["parameters"]}
            assert operation["x-kubernetes-group-version-kind"]["kind"], url
            if method in ("put", "post", "patch"):
                assert {"fieldValidation", "dryRun", "fieldManager"} <= names, (url, method)
            if method == "patch":
                patches += 1
                assert "force" in names
                assert set(operation["requestBody"]["content"]) == set(PATCH_TYPES)
    assert patches > 30


def test_pod_operations_as_upstream_names_them(openapi):
    paths = document(openapi, "api/v1")["paths"]
    pods = paths["/api/v1/namespaces/{namespace}/pods"]
    assert pods["post"]["operationId"] == "createCoreV1NamespacedPod"
    assert pods["post"]["x-kubernetes-action"] == "post"
    assert pods["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert pods["delete"]["x-kubernetes-action"] == "deletecollection"
    assert [p["name"] for p in pods["parameters"]] == ["namespace", "pretty"]

    pod = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert {m for m in pod if m != "parameters"} == {"get", "put", "patch", "delete"}
    assert pod["patch"]["operationId"] == "patchCoreV1NamespacedPod"
    assert pod["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "",
        "kind": "Pod",
        "version": "v1",
    }
    body = pod["put"]["requestBody"]["content"]["*/*"]["schema"]
    assert body == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Pod"}

    everywhere = paths["/api/v1/pods"]
    assert set(everywhere) == {"parameters", "get"}
    assert everywhere["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    listed = everywhere["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodList"}

    status = paths["/api/v1/namespaces/{namespace}/pods/{name}/status"]
    assert status["patch"]["operationId"] == "patchCoreV1NamespacedPodStatus"
    assert "/api/v1/namespaces/{namespace}/pods/{name}/log" not in paths  # a stream


def test_paths_follow_the_verbs_and_scope_of_each_resource(openapi):
    core = document(openapi, "api/v1")["paths"]
    assert set(core["/api/v1/namespaces/{namespace}/bindings"]) == {"parameters", "post"}
    assert "/api/v1/namespaces/{namespace}/bindings/{name}" not in core
    assert core["/api/v1/namespaces/{name}"]["get"]["operationId"] == "readCoreV1Namespace"
    assert "delete" not in core["/api/v1/namespaces"]  # no deletecollection of namespaces
    assert "/api/v1/namespaces/{namespace}/namespaces" not in core

    rbac = document(openapi, "apis/rbac.authorization.k8s.io/v1")["paths"]
    roles = rbac["/apis/rbac.authorization.k8s.io/v1/clusterroles"]
    assert roles["get"]["operationId"] == "listRbacAuthorizationV1ClusterRole"
    assert roles["get"]["tags"] == ["rbacAuthorization_v1"]

    apps = document(openapi, "apis/apps/v1")["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentScale"
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }


# ---------------------------------------------------------------- schemas


def test_kinds_carry_their_group_version_kind(openapi):
    pod = document(openapi, "api/v1")["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["type"] == "object"
    assert pod["properties"]["kind"] == {
        "description": pod["properties"]["kind"]["description"],
        "type": "string",
    }
    assert pod["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}
    ]
    assert pod["properties"]["spec"]["description"]

    schemas = document(openapi, "apis/apps/v1")["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]


def test_schemas_are_openapi_and_every_reference_resolves(openapi):
    index = orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    for key in index:
        doc = document(openapi, key)
        names = set(doc["components"]["schemas"])
        for where, node in walk(doc):
            ref = node.get("$ref")
            if isinstance(ref, str):
                assert ref.startswith("#/components/schemas/"), (key, where)
                assert ref.removeprefix("#/components/schemas/") in names, (key, where)
            if "type" in node and where[-1:] != ("properties",):  # not a property map
                assert isinstance(node["type"], str), (key, where)
    schemas = document(openapi, "api/v1")["components"]["schemas"]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["oneOf"] == [
        {"type": "string"},
        {"type": "integer"},
    ]
    assert "oneOf" in schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]


def test_swagger_v2_document(openapi):
    doc = orjson.loads(get(openapi, "/openapi/v2").body)
    assert doc["swagger"] == "2.0"
    assert doc["info"]["version"] == "v1.32.0"
    names = set(doc["definitions"])
    for where, node in walk(doc):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.removeprefix("#/definitions/") in names, where
        if where[-1:] != ("properties",):  # not a property map
            assert "oneOf" not in node and "allOf" not in node, where
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert patch["consumes"] == list(PATCH_TYPES)
    int_or_string = doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert (int_or_string["type"], int_or_string["format"]) == ("string", "int-or-string")
    spec = doc["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]
    assert spec["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"


# ------------------------------------------------------- custom resources


def test_custom_resources_get_documents_when_the_registry_changes():
    registry = builtin.builtin_registry()
    openapi = OpenAPI(registry)
    before = orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    registry.add(CRON_TAB)
    openapi.add_custom(CRON_TAB, CRON_TAB_SCHEMA)
    after = orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    assert set(after) - set(before) == {"apis/stable.example.com/v1"}
    assert after["api/v1"] == before["api/v1"]  # others keep their hash

    doc = document(openapi, "apis/stable.example.com/v1")
    name = custom_schema_name(CRON_TAB)
    assert name == "com.example.stable.v1.CronTab"
    schema = doc["components"]["schemas"][name]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert schema["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert schema["properties"]["spec"]["properties"]["cronSpec"]["type"] == "string"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    listing = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs"]
    assert listing["get"]["operationId"] == "listStableExampleComV1NamespacedCronTab"
    assert doc["components"]["schemas"][name + "List"]["required"] == ["items"]

    v2 = orjson.loads(get(openapi, "/openapi/v2").body)
    replicas = v2["definitions"][name]["properties"]["spec"]["properties"]["replicas"]
    assert "anyOf" not in replicas

    registry.remove("stable.example.com", "v1", "crontabs")
    assert (
        "apis/stable.example.com/v1" not in orjson.loads(get(openapi, "/openapi/v3").body)["paths"]
    )


def test_a_resource_without_a_schema_is_described_as_any_object():
    registry = builtin.builtin_registry()
    openapi = OpenAPI(registry)
    registry.add(replace(CRON_TAB, group="other.example.com"))
    doc = document(openapi, "apis/other.example.com/v1")
    schema = doc["components"]["schemas"]["com.example.other.v1.CronTab"]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    assert schema["x-kubernetes-group-version-kind"][0]["group"] == "other.example.com"


def test_invalidate_renders_again(openapi):
    index = get(openapi, "/openapi/v3").body
    openapi.invalidate()
    assert get(openapi, "/openapi/v3").body == index
    assert json.loads(index)["paths"]


# ------------------------------------------------------ real kubectl, real server

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: web
    image: kubik.local/busybox:latest
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: kubik.local/nginx:latest
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("kubik")).start()
    yield kubik
    kubik.stop()


def test_kubectl_explain(server):
    out = server.ok("explain", "pods.spec.containers")
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n")
    assert "FIELD: containers <[]Container>" in out
    assert "\n  image\t<string>\n" in out

    out = server.ok("explain", "deployment.spec.strategy")
    assert "GROUP:      apps\nKIND:       Deployment" in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out

    missing = server.kubectl("explain", "pods.spec.nothing")
    assert missing.returncode != 0
    assert 'field "nothing" does not exist' in missing.stderr


def test_kubectl_create_needs_no_validate_flag(server):
    out = server.ok("create", "-f", "-", stdin=POD.format(name="made"))
    assert out.strip() == "pod/made created"


def test_kubectl_create_rejects_unknown_fields(server):
    typo = POD.format(name="typo").replace("image:", "imagee: x\n    image:")
    failed = server.kubectl("create", "-f", "-", stdin=typo)
    assert failed.returncode != 0
    assert 'unknown field "spec.containers[0].imagee"' in failed.stderr


def test_kubectl_apply_creates_then_patches(server):
    assert server.ok("apply", "-f", "-", stdin=DEPLOYMENT).strip() == "deployment.apps/web created"
    applied = json.loads(server.ok("get", "deployment", "web", "-o", "json"))
    last = applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(last)["spec"]["replicas"] == 2

    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    assert server.ok("apply", "-f", "-", stdin=changed).strip() == "deployment.apps/web configured"
    assert server.ok("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}") == "3"


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: What to run and when.
            properties:
              cronSpec: {type: string, description: "When, in cron syntax."}
"""


def test_kubectl_explains_and_creates_custom_resources(server):
    server.ok("apply", "-f", "-", stdin=CRD)
    server.ok(
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "30s",
        "crd/crontabs.stable.example.com",
    )
    out = server.ok("explain", "crontabs.spec")
    assert "GROUP:      stable.example.com\nKIND:       CronTab" in out
    assert "What to run and when." in out
    assert "cronSpec\t<string>\n    When, in cron syntax." in out
    crontab = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: c1}\n"
    out = server.ok("create", "-f", "-", stdin=crontab + "spec: {cronSpec: '*/5 * * * *'}\n")
    assert out.strip() == "crontab.stable.example.com/c1 created"


@pytest.mark.parametrize("minor", [27, 28])
def test_old_kubectl_create_apply_explain(server, minor):
    """1.27 and 1.28 load /openapi/v2 as protobuf before create, apply and explain."""
    binary = kubectl_version(minor)
    server.ok("create", "-f", "-", stdin=POD.format(name=f"old{minor}"), binary=binary)
    server.ok("apply", "-f", "-", stdin=POD.format(name=f"applied{minor}"), binary=binary)
    assert "containers" in server.ok("explain", "pods.spec", binary=binary)
