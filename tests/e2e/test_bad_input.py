"""Bad input never breaks the server: every failure is a Status with the right code.

Hypothesis throws malformed and hostile bodies at the write endpoints of a
real server; no answer may be a 500, every error must be a Status object,
and nothing half-written may be left behind.
"""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubik.client import kubeconfig
from kubik.client.transport import Transport

JSON_HEADERS = [("Content-Type", "application/json")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

# Bodies shaped like objects, with hostile values where the server looks.
object_bodies = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["v1", "apps/v1", "nope/v9", ""]) | st.text(max_size=8),
        "kind": st.sampled_from(["Pod", "ConfigMap", "Deployment", "Service"]) | json_values,
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["ok", "Bad_Name", "", "a" * 300]) | json_values,
                "namespace": st.sampled_from(["default", "other"]) | json_values,
                "labels": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
                "resourceVersion": st.sampled_from(["1", "abc", "-5"]) | json_values,
                "finalizers": json_values,
            },
        )
        | json_values,
        "spec": json_values,
        "data": json_values,
        "status": json_values,
    },
)

TARGETS = [
    ("POST", "/api/v1/namespaces/default/configmaps"),
    ("POST", "/api/v1/namespaces/default/pods"),
    ("POST", "/api/v1/namespaces/default/services"),
    ("POST", "/apis/apps/v1/namespaces/default/deployments"),
    ("PUT", "/api/v1/namespaces/default/configmaps/fuzz"),
    ("PATCH", "/api/v1/namespaces/default/configmaps/fuzz"),
    ("PUT", "/api/v1/namespaces/default/configmaps/fuzz/status"),
    ("POST", "/api/v1/namespaces/default/pods/fuzz/binding"),
    ("DELETE", "/api/v1/namespaces/default/configmaps/fuzz"),
]
PATCH_TYPES = [
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]


@pytest.fixture(scope="module")
def api(server):
    loop = asyncio.new_event_loop()
    transport = Transport(kubeconfig.load(server.kubeconfig), pool_size=4)
    body = orjson.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fuzz"}, "data": {"a": "b"}}
    )
    loop.run_until_complete(
        transport.request(
            "POST", "/api/v1/namespaces/default/configmaps", body=body, headers=JSON_HEADERS
        )
    )
    yield loop, transport
    loop.run_until_complete(transport.close())
    loop.close()


def _check(answer) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300])
    if answer.status >= 400:
        status = json.loads(answer.body)
        assert status["kind"] == "Status" and status["code"] == answer.status
        assert status["message"] and status["reason"]


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    target=st.sampled_from(TARGETS),
    body=object_bodies | json_values,
    patch_type=st.sampled_from(PATCH_TYPES),
)
def test_structured_garbage_gets_status_answers(api, target, body, patch_type):
    loop, transport = api
    method, path = target
    content_type = patch_type if method == "PATCH" else "application/json"
    answer = loop.run_until_complete(
        transport.request(
            method, path, body=json.dumps(body).encode(), headers=[("Content-Type", content_type)]
        )
    )
    _check(answer)


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    target=st.sampled_from(TARGETS),
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
            "text/plain",
        ]
    ),
)
def test_raw_bytes_get_status_answers(api, target, raw, content_type):
    loop, transport = api
    method, path = target
    answer = loop.run_until_complete(
        transport.request(method, path, body=raw, headers=[("Content-Type", content_type)])
    )
    _check(answer)


def test_query_garbage_gets_status_answers(api):
    loop, transport = api
    for query in (
        "watch=true&resourceVersion=abc",
        "limit=-1",
        "limit=x",
        "continue=%%%",
        "labelSelector=a%20in%20(",
        "fieldSelector=spec.bogus=1",
        "resourceVersion=1&resourceVersionMatch=Bogus",
        "timeoutSeconds=x",
        "watch=true&sendInitialEvents=true&resourceVersion=5",
    ):
        answer = loop.run_until_complete(
            transport.request("GET", f"/api/v1/namespaces/default/pods?{query}")
        )
        _check(answer)
        assert answer.status == 400, (query, answer.status, answer.body[:200])


def test_oversized_body_is_413_and_writes_nothing(api):
    loop, transport = api
    body = orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "huge"},
            "data": {"a": "x" * (3 * 1024 * 1024)},
        }
    )
    answer = loop.run_until_complete(
        transport.request(
            "POST", "/api/v1/namespaces/default/configmaps", body=body, headers=JSON_HEADERS
        )
    )
    assert answer.status == 413
    assert json.loads(answer.body)["reason"] == "RequestEntityTooLarge"
    check = loop.run_until_complete(
        transport.request("GET", "/api/v1/namespaces/default/configmaps/huge")
    )
    assert check.status == 404
