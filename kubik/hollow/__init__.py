"""Hollow nodes: many simulated nodes and their kubelet's pod work in one process.

For tests and benchmarks of the control plane at scale, as kubemark's hollow
nodes and kwok do: nodes register, keep their leases fresh and run pods on
paper; nothing is executed and no address is ever contacted.
"""

from kubik.hollow.nodes import HollowNodes

__all__ = ["HollowNodes"]
