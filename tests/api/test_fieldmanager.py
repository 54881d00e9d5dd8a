"""managedFields on create, update and patch; FieldsV1 sets and their spelling."""

from __future__ import annotations

import copy

import pytest

from kubik.api import fieldmanager, fieldpath
from kubik.api.fieldmanager import Entry


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "1234",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }


def created(manager: str = "kubectl-create") -> dict:
    obj = deployment()
    fieldmanager.record(obj, None, manager=manager, operation="Update")
    return obj


def updated(old: dict, change, manager: str, **kwargs) -> dict:
    new = copy.deepcopy(old)
    change(new)
    fieldmanager.record(new, old, manager=manager, operation="Update", **kwargs)
    return new


def owners(obj: dict) -> dict[str, set]:
    return {e.manager: e.fields for e in fieldmanager.decode(obj["metadata"]["managedFields"])}


CONTAINER = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}')


def test_create_gives_every_field_to_the_creator_as_upstream_spells_it():
    obj = created()
    (entry,) = obj["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "time"} == {
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"web"}': {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {
                                    ".": {},
                                    'k:{"containerPort":80,"protocol":"TCP"}': {
                                        ".": {},
                                        "f:containerPort": {},
                                    },
                                },
                            }
                        }
                    },
                },
            },
        },
    }
    assert entry["time"].endswith("Z")


def test_an_update_takes_the_fields_it_changes_from_their_owner():
    obj = updated(
        created(), lambda o: o["spec"].update(replicas=3), manager="kube-controller-manager"
    )
    fields = owners(obj)
    assert fields["kube-controller-manager"] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in fields["kubectl-create"]
    assert (*CONTAINER, "f:image") in fields["kubectl-create"]


def test_removed_fields_leave_every_owner_and_empty_entries_go():
    obj = updated(created(), lambda o: o["spec"].update(replicas=3), manager="scaler")
    obj = updated(obj, lambda o: o["spec"].pop("replicas"), manager="someone")
    assert set(owners(obj)) == {"kubectl-create"}
    assert ("f:spec", "f:replicas") not in owners(obj)["kubectl-create"]


def test_a_write_that_changes_nothing_leaves_managed_fields_alone():
    obj = created()
    again = updated(obj, lambda o: None, manager="kubectl-edit")
    assert again["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_list_items_are_owned_by_key():
    def add_env(o):
        o["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]

    fields = owners(updated(created(), add_env, manager="kubectl-set"))
    assert fields["kubectl-set"] == {
        (*CONTAINER, "f:env"),
        (*CONTAINER, "f:env", 'k:{"name":"A"}'),
        (*CONTAINER, "f:env", 'k:{"name":"A"}', "f:name"),
        (*CONTAINER, "f:env", 'k:{"name":"A"}', "f:value"),
    }


def test_status_is_owned_only_through_the_status_subresource():
    def set_status(o):
        o["status"] = {"replicas": 1}

    assert "kubectl" not in owners(updated(created(), set_status, manager="kubectl"))
    by_status = updated(created(), set_status, manager="controller", subresource="status")
    (entry,) = [e for e in by_status["metadata"]["managedFields"] if e["manager"] == "controller"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_managed_fields_the_client_sends_are_used():
    old = created()
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    fieldmanager.record(new, old, manager="kubectl-edit", operation="Update")
    assert set(owners(new)) == {"renamed"}


@pytest.mark.parametrize("sent", [[], [{}]])
def test_sending_empty_managed_fields_resets_them(sent):
    old = created()
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"] = sent
    fieldmanager.record(new, old, manager="kubectl-patch", operation="Update")
    assert "managedFields" not in new["metadata"]


def test_managed_fields_that_do_not_decode_are_replaced_by_the_stored_ones():
    old = created()
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"] = [{"manager": "x", "operation": "Bogus"}]
    fieldmanager.record(new, old, manager="kubectl-edit", operation="Update")
    assert new["metadata"]["managedFields"] == old["metadata"]["managedFields"]


def test_objects_field_paths_cannot_describe_lose_their_managed_fields():
    def nameless_env(o):
        o["spec"]["template"]["spec"]["containers"][0]["env"] = [{"value": "1"}]

    assert "managedFields" not in updated(created(), nameless_env, manager="x")["metadata"]


def test_entries_are_sorted_appliers_first_then_by_time():
    entries = [
        Entry("b", "Update", "v1", {("f:a",)}, "2024-01-02T00:00:00Z"),
        Entry("a", "Update", "v1", {("f:b",)}, "2024-01-03T00:00:00Z"),
        Entry("z", "Apply", "v1", {("f:c",)}, "2024-01-04T00:00:00Z"),
        Entry("empty", "Update", "v1", set(), "2024-01-01T00:00:00Z"),
    ]
    assert [e["manager"] for e in fieldmanager.encode(entries)] == ["z", "b", "a"]


def test_decode_rejects_what_upstream_rejects():
    good = {"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1"}
    assert fieldmanager.decode([{**good, "fieldsV1": {"f:a": {}}}])[0].fields == {("f:a",)}
    for bad in (
        {**good, "operation": "Create"},
        {**good, "apiVersion": ""},
        {**good, "fieldsType": "FieldsV2"},
        {**good, "fieldsV1": {"x:a": {}}},
    ):
        with pytest.raises(ValueError):
            fieldmanager.decode([bad])


def test_apply_entries_are_one_per_manager_whatever_the_version():
    apply_v1 = Entry("m", "Apply", "apps/v1", set())
    apply_v2 = Entry("m", "Apply", "apps/v2", set())
    update_v1 = Entry("m", "Update", "apps/v1", set())
    update_v2 = Entry("m", "Update", "apps/v2", set())
    assert apply_v1.identity == apply_v2.identity
    assert update_v1.identity != update_v2.identity
    assert apply_v1.describe() == '"m"'
    assert update_v1.describe() == '"m" using apps/v1'


# ----------------------------------------------------------------- fieldpath


def test_fields_v1_round_trips_with_members_marked_by_dot():
    paths = {
        ("f:metadata", "f:labels"),
        ("f:metadata", "f:labels", "f:app"),
        ("f:metadata", "f:finalizers", 'v:"a"'),
        ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:port"),
    }
    encoded = fieldpath.to_fields_v1(paths)
    assert encoded == {
        "f:metadata": {
            "f:finalizers": {'v:"a"': {}},
            "f:labels": {".": {}, "f:app": {}},
        },
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:port": {}}}},
    }
    assert fieldpath.from_fields_v1(encoded) == paths


def test_path_elements_are_read_in_their_canonical_spelling():
    assert fieldpath.parse_element('k:{"protocol": "TCP", "port": 80}') == (
        'k:{"port":80,"protocol":"TCP"}'
    )
    assert fieldpath.parse_element("i:007") == "i:7"
    with pytest.raises(fieldpath.FieldPathError):
        fieldpath.parse_element("q:x")


def test_fields_come_before_keys_in_upstream_order():
    assert list(fieldpath.to_fields_v1({('k:{"name":"b"}',), ("f:z",), ('k:{"name":"a"}',)})) == [
        "f:z",
        'k:{"name":"a"}',
        'k:{"name":"b"}',
    ]


def test_paths_are_described_as_upstream_prints_them():
    path = (*CONTAINER, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}', "f:name")
    assert fieldpath.describe(path) == (
        '.spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].name'
    )
    assert fieldpath.describe(("f:metadata", "f:finalizers", 'v:"x"')) == (
        '.metadata.finalizers[="x"]'
    )
