"""Validation: the causes upstream's 422 Invalid answers carry, field by field.

Each expected string is `<field>: <message>` as kubectl prints a cause, in
upstream's words (pkg/apis/*/validation and apimachinery's format checks).
Objects are defaulted first, as the API server does before validating.
"""

from __future__ import annotations

import copy

import pytest

from kubik.api import defaults, validation
from kubik.api.builtin import builtin_registry
from kubik.api.validation import go_label_selector

REGISTRY = builtin_registry()
UID = "0b3c2f8e-1111-4222-8333-444455556666"

SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def problems(group: str, plural: str, obj: dict, old: dict | None = None) -> list[str]:
    """The causes for `obj`, defaulted as the server would, as `field: message` lines."""
    version = "v2" if group == "autoscaling" else "v1"
    resource = REGISTRY.get(group, version, plural)
    obj = copy.deepcopy(obj)
    defaults.apply(resource, obj, creating=old is None)
    causes = validation.validate(resource, obj, old=old)
    return [f"{c['field']}: {c['message']}" for c in causes]


def stored(group: str, plural: str, obj: dict, *, valid_today: bool = True) -> dict:
    """`obj` as a server stored it on create (valid_today=False: an older server did)."""
    resource = REGISTRY.get(group, "v1", plural)
    obj = copy.deepcopy(obj)
    defaults.apply(resource, obj, creating=True)
    assert (validation.validate(resource, obj, old=None) == []) == valid_today
    return obj


def pod(**spec) -> dict:
    base = {"containers": [{"name": "web", "image": "nginx"}]}
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": base | spec}


def container(**fields) -> dict:
    return {"name": "web", "image": "nginx"} | fields


# ------------------------------------------------------------------ metadata


def test_names():
    bad = problems("apps", "deployments", deployment(name="Bad_Name"))
    assert bad == [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_RULE}']
    nameless = problems("", "configmaps", {"metadata": {"namespace": "default"}})
    assert nameless == ["metadata.name: Required value: name or generateName is required"]
    namespace = problems("", "namespaces", {"metadata": {"name": "Team_A"}})
    assert namespace == [f'metadata.name: Invalid value: "Team_A": {LABEL_RULE}']
    dotted = problems("", "namespaces", {"metadata": {"name": "team.a"}})
    assert dotted == ['metadata.name: Invalid value: "team.a": must not contain dots']
    service = problems(
        "",
        "services",
        {"metadata": {"name": "1web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}},
    )
    assert service == [
        'metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case '
        "alphanumeric characters or '-', start with an alphabetic character, and end with an "
        "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]
    long_name = "a" * 254
    assert problems("", "configmaps", {"metadata": {"name": long_name, "namespace": "d"}}) == [
        f'metadata.name: Invalid value: "{long_name}": must be no more than 253 characters'
    ]


def test_generate_name_and_namespace():
    obj = {"metadata": {"name": "Web-abcde", "generateName": "Web-", "namespace": "default"}}
    assert problems("", "configmaps", obj) == [
        f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_RULE}',
        f'metadata.name: Invalid value: "Web-abcde": {SUBDOMAIN_RULE}',
    ]
    assert problems("", "configmaps", {"metadata": {"name": "x"}}) == [
        "metadata.namespace: Required value"
    ]
    assert problems("", "nodes", {"metadata": {"name": "n1", "namespace": "default"}}) == [
        "metadata.namespace: Forbidden: not allowed on this type"
    ]


def test_labels_and_annotations():
    metadata = {
        "name": "x",
        "namespace": "default",
        "labels": {"-bad": "ok", "good": "bad value"},
        "annotations": {"example.com/Valid": "x", "a/b/c": "y"},
    }
    assert problems("", "configmaps", {"metadata": metadata}) == [
        'metadata.labels: Invalid value: "-bad": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        'metadata.labels: Invalid value: "bad value": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        'metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
        "'/' (e.g. 'example.com/MyName')",
    ]
    huge = {"name": "x", "namespace": "d", "annotations": {"a": "x" * (256 * 1024)}}
    assert problems("", "configmaps", {"metadata": huge}) == [
        "metadata.annotations: Too long: must have at most 262144 bytes"
    ]


def test_owner_references_and_finalizers():
    metadata = {
        "name": "x",
        "namespace": "default",
        "ownerReferences": [
            {"apiVersion": "apps/", "kind": "", "name": "", "uid": ""},
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "a",
                "uid": "1",
                "controller": True,
            },
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "b",
                "uid": "2",
                "controller": True,
            },
        ],
        "finalizers": ["cleanup", "example.com/cleanup", "kubernetes"],
    }
    found = problems("", "configmaps", {"metadata": metadata})
    assert found[:4] == [
        'metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty',
        'metadata.ownerReferences.kind: Invalid value: "": must not be empty',
        'metadata.ownerReferences.name: Invalid value: "": must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": must not be empty',
    ]
    assert found[4].startswith("metadata.ownerReferences: Invalid value: []v1.OwnerReference{")
    assert found[4].endswith(
        'Only one reference can have Controller set to true. Found "true" in references for '
        "ReplicaSet/a and ReplicaSet/b"
    )
    assert found[5:] == [
        'metadata.finalizers[0]: Invalid value: "cleanup": name is neither a standard finalizer '
        "name nor is it fully qualified"
    ]


def test_metadata_updates():
    old = {
        "metadata": {
            "name": "x",
            "namespace": "default",
            "deletionTimestamp": "2024-01-01T00:00:00Z",
        }
    }
    new = {"metadata": {"name": "x", "namespace": "default", "finalizers": ["example.com/b"]}}
    assert problems("", "configmaps", new, old) == [
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being "
        'deleted, found new finalizers []string{"example.com/b"}'
    ]


# ---------------------------------------------------------------------- pods


def test_a_plain_pod_is_valid():
    assert problems("", "pods", pod()) == []


def test_containers_are_required_and_named():
    assert problems("", "pods", pod(containers=[])) == ["spec.containers: Required value"]
    spec = {"containers": [{"name": "Web_1"}, container(), container()]}
    assert problems("", "pods", pod(**spec)) == [
        f'spec.containers[0].name: Invalid value: "Web_1": {LABEL_RULE}',
        "spec.containers[0].image: Required value",
        'spec.containers[2].name: Duplicate value: "web"',
    ]
    init = {
        "initContainers": [container(), {"name": "setup", "image": "x", "restartPolicy": "Never"}]
    }
    assert problems("", "pods", pod(**init)) == [
        'spec.initContainers[0].name: Duplicate value: "web"',
        'spec.initContainers[1].restartPolicy: Unsupported value: "Never": supported values: '
        '"Always"',
    ]


def test_ports():
    ports = [
        {"containerPort": 70000},
        {"containerPort": 80, "name": "HTTP", "protocol": "ICMP"},
        {"containerPort": 81, "name": "web"},
        {"containerPort": 82, "name": "web"},
        {"containerPort": 0},
    ]
    assert problems("", "pods", pod(containers=[container(ports=ports)])) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and "
        "65535, inclusive",
        'spec.containers[0].ports[1].name: Invalid value: "HTTP": must contain only '
        "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        'spec.containers[0].ports[1].name: Invalid value: "HTTP": must contain at least one '
        "letter (a-z)",
        'spec.containers[0].ports[1].protocol: Unsupported value: "ICMP": supported values: '
        '"SCTP", "TCP", "UDP"',
        'spec.containers[0].ports[3].name: Duplicate value: "web"',
        "spec.containers[0].ports[4].containerPort: Required value",
    ]
    host = [container(ports=[{"containerPort": 80, "hostPort": 8080}])]
    second = [{"name": "b", "image": "b", "ports": [{"containerPort": 81, "hostPort": 8080}]}]
    assert problems("", "pods", pod(containers=host + second)) == [
        'spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080"'
    ]


def test_restart_and_dns_policies():
    assert problems("", "pods", pod(restartPolicy="Sometimes", dnsPolicy="Google")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"',
        'spec.dnsPolicy: Unsupported value: "Google": supported values: '
        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
    ]
    assert problems("", "pods", pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


def test_resources():
    resources = {
        "requests": {"cpu": "2", "memory": "-1", "gpu": "1"},
        "limits": {"cpu": "1", "memory": "1x"},
    }
    assert problems("", "pods", pod(containers=[container(resources=resources)])) == [
        'spec.containers[0].resources.limits[memory]: Invalid value: "1x": quantities must match '
        "the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        'spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater '
        "than or equal to 0",
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard '
        "resource type or fully qualified",
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard '
        "resource for containers",
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal '
        "to cpu limit of 1",
    ]
    devices = {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}}
    assert problems("", "pods", pod(containers=[container(resources=devices)])) == [
        'spec.containers[0].resources.requests: Invalid value: "1": must be equal to '
        "example.com/gpu limit of 2"
    ]
    half = {"limits": {"example.com/gpu": "500m"}}
    assert problems("", "pods", pod(containers=[container(resources=half)])) == [
        'spec.containers[0].resources.limits[example.com/gpu]: Invalid value: "500m": must be '
        "an integer",
        'spec.containers[0].resources.requests[example.com/gpu]: Invalid value: "500m": must be '
        "an integer",
    ]


def test_volumes_and_mounts():
    volumes = [
        {"name": "data"},
        {"name": "data", "configMap": {"name": "x"}},
        {"name": "both", "secret": {"secretName": "s"}, "configMap": {"name": "c"}},
        {"name": "keys", "secret": {"defaultMode": 1000, "items": [{"key": "k", "path": "../up"}]}},
    ]
    mounts = [
        {"name": "data", "mountPath": "/data"},
        {"name": "missing", "mountPath": "/data"},
        {"name": "data", "mountPath": "/sub", "subPath": "../x"},
    ]
    found = problems("", "pods", pod(volumes=volumes, containers=[container(volumeMounts=mounts)]))
    assert found == [
        'spec.volumes[1].name: Duplicate value: "data"',
        "spec.volumes[2].configMap: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[3].secret.secretName: Required value",
        "spec.volumes[3].secret.defaultMode: Invalid value: 1000: must be a number between 0 and "
        "0777 (octal), both inclusive",
        "spec.volumes[3].secret.items[0].path: Invalid value: \"../up\": must not contain '..'",
        'spec.containers[0].volumeMounts[1].name: Not found: "missing"',
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
        "spec.containers[0].volumeMounts.subPath: Invalid value: \"../x\": must not contain '..'",
    ]


def test_env():
    env = [
        {"name": "A=B", "value": "x"},
        {"name": ""},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.restartPolicy"}}},
        {"name": "BAD", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}},
        {"name": "BOTH", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "NONE", "valueFrom": {}},
        {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a b"}}},
    ]
    assert problems("", "pods", pod(containers=[container(env=env)])) == [
        'spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name '
        "must consist only of printable ASCII characters other than '='",
        "spec.containers[0].env[1].name: Required value",
        "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: "
        '"spec.restartPolicy": supported values: "metadata.name", "metadata.namespace", '
        '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", '
        '"status.hostIPs", "status.podIP", "status.podIPs"',
        'spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Invalid value: "spec.nope": '
        "error converting fieldPath: field label not supported: spec.nope",
        'spec.containers[0].env[4].valueFrom: Invalid value: "": may not be specified when '
        "`value` is not empty",
        'spec.containers[0].env[5].valueFrom: Invalid value: "": must specify one of: '
        "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        'spec.containers[0].env[6].valueFrom.configMapKeyRef.key: Invalid value: "a b": a valid '
        "config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
        "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    ]


def test_probes_and_lifecycle():
    fields = {
        "livenessProbe": {
            "exec": {"command": ["true"]},
            "tcpSocket": {"port": 80},
            "successThreshold": 2,
        },
        "readinessProbe": {"periodSeconds": -1},
        "startupProbe": {"httpGet": {"port": "HTTP"}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 60}}},
    }
    assert problems("", "pods", pod(containers=[container(**fields)])) == [
        "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 60: must be greater than 0 "
        "and less than terminationGracePeriodSeconds (30). Enable "
        "AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.",
        "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 "
        "handler type",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater "
        "than or equal to 0",
        'spec.containers[0].startupProbe.httpGet.port: Invalid value: "HTTP": must contain only '
        "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        'spec.containers[0].startupProbe.httpGet.port: Invalid value: "HTTP": must contain at '
        "least one letter (a-z)",
    ]
    init = {"initContainers": [container(name="setup", livenessProbe={"exec": {"command": ["x"]}})]}
    assert problems("", "pods", pod(**init)) == [
        "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers "
        "without restartPolicy=Always"
    ]


def test_scheduling_fields():
    spec = {
        "tolerations": [
            {"operator": "Equal", "value": "x"},
            {"key": "k", "operator": "Exists", "value": "v", "tolerationSeconds": 5},
            {"key": "k", "operator": "Maybe", "effect": "Sometimes"},
        ],
        "nodeName": "Node_1",
        "activeDeadlineSeconds": 0,
        "hostname": "web.a",
    }
    assert problems("", "pods", pod(**spec)) == [
        f'spec.nodeName: Invalid value: "Node_1": {SUBDOMAIN_RULE}',
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        'spec.hostname: Invalid value: "web.a": must not contain dots',
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when '
        '`key` is empty, which means "match all values and all keys"',
        "spec.tolerations[1].effect: Invalid value: \"\": effect must be 'NoExecute' when "
        "`tolerationSeconds` is set",
        'spec.tolerations[1].operator: Invalid value: "v": value must be empty when `operator` '
        "is 'Exists'",
        'spec.tolerations[2].operator: Unsupported value: "Maybe": supported values: "Equal", '
        '"Exists"',
        'spec.tolerations[2].effect: Unsupported value: "Sometimes": supported values: '
        '"NoSchedule", "PreferNoSchedule", "NoExecute"',
    ]


def test_node_affinity_terms():
    def node_affinity(**rules) -> dict:
        return {"affinity": {"nodeAffinity": rules}}

    at = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    empty = node_affinity(requiredDuringSchedulingIgnoredDuringExecution={"nodeSelectorTerms": []})
    assert problems("", "pods", pod(**empty)) == [
        f"{at}.nodeSelectorTerms: Required value: must have at least one node selector term"
    ]
    expressions = [
        {"key": "zone", "operator": "In"},
        {"key": "zone", "operator": "Exists", "values": ["a"]},
        {"key": "cores", "operator": "Gt", "values": ["1", "2"]},
        {"key": "bad key", "operator": "Near", "values": ["not ok!"]},
    ]
    fields = [
        {"key": "metadata.name", "operator": "In", "values": ["a", "b"]},
        {"key": "metadata.labels", "operator": "Exists"},
        {"key": "metadata.name", "operator": "NotIn", "values": ["Node_1"]},
    ]
    required_terms = {"nodeSelectorTerms": [{"matchExpressions": expressions}, {}]}
    required_terms["nodeSelectorTerms"][1]["matchFields"] = fields
    preferred = [
        {"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Lt"}]}}
    ]
    spec = node_affinity(
        requiredDuringSchedulingIgnoredDuringExecution=required_terms,
        preferredDuringSchedulingIgnoredDuringExecution=preferred,
    )
    term, field_term = f"{at}.nodeSelectorTerms[0]", f"{at}.nodeSelectorTerms[1]"
    soft = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
    [name_rule] = validation.qualified_name_problems("bad key")
    [value_rule] = validation.label_value_problems("not ok!")
    assert problems("", "pods", pod(**spec)) == [
        f"{term}.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        f"{term}.matchExpressions[1].values: Forbidden: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
        f"{term}.matchExpressions[2].values: Required value: must be specified single value "
        "when `operator` is 'Lt' or 'Gt'",
        f'{term}.matchExpressions[3].operator: Invalid value: "Near": '
        "not a valid selector operator",
        f'{term}.matchExpressions[3].key: Invalid value: "bad key": {name_rule}',
        f'{term}.matchExpressions[3].values[0]: Invalid value: "not ok!": {value_rule}',
        f"{field_term}.matchFields[0].values: Required value: must be only one value when "
        "`operator` is 'In' or 'NotIn' for node field selector",
        f'{field_term}.matchFields[1].operator: Invalid value: "Exists": '
        "not a valid selector operator",
        f'{field_term}.matchFields[1].key: Invalid value: "metadata.labels": '
        "not a valid field selector key",
        f'{field_term}.matchFields[2].values[0]: Invalid value: "Node_1": {SUBDOMAIN_RULE}',
        f"{soft}.weight: Invalid value: 0: must be in the range 1-100",
        f"{soft}.preference.matchExpressions[0].values: Required value: must be specified "
        "single value when `operator` is 'Lt' or 'Gt'",
    ]
    good = node_affinity(
        requiredDuringSchedulingIgnoredDuringExecution={
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n-1"]}]}
            ]
        },
        preferredDuringSchedulingIgnoredDuringExecution=[
            {"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}
        ],
    )
    assert problems("", "pods", pod(**good)) == []


def test_pod_create_only_rules():
    spec = {"ephemeralContainers": [{"name": "debug", "image": "busybox"}]}
    assert problems("", "pods", pod(**spec)) == [
        "spec.ephemeralContainers: Forbidden: cannot be set on create"
    ]
    gated = {"nodeName": "n1", "schedulingGates": [{"name": "example.com/wait"}]}
    assert problems("", "pods", pod(**gated)) == [
        "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"
    ]


def test_pod_updates():
    old = stored("", "pods", pod(tolerations=[{"key": "a", "operator": "Exists"}]))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    new["spec"]["activeDeadlineSeconds"] = 600
    assert problems("", "pods", new, old) == []

    changed = copy.deepcopy(old)
    changed["spec"]["restartPolicy"] = "Never"
    [cause] = problems("", "pods", changed, old)
    assert cause.startswith(
        "spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
        "negative)\n"
    )
    assert '- restartPolicy: "Always"\n+ restartPolicy: "Never"' in cause

    added = copy.deepcopy(old)
    added["spec"]["containers"].append(container(name="second"))
    assert problems("", "pods", added, old) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    ]
    removed = copy.deepcopy(old)
    removed["spec"]["tolerations"] = []
    assert problems("", "pods", removed, old) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its "
        "tolerationSeconds"
    ]
    limited = copy.deepcopy(new)
    longer = copy.deepcopy(new)
    longer["spec"]["activeDeadlineSeconds"] = 700
    assert problems("", "pods", longer, limited) == [
        "spec.activeDeadlineSeconds: Invalid value: 700: must be less than or equal to previous "
        "value"
    ]


# ------------------------------------------------------------------------ apps


def deployment(name: str = "web", **spec) -> dict:
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        },
    }
    return {"metadata": {"name": name, "namespace": "default"}, "spec": base | spec}


def test_a_plain_deployment_is_valid():
    assert problems("apps", "deployments", deployment()) == []


def test_deployment_spec():
    assert problems("apps", "deployments", deployment(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]
    no_selector = deployment()
    del no_selector["spec"]["selector"]
    assert problems("apps", "deployments", no_selector) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]
    assert problems("apps", "deployments", deployment(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "deployment"
    ]
    never = deployment()
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert problems("apps", "deployments", never) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]
    nameless = deployment()
    nameless["spec"]["template"]["spec"]["containers"][0]["name"] = ""
    assert problems("apps", "deployments", nameless) == [
        "spec.template.spec.containers[0].name: Required value"
    ]


def test_deployment_strategy_and_deadlines():
    strategy = {"rollingUpdate": {"maxUnavailable": "110%", "maxSurge": "abc"}}
    assert problems("apps", "deployments", deployment(strategy=strategy)) == [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, "
        'IntVal:0, StrVal:"abc"}: a valid percent string must be a numeric string followed by '
        "an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, "
        'IntVal:0, StrVal:"110%"}: must not be greater than 100%',
    ]
    zero = {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}
    assert problems("apps", "deployments", deployment(strategy=zero)) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, "
        'IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0'
    ]
    recreate = {"type": "Recreate", "rollingUpdate": {}}
    assert problems("apps", "deployments", deployment(strategy=recreate)) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'"
    ]
    assert problems("apps", "deployments", deployment(strategy={"type": "BlueGreen"})) == [
        'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
        'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", '
        '"RollingUpdate"'
    ]
    late = deployment(minReadySeconds=700)
    assert problems("apps", "deployments", late) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
    ]


def test_selectors_never_change():
    old = stored("apps", "deployments", deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web2"}}
    new["spec"]["template"]["metadata"]["labels"] = {"app": "web2"}
    assert problems("apps", "deployments", new, old) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string"
        '{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is '
        "immutable"
    ]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert problems("apps", "deployments", scaled, old) == []
    replica_set = deployment()
    old_rs = stored("apps", "replicasets", replica_set)
    new_rs = copy.deepcopy(old_rs)
    new_rs["spec"]["selector"]["matchExpressions"] = [
        {"key": "tier", "operator": "In", "values": ["a"]}
    ]
    new_rs["spec"]["template"]["metadata"]["labels"]["tier"] = "a"
    [cause] = problems("apps", "replicasets", new_rs, old_rs)
    assert cause.startswith("spec.selector: Invalid value: v1.LabelSelector{")
    assert 'v1.LabelSelectorRequirement{Key:"tier", Operator:"In", Values:[]string{"a"}}' in cause


def test_label_selector_rules():
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
        ],
    }
    assert problems("apps", "replicasets", deployment(selector=selector)) == [
        "spec.selector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]
    odd = {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}
    assert problems("apps", "replicasets", deployment(selector=odd)) == [
        'spec.selector.matchExpressions[0].operator: Invalid value: "Like": not a valid '
        "selector operator",
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        'MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"a", '
        'Operator:"Like", Values:[]string{"x"}}}}: invalid label selector',
    ]


def test_stateful_sets():
    stateful = deployment(serviceName="web")
    assert problems("apps", "statefulsets", stateful) == []
    # Upstream does not validate the pod spec of a StatefulSet's template.
    no_containers = copy.deepcopy(stateful)
    no_containers["spec"]["template"]["spec"]["containers"] = []
    assert problems("apps", "statefulsets", no_containers) == []
    policy = copy.deepcopy(stateful)
    policy["spec"]["podManagementPolicy"] = "Random"
    policy["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Keep"}
    assert problems("apps", "statefulsets", policy) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        'spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": '
        'supported values: "Retain", "Delete"',
    ]
    old = stored("apps", "statefulsets", stateful)
    renamed = copy.deepcopy(old)
    renamed["spec"]["serviceName"] = "other"
    assert problems("apps", "statefulsets", renamed, old) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"
    ]
    resized = copy.deepcopy(old)
    resized["spec"]["replicas"] = 3
    resized["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert problems("apps", "statefulsets", resized, old) == []


def test_daemon_sets():
    assert problems("apps", "daemonsets", deployment()) == []
    no_selector = deployment()
    del no_selector["spec"]["selector"]
    assert problems("apps", "daemonsets", no_selector) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]
    both = deployment(updateStrategy={"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
    assert problems("apps", "daemonsets", both) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, "
        'IntVal:1, StrVal:""}: may not be set when maxUnavailable is non-zero'
    ]
    neither = deployment(updateStrategy={"rollingUpdate": {"maxUnavailable": 0}})
    assert problems("apps", "daemonsets", neither) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when "
        "maxSurge is 0"
    ]


# ----------------------------------------------------------------------- batch


def job(**spec) -> dict:
    template = {"spec": {"containers": [{"name": "pi", "image": "perl"}], "restartPolicy": "Never"}}
    return {
        "metadata": {"name": "pi", "namespace": "default", "uid": UID},
        "spec": {"template": template} | spec,
    }


def test_jobs():
    assert problems("batch", "jobs", job()) == []
    always = job()
    del always["spec"]["template"]["spec"]["restartPolicy"]
    assert problems("batch", "jobs", always) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]
    odd = job(parallelism=-1, completionMode="Sometimes", podReplacementPolicy="Never")
    assert problems("batch", "jobs", odd) == [
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", '
        '"Indexed"',
        'spec.podReplacementPolicy: Unsupported value: "Never": supported values: "Failed", '
        '"TerminatingOrFailed"',
    ]
    assert problems(
        "batch", "jobs", job(completionMode="Indexed", completions=None, parallelism=2)
    ) == ["spec.completions: Required value: when completion mode is Indexed"]
    assert problems("batch", "jobs", job(maxFailedIndexes=1)) == [
        "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
        "spec.maxFailedIndexes: Invalid value: 1: requires indexed completion mode",
    ]


def test_job_selectors():
    manual = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    assert problems("batch", "jobs", manual) == [
        "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does "
        "not match template `labels`"
    ]
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    assert problems("batch", "jobs", manual) == []
    conflicting = job()
    conflicting["spec"]["template"]["metadata"] = {"labels": {"job-name": "other"}}
    found = problems("batch", "jobs", conflicting)
    assert found[0] == (
        "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{"
        f'"batch.kubernetes.io/controller-uid":"{UID}", "batch.kubernetes.io/job-name":"pi", '
        f'"controller-uid":"{UID}", "job-name":"other"}}: must be \'pi\''
    )


def test_job_updates():
    old = stored("batch", "jobs", job())
    assert old["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"controller-uid": UID}}
    new["spec"]["completions"] = 3
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:2"
    found = problems("batch", "jobs", new, old)
    assert found[0] == "spec.completions: Invalid value: 3: field is immutable"
    assert found[1].startswith("spec.selector: Invalid value: v1.LabelSelector{")
    assert found[1].endswith("field is immutable")
    assert found[2].startswith("spec.template: Invalid value: core.PodTemplateSpec")
    assert found[2].endswith(": field is immutable")
    assert len(found) == 3
    suspended = stored("batch", "jobs", job(suspend=True))
    moved = copy.deepcopy(suspended)
    moved["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    moved["spec"]["suspend"] = False
    assert problems("batch", "jobs", moved, suspended) == []


def cron_job(schedule: str = "*/5 * * * *", **spec) -> dict:
    template = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "c", "image": "busybox"}],
                    "restartPolicy": "OnFailure",
                }
            }
        }
    }
    return {
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"schedule": schedule, "jobTemplate": template} | spec,
    }


@pytest.mark.parametrize(
    "schedule",
    ["0 0 * * *", "@hourly", "@every 1h30m", "0 9 * JAN-MAR mon-fri", "*/15 0-6,22-23 ? * 0"],
)
def test_good_schedules(schedule):
    assert problems("batch", "cronjobs", cron_job(schedule)) == []


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        (
            "@every forever",
            'failed to parse duration @every forever: time: invalid duration "forever"',
        ),
    ],
)
def test_bad_schedules(schedule, problem):
    assert problems("batch", "cronjobs", cron_job(schedule)) == [
        f'spec.schedule: Invalid value: "{schedule}": {problem}'
    ]


def test_cron_job_fields():
    assert problems("batch", "cronjobs", cron_job("")) == ["spec.schedule: Required value"]
    assert problems("batch", "cronjobs", cron_job("CRON_TZ=UTC 0 * * * *")) == [
        'spec.schedule: Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in '
        "schedule, use timeZone field instead"
    ]
    zoned = cron_job(timeZone="Mars/Olympus", concurrencyPolicy="Sometimes")
    assert problems("batch", "cronjobs", zoned) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus',
        'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", '
        '"Forbid", "Replace"',
    ]
    assert problems("batch", "cronjobs", cron_job(timeZone="Europe/Paris")) == []
    assert problems("batch", "cronjobs", cron_job(timeZone="Local")) == [
        'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as '
        "defined in https://www.iana.org/time-zones"
    ]
    old = stored("batch", "cronjobs", cron_job("TZ=UTC 0 * * * *"), valid_today=False)
    assert problems("batch", "cronjobs", cron_job("TZ=UTC 5 * * * *"), old) == []
    long_name = cron_job()
    long_name["metadata"]["name"] = "a" * 53
    assert problems("batch", "cronjobs", long_name) == [
        f'metadata.name: Invalid value: "{"a" * 53}": must be no more than 52 characters'
    ]
    selected = cron_job()
    selected["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    assert problems("batch", "cronjobs", selected) == [
        "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:"
        'map[string]string{"a":"b"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "`selector` will be auto-generated"
    ]


# --------------------------------------------------------------------- services


def service(**spec) -> dict:
    base = {"ports": [{"port": 80}], "selector": {"app": "web"}}
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": base | spec}


def test_services():
    assert problems("", "services", service()) == []
    assert problems("", "services", service(ports=[])) == ["spec.ports: Required value"]
    assert problems("", "services", service(ports=[], clusterIP="None")) == []
    ports = [{"port": 0}, {"port": 80, "targetPort": "Web"}, {"port": 80, "protocol": "TCP"}]
    assert problems("", "services", service(ports=ports)) == [
        "spec.ports[0].name: Required value",
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        # the targetPort defaults to the port
        "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[1].name: Required value",
        'spec.ports[1].targetPort: Invalid value: "Web": must contain only alpha-numeric '
        "characters (a-z, 0-9), and hyphens (-)",
        "spec.ports[2].name: Required value",
        'spec.ports[2]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
        "AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, "
        'StrVal:""}, NodePort:0}',
    ]
    named = [{"name": "web", "port": 80}, {"name": "web", "port": 81}]
    assert problems("", "services", service(ports=named)) == [
        'spec.ports[1].name: Duplicate value: "web"'
    ]
    assert problems("", "services", service(type="Magic")) == [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"'
    ]
    node_port = service(ports=[{"port": 80, "nodePort": 30080}])
    assert problems("", "services", node_port) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    external = {"metadata": {"name": "db", "namespace": "d"}, "spec": {"type": "ExternalName"}}
    assert problems("", "services", external) == ["spec.externalName: Required value"]
    local = service(externalTrafficPolicy="Local")
    assert problems("", "services", local) == [
        'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
        "externally-accessible services"
    ]
    headless_balancer = service(type="LoadBalancer", clusterIP="None")
    assert problems("", "services", headless_balancer) == [
        "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer "
        "services"
    ]


def test_service_cluster_ips_stay():
    old = stored("", "services", service())
    old["spec"]["clusterIP"], old["spec"]["clusterIPs"] = "10.43.0.5", ["10.43.0.5"]
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"], new["spec"]["clusterIPs"] = "10.43.0.6", ["10.43.0.6"]
    assert problems("", "services", new, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.43.0.6"}: may not change once set'
    ]
    carried = copy.deepcopy(old)
    del carried["spec"]["clusterIP"], carried["spec"]["clusterIPs"]
    assert problems("", "services", carried, old) == []


# ------------------------------------------------------- config, secrets, more


def test_config_maps_and_secrets():
    config = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "x", "..x": "y"}}
    assert problems("", "configmaps", config) == [
        'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
        "used for validation is '[-._a-zA-Z0-9]+')",
        "data[..x]: Invalid value: \"..x\": must not start with '..'",
    ]
    big = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "x" * (1024 * 1024 + 1)}}
    assert problems("", "configmaps", big) == ["[]: Too long: must have at most 1048576 bytes"]
    secret = {
        "metadata": {"name": "s", "namespace": "d"},
        "stringData": {"k": "x" * (1024 * 1024 + 1)},
    }
    assert problems("", "secrets", secret) == ["data: Too long: must have at most 1048576 bytes"]
    tls = {
        "metadata": {"name": "s", "namespace": "d"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": ""},
    }
    assert problems("", "secrets", tls) == ["data[tls.key]: Required value"]


def test_immutable_data_and_secret_types():
    old = stored(
        "",
        "configmaps",
        {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "1"}, "immutable": True},
    )
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    del new["immutable"]
    assert problems("", "configmaps", new, old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]
    old_secret = stored("", "secrets", {"metadata": {"name": "s", "namespace": "d"}})
    retyped = copy.deepcopy(old_secret)
    retyped["type"] = "kubernetes.io/basic-auth"
    retyped["data"] = {"username": "dQ=="}
    assert problems("", "secrets", retyped, old_secret) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable'
    ]


def test_persistent_volume_claims():
    claim = {"metadata": {"name": "data", "namespace": "d"}, "spec": {}}
    assert problems("", "persistentvolumeclaims", claim) == [
        "spec.accessModes: Required value: at least 1 access mode is required",
        "spec.resources[storage]: Required value",
    ]
    odd = {
        "metadata": {"name": "data", "namespace": "d"},
        "spec": {
            "accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "WriteMany"],
            "resources": {"requests": {"storage": "0"}},
        },
    }
    assert problems("", "persistentvolumeclaims", odd) == [
        'spec.accessModes: Unsupported value: "WriteMany": supported values: "ReadOnlyMany", '
        '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
        'spec.resources[storage]: Invalid value: "0": must be greater than zero',
    ]
    good = {
        "metadata": {"name": "data", "namespace": "d"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    old = stored("", "persistentvolumeclaims", good)
    bound = copy.deepcopy(old)
    bound["spec"]["volumeName"] = "pv-1"
    assert problems("", "persistentvolumeclaims", bound, old) == []
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    [cause] = problems("", "persistentvolumeclaims", grown, old)
    assert cause.startswith(
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims\n"
    )
    old["status"] = grown["status"] = {"phase": "Bound"}
    assert problems("", "persistentvolumeclaims", grown, old) == []


def test_persistent_volumes():
    volume = {"metadata": {"name": "pv"}, "spec": {}}
    assert problems("", "persistentvolumes", volume) == [
        "spec.accessModes: Required value",
        "spec.capacity: Required value",
        'spec.capacity: Unsupported value: core.ResourceList{}: supported values: "storage"',
        "spec: Required value: must specify a volume type",
    ]
    good = {
        "metadata": {"name": "pv"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/d"},
        },
    }
    assert problems("", "persistentvolumes", good) == []


def test_nodes_leases_and_events():
    node = {
        "metadata": {"name": "n1"},
        "spec": {
            "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}]
        },
        "status": {"capacity": {"cpu": "-1"}},
    }
    assert problems("", "nodes", node) == [
        'metadata.taints[1]: Duplicate value: core.Taint{Key:"k", Value:"", Effect:"NoSchedule", '
        "TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
        'status.capacity.cpu: Invalid value: "-1": must be greater than or equal to 0',
        'status.allocatable.cpu: Invalid value: "-1": must be greater than or equal to 0',
    ]
    lease = {"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}}
    assert problems("coordination.k8s.io", "leases", lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    ]
    event = {
        "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"},
        "reason": "Started",
    }
    assert problems("", "events", event) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace'
    ]
    new_style = {
        "metadata": {"name": "e", "namespace": "default"},
        "regarding": {"kind": "Pod", "namespace": "default"},
    }
    assert problems("events.k8s.io", "events", new_style) == [
        "eventTime: Required value",
        'type: Invalid value: "": has invalid value: ',
    ]


def test_kinds_without_rules_only_get_metadata_checks():
    role = {"metadata": {"name": "system:reader", "namespace": "d"}, "rules": []}
    assert problems("rbac.authorization.k8s.io", "roles", role) == []
    slash = {"metadata": {"name": "a/b", "namespace": "d"}}
    assert problems("rbac.authorization.k8s.io", "roles", slash) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]


def test_go_label_selector_rendering():
    assert go_label_selector(None) == "null"
    assert go_label_selector({"matchExpressions": []}) == (
        "v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement{}}"
    )
