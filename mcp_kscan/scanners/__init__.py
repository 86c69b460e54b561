"""Scanner adapters: request models and argv builders for kube-bench and Kubescape.

Each request model validates a request completely before any process starts (pattern, allow-list,
path rules); each ``*_argv`` module builds an argv list (never a shell string). The tools' JSON is
turned into the normalized models of ``mcp_kscan.reports`` by ``mcp_kscan.readers``; ``tasks.py``
wires the three to the scan runner.
"""
