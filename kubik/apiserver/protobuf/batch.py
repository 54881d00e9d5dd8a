"""batch/v1 messages: Job and CronJob (`kubectl create job|cronjob`).

Field numbers are those of k8s.io/api batch/v1 `generated.proto`.
"""

from __future__ import annotations

MESSAGES = {
    "Job": {1: "metadata ObjectMeta", 2: "spec JobSpec", 3: "status JobStatus"},
    "JobSpec": {
        1: "parallelism *int",
        2: "completions *int",
        3: "activeDeadlineSeconds *int",
        11: "podFailurePolicy PodFailurePolicy",
        16: "successPolicy SuccessPolicy",
        7: "backoffLimit *int",
        12: "backoffLimitPerIndex *int",
        13: "maxFailedIndexes *int",
        4: "selector LabelSelector",
        5: "manualSelector *bool",
        6: "template PodTemplateSpec",
        8: "ttlSecondsAfterFinished *int",
        9: "completionMode *string",
        10: "suspend *bool",
        14: "podReplacementPolicy *string",
        15: "managedBy *string",
    },
    "PodFailurePolicy": {1: "rules []PodFailurePolicyRule"},
    "PodFailurePolicyRule": {
        1: "action *string",
        2: "onExitCodes PodFailurePolicyOnExitCodesRequirement",
        3: "onPodConditions []PodFailurePolicyOnPodConditionsPattern",
    },
    "PodFailurePolicyOnExitCodesRequirement": {
        1: "containerName *string",
        2: "operator *string",
        3: "values []int",
    },
    "PodFailurePolicyOnPodConditionsPattern": {1: "type *string", 2: "status *string"},
    "SuccessPolicy": {1: "rules []SuccessPolicyRule"},
    "SuccessPolicyRule": {1: "succeededIndexes *string", 2: "succeededCount *int"},
    "JobStatus": {
        1: "conditions []JobCondition",
        2: "startTime Time",
        3: "completionTime Time",
        4: "active int",
        5: "succeeded int",
        6: "failed int",
        11: "terminating *int",
        7: "completedIndexes string",
        10: "failedIndexes *string",
        8: "uncountedTerminatedPods UncountedTerminatedPods",
        9: "ready *int",
    },
    "JobCondition": {
        1: "type *string",
        2: "status *string",
        3: "lastProbeTime Time",
        4: "lastTransitionTime Time",
        5: "reason string",
        6: "message string",
    },
    "UncountedTerminatedPods": {1: "succeeded []string", 2: "failed []string"},
    "CronJob": {1: "metadata ObjectMeta", 2: "spec CronJobSpec", 3: "status CronJobStatus"},
    "CronJobSpec": {
        1: "schedule *string",
        8: "timeZone *string",
        2: "startingDeadlineSeconds *int",
        3: "concurrencyPolicy string",
        4: "suspend *bool",
        5: "jobTemplate JobTemplateSpec",
        6: "successfulJobsHistoryLimit *int",
        7: "failedJobsHistoryLimit *int",
    },
    "JobTemplateSpec": {1: "metadata ObjectMeta", 2: "spec JobSpec"},
    "CronJobStatus": {
        1: "active []ObjectReference",
        4: "lastScheduleTime Time",
        5: "lastSuccessfulTime Time",
    },
}

KINDS = {("batch/v1", "Job"): "Job", ("batch/v1", "CronJob"): "CronJob"}
