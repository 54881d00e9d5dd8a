"""scheduling.k8s.io/v1 messages: PriorityClass (`kubectl create priorityclass`).

Field numbers are those of k8s.io/api scheduling/v1 `generated.proto`.
"""

from __future__ import annotations

MESSAGES = {
    "PriorityClass": {
        1: "metadata ObjectMeta",
        2: "value *int",
        3: "globalDefault bool",
        4: "description string",
        5: "preemptionPolicy *string",
    },
}

KINDS = {("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass"}
