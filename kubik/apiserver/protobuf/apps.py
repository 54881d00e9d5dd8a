"""apps/v1 messages: Deployment (`kubectl create deployment`).

Field numbers are those of k8s.io/api apps/v1 `generated.proto`.
"""

from __future__ import annotations

MESSAGES = {
    "Deployment": {
        1: "metadata ObjectMeta",
        2: "spec DeploymentSpec",
        3: "status DeploymentStatus",
    },
    "DeploymentSpec": {
        1: "replicas *int",
        2: "selector LabelSelector",
        3: "template PodTemplateSpec",
        4: "strategy DeploymentStrategy",
        5: "minReadySeconds int",
        6: "revisionHistoryLimit *int",
        7: "paused bool",
        9: "progressDeadlineSeconds *int",
    },
    "DeploymentStrategy": {1: "type string", 2: "rollingUpdate RollingUpdateDeployment"},
    "RollingUpdateDeployment": {1: "maxUnavailable IntOrString", 2: "maxSurge IntOrString"},
    "DeploymentStatus": {
        1: "observedGeneration int",
        2: "replicas int",
        3: "updatedReplicas int",
        7: "readyReplicas int",
        4: "availableReplicas int",
        5: "unavailableReplicas int",
        6: "conditions []DeploymentCondition",
        8: "collisionCount *int",
    },
    "DeploymentCondition": {
        1: "type *string",
        2: "status *string",
        6: "lastUpdateTime Time",
        7: "lastTransitionTime Time",
        4: "reason string",
        5: "message string",
    },
}

KINDS = {("apps/v1", "Deployment"): "Deployment"}
