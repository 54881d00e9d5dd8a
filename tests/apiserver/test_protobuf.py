"""Protobuf request bodies: bytes real kubectl sent, bodies built here, the
tables against upstream's schemas, and kubectl 1.32 against a real server."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from kubik.api import schemas
from kubik.api.errors import APIError
from kubik.apiserver import codec, protobuf
from tests.support.cluster import KubikServer

# What kubectl 1.32 sent as protobuf, and what kubectl 1.31 sent as JSON, for one command.
CAPTURED = {
    "kubectl create configmap c --from-literal=a=b --from-literal=empty=": (
        "6b3873000a0f0a0276311209436f6e6669674d617012260a110a016312001a0022002a003200380042001206"
        "0a016112016212090a05656d70747912001a002200",
        '{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","creationTimestamp":null}'
        ',"data":{"a":"b","empty":""}}',
    ),
    "kubectl create secret generic s --from-literal=k=v": (
        "6b3873000a0c0a0276311206536563726574121d0a110a017312001a0022002a0032003800420012060a016b"
        "1201761a001a002200",
        '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","creationTimestamp":null},"d'
        'ata":{"k":"dg=="}}',
    ),
    (
        "kubectl create secret docker-registry dr --docker-server=x --docker-username=u "
        "--docker-password=p"
    ): (
        "6b3873000a0c0a02763112065365637265741288010a120a02647212001a0022002a0032003800420012520a"
        "112e646f636b6572636f6e6669676a736f6e123d7b226175746873223a7b2278223a7b22757365726e616d65"
        "223a2275222c2270617373776f7264223a2270222c2261757468223a2264547077227d7d7d1a1e6b75626572"
        "6e657465732e696f2f646f636b6572636f6e6669676a736f6e1a002200",
        '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"dr","creationTimestamp":null},"'
        'data":{".dockerconfigjson":"eyJhdXRocyI6eyJ4Ijp7InVzZXJuYW1lIjoidSIsInBhc3N3b3JkIjoicC'
        'IsImF1dGgiOiJkVHB3In19fQ=="},"type":"kubernetes.io/dockerconfigjson"}',
    ),
    "kubectl create namespace n": (
        "6b3873000a0f0a02763112094e616d65737061636512190a110a016e12001a0022002a003200380042001200"
        "1a020a001a002200",
        '{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"n","creationTimestamp":null}'
        ',"spec":{},"status":{}}',
    ),
    "kubectl create serviceaccount sa": (
        "6b3873000a140a027631120e536572766963654163636f756e7412140a120a02736112001a0022002a003200"
        "380042001a002200",
        '{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"sa","creationTimestamp"'
        ":null}}",
    ),
    "kubectl create service clusterip svc --tcp=80:8080": (
        "6b3873000a0d0a02763112075365727669636512690a1f0a0373766312001a0022002a003200380042005a0a"
        "0a03617070120373766312420a1b0a0738302d38303830120354435018502207080010903f1a002800120a0a"
        "0361707012037376631a002209436c757374657249503a00420052005a00600068001a020a001a002200",
        '{"kind":"Service","apiVersion":"v1","metadata":{"name":"svc","creationTimestamp":null,'
        '"labels":{"app":"svc"}},"spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,'
        '"targetPort":8080}],"selector":{"app":"svc"},"type":"ClusterIP"},"status":{"loadBalanc'
        'er":{}}}',
    ),
    "kubectl create service nodeport np --tcp=80:http": (
        "6b3873000a0d0a02763112075365727669636512680a1d0a026e7012001a0022002a003200380042005a090a"
        "0361707012026e7012430a1e0a0738302d6874747012035443501850220a080110001a046874747028001209"
        "0a0361707012026e701a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200",
        '{"kind":"Service","apiVersion":"v1","metadata":{"name":"np","creationTimestamp":null,"'
        'labels":{"app":"np"}},"spec":{"ports":[{"name":"80-http","protocol":"TCP","port":80,"t'
        'argetPort":"http"}],"selector":{"app":"np"},"type":"NodePort"},"status":{"loadBalancer'
        '":{}}}',
    ),
    "kubectl create quota q --hard=pods=2,requests.cpu=500m": (
        "6b3873000a130a027631120d5265736f7572636551756f7461123c0a110a017112001a0022002a0032003800"
        "420012250a0b0a04706f647312030a01320a160a0c72657175657374732e63707512060a043530306d1a001a"
        "002200",
        '{"kind":"ResourceQuota","apiVersion":"v1","metadata":{"name":"q","creationTimestamp":n'
        'ull},"spec":{"hard":{"pods":"2","requests.cpu":"500m"}},"status":{}}',
    ),
    "kubectl create deployment d --image=nginx --port=80 --replicas=2": (
        "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b0010a1b0a016412001a0022002a0032"
        "00380042005a080a036170701201641282010802120a0a080a036170701201641a6a0a1a0a0012001a002200"
        "2a003200380042005a080a03617070120164124c122e0a056e67696e7812056e67696e782a00320a0a001000"
        "185022002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a"
        "01009a0100c2010022020a00280038001a0c0800100018002000280038001a00",
        '{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d","creationTimestamp"'
        ':null,"labels":{"app":"d"}},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"d"}'
        '},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"d"}},"spec":{"cont'
        'ainers":[{"name":"nginx","image":"nginx","ports":[{"containerPort":80}],"resources":{}'
        '}]}},"strategy":{}},"status":{}}',
    ),
    "kubectl create job j --image=busybox -- echo hi": (
        "6b3873000a0f0a0862617463682f763112034a6f621282010a110a016a12001a0022002a0032003800420012"
        "6332610a100a0012001a0022002a00320038004200124d122a0a016a120762757379626f781a046563686f1a"
        "0268692a0042006a007200800100880100900100a201001a054e65766572320042004a005200580060006800"
        "8201008a01009a0100c201001a082000280030003a001a002200",
        '{"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"j","creationTimestamp":null}'
        ',"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"nam'
        'e":"j","image":"busybox","command":["echo","hi"],"resources":{}}],"restartPolicy":"Nev'
        'er"}}},"status":{}}',
    ),
    'kubectl create cronjob cj --image=busybox "--schedule=*/1 * * * *" -- date': (
        "6b3873000a130a0862617463682f7631120743726f6e4a6f6212a4010a120a02636a12001a0022002a003200"
        "38004200128b010a0b2a2f31202a202a202a202a1a002a7a0a120a02636a12001a0022002a00320038004200"
        "126432620a100a0012001a0022002a00320038004200124e12270a02636a120762757379626f781a04646174"
        "652a0042006a007200800100880100900100a201001a094f6e4661696c757265320042004a00520058006000"
        "68008201008a01009a0100c201001a001a002200",
        '{"kind":"CronJob","apiVersion":"batch/v1","metadata":{"name":"cj","creationTimestamp":'
        'null},"spec":{"schedule":"*/1 * * * *","jobTemplate":{"metadata":{"name":"cj","creatio'
        'nTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"c'
        'ontainers":[{"name":"cj","image":"busybox","command":["date"],"resources":{}}],"restar'
        'tPolicy":"OnFailure"}}}}},"status":{}}',
    ),
    "kubectl create token default --duration=10m --audience=a1": (
        "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e5265717565"
        "737412210a100a0012001a0022002a0032003800420012070a02613120d8041a040a0012001a002200",
        '{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTi'
        'mestamp":null},"spec":{"audiences":["a1"],"expirationSeconds":600,"boundObjectRef":nul'
        'l},"status":{"token":"","expirationTimestamp":null}}',
    ),
    "kubectl auth can-i list pods -n kube-system": (
        "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374"
        "41636365737352657669657712410a100a0012001a0022002a0032003800420012230a210a0b6b7562652d73"
        "797374656d12046c6973741a0022002a04706f647332003a001a08080012001a0020001a002200",
        '{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"'
        'creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":"kube-system","verb'
        '":"list","resource":"pods"}},"status":{"allowed":false}}',
    ),
    "kubectl auth whoami": (
        "6b3873000a2d0a1861757468656e7469636174696f6e2e6b38732e696f2f7631121153656c665375626a6563"
        "74526576696577121a0a100a0012001a0022002a0032003800420012060a040a0012001a002200",
        '{"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creat'
        'ionTimestamp":null},"status":{"userInfo":{}}}',
    ),
    "kubectl create role r --verb=get --resource=pods": (
        "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c651222"
        "0a110a017212001a0022002a00320038004200120d0a0367657412001a04706f64731a002200",
        '{"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"r","cre'
        'ationTimestamp":null},"rules":[{"verbs":["get"],"apiGroups":[""],"resources":["pods"]}'
        "]}",
    ),
    "kubectl create rolebinding rb --role=r --user=u --serviceaccount=default:sa": (
        "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c654269"
        "6e64696e671283010a120a02726212001a0022002a0032003800420012260a04557365721219726261632e61"
        "7574686f72697a6174696f6e2e6b38732e696f1a01752200121f0a0e536572766963654163636f756e741200"
        "1a027361220764656661756c741a240a19726261632e617574686f72697a6174696f6e2e6b38732e696f1204"
        "526f6c651a01721a002200",
        '{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"'
        'rb","creationTimestamp":null},"subjects":[{"kind":"User","apiGroup":"rbac.authorizatio'
        'n.k8s.io","name":"u"},{"kind":"ServiceAccount","name":"sa","namespace":"default"}],"ro'
        'leRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"}}',
    ),
    "kubectl create clusterrolebinding crb --clusterrole=cr --group=g": (
        "6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c75737465"
        "72526f6c6542696e64696e67126c0a130a0363726212001a0022002a0032003800420012270a0547726f7570"
        "1219726261632e617574686f72697a6174696f6e2e6b38732e696f1a016722001a2c0a19726261632e617574"
        "686f72697a6174696f6e2e6b38732e696f120b436c7573746572526f6c651a0263721a002200",
        '{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"'
        'name":"crb","creationTimestamp":null},"subjects":[{"kind":"Group","apiGroup":"rbac.aut'
        'horization.k8s.io","name":"g"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kin'
        'd":"ClusterRole","name":"cr"}}',
    ),
    "kubectl create pdb p --selector=a=b --min-available=50%": (
        "6b3873000a200a09706f6c6963792f76311213506f6444697372757074696f6e42756467657412360a110a01"
        "7012001a0022002a0032003800420012150a09080110001a0335302512080a060a01611201621a0a08001800"
        "2000280030001a002200",
        '{"kind":"PodDisruptionBudget","apiVersion":"policy/v1","metadata":{"name":"p","creatio'
        'nTimestamp":null},"spec":{"minAvailable":"50%","selector":{"matchLabels":{"a":"b"}}},"'
        'status":{"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,"expectedPods":0'
        "}}",
    ),
    "kubectl create priorityclass pc --value=10 --description=d": (
        "6b3873000a250a147363686564756c696e672e6b38732e696f2f7631120d5072696f72697479436c61737312"
        "310a120a02706312001a0022002a00320038004200100a18002201642a14507265656d70744c6f7765725072"
        "696f726974791a002200",
        '{"kind":"PriorityClass","apiVersion":"scheduling.k8s.io/v1","metadata":{"name":"pc","c'
        'reationTimestamp":null},"value":10,"description":"d","preemptionPolicy":"PreemptLowerP'
        'riority"}',
    ),
    "kubectl create ingress i --rule=foo.com/bar=svc1:8080": (
        "6b3873000a1f0a146e6574776f726b696e672e6b38732e696f2f76311207496e677265737312480a110a0169"
        "12001a0022002a00320038004200122f1a2d0a07666f6f2e636f6d12220a200a1e0a042f626172120f220d0a"
        "047376633112050a0010903f1a0545786163741a020a001a002200",
        '{"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"i","creation'
        'Timestamp":null},"spec":{"rules":[{"host":"foo.com","http":{"paths":[{"path":"/bar","p'
        'athType":"Exact","backend":{"service":{"name":"svc1","port":{"number":8080}}}}]}}]},"s'
        'tatus":{"loadBalancer":{}}}',
    ),
}


def without_nulls(value: Any) -> Any:
    """Go writes a zero Time as null in JSON; the protobuf decoder leaves it out."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("command", CAPTURED)
def test_kubectl_protobuf_decodes_to_what_its_json_says(command):
    protobuf_hex, json_text = CAPTURED[command]
    decoded = protobuf.decode(bytes.fromhex(protobuf_hex))
    assert decoded == without_nulls(orjson.loads(json_text))


def test_codec_hands_protobuf_bodies_to_the_decoder():
    body = bytes.fromhex(next(iter(CAPTURED.values()))[0])
    assert codec.decode_body(body, "application/vnd.kubernetes.protobuf")["kind"] == "ConfigMap"


# A small protobuf encoder: a field is (number, value); ints are varints, str and
# bytes length-delimited, Fixed32/Fixed64 the fixed wire types.


class Fixed32(int):
    pass


class Fixed64(int):
    pass


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as 64-bit two's complement, as Go writes int32
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: Any) -> bytes:
    if isinstance(value, Fixed32 | Fixed64):
        size, wire_type = (4, 5) if isinstance(value, Fixed32) else (8, 1)
        return varint(number << 3 | wire_type) + int(value).to_bytes(size, "little")
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def msg(*fields: tuple[int, Any]) -> bytes:
    return b"".join(field(number, value) for number, value in fields)


def entry(key: str, value: Any) -> bytes:
    return msg((1, key), (2, value))


def body(api_version: str, kind: str, raw: bytes, *extra: tuple[int, Any]) -> bytes:
    return b"k8s\x00" + msg((1, msg((1, api_version), (2, kind))), (2, raw), *extra)


def meta(name: str) -> bytes:
    """ObjectMeta as Go writes it: every non-pointer scalar, zero or not."""
    return msg((1, name), (2, ""), (3, ""), (4, ""), (5, ""), (6, ""), (7, 0), (8, b""))


def test_pod_template_zero_values_inlined_structs_and_int_or_string():
    container = msg(
        (1, "web"),
        (2, "nginx"),
        (6, msg((1, ""), (2, 0), (3, 8080), (4, "TCP"), (5, ""))),  # hostPort 0 is left out
        (7, msg((1, "MODE"), (2, "fast"))),
        (7, msg((1, "FROM"), (2, ""), (3, msg((3, msg((1, msg((1, "cfg"))), (2, "k"), (3, 0))))))),
        (8, msg((1, entry("cpu", msg((1, "500m")))))),
        (9, msg((1, "data"), (2, 1), (3, "/data"))),
        (
            10,
            msg((1, msg((2, msg((1, "/healthz"), (2, msg((1, 1), (3, "http"))))))), (2, 5), (4, 0)),
        ),
        (14, "IfNotPresent"),
    )
    pod = msg(
        (1, msg((1, "data"), (2, msg((19, msg((1, msg((1, "cfg"))), (3, 420))))))),
        (1, msg((1, "tmp"), (2, msg((2, msg()))))),
        (2, container),
        (3, "Always"),
        (4, 0),  # a pointer: zero is what the client asked for
        (7, entry("disk", "ssd")),
        (8, "robot"),
        (11, 0),  # hostNetwork false: left out
    )
    strategy = msg((1, "RollingUpdate"), (2, msg((1, msg((1, 1), (3, "25%"))), (2, msg((2, 1))))))
    spec = msg((1, 0), (3, msg((1, meta("")), (2, pod))), (4, strategy), (5, 0), (7, 0))
    decoded = protobuf.decode(body("apps/v1", "Deployment", msg((1, meta("d")), (2, spec))))
    assert decoded == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 0,
            "template": {
                "metadata": {},
                "spec": {
                    "volumes": [
                        {"name": "data", "configMap": {"name": "cfg", "defaultMode": 420}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "fast"},
                                {
                                    "name": "FROM",
                                    "valueFrom": {
                                        "configMapKeyRef": {
                                            "name": "cfg",
                                            "key": "k",
                                            "optional": False,
                                        }
                                    },
                                },
                            ],
                            "resources": {"limits": {"cpu": "500m"}},
                            "volumeMounts": [
                                {"name": "data", "readOnly": True, "mountPath": "/data"}
                            ],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "initialDelaySeconds": 5,
                            },
                            "imagePullPolicy": "IfNotPresent",
                        }
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {"disk": "ssd"},
                    "serviceAccountName": "robot",
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1},
            },
        },
    }


def test_negative_and_packed_integers():
    rule = msg((1, "FailJob"), (2, msg((2, "In"), (3, varint(1) + varint(42)), (3, -3))))
    job_spec = msg((11, msg((1, rule))), (7, 0), (3, 60))
    pod = msg((25, -5))  # priority, an int32 Go writes as ten bytes
    template = msg((1, meta("")), (2, pod))
    raw = msg((1, meta("j")), (2, job_spec + field(6, template)))
    decoded = protobuf.decode(body("batch/v1", "Job", raw))
    assert decoded["spec"] == {
        "podFailurePolicy": {
            "rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 42, -3]}}
            ]
        },
        "backoffLimit": 0,
        "activeDeadlineSeconds": 60,
        "template": {"metadata": {}, "spec": {"priority": -5}},
    }


def test_bytes_maps_are_base64_and_entries_without_a_value_are_zero():
    raw = msg(
        (1, meta("s")),
        (2, entry("bin", b"\x00\xff")),
        (2, msg((1, "empty"))),
        (4, entry("plain", "text")),
        (3, "Opaque"),
        (5, 0),
    )
    assert protobuf.decode(body("v1", "Secret", raw)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"bin": "AP8=", "empty": ""},
        "stringData": {"plain": "text"},
        "type": "Opaque",
        "immutable": False,
    }


def test_times_managed_fields_and_extra_values():
    managed = msg(
        (1, "kubectl"), (2, "Update"), (4, msg((1, 1704164645))), (7, msg((1, '{"f:data":{}}')))
    )
    metadata = msg((1, "r"), (8, msg((1, 1704164645), (2, 5))), (9, b""), (17, managed))
    extra = msg((1, "scopes"), (2, msg((1, "a"), (1, "b"))))
    spec = msg((2, msg((1, "/healthz"), (2, "get"))), (3, "alice"), (4, "devs"), (5, extra))
    raw = msg((1, metadata), (2, spec), (3, msg((1, 0))))
    decoded = protobuf.decode(body("authorization.k8s.io/v1", "SubjectAccessReview", raw))
    assert decoded == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {
            "name": "r",
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "time": "2024-01-02T03:04:05Z",
                    "fieldsV1": {"f:data": {}},
                }
            ],
        },
        "spec": {
            "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
            "user": "alice",
            "groups": ["devs"],
            "extra": {"scopes": ["a", "b"]},
        },
        "status": {"allowed": False},
    }


@pytest.mark.parametrize("api_version", ["v1", "apps/v1", "meta.k8s.io/v1"])
def test_delete_options_in_any_group_version(api_version):
    raw = msg((1, 0), (2, msg((1, "uid-1"))), (4, "Foreground"), (5, "All"))
    assert protobuf.decode(body(api_version, "DeleteOptions", raw)) == {
        "apiVersion": api_version,
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "uid-1"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_eviction_and_binding():
    eviction = msg((1, msg((1, "p"), (3, "ns"))), (2, msg((1, 30))))
    assert protobuf.decode(body("policy/v1", "Eviction", eviction))["deleteOptions"] == {
        "gracePeriodSeconds": 30
    }
    binding = msg((1, meta("p")), (2, msg((1, "Node"), (3, "node-1"))))
    assert protobuf.decode(body("v1", "Binding", binding))["target"] == {
        "kind": "Node",
        "name": "node-1",
    }


def test_fields_unknown_to_the_tables_are_skipped():
    unknown = ((99, 7), (98, Fixed32(1)), (97, Fixed64(2)), (96, "later"))
    raw = msg((1, msg((1, "c"), *unknown)), (2, entry("a", "b")), *unknown)
    assert protobuf.decode(body("v1", "ConfigMap", raw, (9, "envelope field"))) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "b"},
    }


CONFIG_MAP = body("v1", "ConfigMap", msg((1, meta("c")), (2, entry("a", "b"))))


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (b'{"kind": "ConfigMap"}', 400, "does not start with the Kubernetes magic bytes"),
        (CONFIG_MAP[:-3], 400, "truncated inside field 2"),
        (body("v1", "ConfigMap", msg((1, msg((1, 7))))), 400, "metadata.name: wire type 0 where 2"),
        (body("v1", "ConfigMap", msg((1, msg((8, msg((1, 1 << 40))))))), 400, "out of range"),
        (body("v1", "ConfigMap", b"\x0b\x0c"), 400, "field 1 has unsupported wire type 3"),
        (body("v1", "ConfigMap", b"\x00\x00"), 400, "a field has number 0"),
        (body("v1", "ConfigMap", b"\x08" + b"\xff" * 11), 400, "longer than 10 bytes"),
        (body("v1", "ConfigMap", b"\x08\xff"), 400, "truncated inside a varint"),
        (body("", "ConfigMap", b""), 400, "does not name its apiVersion and kind"),
        (body("example.com/v1", "Widget", b""), 415, "Widget (example.com/v1) cannot be sent"),
        (body("v1", "ConfigMap", b"", (3, "gzip")), 415, "with content encoding gzip"),
        (body("v1", "ConfigMap", b"", (4, "application/json")), 415, "is application/json"),
    ],
)
def test_bad_bodies_are_refused_with_a_status(data, code, message):
    with pytest.raises(APIError) as caught:
        protobuf.decode(data)
    assert caught.value.code == code
    assert message in caught.value.message


def test_the_tables_match_upstream_schemas():
    """Every field of a table is named and typed as upstream's schema (of the
    release kubik serves) has it, and every field of those schemas is in a table."""
    problems: list[str] = []
    for (api_version, kind), message in protobuf.KINDS.items():
        if api_version == "*":
            definition = f"io.k8s.apimachinery.pkg.apis.meta.v1.{kind}"
        else:
            group, _, version = api_version.rpartition("/")
            definition = schemas.gvk_names()[(group, version, kind)]
        _compare(message, schemas.named(definition), kind, problems)
    assert problems == []


_JSON_TYPES = {"string": "string", "int": "integer", "bool": "boolean", "bytes": "string"}
_FORM_TYPES = {
    "Time": "string",
    "Quantity": "",
    "IntOrString": "",
    "FieldsV1": "object",
    "ExtraValue": "array",
}


def _names(message: str) -> set[str]:
    """The JSON names a message's fields give, inlined messages' included."""
    names = set()
    for f in protobuf.SCHEMA.fields(message).values():
        names |= {f.name} if f.name else _names(f.type)
    return names


def _compare(message: str, schema: dict, path: str, problems: list[str]) -> None:
    schema = schemas.resolve(schema)
    properties = schema.get("properties") or {}
    missing = set(properties) - _names(message)
    if schema.get("x-kubernetes-group-version-kind"):
        missing -= {"apiVersion", "kind"}  # a kind's TypeMeta travels in the envelope
    if missing:
        problems.append(f"{path}: {sorted(missing)} not decoded")
    _compare_fields(message, properties, path, problems)


def _compare_fields(message: str, properties: dict, path: str, problems: list[str]) -> None:
    for f in protobuf.SCHEMA.fields(message).values():
        if not f.name:
            _compare_fields(f.type, properties, path, problems)
            continue
        where = f"{path}.{f.name}"
        if f.name not in properties:
            problems.append(f"{where}: not in the schema")
            continue
        value = schemas.resolve(properties[f.name])
        if f.shape == "list":
            value = schemas.items(value)
        elif f.shape == "map":
            value = schemas.resolve(value.get("additionalProperties"))
        expected = _JSON_TYPES.get(f.type, _FORM_TYPES.get(f.type, "object"))
        if expected and schemas.types(value) != {expected}:
            problems.append(f"{where}: {f.type} but the schema says {schemas.types(value)}")
        elif f.type not in _JSON_TYPES and f.type not in _FORM_TYPES:
            _compare(f.type, value, where, problems)


# kubectl 1.32 against a real server: each command sends protobuf.


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("kubik")).start()
    yield kubik
    kubik.stop()


def get(server: KubikServer, *args: str) -> dict:
    return json.loads(server.ok("get", *args, "-o", "json"))


def test_kubectl_sends_protobuf_and_the_server_reads_it(server):
    result = server.kubectl("create", "configmap", "c", "--from-literal=a=b", "-v=8")
    assert result.returncode == 0, result.stderr
    assert "Content-Type: application/vnd.kubernetes.protobuf" in result.stderr
    assert get(server, "configmap", "c")["data"] == {"a": "b"}


def test_kubectl_create_commands(server):
    server.ok("create", "secret", "generic", "s", "--from-literal=k=v")
    assert get(server, "secret", "s")["data"] == {"k": "dg=="}

    server.ok("create", "namespace", "n")
    assert get(server, "namespace", "n")["metadata"]["name"] == "n"

    server.ok("create", "serviceaccount", "sa")
    assert get(server, "serviceaccount", "sa")["metadata"]["namespace"] == "default"

    server.ok("create", "deployment", "d", "--image=nginx", "--port=80", "--replicas=2")
    deployment = get(server, "deployment", "d")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "d"}}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("nginx", "nginx")
    [port] = container["ports"]
    assert port["containerPort"] == 80 and "hostPort" not in port

    server.ok("create", "job", "j", "--image=busybox", "--", "echo", "hi")
    [container] = get(server, "job", "j")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["echo", "hi"]

    server.ok("create", "service", "clusterip", "svc", "--tcp=80:8080")
    [port] = get(server, "service", "svc")["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")

    assert server.ok("auth", "can-i", "create", "deployments").strip() == "yes"
