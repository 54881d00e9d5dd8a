"""policy/v1 messages: PodDisruptionBudget (`kubectl create pdb`) and Eviction
(`kubectl drain`).

Field numbers are those of k8s.io/api policy/v1 `generated.proto`.
"""

from __future__ import annotations

MESSAGES = {
    "PodDisruptionBudget": {
        1: "metadata ObjectMeta",
        2: "spec PodDisruptionBudgetSpec",
        3: "status PodDisruptionBudgetStatus",
    },
    "PodDisruptionBudgetSpec": {
        1: "minAvailable IntOrString",
        2: "selector LabelSelector",
        3: "maxUnavailable IntOrString",
        4: "unhealthyPodEvictionPolicy *string",
    },
    "PodDisruptionBudgetStatus": {
        1: "observedGeneration int",
        2: "disruptedPods {}Time",
        3: "disruptionsAllowed *int",
        4: "currentHealthy *int",
        5: "desiredHealthy *int",
        6: "expectedPods *int",
        7: "conditions []Condition",
    },
    "Eviction": {1: "metadata ObjectMeta", 2: "deleteOptions DeleteOptions"},
}

KINDS = {
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("policy/v1", "Eviction"): "Eviction",
}
