"""The built-in resources, as upstream's discovery lists them."""

from __future__ import annotations

from kubik.api.registry import Registry, Resource

_ALL = ("all",)
_STATUS = ("status",)
_SCALED = ("status", "scale")
_CREATE_ONLY = ("create",)

BUILTIN: tuple[Resource, ...] = (
    # core/v1
    Resource(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ("ns",),
        (),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status", "finalize"),
        schema_name="io.k8s.api.core.v1.Namespace",
    ),
    Resource(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        _ALL,
        subresources=(
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "ephemeralcontainers",
            "resize",
        ),
        schema_name="io.k8s.api.core.v1.Pod",
    ),
    Resource(
        "",
        "v1",
        "Binding",
        "bindings",
        True,
        verbs=_CREATE_ONLY,
        schema_name="io.k8s.api.core.v1.Binding",
    ),
    Resource(
        "",
        "v1",
        "Service",
        "services",
        True,
        ("svc",),
        _ALL,
        subresources=("status", "proxy"),
        schema_name="io.k8s.api.core.v1.Service",
    ),
    Resource(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        True,
        ("ep",),
        schema_name="io.k8s.api.core.v1.Endpoints",
    ),
    Resource(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        True,
        ("cm",),
        schema_name="io.k8s.api.core.v1.ConfigMap",
    ),
    Resource("", "v1", "Secret", "secrets", True, schema_name="io.k8s.api.core.v1.Secret"),
    Resource(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        True,
        ("sa",),
        subresources=("token",),
        schema_name="io.k8s.api.core.v1.ServiceAccount",
    ),
    Resource(
        "",
        "v1",
        "Node",
        "nodes",
        False,
        ("no",),
        subresources=("status", "proxy"),
        schema_name="io.k8s.api.core.v1.Node",
    ),
    Resource(
        "",
        "v1",
        "Event",
        "events",
        True,
        ("ev",),
        storage="/registry/events",
        schema_name="io.k8s.api.core.v1.Event",
    ),
    Resource(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        True,
        ("limits",),
        schema_name="io.k8s.api.core.v1.LimitRange",
    ),
    Resource(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        True,
        ("quota",),
        subresources=_STATUS,
        schema_name="io.k8s.api.core.v1.ResourceQuota",
    ),
    Resource(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        False,
        ("pv",),
        subresources=_STATUS,
        schema_name="io.k8s.api.core.v1.PersistentVolume",
    ),
    Resource(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        ("pvc",),
        subresources=_STATUS,
        schema_name="io.k8s.api.core.v1.PersistentVolumeClaim",
    ),
    # apps/v1
    Resource(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        ("deploy",),
        _ALL,
        subresources=_SCALED,
        schema_name="io.k8s.api.apps.v1.Deployment",
    ),
    Resource(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        True,
        ("rs",),
        _ALL,
        subresources=_SCALED,
        schema_name="io.k8s.api.apps.v1.ReplicaSet",
    ),
    Resource(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        ("sts",),
        _ALL,
        subresources=_SCALED,
        schema_name="io.k8s.api.apps.v1.StatefulSet",
    ),
    Resource(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        True,
        ("ds",),
        _ALL,
        subresources=_STATUS,
        schema_name="io.k8s.api.apps.v1.DaemonSet",
    ),
    Resource(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        True,
        schema_name="io.k8s.api.apps.v1.ControllerRevision",
    ),
    # batch/v1
    Resource(
        "batch",
        "v1",
        "Job",
        "jobs",
        True,
        (),
        _ALL,
        subresources=_STATUS,
        schema_name="io.k8s.api.batch.v1.Job",
    ),
    Resource(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        True,
        ("cj",),
        _ALL,
        subresources=_STATUS,
        schema_name="io.k8s.api.batch.v1.CronJob",
    ),
    # coordination.k8s.io/v1
    Resource(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        True,
        schema_name="io.k8s.api.coordination.v1.Lease",
    ),
    # discovery.k8s.io/v1
    Resource(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        True,
        schema_name="io.k8s.api.discovery.v1.EndpointSlice",
    ),
    # events.k8s.io/v1: the same storage as core events, another shape
    Resource(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        True,
        ("ev",),
        storage="/registry/events",
        schema_name="io.k8s.api.events.v1.Event",
    ),
    # policy/v1
    Resource(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        subresources=_STATUS,
        schema_name="io.k8s.api.policy.v1.PodDisruptionBudget",
    ),
    # autoscaling/v2
    Resource(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        _ALL,
        subresources=_STATUS,
        schema_name="io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    ),
    # scheduling.k8s.io/v1
    Resource(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        False,
        ("pc",),
        schema_name="io.k8s.api.scheduling.v1.PriorityClass",
    ),
    # storage.k8s.io/v1
    Resource(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        False,
        ("sc",),
        schema_name="io.k8s.api.storage.v1.StorageClass",
    ),
    # rbac.authorization.k8s.io/v1 (stored and served; enforcement comes later)
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        True,
        schema_name="io.k8s.api.rbac.v1.Role",
    ),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        False,
        schema_name="io.k8s.api.rbac.v1.ClusterRole",
    ),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        True,
        schema_name="io.k8s.api.rbac.v1.RoleBinding",
    ),
    Resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        False,
        schema_name="io.k8s.api.rbac.v1.ClusterRoleBinding",
    ),
    # apiextensions.k8s.io/v1
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        subresources=_STATUS,
        schema_name="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "CustomResourceDefinition",
    ),
    # networking.k8s.io/v1
    Resource(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        True,
        ("ing",),
        subresources=_STATUS,
        schema_name="io.k8s.api.networking.v1.Ingress",
    ),
    Resource(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        False,
        schema_name="io.k8s.api.networking.v1.IngressClass",
    ),
    Resource(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        True,
        ("netpol",),
        schema_name="io.k8s.api.networking.v1.NetworkPolicy",
    ),
    # authentication.k8s.io/v1: answered, never stored (`kubectl auth whoami`)
    Resource(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        False,
        verbs=_CREATE_ONLY,
        schema_name="io.k8s.api.authentication.v1.SelfSubjectReview",
    ),
    # authorization.k8s.io/v1: reviews are answered, never stored
    Resource(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=_CREATE_ONLY,
        schema_name="io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    ),
)


def builtin_registry() -> Registry:
    registry = Registry()
    for resource in BUILTIN:
        registry.add(resource)
    return registry


_BY_PATH = {(r.group, r.version, r.plural): r for r in BUILTIN}


def lookup(group: str, version: str, plural: str) -> Resource:
    """A built-in resource by group, version and plural (KeyError if there is none)."""
    return _BY_PATH[(group, version, plural)]
