"""The HTTP front end: Kubescape's REST API, the kube-bench tool endpoint and MCP at /mcp, on one port."""
