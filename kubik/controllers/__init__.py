"""The controllers of kube-controller-manager, one module each (see base.py and manager.py)."""
