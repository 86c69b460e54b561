"""Read-only access to the Kubernetes API for the operator readers: GET, paged LIST, error mapping.

Why raw GETs rather than the typed APIs: the operators' objects are custom kinds (CRDs, and an
aggregated API), so the typed models do not apply, and turning thousands of report objects into
client models would cost more than the answer is allowed to take. Each call runs in a worker
thread (the client is synchronous) and answers parsed JSON.

Errors come back as one-line, caller-safe messages that say what is missing: the resource and
verb RBAC refused, or that the API cannot be reached. Nothing here writes to the cluster.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio

from mcp_kscan.errors import ClusterForbidden, ClusterNotConfigured, ClusterUnreachable, KscanError
from mcp_kscan.cluster import ClusterConfigError, ClusterSource, new_api_client, resolve_cluster, safe_api_error
from mcp_kscan.settings import Settings

if TYPE_CHECKING:
    from kubernetes import client

# The Kubernetes client and urllib3 are imported where a cluster is read, not with this module:
# together they cost about 0.35 s of CPU, paid at every server start (stdio or HTTP) otherwise.

PAGE_SIZE = 500
"""Items per LIST page: Kubescape's storage caps an unbounded page at 500 anyway."""

REQUEST_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds: an unreachable API fails fast, a big page may take its time."""

MAX_CONCURRENT_GETS = 8


class NotFound(KscanError):
    """A GET answered 404 (an object or an API group that is not there)."""


@dataclass(frozen=True)
class Resource:
    """A resource type of an API group, enough to build its paths and to name it in errors."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        path = self.prefix
        if namespace and self.namespaced:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{self.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        return path

    @property
    def qualified(self) -> str:
        """``vulnerabilityreports.aquasecurity.github.io``, as kubectl and RBAC errors name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def open_cluster(settings: Settings) -> tuple[client.ApiClient, ClusterSource]:
    """The one place the operator readers get a Kubernetes client: the cluster resolver's.

    The server's own cluster configuration (the operator's kubeconfig and context, or in-cluster):
    callers never choose one. Blocking (reads files): call it in a worker thread.
    """
    try:
        source = resolve_cluster(settings)
        if source is None:
            raise ClusterNotConfigured(
                "the server has no cluster configuration: set KUBECONFIG (MCP_KSCAN_KUBE_CONTEXT for a context), "
                "use ~/.kube/config, or run the server in a pod with a service account"
            )
        api = new_api_client(source, pool_size=MAX_CONCURRENT_GETS * 2)
    except ClusterConfigError as exc:
        raise ClusterNotConfigured(str(exc)) from None
    import urllib3

    # urllib3 retries a refused connection three times by default, so an unreachable API took
    # four connect timeouts to report; one retry is enough for a dropped keep-alive connection.
    api.rest_client.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(total=1, redirect=0)
    return api, source


class KubeReader:
    """GET and paged LIST over one ApiClient, with the error messages callers act on."""

    def __init__(self, api: client.ApiClient, source: ClusterSource) -> None:
        self.api = api
        self.source = source
        self.limiter = anyio.CapacityLimiter(MAX_CONCURRENT_GETS)
        self._pages = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kscan-list")
        self.calls = 0
        """Requests sent, for tests and the benchmark."""

    @classmethod
    async def open(cls, settings: Settings) -> KubeReader:
        api, source = await anyio.to_thread.run_sync(open_cluster, settings)
        return cls(api, source)

    def close(self) -> None:
        self._pages.shutdown(wait=False, cancel_futures=True)
        self.api.close()

    def _get_sync(self, path: str, query: list[tuple[str, str]], headers: dict[str, str] | None) -> Any:
        import urllib3

        params = self.api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=query,
            header_params={"Accept": "application/json", **(headers or {})},
            auth_settings=["BearerToken"],
        )
        self.calls += 1
        try:
            resp = self.api.call_api(*params, _request_timeout=REQUEST_TIMEOUT)
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # safe_api_error: the library's text can quote URLs or headers from the kubeconfig.
            raise ClusterUnreachable(
                f"cannot reach the Kubernetes API ({self.source.describe()}): {safe_api_error(exc)}"
            ) from None
        if resp.status == 200:
            return json.loads(data)
        message = _status_message(data)
        if resp.status == 404:
            raise NotFound(message or f"{path} not found")
        if resp.status in (401, 403):
            raise ClusterForbidden(message or f"GET {path} answered {resp.status}")
        raise ClusterUnreachable(f"the Kubernetes API answered {resp.status} to GET {path}: {message or resp.reason}")

    async def get(self, path: str, query: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None) -> Any:
        async with self.limiter:
            return await anyio.to_thread.run_sync(self._get_sync, path, query or [], headers)

    async def get_object(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = await self.get(resource.path(namespace, name))
        except ClusterForbidden as exc:
            raise ClusterForbidden(_forbidden(resource, "get", namespace, exc)) from None
        return obj

    async def list_pages(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        full_spec: bool = False,
        metadata_only: bool = False,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every item, one LIST page at a time (``limit``/``continue``).

        ``full_spec``: Kubescape's storage answers a LIST with metadata only unless the request
        carries ``resourceVersion=fullSpec`` (on every page). ``metadata_only`` asks a real API
        server for PartialObjectMetadata (what it ignores it answers in full, which is fine).
        """
        headers = (
            {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"}
            if metadata_only
            else None
        )
        base: list[tuple[str, str]] = [("limit", str(page_size))]
        if label_selector:
            base.append(("labelSelector", label_selector))
        if full_spec:
            base.append(("resourceVersion", "fullSpec"))
        path = resource.path(namespace)

        def fetch(token: str | None) -> Future[Any]:
            query = [*base, ("continue", token)] if token else base
            return self._pages.submit(self._get_sync, path, query, headers)

        # The next page is requested before this one is handed over, so the API server encodes
        # and sends it while the caller works through this one.
        pending = fetch(None)
        while True:
            try:
                page = await anyio.to_thread.run_sync(pending.result, abandon_on_cancel=True)
            except ClusterForbidden as exc:
                raise ClusterForbidden(_forbidden(resource, "list", namespace, exc)) from None
            token = (page.get("metadata") or {}).get("continue") or None
            if token:
                pending = fetch(token)
            yield list(page.get("items") or [])
            if not token:
                return

    async def list_all(self, resource: Resource, namespace: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        async for page in self.list_pages(resource, namespace, **kwargs):
            items.extend(page)
        return items


def _status_message(data: bytes) -> str:
    try:
        status = json.loads(data)
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return " ".join(str(message).split())[:300] if message else ""


def _forbidden(resource: Resource, verb: str, namespace: str | None, exc: Exception) -> str:
    where = f"in namespace {namespace}" if namespace and resource.namespaced else "cluster-wide"
    return (
        f"RBAC forbids {verb} on {resource.qualified} {where} for the server's identity "
        f"(grant it with deploy/operator-reader-rbac.yaml); the API said: {exc}"
    )


__all__ = ["KubeReader", "NotFound", "PAGE_SIZE", "Resource", "open_cluster"]
