"""Scanner adapters: request models, argv builders and output parsers for kube-bench and Kubescape.

Each adapter validates a request completely before any process starts (pattern, allow-list,
path rules), builds an argv list (never a shell string) and turns the tool's JSON into the
normalized models of ``mcp_kscan.reports``. ``tasks.py`` wires them to the scan runner.
"""
