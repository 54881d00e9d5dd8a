"""Unknown fields: what a strict decoder of upstream's schemas would refuse."""

from __future__ import annotations

from kubik.api.builtin import builtin_registry
from kubik.api.fields import unknown_fields
from kubik.api.registry import Resource

REGISTRY = builtin_registry()
PODS = REGISTRY.get("", "v1", "pods")
DEPLOYMENTS = REGISTRY.get("apps", "v1", "deployments")
CRDS = REGISTRY.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def test_a_valid_object_has_none():
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a/b": "c"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    "livenessProbe": {"httpGet": {"port": "http"}},
                }
            ],
            "nodeSelector": {"disk": "ssd"},
        },
        "status": {"phase": "Pending"},
    }
    assert unknown_fields(PODS, pod) == []


def test_paths_in_document_order_with_list_indexes():
    pod = {
        "kind": "Pod",
        "foo": 1,
        "metadata": {"name": "web", "bar": True},
        "spec": {
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "y", "imagePolicy": "Always", "ports": [{"port": 80}]},
            ],
            "restartpolicy": "Never",
        },
    }
    assert unknown_fields(PODS, pod) == [
        "foo",
        "metadata.bar",
        "spec.containers[1].imagePolicy",
        "spec.containers[1].ports[0].port",
        "spec.restartpolicy",
    ]


def test_nested_templates_and_free_form_fields():
    deployment = {
        "metadata": {
            "name": "web",
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:anything": {}}}}],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "command": ["x"]}]},
                "replicas": 3,
            },
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
        },
    }
    assert unknown_fields(DEPLOYMENTS, deployment) == ["spec.template.replicas"]


def test_maps_of_schemas_and_preserved_values():
    crd = {
        "spec": {
            "group": "example.com",
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "size": 3}},
                            "default": {"anything": ["goes"]},
                        }
                    },
                }
            ],
        }
    }
    assert unknown_fields(CRDS, crd) == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.size"
    ]


def test_custom_resources_have_no_builtin_schema():
    crontabs = Resource("stable.example.com", "v1", "CronTab", "crontabs", True)
    assert unknown_fields(crontabs, {"spec": {"anything": 1}}) == []
