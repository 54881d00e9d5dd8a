"""The node agent's defaults, apart from the agent: the command line shows them in its help
without importing the agent and the CRI's gRPC stubs, which no other role needs."""

from __future__ import annotations

CGROUP_ROOT = "/kubik"
CLUSTER_DNS = "10.43.0.10"  # k3s's: the tenth address of the service CIDR
CLUSTER_DOMAIN = "cluster.local"
LOG_MAX_SIZE = "10Mi"  # a container log is rotated past this size
LOG_MAX_FILES = 5  # rotated log files kept per container
