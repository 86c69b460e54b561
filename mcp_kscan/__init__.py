"""mcp-kscan: Kubernetes security scans (kube-bench, Kubescape, built-in engine) for MCP agents and REST callers."""

__version__ = "0.1.0"
