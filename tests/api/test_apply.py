"""Server-side apply: merging, ownership, removal of unapplied fields, conflicts."""

from __future__ import annotations

import copy
import json

import pytest

from kubik.api import apply, errors, fieldmanager
from kubik.api.builtin import BUILTIN

RESOURCES = {(r.group, r.kind): r for r in BUILTIN}
DEPLOYMENT = RESOURCES[("apps", "Deployment")]
CONFIGMAP = RESOURCES[("", "ConfigMap")]
POD = RESOURCES[("", "Pod")]

CONTAINERS = ("f:spec", "f:template", "f:spec", "f:containers")


def config(replicas=2, labels=None, containers=None) -> dict:
    """What `kubectl apply --server-side` sends for a small Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers or [{"name": "web", "image": "nginx"}]},
            },
        },
    }


def run(live, applied, manager="kubectl", force=False, resource=DEPLOYMENT) -> dict:
    return apply.apply(live, applied, manager=manager, force=force, resource=resource)


def owners(obj: dict) -> dict[str, set]:
    entries = fieldmanager.decode(obj["metadata"].get("managedFields", []))
    return {e.manager: e.fields for e in entries}


def update(obj: dict, change, manager: str) -> dict:
    new = copy.deepcopy(obj)
    change(new)
    fieldmanager.record(new, obj, manager=manager, operation="Update")
    return new


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_apply_creates_the_object_and_owns_what_it_applied():
    obj = run(None, config())
    assert {k: v for k, v in obj.items() if k != "metadata"} == {
        k: v for k, v in config().items() if k != "metadata"
    }
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (
        "kubectl",
        "Apply",
        "apps/v1",
    )
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}},
                    }
                },
            },
        },
    }


def test_fields_left_out_of_the_next_apply_are_removed():
    first = run(
        None,
        config(
            labels={"app": "web", "tier": "fe"},
            containers=[
                {"name": "web", "image": "nginx", "env": [{"name": "A"}, {"name": "B"}]},
                {"name": "side", "image": "busybox"},
            ],
        ),
    )
    second = run(
        first,
        config(containers=[{"name": "web", "image": "nginx", "env": [{"name": "B"}]}]),
    )
    assert second["metadata"]["labels"] == {"app": "web"}
    assert containers(second) == [{"name": "web", "image": "nginx", "env": [{"name": "B"}]}]
    third = run(second, config())
    assert containers(third) == [{"name": "web", "image": "nginx"}]


def test_fields_another_manager_owns_stay_when_the_applier_lets_go():
    first = run(None, config(labels={"app": "web", "tier": "fe"}))
    shared = update(first, lambda o: o["metadata"]["labels"].update(tier="be"), "labeller")
    result = run(shared, config())
    assert result["metadata"]["labels"] == {"app": "web", "tier": "be"}
    assert owners(result)["labeller"] == {("f:metadata", "f:labels", "f:tier")}


def test_fields_the_applier_never_applied_stay():
    first = run(None, config())
    edited = update(first, lambda o: o["spec"].update(paused=True), "kubectl-edit")
    assert run(edited, config(replicas=3))["spec"]["paused"] is True


def test_changing_a_field_another_manager_owns_is_a_conflict():
    first = run(None, config())
    scaled = update(first, lambda o: o["spec"].update(replicas=5), "kubectl-scale")
    with pytest.raises(errors.APIError) as caught:
        run(scaled, config(replicas=2))
    error = caught.value
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    )
    assert error.details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-scale" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }


def test_several_conflicts_are_listed_by_manager():
    first = run(None, config())

    def edit(o):
        o["spec"]["replicas"] = 5
        containers(o)[0]["image"] = "httpd"

    edited = update(first, edit, "kubectl-edit")
    other = run(edited, {**config(), "spec": {"paused": True}}, manager="other")
    with pytest.raises(errors.APIError) as caught:
        run(other, {**config(), "spec": {**config()["spec"], "paused": False}})
    assert caught.value.message == (
        "Apply failed with 3 conflicts: "
        'conflicts with "kubectl-edit" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image\n'
        'conflicts with "other":\n'
        "- .spec.paused"
    )
    assert [c["field"] for c in caught.value.details["causes"]] == [
        ".spec.replicas",
        '.spec.template.spec.containers[name="web"].image',
        ".spec.paused",
    ]


def test_force_takes_the_fields_over():
    first = run(None, config())
    scaled = update(first, lambda o: o["spec"].update(replicas=5), "kubectl-scale")
    result = run(scaled, config(replicas=2), force=True)
    assert result["spec"]["replicas"] == 2
    assert set(owners(result)) == {"kubectl"}
    assert ("f:spec", "f:replicas") in owners(result)["kubectl"]


def test_applying_the_value_another_manager_set_shares_the_field():
    first = run(None, config())
    scaled = update(first, lambda o: o["spec"].update(replicas=5), "kubectl-scale")
    result = run(scaled, config(replicas=5))
    assert ("f:spec", "f:replicas") in owners(result)["kubectl"]
    assert ("f:spec", "f:replicas") in owners(result)["kubectl-scale"]


def test_reapplying_the_same_configuration_changes_nothing():
    first = run(None, config())
    assert run(first, config()) == first


def test_objects_nobody_owns_fields_of_are_owned_before_the_first_apply():
    live = config(replicas=5)
    with pytest.raises(errors.APIError) as caught:
        run(live, config(replicas=2))
    assert "before-first-apply" in caught.value.message
    result = run(live, config(replicas=5, labels={"app": "web", "x": "y"}))
    assert set(owners(result)) == {"kubectl", "before-first-apply"}


def test_list_items_are_merged_in_upstreams_order():
    live = run(None, config(containers=[{"name": n} for n in "abc"]), manager="first")
    result = run(live, config(containers=[{"name": "c"}, {"name": "a", "image": "x"}]))
    assert containers(result) == [{"name": "b"}, {"name": "c"}, {"name": "a", "image": "x"}]


def test_sets_merge_as_unions_and_lose_only_what_the_applier_set():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}}
    live = run(None, cm, manager="other", resource=CONFIGMAP)
    mine = copy.deepcopy(cm)
    mine["metadata"]["finalizers"] = ["b"]
    merged = run(live, mine, resource=CONFIGMAP)
    assert merged["metadata"]["finalizers"] == ["a", "b"]
    assert ("f:metadata", "f:finalizers", 'v:"b"') in owners(merged)["kubectl"]
    mine["metadata"].pop("finalizers")
    assert run(merged, mine, resource=CONFIGMAP)["metadata"]["finalizers"] == ["a"]


def test_status_of_kinds_with_a_status_subresource_is_not_owned():
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"},
    }
    assert not any(
        path[0] == "f:status" for path in owners(run(None, pod, resource=POD))["kubectl"]
    )


def test_undeclared_fields_are_refused_as_upstream_refuses_them():
    applied = config()
    applied["spec"]["replicaz"] = 2
    with pytest.raises(errors.APIError) as caught:
        run(None, applied)
    assert caught.value.code == 500
    assert caught.value.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        ".spec.replicaz: field not declared in schema"
    )


def test_duplicate_and_keyless_list_items_are_refused():
    applied = config(containers=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(errors.APIError, match=r'duplicate entries for key \[name="a"\]'):
        run(None, applied)
    applied = config(containers=[{"image": "x"}])
    with pytest.raises(errors.APIError, match='omits key field "name"'):
        run(None, applied)


def test_an_applied_configuration_may_not_carry_managed_fields():
    applied = config()
    applied["metadata"]["managedFields"] = []
    with pytest.raises(errors.APIError) as caught:
        run(None, applied)
    assert (caught.value.code, caught.value.message) == (400, "metadata.managedFields must be nil")


def test_inputs_are_left_alone():
    live = run(None, config())
    before = copy.deepcopy(live)
    applied = config(replicas=4)
    run(live, applied)
    assert live == before
    assert applied == config(replicas=4)


# ------------------------------------------------- from client-side apply


def client_side_applied(replicas: int) -> dict:
    """An object `kubectl apply` (client-side) created: annotated, owned by its manager."""
    obj = config(replicas=replicas)
    obj["metadata"]["annotations"] = {
        apply.LAST_APPLIED: json.dumps(config(replicas=replicas)) + "\n"
    }
    fieldmanager.record(obj, None, manager="kubectl-client-side-apply", operation="Update")
    return obj


def test_kubectl_takes_over_what_client_side_apply_set_without_conflicts():
    result = run(client_side_applied(2), config(replicas=3))
    assert result["spec"]["replicas"] == 3
    assert ("f:spec", "f:replicas") in owners(result)["kubectl"]


def test_other_managers_do_not_get_that_help():
    with pytest.raises(errors.APIError) as caught:
        run(client_side_applied(2), config(replicas=3), manager="my-tool")
    assert '"kubectl-client-side-apply" using apps/v1' in caught.value.message


def test_fields_changed_since_the_last_client_side_apply_still_conflict():
    live = update(
        client_side_applied(2), lambda o: o["spec"].update(replicas=7), "kubectl-client-side-apply"
    )
    with pytest.raises(errors.APIError) as caught:
        run(live, config(replicas=3))
    assert caught.value.message == (
        "Apply failed with 1 conflict: "
        'conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )


def test_kubectl_keeps_the_last_applied_annotation_up_to_date():
    result = run(client_side_applied(2), config(replicas=3))
    annotation = result["metadata"]["annotations"][apply.LAST_APPLIED]
    assert annotation.endswith("\n")
    assert json.loads(annotation) == config(replicas=3)
    assert apply.LAST_APPLIED not in run(None, config()).get("metadata", {}).get("annotations", {})
