"""Pod volumes on the node: `VolumeManager` makes them, `container_mounts` mounts them."""

from kubik.kubelet.volumes.containermounts import container_mounts
from kubik.kubelet.volumes.manager import VolumeManager

__all__ = ["VolumeManager", "container_mounts"]
