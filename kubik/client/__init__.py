"""kubik's own async client for the Kubernetes API (used by every component and the benchmarks)."""
