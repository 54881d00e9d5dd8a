"""Strategic merge patch, with cases from upstream's behaviour and what kubectl sends."""

from __future__ import annotations

import copy

import pytest

from kubik.api import errors, strategic
from kubik.api.builtin import BUILTIN
from kubik.api.patch import MalformedPatchError, PatchError
from kubik.api.registry import Resource

RESOURCES = {(r.group, r.kind): r for r in BUILTIN}
DEPLOYMENT = RESOURCES[("apps", "Deployment")]
POD = RESOURCES[("", "Pod")]
CONFIGMAP = RESOURCES[("", "ConfigMap")]


def deployment(*containers: dict, **spec) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            **spec,
            "template": {"spec": {"containers": list(containers)}},
        },
    }


def containers_of(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def patch_containers(*containers: dict, **extra) -> dict:
    return {"spec": {"template": {"spec": {"containers": list(containers), **extra}}}}


def test_maps_merge_and_null_deletes():
    result = strategic.apply(
        deployment({"name": "a", "image": "x"}),
        {"metadata": {"labels": {"tier": "fe", "app": None}}, "spec": {"replicas": 3}},
        DEPLOYMENT,
    )
    assert result["metadata"]["labels"] == {"tier": "fe"}
    assert result["spec"]["replicas"] == 3


def test_containers_merge_by_name_and_new_ones_come_first():
    current = deployment({"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y"})
    result = strategic.apply(
        current,
        patch_containers({"name": "b", "image": "z"}, {"name": "c", "image": "w"}),
        DEPLOYMENT,
    )
    # upstream orders patch items first unless the object already placed them
    assert containers_of(result) == [
        {"name": "a", "image": "x", "args": ["1"]},
        {"name": "b", "image": "z"},
        {"name": "c", "image": "w"},
    ]
    result = strategic.apply(current, patch_containers({"name": "c", "image": "w"}), DEPLOYMENT)
    assert [c["name"] for c in containers_of(result)] == ["c", "a", "b"]


def test_lists_without_a_strategy_are_replaced():
    current = deployment({"name": "a", "image": "x", "args": ["1", "2"]})
    result = strategic.apply(current, patch_containers({"name": "a", "args": ["3"]}), DEPLOYMENT)
    assert containers_of(result) == [{"name": "a", "image": "x", "args": ["3"]}]


def test_ports_merge_by_container_port():
    current = deployment(
        {"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
    )
    result = strategic.apply(
        current,
        patch_containers({"name": "a", "ports": [{"containerPort": 80, "name": "web"}]}),
        DEPLOYMENT,
    )
    assert containers_of(result)[0]["ports"] == [
        {"containerPort": 80, "name": "web"},
        {"containerPort": 443},
    ]


def test_patch_delete_directive_removes_list_items_by_key():
    current = deployment({"name": "a"}, {"name": "b"}, {"name": "c"})
    result = strategic.apply(
        current, patch_containers({"name": "b", "$patch": "delete"}), DEPLOYMENT
    )
    assert [c["name"] for c in containers_of(result)] == ["a", "c"]


def test_patch_replace_directive_in_a_list_replaces_the_list():
    current = deployment({"name": "a", "image": "x"}, {"name": "b"})
    result = strategic.apply(
        current,
        patch_containers({"name": "c", "image": "y"}, {"$patch": "replace"}),
        DEPLOYMENT,
    )
    assert containers_of(result) == [{"name": "c", "image": "y"}]


def test_patch_directives_on_maps():
    current = deployment({"name": "a"})
    current["metadata"]["annotations"] = {"x": "1", "y": "2"}
    replaced = strategic.apply(
        current, {"metadata": {"annotations": {"$patch": "replace", "z": "3"}}}, DEPLOYMENT
    )
    assert replaced["metadata"]["annotations"] == {"z": "3"}
    deleted = strategic.apply(
        current, {"metadata": {"annotations": {"$patch": "delete"}}}, DEPLOYMENT
    )
    assert deleted["metadata"]["annotations"] == {}


def test_unknown_directives_are_errors():
    with pytest.raises(PatchError, match="unknown patch type"):
        strategic.apply(deployment(), {"spec": {"$patch": "bogus"}}, DEPLOYMENT)
    with pytest.raises(PatchError, match="merging lists cannot yet be specified"):
        strategic.apply(
            deployment({"name": "a"}),
            patch_containers({"name": "a", "$patch": "merge"}),
            DEPLOYMENT,
        )


def test_retain_keys_drops_the_fields_it_does_not_name():
    current = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
    )
    result = strategic.apply(
        current,
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        DEPLOYMENT,
    )
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_name_every_field_the_patch_sets():
    with pytest.raises(MalformedPatchError, match="retainKeys"):
        strategic.apply(
            deployment(strategy={"type": "RollingUpdate"}),
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}},
            DEPLOYMENT,
        )


def test_set_element_order_orders_the_merged_list():
    current = deployment({"name": "a"}, {"name": "b"}, {"name": "c"})
    result = strategic.apply(
        current,
        patch_containers(
            {"name": "b", "image": "y"},
            **{"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]},
        ),
        DEPLOYMENT,
    )
    assert containers_of(result) == [{"name": "c"}, {"name": "b", "image": "y"}, {"name": "a"}]


def test_set_element_order_must_agree_with_the_patch_list():
    with pytest.raises(PatchError, match="doesn't match"):
        strategic.apply(
            deployment({"name": "a"}, {"name": "b"}),
            patch_containers(
                {"name": "a", "image": "x"},
                {"name": "b", "image": "y"},
                **{"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]},
            ),
            DEPLOYMENT,
        )


def test_what_kubectl_apply_sends_after_an_env_var_is_removed():
    current = deployment(
        {
            "name": "web",
            "image": "nginx:1.25",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        }
    )
    patch = {
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "B"}],
                            "env": [{"$patch": "delete", "name": "A"}],
                            "image": "nginx:1.26",
                            "name": "web",
                        }
                    ],
                }
            },
        }
    }
    result = strategic.apply(current, patch, DEPLOYMENT)
    assert containers_of(result) == [
        {"name": "web", "image": "nginx:1.26", "env": [{"name": "B", "value": "2"}]}
    ]
    assert result["spec"]["replicas"] == 3


def test_primitive_lists_with_the_merge_strategy_are_unions():
    current = deployment()
    current["metadata"]["finalizers"] = ["a", "b"]
    result = strategic.apply(current, {"metadata": {"finalizers": ["c", "a"]}}, DEPLOYMENT)
    assert result["metadata"]["finalizers"] == ["c", "a", "b"]
    result = strategic.apply(
        current,
        {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a"],
                "$setElementOrder/finalizers": ["c", "b"],
                "finalizers": ["c"],
            }
        },
        DEPLOYMENT,
    )
    assert result["metadata"]["finalizers"] == ["c", "b"]


def test_values_of_another_type_are_replaced():
    current = deployment()
    current["spec"]["paused"] = "weird"
    result = strategic.apply(current, {"spec": {"paused": {"x": 1}}}, DEPLOYMENT)
    assert result["spec"]["paused"] == {"x": 1}


def test_directives_in_fields_the_object_lacks_are_applied_not_stored():
    current = deployment({"name": "a"})
    result = strategic.apply(
        current,
        patch_containers({"name": "a", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y"}]}),
        DEPLOYMENT,
    )
    assert containers_of(result) == [{"name": "a", "env": [{"name": "Y"}]}]


def test_pod_volumes_merge_by_name():
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "c"}]},
    }
    result = strategic.apply(
        pod,
        {"spec": {"volumes": [{"name": "w", "configMap": {"name": "cm"}}]}},
        POD,
    )
    assert result["spec"]["volumes"] == [
        {"name": "w", "configMap": {"name": "cm"}},
        {"name": "v", "emptyDir": {}},
    ]


def test_inputs_are_left_alone():
    current = deployment({"name": "a"})
    patch = patch_containers({"name": "b"}, {"name": "a", "$patch": "delete"})
    before = (copy.deepcopy(current), copy.deepcopy(patch))
    strategic.apply(current, patch, DEPLOYMENT)
    assert (current, patch) == before


def test_custom_resources_have_no_strategic_merge_patch():
    crd = Resource("example.com", "v1", "Widget", "widgets", True)
    with pytest.raises(errors.APIError) as caught:
        strategic.apply({"spec": {}}, {"spec": {"a": 1}}, crd)
    assert caught.value.code == 415


def test_a_patch_must_be_an_object():
    with pytest.raises(MalformedPatchError):
        strategic.apply({"data": {}}, ["not", "a", "map"], CONFIGMAP)
