"""Kubernetes client set-up: kubeconfig (request, then settings, then KUBECONFIG/~/.kube/config),
else the in-cluster service account.

Kept apart from the orchestration so the ``auto`` executor decision can ask "is a cluster
reachable by configuration?" without building anything, and tests can point a client at the
fake API with a kubeconfig file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from mcp_kscan.errors import KscanError
from mcp_kscan.settings import get_settings

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class ClusterConfigError(KscanError):
    """No usable cluster configuration (no kubeconfig, not in a pod) or a broken one."""


@dataclass(frozen=True)
class ClusterSource:
    """Where the cluster configuration comes from: a kubeconfig path, or in-cluster."""

    kubeconfig: str | None
    context: str | None
    in_cluster: bool = False

    def describe(self) -> str:
        if self.in_cluster:
            return "in-cluster service account"
        # No path: error messages reach callers, and server paths are not theirs to see.
        return "the kubeconfig" + (f" (context {self.context})" if self.context else "")


def find_cluster_source(kubeconfig: str | None = None, context: str | None = None) -> ClusterSource | None:
    """The configuration a client would use, or None when there is none.

    Order: the request's kubeconfig, ``KUBECONFIG`` (the setting, then the environment's list: first
    existing file of the list), ``~/.kube/config``, then in-cluster (service-account token and
    ``KUBERNETES_SERVICE_HOST``).
    """
    settings = get_settings()
    context = context or settings.kube_context
    candidates: list[str] = []
    if kubeconfig:
        return ClusterSource(kubeconfig, context)
    if settings.kubeconfig:
        candidates.append(settings.kubeconfig)
    env = os.environ.get("KUBECONFIG")
    if env:
        candidates += [p for p in env.split(os.pathsep) if p]
    candidates.append(str(Path("~/.kube/config").expanduser()))
    for path in candidates:
        if Path(path).is_file():
            return ClusterSource(path, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.is_file():
        return ClusterSource(None, None, in_cluster=True)
    return None


def new_api_client(source: ClusterSource, pool_size: int = 16) -> client.ApiClient:
    """A fresh ApiClient (its own connection pool, sized for ``pool_size`` concurrent calls).

    Blocking (reads files, may run exec credential plugins): call it in a worker thread.
    """
    cfg = client.Configuration()
    try:
        if source.in_cluster:
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=source.kubeconfig, context=source.context, client_configuration=cfg)
    except config.ConfigException as exc:
        raise ClusterConfigError(f"cannot use {source.describe()}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise ClusterConfigError(f"cannot read {source.describe()}: {type(exc).__name__}: {exc}") from None
    cfg.connection_pool_maxsize = max(4, pool_size)
    return client.ApiClient(cfg)


__all__ = ["ClusterSource", "ClusterConfigError", "find_cluster_source", "new_api_client"]
