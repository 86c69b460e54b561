"""The one cluster resolver: which kubeconfig, which context, or in-cluster.

A kubeconfig can run code (``users[].user.exec`` credential plugins) and read files (``tokenFile``,
``client-certificate``, ``client-key``, ``certificate-authority``). So only the operator names
kubeconfig files (``KUBECONFIG``, ``~/.kube/config``, the bundle's setting); a request may only
pick one of their contexts (``kube_context``). Every cluster scan (the Kubescape binary, the
built-in engine, kube-bench Jobs), ``doctor`` and ``list_contexts`` ask this package.
"""

from mcp_kscan.cluster.kubeconfig import ContextInfo, Kubeconfig, kubeconfig_files, read_kubeconfig
from mcp_kscan.cluster.source import (
    ClusterConfigError,
    ClusterSource,
    Contexts,
    list_contexts,
    new_api_client,
    resolve_cluster,
    safe_api_error,
)

__all__ = [
    "ClusterConfigError",
    "ClusterSource",
    "ContextInfo",
    "Contexts",
    "Kubeconfig",
    "kubeconfig_files",
    "list_contexts",
    "new_api_client",
    "read_kubeconfig",
    "resolve_cluster",
    "safe_api_error",
]
