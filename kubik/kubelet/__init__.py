"""The node agent's kubelet: runs the pods bound to this node on containerd.

It talks to the container runtime through the CRI (`cri/`), supervises a
containerd of its own (`containerd.py`), builds and imports the few images a
node needs offline (`images.py`), and reports to the API server like the
upstream kubelet does, so real clients see real nodes and pods.
"""
