"""rbac.authorization.k8s.io/v1 messages (`kubectl create role|clusterrole|
rolebinding|clusterrolebinding`).

Field numbers are those of k8s.io/api rbac/v1 `generated.proto`.
"""

from __future__ import annotations

_BINDING = {1: "metadata ObjectMeta", 2: "subjects []Subject", 3: "roleRef RoleRef"}

MESSAGES = {
    "Role": {1: "metadata ObjectMeta", 2: "rules []PolicyRule"},
    "ClusterRole": {
        1: "metadata ObjectMeta",
        2: "rules []PolicyRule",
        3: "aggregationRule AggregationRule",
    },
    "PolicyRule": {
        1: "verbs []string",
        2: "apiGroups []string",
        3: "resources []string",
        4: "resourceNames []string",
        5: "nonResourceURLs []string",
    },
    "AggregationRule": {1: "clusterRoleSelectors []LabelSelector"},
    "RoleBinding": _BINDING,
    "Subject": {1: "kind *string", 2: "apiGroup string", 3: "name *string", 4: "namespace string"},
    "RoleRef": {1: "apiGroup *string", 2: "kind *string", 3: "name *string"},
}

KINDS = {
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "RoleBinding",
}
