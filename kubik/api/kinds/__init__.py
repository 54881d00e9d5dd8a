"""The built-in kinds' defaults and validation, one module per API group (core split in four).

Importing this package registers every kind's defaulter and validator with
`kubik.api.defaults` and `kubik.api.validation`; those modules import it.
The pod spec modules (podspec, pod_validation, pod_volumes) are shared by
Pods and by the workloads' pod templates.
"""

from kubik.api.kinds import apps, batch, coordination, core, events, service, storage

__all__ = ["apps", "batch", "coordination", "core", "events", "service", "storage"]
