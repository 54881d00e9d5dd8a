"""core/v1 messages of the kinds `kubectl create` sends: ConfigMap, Secret,
Namespace, ServiceAccount, Service, ResourceQuota, and Binding; and the
object references other groups share.

Field numbers are those of k8s.io/api core/v1 `generated.proto`; the `*`
marks follow the Go types (see messages.py).
"""

from __future__ import annotations

MESSAGES = {
    "ConfigMap": {
        1: "metadata ObjectMeta",
        4: "immutable *bool",
        2: "data {}string",
        3: "binaryData {}bytes",
    },
    "Secret": {
        1: "metadata ObjectMeta",
        5: "immutable *bool",
        2: "data {}bytes",
        4: "stringData {}string",
        3: "type string",
    },
    "Namespace": {1: "metadata ObjectMeta", 2: "spec NamespaceSpec", 3: "status NamespaceStatus"},
    "NamespaceSpec": {1: "finalizers []string"},
    "NamespaceStatus": {1: "phase string", 2: "conditions []NamespaceCondition"},
    "NamespaceCondition": {
        1: "type *string",
        2: "status *string",
        4: "lastTransitionTime Time",
        5: "reason string",
        6: "message string",
    },
    "ServiceAccount": {
        1: "metadata ObjectMeta",
        2: "secrets []ObjectReference",
        3: "imagePullSecrets []LocalObjectReference",
        4: "automountServiceAccountToken *bool",
    },
    "ObjectReference": {
        1: "kind string",
        2: "namespace string",
        3: "name string",
        4: "uid string",
        5: "apiVersion string",
        6: "resourceVersion string",
        7: "fieldPath string",
    },
    "LocalObjectReference": {1: "name string"},
    "TypedLocalObjectReference": {1: "apiGroup *string", 2: "kind *string", 3: "name *string"},
    "TypedObjectReference": {
        1: "apiGroup *string",
        2: "kind *string",
        3: "name *string",
        4: "namespace *string",
    },
    "Binding": {1: "metadata ObjectMeta", 2: "target ObjectReference"},
    "ResourceQuota": {
        1: "metadata ObjectMeta",
        2: "spec ResourceQuotaSpec",
        3: "status ResourceQuotaStatus",
    },
    "ResourceQuotaSpec": {
        1: "hard {}Quantity",
        2: "scopes []string",
        3: "scopeSelector ScopeSelector",
    },
    "ResourceQuotaStatus": {1: "hard {}Quantity", 2: "used {}Quantity"},
    "ScopeSelector": {1: "matchExpressions []ScopedResourceSelectorRequirement"},
    "ScopedResourceSelectorRequirement": {
        1: "scopeName *string",
        2: "operator *string",
        3: "values []string",
    },
    # Service
    "Service": {1: "metadata ObjectMeta", 2: "spec ServiceSpec", 3: "status ServiceStatus"},
    "ServiceSpec": {
        1: "ports []ServicePort",
        2: "selector {}string",
        3: "clusterIP string",
        18: "clusterIPs []string",
        4: "type string",
        5: "externalIPs []string",
        7: "sessionAffinity string",
        8: "loadBalancerIP string",
        9: "loadBalancerSourceRanges []string",
        10: "externalName string",
        11: "externalTrafficPolicy string",
        12: "healthCheckNodePort int",
        13: "publishNotReadyAddresses bool",
        14: "sessionAffinityConfig SessionAffinityConfig",
        19: "ipFamilies []string",
        17: "ipFamilyPolicy *string",
        20: "allocateLoadBalancerNodePorts *bool",
        21: "loadBalancerClass *string",
        22: "internalTrafficPolicy *string",
        23: "trafficDistribution *string",
    },
    "ServicePort": {
        1: "name string",
        2: "protocol string",
        6: "appProtocol *string",
        3: "port *int",
        4: "targetPort IntOrString",
        5: "nodePort int",
    },
    "SessionAffinityConfig": {1: "clientIP ClientIPConfig"},
    "ClientIPConfig": {1: "timeoutSeconds *int"},
    "ServiceStatus": {1: "loadBalancer LoadBalancerStatus", 2: "conditions []Condition"},
    "LoadBalancerStatus": {1: "ingress []LoadBalancerIngress"},
    "LoadBalancerIngress": {
        1: "ip string",
        2: "hostname string",
        3: "ipMode *string",
        4: "ports []PortStatus",
    },
    "PortStatus": {1: "port *int", 2: "protocol *string", 3: "error *string"},
}

KINDS = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("v1", "Binding"): "Binding",
}
