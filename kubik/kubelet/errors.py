"""Errors the pod lifecycle turns into container reasons and events.

Modules that prepare a container (environment, volumes) raise these; the pod
worker decides what the user sees: a container configuration problem leaves
the container waiting with reason CreateContainerConfigError, a volume that
cannot be set up is a FailedMount event while the pod stays ContainerCreating.
"""

from __future__ import annotations


class ContainerConfigError(Exception):
    """The container cannot be configured (a missing configMap or secret key...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VolumeError(Exception):
    """A volume of the pod cannot be set up (yet)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StartError(Exception):
    """Starting a container failed: `reason` becomes its waiting reason
    (ErrImagePull, CrashLoopBackOff, RunContainerError...) and `message` the
    waiting message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
