"""Which cluster a scan talks to, and the one place a kubeconfig reaches the Kubernetes client.

Order (``resolve_cluster``): the request's ``kube_context``, else ``MCP_KSCAN_KUBE_CONTEXT`` /
``KS_CONTEXT``, else the kubeconfig's current context, all within the operator's kubeconfig
(``KUBECONFIG`` or ``~/.kube/config``); with no kubeconfig, the in-cluster service account.

A request never names a kubeconfig file: a kubeconfig's exec plugin runs a command and its
``tokenFile``/certificate paths are read, so the file is configuration, like the binary paths.
Errors from the client are reduced to what cannot carry a credential: a read token can end
up inside an HTTP library's "invalid header value" message, so those are never quoted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from mcp_kscan.cluster.kubeconfig import ContextInfo, kubeconfig_files, read_kubeconfig
from mcp_kscan.errors import InvalidRequest, KscanError
from mcp_kscan.redact import redact_text

if TYPE_CHECKING:
    from kubernetes import client

    from mcp_kscan.settings import Settings

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
MAX_LISTED_CONTEXTS = 20
"""How many context names an error message lists (``list_contexts`` shows them all)."""


class ClusterConfigError(KscanError):
    """No usable cluster configuration (no kubeconfig, not in a pod) or a broken one."""


@dataclass(frozen=True)
class ClusterSource:
    """Where the cluster configuration comes from: the operator's kubeconfig and a context, or in-cluster.

    Plain strings, so a scan can hand it to a worker process.
    """

    kubeconfig: str | None
    """The operator's kubeconfig file(s), ``os.pathsep``-separated (the client merges them)."""
    context: str | None
    """The context to use; None means the kubeconfig's current context."""
    in_cluster: bool = False

    def describe(self) -> str:
        if self.in_cluster:
            return "in-cluster service account"
        # No path: error messages reach callers, and server paths are not theirs to see.
        return "the kubeconfig" + (f" (context {self.context})" if self.context else "")


def in_cluster_available() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and IN_CLUSTER_TOKEN.is_file()


def _names_hint(names: list[str]) -> str:
    if not names:
        return "it defines no contexts"
    shown = ", ".join(names[:MAX_LISTED_CONTEXTS])
    more = f" and {len(names) - MAX_LISTED_CONTEXTS} more" if len(names) > MAX_LISTED_CONTEXTS else ""
    return f"its contexts: {shown}{more} (list_contexts shows them)"


def resolve_cluster(settings: Settings, requested_context: str | None = None) -> ClusterSource | None:
    """The cluster source for a scan, or None when the server has no cluster configuration.

    Raises ``InvalidRequest`` (field ``kube_context``) when the request names a context the
    server's kubeconfig does not have, and ``ClusterConfigError`` when the operator's
    ``MCP_KSCAN_KUBE_CONTEXT`` is not one of them: a context that cannot match is an error,
    never a silent fall-back to another cluster.
    """
    files, _configured = kubeconfig_files(settings.kubeconfig)
    existing = [f for f in files if f.is_file()]
    context = requested_context or settings.kube_context
    if existing:
        if context:
            names = read_kubeconfig(existing).context_names
            if context not in names:
                if requested_context:
                    raise InvalidRequest("kube_context", f"no context {requested_context!r} in the server's kubeconfig; "
                                         + _names_hint(names))
                raise ClusterConfigError(
                    f"MCP_KSCAN_KUBE_CONTEXT={context!r} is not a context of the server's kubeconfig; "
                    + _names_hint(names)
                )
        return ClusterSource(os.pathsep.join(str(f) for f in existing), context)
    if requested_context:
        where = "it uses its in-cluster service account" if in_cluster_available() else "it has none"
        raise InvalidRequest(
            "kube_context", f"the server has no kubeconfig to choose a context from ({where}); leave kube_context out"
        )
    if in_cluster_available():
        return ClusterSource(None, None, in_cluster=True)
    return None


class Contexts(BaseModel):
    """What ``list_contexts`` answers: names and namespaces, never a credential or a file path."""

    contexts: list[ContextInfo]
    current_context: str | None = Field(description="The kubeconfig's current-context.")
    default_context: str | None = Field(
        description="The context a scan without kube_context uses (MCP_KSCAN_KUBE_CONTEXT, else current)."
    )
    in_cluster: bool = Field(description="True when the server uses its in-cluster service account (no kubeconfig).")


def list_contexts(settings: Settings) -> Contexts:
    files, _configured = kubeconfig_files(settings.kubeconfig)
    existing = [f for f in files if f.is_file()]
    if not existing:
        return Contexts(contexts=[], current_context=None, default_context=None, in_cluster=in_cluster_available())
    merged = read_kubeconfig(existing)
    if merged.problems and not merged.contexts:
        # Which file and why are for the operator (doctor prints them), not for callers.
        raise ClusterConfigError("the server's kubeconfig cannot be read; run `mcp-kscan doctor` on the server")
    return Contexts(
        contexts=merged.context_info(),
        current_context=merged.current_context,
        default_context=settings.kube_context or merged.current_context,
        in_cluster=False,
    )


def safe_api_error(exc: BaseException) -> str:
    """What a client failure may say: an HTTP status, or the kind of failure, never its text.

    Why not ``str(exc)``: a token read from a ``tokenFile`` goes into the Authorization header,
    and the HTTP library's "invalid header value" error quotes it; connection errors quote URLs
    with whatever the kubeconfig put in them.
    """
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        reason = getattr(exc, "reason", None)
        return f"HTTP {status}" + (f" {reason}" if isinstance(reason, str) and reason.isprintable() else "")
    name = type(exc).__name__
    if name in ("MaxRetryError", "NewConnectionError", "ConnectionRefusedError", "ProtocolError", "ConnectionError"):
        return f"cannot reach the API server ({name})"
    if name in ("ReadTimeoutError", "ConnectTimeoutError", "TimeoutError"):
        return f"cannot reach the API server: no answer in time ({name})"
    if "SSL" in name:
        return f"TLS failure talking to the API server ({name})"
    return name


def _config_error_text(exc: BaseException, source: ClusterSource) -> str:
    """The kubeconfig loader's message: its first sentence for an exec plugin (whose stderr is left
    out), the operator's file paths replaced (server paths are not the caller's to see)."""
    text = " ".join(str(exc).split())
    if text.startswith("exec:"):
        text = text.split(". ", 1)[0]
    for path in sorted((source.kubeconfig or "").split(os.pathsep), key=len, reverse=True):
        if path:
            text = text.replace(path, "<kubeconfig>")
    return redact_text(text[:200])


def new_api_client(source: ClusterSource, pool_size: int = 16) -> client.ApiClient:
    """A fresh ApiClient (its own connection pool, sized for ``pool_size`` concurrent calls).

    Blocking (reads files, may run the operator's exec credential plugin): call it in a worker thread.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if source.in_cluster:
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=source.kubeconfig, context=source.context, client_configuration=cfg)
    except config.ConfigException as exc:
        raise ClusterConfigError(f"cannot use {source.describe()}: {_config_error_text(exc, source)}") from None
    except Exception as exc:  # noqa: BLE001 - YAML, OS and value errors; their text may quote file contents
        raise ClusterConfigError(f"cannot read {source.describe()}: {type(exc).__name__}") from None
    cfg.connection_pool_maxsize = max(4, pool_size)
    return client.ApiClient(cfg)


__all__ = [
    "ClusterConfigError",
    "ClusterSource",
    "Contexts",
    "IN_CLUSTER_TOKEN",
    "in_cluster_available",
    "list_contexts",
    "new_api_client",
    "resolve_cluster",
    "safe_api_error",
]
