"""The built-in engine: evaluates Kubescape controls on manifests or a live cluster, no binary needed.

``scan_paths``/``scan_objects`` return the same v2 JSON report Kubescape writes, marked in
``metadata.engine`` as written by this engine.
"""
