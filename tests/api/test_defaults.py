"""Defaults: what upstream's API server fills in, as `kubectl … -o yaml` shows it.

Expected objects are what a 1.32 kube-apiserver answers for the same request
(its defaults.go files, the strategies' PrepareForCreate, the ServiceAccount
and Priority admission plugins, and Go's way of writing empty structs),
leaving out what kubik adds elsewhere (metadata, status, ClusterIPs).
"""

from __future__ import annotations

import copy

import pytest

from kubik.api import defaults
from kubik.api.builtin import builtin_registry
from kubik.api.kinds.podspec import image_pull_policy

REGISTRY = builtin_registry()


def defaulted(group: str, plural: str, obj: dict, *, creating: bool = False) -> dict:
    version = "v2" if group == "autoscaling" else "v1"
    resource = REGISTRY.get(group, version, plural)
    result = copy.deepcopy(obj)
    defaults.apply(resource, result, creating=creating)
    return result


# What every container of a pod template ends up with (kubectl create deployment/job…).
def nginx_container(pull: str = "Always") -> dict:
    return {
        "image": "nginx",
        "imagePullPolicy": pull,
        "name": "nginx",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


TEMPLATE_SPEC = {
    "containers": [nginx_container()],
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}


def test_kubectl_create_deployment():
    sent = {
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
            },
            "strategy": {},
        },
    }
    assert defaulted("apps", "deployments", sent)["spec"] == {
        "progressDeadlineSeconds": 600,
        "replicas": 1,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": "nginx"}},
        "strategy": {
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            "type": "RollingUpdate",
        },
        "template": {
            "metadata": {"creationTimestamp": None, "labels": {"app": "nginx"}},
            "spec": TEMPLATE_SPEC,
        },
    }


def test_deployment_keeps_what_the_client_chose():
    sent = {
        "spec": {
            "replicas": 0,
            "revisionHistoryLimit": 0,
            "strategy": {"type": "Recreate"},
            "template": {"spec": {"containers": [{"name": "c", "image": "c:1"}]}},
        }
    }
    spec = defaulted("apps", "deployments", sent)["spec"]
    assert (spec["replicas"], spec["revisionHistoryLimit"]) == (0, 0)
    assert spec["strategy"] == {"type": "Recreate"}
    partial = {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 2}}}}
    assert defaulted("apps", "deployments", partial)["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"},
    }


def test_kubectl_run_pod():
    sent = {
        "metadata": {"name": "nginx", "labels": {"run": "nginx"}},
        "spec": {
            "containers": [{"name": "nginx", "image": "nginx", "resources": {}}],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
        },
    }
    assert defaulted("", "pods", sent)["spec"] == {
        "containers": [nginx_container()],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": "default",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }


def test_pod_only_defaults_stay_out_of_templates():
    spec = defaulted("apps", "replicasets", {"spec": {"template": {"spec": {}}}})["spec"]
    assert spec["replicas"] == 1
    template_spec = spec["template"]["spec"]
    for key in ("enableServiceLinks", "serviceAccountName", "priority", "preemptionPolicy"):
        assert key not in template_spec


def test_pod_service_account_and_priority():
    spec = defaulted(
        "",
        "pods",
        {"spec": {"serviceAccount": "builder", "priorityClassName": "system-node-critical"}},
    )["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("builder", "builder")
    assert (spec["priority"], spec["preemptionPolicy"]) == (2000001000, "PreemptLowerPriority")
    custom = defaulted("", "pods", {"spec": {"priorityClassName": "batch-low"}})["spec"]
    assert "priority" not in custom and "preemptionPolicy" not in custom
    mirror = defaulted(
        "", "pods", {"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {}}
    )["spec"]
    assert "serviceAccountName" not in mirror


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("localhost:5000/team/app", "Always"),
        ("localhost:5000/team/app:v2", "IfNotPresent"),
        ("registry.k8s.io/pause@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:1.36@sha256:" + "b" * 64, "IfNotPresent"),
        ("Nginx", "IfNotPresent"),  # not a valid reference: no tag to go by
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy_by_tag(image, policy):
    assert image_pull_policy(image) == policy


def test_containers_ports_env_probes_and_lifecycle():
    container = {
        "name": "web",
        "image": "web:1",
        "imagePullPolicy": "Never",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "env": [
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "PLAIN", "value": "x"},
        ],
        "livenessProbe": {"httpGet": {"port": 8080}},
        "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5, "timeoutSeconds": 0},
        "startupProbe": {"exec": {"command": ["true"]}},
        "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
    }
    pod = defaulted("", "pods", {"spec": {"initContainers": [container]}})
    got = pod["spec"]["initContainers"][0]
    assert got["imagePullPolicy"] == "Never"
    assert got["ports"] == [
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
    ]
    assert got["env"][0]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
    }
    probe_defaults = {"failureThreshold": 3, "successThreshold": 1}
    assert got["livenessProbe"] == {
        "httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        **probe_defaults,
    }
    assert got["readinessProbe"] == {
        "grpc": {"port": 9000, "service": ""},
        "timeoutSeconds": 1,
        "periodSeconds": 5,
        **probe_defaults,
    }
    assert got["startupProbe"]["periodSeconds"] == 10
    assert got["lifecycle"]["preStop"]["httpGet"] == {"path": "/quit", "port": 80, "scheme": "HTTP"}


def test_pod_requests_come_from_limits_in_canonical_form():
    resources = {"limits": {"cpu": "0.5", "memory": "1024Mi"}, "requests": {"cpu": "100m"}}
    pod = defaulted(
        "", "pods", {"spec": {"containers": [{"name": "c", "image": "c", "resources": resources}]}}
    )
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "100m", "memory": "1Gi"},
    }
    template = {"spec": {"containers": [{"name": "c", "image": "c", "resources": resources}]}}
    replicas = defaulted("apps", "replicasets", {"spec": {"template": template}})
    assert replicas["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "100m"
    }


def test_quantities_are_rounded_up_to_thousandths():
    resources = {"requests": {"cpu": "100n", "example.com/gpu": 2, "memory": "junk"}}
    pod = defaulted(
        "", "pods", {"spec": {"containers": [{"name": "c", "image": "c", "resources": resources}]}}
    )
    # A value that is no quantity stays for validation to report.
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "1m",
        "example.com/gpu": "2",
        "memory": "junk",
    }


def test_host_network_pods_get_host_ports():
    spec = {
        "hostNetwork": True,
        "containers": [{"name": "c", "image": "c", "ports": [{"containerPort": 9100}]}],
    }
    port = defaulted("", "pods", {"spec": spec})["spec"]["containers"][0]["ports"][0]
    assert port == {"containerPort": 9100, "hostPort": 9100, "protocol": "TCP"}


def test_volumes():
    volumes = [
        {"name": "scratch"},
        {"name": "config", "configMap": {"name": "app"}},
        {"name": "keys", "secret": {"secretName": "keys", "defaultMode": 256}},
        {"name": "host", "hostPath": {"path": "/var/log"}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
        {
            "name": "token",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
        },
        {
            "name": "cache",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1024Mi"}},
                    }
                }
            },
        },
    ]
    got = defaulted("", "pods", {"spec": {"volumes": volumes}})["spec"]["volumes"]
    assert got[0] == {"name": "scratch", "emptyDir": {}}
    assert got[1]["configMap"] == {"name": "app", "defaultMode": 420}
    assert got[2]["secret"] == {"secretName": "keys", "defaultMode": 256}
    assert got[3]["hostPath"] == {"path": "/var/log", "type": ""}
    assert got[4]["downwardAPI"] == {
        "defaultMode": 420,
        "items": [
            {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}
        ],
    }
    assert got[5]["projected"] == {
        "defaultMode": 420,
        "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}],
    }
    assert got[6]["ephemeral"]["volumeClaimTemplate"] == {
        "metadata": {"creationTimestamp": None},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeMode": "Filesystem",
        },
    }


def test_replica_set_stateful_set_and_daemon_set():
    stateful = defaulted(
        "apps",
        "statefulsets",
        {
            "spec": {
                "serviceName": "db",
                "template": {"spec": {}},
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            }
        },
    )["spec"]
    assert {k: v for k, v in stateful.items() if k not in ("template", "volumeClaimTemplates")} == {
        "serviceName": "db",
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "replicas": 1,
        "revisionHistoryLimit": 10,
    }
    assert stateful["volumeClaimTemplates"] == [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "creationTimestamp": None},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Pending"},
        }
    ]
    on_delete = defaulted(
        "apps", "statefulsets", {"spec": {"updateStrategy": {"type": "OnDelete"}}}
    )
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}
    daemons = defaulted("apps", "daemonsets", {"spec": {"template": {"spec": {}}}})["spec"]
    assert daemons["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert daemons["revisionHistoryLimit"] == 10
    assert daemons["template"]["spec"]["restartPolicy"] == "Always"


JOB_SENT = {
    "metadata": {"name": "pi", "uid": "4b1c7c3e-0000-4000-8000-000000000001"},
    "spec": {
        "template": {
            "metadata": {"creationTimestamp": None},
            "spec": {
                "containers": [{"name": "pi", "image": "perl:5.34", "resources": {}}],
                "restartPolicy": "Never",
            },
        }
    },
}


def test_kubectl_create_job():
    uid = JOB_SENT["metadata"]["uid"]
    job = defaulted("batch", "jobs", JOB_SENT)
    labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": uid,
        "job-name": "pi",
    }
    assert job["metadata"]["labels"] == labels
    spec = job["spec"]
    assert {k: v for k, v in spec.items() if k != "template"} == {
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "completions": 1,
        "manualSelector": False,
        "parallelism": 1,
        "podReplacementPolicy": "TerminatingOrFailed",
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
        "suspend": False,
    }
    assert spec["template"]["metadata"] == {"creationTimestamp": None, "labels": labels}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_job_selector_is_not_generated_when_manual():
    manual = copy.deepcopy(JOB_SENT)
    manual["spec"]["manualSelector"] = True
    manual["spec"]["selector"] = {"matchLabels": {"app": "pi"}}
    manual["spec"]["template"]["metadata"]["labels"] = {"app": "pi"}
    job = defaulted("batch", "jobs", manual)
    assert job["spec"]["selector"] == {"matchLabels": {"app": "pi"}}
    assert job["metadata"]["labels"] == {"app": "pi"}


def test_job_parallelism_backoff_and_failure_policy():
    only_parallelism = defaulted("batch", "jobs", {"spec": {"parallelism": 3}})["spec"]
    assert "completions" not in only_parallelism
    per_index = defaulted(
        "batch",
        "jobs",
        {
            "spec": {
                "completions": 4,
                "backoffLimitPerIndex": 1,
                "podFailurePolicy": {
                    "rules": [{"onPodConditions": [{"type": "DisruptionTarget"}]}]
                },
            }
        },
    )["spec"]
    assert per_index["parallelism"] == 1
    assert per_index["backoffLimit"] == 2147483647
    assert per_index["podReplacementPolicy"] == "Failed"
    assert per_index["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]


def test_kubectl_create_cronjob():
    sent = {
        "metadata": {"name": "hello"},
        "spec": {
            "schedule": "*/1 * * * *",
            "jobTemplate": {
                "metadata": {"name": "hello"},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "hello", "image": "busybox", "resources": {}}],
                            "restartPolicy": "OnFailure",
                        }
                    }
                },
            },
        },
    }
    spec = defaulted("batch", "cronjobs", sent)["spec"]
    assert {k: v for k, v in spec.items() if k != "jobTemplate"} == {
        "concurrencyPolicy": "Allow",
        "failedJobsHistoryLimit": 1,
        "schedule": "*/1 * * * *",
        "successfulJobsHistoryLimit": 3,
        "suspend": False,
    }
    job_template = spec["jobTemplate"]
    assert job_template["metadata"] == {"name": "hello", "creationTimestamp": None}
    assert set(job_template["spec"]) == {"template"}  # Job defaults are not a template's
    assert job_template["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_kubectl_create_service_nodeport():
    sent = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "NodePort",
        },
    }
    service = defaulted("", "services", sent)
    assert service["spec"] == {
        "externalTrafficPolicy": "Cluster",
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": "web"},
        "sessionAffinity": "None",
        "type": "NodePort",
    }
    assert service["status"] == {"loadBalancer": {}}


def test_service_variants():
    cluster_ip = defaulted("", "services", {"spec": {"ports": [{"port": 443}]}})["spec"]
    assert cluster_ip["type"] == "ClusterIP"
    assert cluster_ip["ports"] == [{"port": 443, "protocol": "TCP", "targetPort": 443}]
    assert "externalTrafficPolicy" not in cluster_ip
    balancer = defaulted("", "services", {"spec": {"type": "LoadBalancer"}})["spec"]
    assert balancer["allocateLoadBalancerNodePorts"] is True
    assert balancer["externalTrafficPolicy"] == "Cluster"
    external = defaulted(
        "", "services", {"spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    )["spec"]
    assert external == {
        "type": "ExternalName",
        "externalName": "db.example.com",
        "sessionAffinity": "None",
    }
    headless = defaulted("", "services", {"spec": {"clusterIP": "None"}})["spec"]
    assert (headless["ipFamilyPolicy"], headless["ipFamilies"]) == ("RequireDualStack", ["IPv4"])
    v6 = defaulted("", "services", {"spec": {"clusterIP": "fd00::10", "selector": {"a": "b"}}})
    assert v6["spec"]["ipFamilies"] == ["IPv6"]
    sticky = defaulted("", "services", {"spec": {"sessionAffinity": "ClientIP"}})["spec"]
    assert sticky["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    loose = defaulted(
        "",
        "services",
        {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}},
    )["spec"]
    assert "sessionAffinityConfig" not in loose


def test_namespace_name_label_and_creation_finalizer():
    created = defaulted("", "namespaces", {"metadata": {"name": "team-a"}}, creating=True)
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert created["spec"] == {"finalizers": ["kubernetes"]}
    # Updates keep whatever finalizers are left: the namespace controller removes its own.
    finalized = defaulted(
        "", "namespaces", {"metadata": {"name": "team-a"}, "spec": {"finalizers": []}}
    )
    assert finalized["spec"] == {"finalizers": []}
    renamed = defaulted(
        "",
        "namespaces",
        {"metadata": {"name": "b", "labels": {"kubernetes.io/metadata.name": "a"}}},
    )
    assert renamed["metadata"]["labels"] == {"kubernetes.io/metadata.name": "b"}


def test_secret_type_and_string_data():
    secret = defaulted(
        "", "secrets", {"data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "override"}}
    )
    assert secret == {"type": "Opaque", "data": {"a": "b3ZlcnJpZGU=", "b": "aGVsbG8="}}
    tls = defaulted("", "secrets", {"type": "kubernetes.io/tls"})
    assert tls == {"type": "kubernetes.io/tls"}


def test_claims_volumes_and_nodes():
    claim = defaulted(
        "",
        "persistentvolumeclaims",
        {
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "0.5Gi"}},
            }
        },
    )
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "512Mi"}},
        "volumeMode": "Filesystem",
    }
    volume = defaulted(
        "",
        "persistentvolumes",
        {"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/d"}}},
    )
    assert volume["spec"] == {
        "capacity": {"storage": "1Gi"},
        "hostPath": {"path": "/d", "type": ""},
        "persistentVolumeReclaimPolicy": "Retain",
        "volumeMode": "Filesystem",
    }
    node = defaulted("", "nodes", {"status": {"capacity": {"cpu": "4", "memory": "8192Mi"}}})
    assert node["spec"] == {}
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}


def test_leases_events_and_limit_ranges():
    assert defaulted("coordination.k8s.io", "leases", {})["spec"] == {}
    event = defaulted("", "events", {"reason": "Started"})
    assert event == {
        "reason": "Started",
        "involvedObject": {},
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "eventTime": None,
        "reportingComponent": "",
        "reportingInstance": "",
    }
    new_event = defaulted("events.k8s.io", "events", {"note": "x"})
    assert new_event["deprecatedSource"] == {} and new_event["deprecatedFirstTimestamp"] is None
    limits = defaulted(
        "",
        "limitranges",
        {
            "spec": {
                "limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]
            }
        },
    )
    assert limits["spec"]["limits"][0] == {
        "type": "Container",
        "max": {"cpu": "2"},
        "min": {"memory": "64Mi"},
        "default": {"cpu": "2"},
        "defaultRequest": {"cpu": "2", "memory": "64Mi"},
    }


def test_kinds_without_defaults_are_left_alone():
    config = {"metadata": {"name": "x"}, "data": {"a": "b"}}
    assert defaulted("", "configmaps", config) == config
