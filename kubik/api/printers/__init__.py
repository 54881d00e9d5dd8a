"""Printers of the built-in kinds, one module per API group (upstream's internalversion printers).

Importing this package registers every printer with `kubik.api.tables`,
which imports it; `custom` (CRD columns) is used by the tables directly.
"""

from kubik.api.printers import (  # noqa: F401 - imported to register
    apps,
    autoscaling,
    batch,
    coordination,
    core,
    discovery,
    events,
    pods,
    policy,
    rbac,
    scheduling,
    storage,
)
