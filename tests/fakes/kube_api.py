"""A fake Kubernetes API server: real HTTP on 127.0.0.1, the API's own JSON, a simulated kubelet.

Why a real server and not mocks: the code under test uses the ``kubernetes`` client, whose
behaviour (watch streaming over chunked HTTP, Status objects for errors, deserialising into
V1Job/V1Pod, connection pooling) is part of what must work. The client cannot tell this server
from a real API server for the calls it serves:

- ``GET /version``
- list/get any preloaded object: ``/api/v1/<plural>``, ``/api/v1/namespaces/<ns>/<plural>[/<name>]``,
  ``/apis/<group>/<version>/[namespaces/<ns>/]<plural>[/<name>]`` with ``labelSelector``,
  ``fieldSelector=metadata.name=…`` and ``?watch=true`` (JSON lines of ``{"type", "object"}``,
  resourceVersions, ``timeoutSeconds``), namespace filtering for cluster-wide lists
- ``POST`` namespaces and Jobs (``batch/v1``); ``DELETE`` Jobs/Pods (one, or a collection by
  ``labelSelector``), honouring ``propagationPolicy`` (no policy orphans a Job's pods, as the
  real API does for batch/v1)
- ``GET /api/v1/namespaces/<ns>/pods/<name>/log`` (``limitBytes``)

The kubelet/job controller simulation: creating a Job creates its Pod (labels from the
template plus ``job-name``/``controller-uid``), then after ``delay_s`` plays the behaviour
scripted for the Job's node (``nodeName`` or ``kubernetes.io/hostname`` selector) — see
``Behaviour``. The fake records every request, every Job manifest as received, and the peak
number of Jobs that existed / were unfinished at once.

Reuse for other tests (live-cluster listing): ``FakeKubeAPI(objects=[...])`` or ``api.add(obj)``
serves arbitrary objects; ``api.write_kubeconfig(path)`` points a client at it.

For readers of operator results (Kubescape, Trivy) it also serves:

- discovery: ``GET /apis`` and ``GET /apis/<group>/<version>`` for the groups in ``api_groups``
  (``KUBESCAPE_API``, ``TRIVY_API``); a group that is not there answers 404, as a cluster
  without that operator does;
- list paging: ``limit`` and ``continue`` (items in namespace/name order, ``remainingItemCount``);
- the Kubescape storage quirk: a LIST in ``spdx.softwarecomposition.kubescape.io`` answers
  metadata only (``spec: {}``) unless the query has ``resourceVersion=fullSpec``; a GET of one
  object is always whole;
- RBAC refusals: ``forbidden`` holds ``(verb, plural)`` pairs answered 403 with the API's message;
- ``GET /_fake/requests``: how many requests it has answered (when it runs in another process).
"""

from __future__ import annotations

import base64
import bisect
import json
import pickle
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _copy(obj: Any) -> Any:
    """A deep copy of a JSON-like object: the fake copies what it stores and serves, and a pickle
    round trip does that 2-3x faster than copy.deepcopy."""
    return pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))

# kind -> plural for the kinds tests use; anything else is lower-case kind + "s".
_PLURALS = {
    "Node": "nodes", "Namespace": "namespaces", "Pod": "pods", "Job": "jobs", "Service": "services",
    "ConfigMap": "configmaps", "Secret": "secrets", "ServiceAccount": "serviceaccounts",
    "Deployment": "deployments", "DaemonSet": "daemonsets", "StatefulSet": "statefulsets",
    "ReplicaSet": "replicasets", "CronJob": "cronjobs", "Role": "roles", "ClusterRole": "clusterroles",
    "RoleBinding": "rolebindings", "ClusterRoleBinding": "clusterrolebindings",
    "NetworkPolicy": "networkpolicies", "Ingress": "ingresses", "PodSecurityPolicy": "podsecuritypolicies",
    "PersistentVolume": "persistentvolumes", "PersistentVolumeClaim": "persistentvolumeclaims",
    "Endpoints": "endpoints", "LimitRange": "limitranges", "ResourceQuota": "resourcequotas",
}
_CLUSTER_SCOPED = {"nodes", "namespaces", "clusterroles", "clusterrolebindings", "persistentvolumes",
                   "podsecuritypolicies", "customresourcedefinitions"}


KUBESCAPE_GROUP_VERSION = "spdx.softwarecomposition.kubescape.io/v1beta1"
TRIVY_GROUP_VERSION = "aquasecurity.github.io/v1alpha1"
KUBESCAPE_API: dict[str, list[tuple[str, str, bool]]] = {KUBESCAPE_GROUP_VERSION: [
    ("vulnerabilitymanifests", "VulnerabilityManifest", True),
    ("vulnerabilitymanifestsummaries", "VulnerabilityManifestSummary", True),
    ("vulnerabilitysummaries", "VulnerabilitySummary", False),
    ("workloadconfigurationscans", "WorkloadConfigurationScan", True),
    ("workloadconfigurationscansummaries", "WorkloadConfigurationScanSummary", True),
    ("configurationscansummaries", "ConfigurationScanSummary", False),
    ("applicationprofiles", "ApplicationProfile", True),
    ("sbomsyfts", "SBOMSyft", True),
]}
"""What the Kubescape storage aggregated API serves (plural, kind, namespaced)."""
TRIVY_API: dict[str, list[tuple[str, str, bool]]] = {TRIVY_GROUP_VERSION: [
    ("vulnerabilityreports", "VulnerabilityReport", True),
    ("configauditreports", "ConfigAuditReport", True),
    ("exposedsecretreports", "ExposedSecretReport", True),
    ("rbacassessmentreports", "RbacAssessmentReport", True),
    ("infraassessmentreports", "InfraAssessmentReport", True),
    ("sbomreports", "SbomReport", True),
    ("clusterconfigauditreports", "ClusterConfigAuditReport", False),
    ("clusterrbacassessmentreports", "ClusterRbacAssessmentReport", False),
    ("clustercompliancereports", "ClusterComplianceReport", False),
    ("clustervulnerabilityreports", "ClusterVulnerabilityReport", False),
]}
"""The Trivy operator's CRDs (plural, kind, namespaced)."""
_PLURALS.update({kind: plural for api in (KUBESCAPE_API, TRIVY_API) for rs in api.values() for plural, kind, _ in rs})
_CLUSTER_SCOPED |= {plural for api in (KUBESCAPE_API, TRIVY_API) for rs in api.values() for plural, _, ns in rs if not ns}


def plural_of(kind: str) -> str:
    return _PLURALS.get(kind) or kind.lower() + "s"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prefix_of(api_version: str) -> str:
    """``v1`` -> ``/api/v1``; ``batch/v1`` -> ``/apis/batch/v1``."""
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


# --------------------------------------------------------------------------- label selectors

_REQ_RE = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def selector_matches(selector: str | None, labels: dict[str, str] | None) -> bool:
    """Equality, set-based (in/notin) and existence requirements, as the API server applies them."""
    if not selector:
        return True
    labels = labels or {}
    for req in _split_selector(selector):
        m = _REQ_RE.match(req)
        if not m:
            raise ValueError(f"unable to parse requirement: {req!r}")
        neg, key, op, value, setop, values = m.groups()
        if op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif setop:
            vals = {v.strip() for v in values.split(",")}
            ok = (labels.get(key) in vals) if setop == "in" else (labels.get(key) not in vals)
        else:
            ok = (key in labels) != bool(neg)
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------- behaviours


@dataclass
class Behaviour:
    """What the simulated kubelet does with a Job's pod on one node.

    kind: ``succeed`` (log = ``log``, exit 0), ``exit`` (log = ``log``, exit ``exit_code``),
    ``image_pull`` (container waiting in ImagePullBackOff forever), ``unschedulable``
    (PodScheduled=False/Unschedulable), ``hang`` (Running forever).
    """

    kind: str = "succeed"
    log: bytes = b""
    exit_code: int = 1
    delay_s: float | None = None
    """Seconds from Job creation to the final state (None: the fake's default)."""


SUCCEED = "succeed"


# --------------------------------------------------------------------------- the server


@dataclass
class _Event:
    rv: int
    type: str
    obj: dict[str, Any]


@dataclass
class FakeKubeAPI:
    """The fake API server. ``with FakeKubeAPI(...) as api:`` starts it on a free port."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    git_version: str = "v1.30.2"
    default_behaviour: Behaviour = field(default_factory=Behaviour)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    """Per node name; nodes not listed use ``default_behaviour``."""
    delay_s: float = 0.05
    token: str | None = None
    """When set, requests must carry ``Authorization: Bearer <token>`` (else 401)."""
    api_groups: dict[str, list[tuple[str, str, bool]]] = field(default_factory=dict)
    """Served by discovery: ``group/version`` -> [(plural, kind, namespaced)] (KUBESCAPE_API, TRIVY_API)."""
    forbidden: set[tuple[str, str]] = field(default_factory=set)
    """(verb, plural) pairs answered 403, e.g. ("list", "vulnerabilityreports")."""
    admission: Callable[[dict[str, Any]], str | None] | None = None
    """An admission controller for PATCH: the patched object → a denial message, or None to admit."""
    pod_watch_lag_s: float = 0.0
    """Seconds each batch of Pod watch events is held back: a client's Pod watch that comes through
    after its Job watch (the two streams have no order between them, and a loaded client shows it)."""

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._rv = 100
        # key: (prefix, plural, namespace or "", name) -> object
        self._store: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        # Serialized list items per (key, metadata-only): a list of 5,000 reports must cost the
        # fake about what it costs a real API server (Go), not seconds of json.dumps.
        self._json: dict[tuple[tuple[str, str, str, str], bool], bytes] = {}
        self._sorted: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
        """Keys per (prefix, plural) in namespace/name order, kept while nothing of that kind changes."""
        self._events: dict[tuple[str, str], list[_Event]] = {}
        self.requests: list[tuple[str, str]] = []
        """(method, path with query) of every request, in order."""
        self.created_jobs: list[dict[str, Any]] = []
        """Every Job manifest exactly as POSTed."""
        self.deleted_jobs: list[str] = []
        self.peak_jobs = 0
        """Most Jobs that existed at the same time."""
        self.peak_active_jobs = 0
        """Most Jobs at once that had not finished (neither succeeded nor failed)."""
        self.log_reads: list[str] = []
        self.patches: list[tuple[str, str | None, Any]] = []
        """(path, dryRun, body) of every PATCH, in order."""
        self.open_watches = 0
        """Watch streams currently open (a client that closes its watches brings this back to 0)."""
        self._timers: list[threading.Timer] = []
        self._closed = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add(namespace_object("default"))
        self.add(namespace_object("kube-system"))
        for node in self.nodes:
            self.add(node)
        for obj in self.objects:
            self._preload(obj)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-kube-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for t in self._timers:
            t.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def write_kubeconfig(self, path: Path, context: str = "fake", namespace: str | None = None) -> Path:
        """A kubeconfig whose current context points at this server (token auth when set)."""
        user: dict[str, Any] = {"token": self.token} if self.token else {"username": "fake", "password": "fake"}
        ctx: dict[str, Any] = {"cluster": "fake-cluster", "user": "fake-user"}
        if namespace:
            ctx["namespace"] = namespace
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": user}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
        }
        path.write_text(json.dumps(doc))
        return path

    # ------------------------------------------------------------------ object store

    @staticmethod
    def write_multi_kubeconfig(path: Path, apis: dict[str, FakeKubeAPI], current: str) -> Path:
        """One kubeconfig with a context per fake (context name → that fake), ``current`` selected.

        Context ``c`` uses cluster ``c-cluster`` and user ``c-user``; namespaces are ``ns-c``.
        """
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": current,
                               "clusters": [], "users": [], "contexts": []}
        for name, api in apis.items():
            user: dict[str, Any] = {"token": api.token} if api.token else {"username": "fake", "password": "fake"}
            doc["clusters"].append({"name": f"{name}-cluster", "cluster": {"server": api.url}})
            doc["users"].append({"name": f"{name}-user", "user": user})
            doc["contexts"].append({"name": name, "context": {"cluster": f"{name}-cluster", "user": f"{name}-user",
                                                              "namespace": f"ns-{name}"}})
        path.write_text(json.dumps(doc))
        return path

    def _key(self, obj: dict[str, Any]) -> tuple[str, str, str, str]:
        plural = plural_of(obj["kind"])
        ns = "" if plural in _CLUSTER_SCOPED else obj["metadata"].get("namespace") or "default"
        return (_prefix_of(obj["apiVersion"]), plural, ns, obj["metadata"]["name"])

    def _put(self, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Store ``obj`` with a new resourceVersion and record the watch event (lock held)."""
        self._rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        key = self._key(obj)
        if key[1] not in _CLUSTER_SCOPED:
            meta["namespace"] = key[2]
        self._json.pop((key, False), None)
        self._json.pop((key, True), None)
        self._sorted.pop((key[0], key[1]), None)
        if event == "DELETED":
            self._store.pop(key, None)
        else:
            self._store[key] = obj
        self._events.setdefault((key[0], key[1]), []).append(_Event(self._rv, event, _copy(obj)))
        if key[1] == "jobs":  # only a Job's change can change the peaks (a scan over the whole store per put)
            self._count_jobs()
        self._lock.notify_all()
        return obj

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Preload (or replace) any object; it is served by the list/get/watch endpoints."""
        return _copy(self._preload(obj))

    def _preload(self, obj: dict[str, Any]) -> dict[str, Any]:
        """``add`` without the copy it returns: the stored object, not for the caller to change."""
        with self._lock:
            existed = self._key(obj) in self._store
            return self._put(_copy(obj), "MODIFIED" if existed else "ADDED")

    def get(self, kind: str, name: str, namespace: str = "", api_version: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            for (prefix, plural, ns, n), obj in self._store.items():
                if plural == plural_of(kind) and n == name and (not namespace or ns == namespace):
                    if api_version is None or prefix == _prefix_of(api_version):
                        return _copy(obj)
        return None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                _copy(o) for (_, plural, ns, _), o in self._store.items()
                if plural == plural_of(kind) and (namespace is None or ns == namespace)
            ]

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.list("Job", namespace)

    def _count_jobs(self) -> None:
        jobs = [o for (_, plural, _, _), o in self._store.items() if plural == "jobs"]
        self.peak_jobs = max(self.peak_jobs, len(jobs))
        active = [j for j in jobs if not _job_finished(j)]
        self.peak_active_jobs = max(self.peak_active_jobs, len(active))

    # ------------------------------------------------------------------ kubelet / job controller

    def _node_of(self, job: dict[str, Any]) -> str | None:
        spec = job.get("spec", {}).get("template", {}).get("spec", {})
        return spec.get("nodeName") or (spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")

    def _behaviour(self, node: str | None) -> Behaviour:
        return self.behaviours.get(node or "", self.default_behaviour)

    def _create_job(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store the Job and create its Pod, then schedule the node's behaviour (lock held)."""
        job = _copy(body)
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        job["metadata"]["namespace"] = ns
        uid = str(uuid.uuid4())
        job["metadata"]["uid"] = uid
        job["status"] = {"active": 1, "startTime": _now()}
        job = self._put(job, "ADDED")
        node = self._node_of(job)
        template = job["spec"]["template"]
        name = job["metadata"]["name"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{uuid.uuid4().hex[:5]}",
                "namespace": ns,
                "labels": {**(template.get("metadata", {}).get("labels") or {}), "job-name": name,
                           "batch.kubernetes.io/job-name": name, "controller-uid": uid},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                                     "controller": True}],
            },
            "spec": {**_copy(template.get("spec", {})), "nodeName": node},
            "status": {"phase": "Pending"},
        }
        self._put(pod, "ADDED")
        behaviour = self._behaviour(node)
        delay = self.delay_s if behaviour.delay_s is None else behaviour.delay_s
        timer = threading.Timer(delay, self._play, args=(ns, name, pod["metadata"]["name"], behaviour))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return job

    def _play(self, ns: str, job_name: str, pod_name: str, b: Behaviour) -> None:
        with self._lock:
            if self._closed:
                return
            job = self._store.get(("/apis/batch/v1", "jobs", ns, job_name))
            pod = self._store.get(("/api/v1", "pods", ns, pod_name))
            if job is None or pod is None:
                return
            job, pod = _copy(job), _copy(pod)
            image = pod["spec"]["containers"][0].get("image", "")
            cname = pod["spec"]["containers"][0].get("name", "kube-bench")
            if b.kind == "succeed" or b.kind == "exit":
                code = 0 if b.kind == "succeed" else b.exit_code
                pod["status"] = {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [{
                        "name": cname, "image": image, "imageID": "", "ready": False, "restartCount": 0,
                        "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                                 "startedAt": _now(), "finishedAt": _now()}},
                    }],
                }
                pod["_log"] = b.log
                self._put(pod, "MODIFIED")
                cond = "Complete" if code == 0 else "Failed"
                job["status"] = {
                    "startTime": job["status"].get("startTime"),
                    ("succeeded" if code == 0 else "failed"): 1,
                    "conditions": [{"type": cond, "status": "True", "lastProbeTime": _now(),
                                    "lastTransitionTime": _now(),
                                    **({} if code == 0 else {"reason": "BackoffLimitExceeded",
                                                             "message": "Job has reached the specified backoff limit"})}],
                }
                if code == 0:
                    job["status"]["completionTime"] = _now()
                self._put(job, "MODIFIED")
            elif b.kind == "image_pull":
                pod["status"] = {
                    "phase": "Pending",
                    "containerStatuses": [{
                        "name": cname, "image": image, "imageID": "", "ready": False, "restartCount": 0,
                        "state": {"waiting": {"reason": "ImagePullBackOff",
                                              "message": f'Back-off pulling image "{image}"'}},
                    }],
                }
                self._put(pod, "MODIFIED")
            elif b.kind == "unschedulable":
                pod["status"] = {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                    "message": "0/3 nodes are available: 1 node(s) had untolerated taint."}],
                }
                self._put(pod, "MODIFIED")
            elif b.kind == "hang":
                pod["status"] = {"phase": "Running", "containerStatuses": [{
                    "name": cname, "image": image, "imageID": "", "ready": True, "restartCount": 0,
                    "state": {"running": {"startedAt": _now()}}}]}
                self._put(pod, "MODIFIED")

    def _delete(self, key: tuple[str, str, str, str], propagation: str | None) -> dict[str, Any] | None:
        obj = self._store.get(key)
        if obj is None:
            return None
        gone = _copy(obj)
        self._put(_copy(obj), "DELETED")
        if key[1] == "jobs":
            self.deleted_jobs.append(key[3])
            if propagation in ("Background", "Foreground"):
                uid = obj["metadata"]["uid"]
                for pkey, pod in list(self._store.items()):
                    if pkey[1] == "pods" and pod["metadata"].get("labels", {}).get("controller-uid") == uid:
                        self._put(_copy(pod), "DELETED")
        return gone

    # ------------------------------------------------------------------ request handling

    def _match(self, prefix: str, plural: str, ns: str | None, query: dict[str, str]) -> Callable[[dict], bool]:
        label_sel = query.get("labelSelector")
        field_sel = query.get("fieldSelector")

        def ok(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata", {})
            if ns and meta.get("namespace") != ns:
                return False
            if not selector_matches(label_sel, meta.get("labels")):
                return False
            if field_sel:
                for req in field_sel.split(","):
                    k, _, v = req.partition("=")
                    k = k.rstrip("=")
                    v = v.lstrip("=")
                    if k == "metadata.name" and meta.get("name") != v:
                        return False
                    if k == "metadata.namespace" and meta.get("namespace") != v:
                        return False
            return True

        return ok

    def list_objects(self, prefix: str, plural: str, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        """One LIST answer as a dict (see ``list_body``)."""
        return json.loads(self.list_body(prefix, plural, ns, query))

    def list_body(self, prefix: str, plural: str, ns: str | None, query: dict[str, str]) -> bytes:
        """One LIST answer, serialized: sorted by namespace/name, paged by ``limit``/``continue``.

        Stored objects are never changed in place (every write stores a new copy), so each one is
        serialized once and pages are joined from those bytes.
        """
        metadata_only = prefix == "/apis/" + KUBESCAPE_GROUP_VERSION and query.get("resourceVersion") != "fullSpec"
        with self._lock:
            ok = self._match(prefix, plural, ns, query)
            everything = self._sorted.get((prefix, plural))
            if everything is None:
                everything = self._sorted[(prefix, plural)] = sorted(
                    k for k in self._store if k[0] == prefix and k[1] == plural)
            rv = str(self._rv)
            first = 0
            if query.get("continue"):
                after = tuple(json.loads(base64.urlsafe_b64decode(query["continue"].encode())))
                first = bisect.bisect_right(everything, (prefix, plural, *after))
            filtered = bool(ns or query.get("labelSelector") or query.get("fieldSelector"))
            keys = [k for k in everything[first:] if ok(self._store[k])] if filtered else everything[first:]
            start = 0
            limit = int(query.get("limit") or 0)
            end = min(len(keys), start + limit) if limit > 0 else len(keys)
            items = [self._item_json(k, metadata_only) for k in keys[start:end]]
            kind = _kind_of(plural, [self._store[keys[start]]] if start < end else [])
        api_version = prefix.split("/", 2)[2] if prefix.startswith("/apis/") else prefix.split("/")[2]
        meta: dict[str, Any] = {"resourceVersion": rv}
        if end < len(keys):
            last = keys[end - 1]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps([last[2], last[3]]).encode()).decode()
            meta["remainingItemCount"] = len(keys) - end
        head = json.dumps({"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta})
        return head[:-1].encode() + b', "items": [' + b", ".join(items) + b"]}"

    def _item_json(self, key: tuple[str, str, str, str], metadata_only: bool) -> bytes:
        """One stored object as a list item (lock held)."""
        cached = self._json.get((key, metadata_only))
        if cached is None:
            o = self._store[key]
            if metadata_only:
                # Kubescape storage lists from its metadata table: no spec unless fullSpec is asked for.
                o = {"apiVersion": o.get("apiVersion"), "kind": o.get("kind"), "metadata": o.get("metadata"), "spec": {}}
            elif "_log" in o:
                o = {k: v for k, v in o.items() if k != "_log"}
            cached = self._json[(key, metadata_only)] = json.dumps(o).encode()
        return cached

    def discovery(self, path: str) -> dict[str, Any] | None:
        """``/apis`` or ``/apis/<group>/<version>`` for the groups in ``api_groups`` (None: 404)."""
        if path == "/apis":
            groups = []
            for gv in sorted(self.api_groups):
                group, version = gv.split("/")
                entry = {"groupVersion": gv, "version": version}
                groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        gv = path.removeprefix("/apis/")
        if gv not in self.api_groups:
            return None
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
            {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
             "verbs": ["get", "list", "watch"]}
            for plural, kind, namespaced in self.api_groups[gv]]}

    def watch(self, prefix: str, plural: str, ns: str | None, query: dict[str, str]) -> Iterable[dict[str, Any] | None]:
        """Yield watch events (``None`` as a keep-alive tick) until timeoutSeconds or the server stops."""
        ok = self._match(prefix, plural, ns, query)
        timeout = float(query.get("timeoutSeconds") or 1800)
        end = time.monotonic() + timeout
        since = query.get("resourceVersion")
        with self._lock:
            if since in (None, "", "0"):
                pos_rv = self._rv
                initial = [_copy(o) for (p, pl, _, _), o in self._store.items() if p == prefix and pl == plural and ok(o)]
            else:
                pos_rv = int(since)
                initial = []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._lock:
                events = [e for e in self._events.get((prefix, plural), []) if e.rv > pos_rv]
                if not events:
                    left = end - time.monotonic()
                    if left <= 0 or self._closed:
                        return
                    self._lock.wait(min(left, 0.5))
                    events = [e for e in self._events.get((prefix, plural), []) if e.rv > pos_rv]
            if not events:
                yield None
                continue
            if plural == "pods" and self.pod_watch_lag_s:
                time.sleep(self.pod_watch_lag_s)
            for e in events:
                pos_rv = e.rv
                if ok(e.obj):
                    obj = _copy(e.obj)
                    obj.pop("_log", None)
                    yield {"type": e.type, "object": obj}


def _kind_of(plural: str, items: list[dict[str, Any]]) -> str:
    if items:
        return items[0].get("kind", "")
    for kind, pl in _PLURALS.items():
        if pl == plural:
            return kind
    return plural[:-1].capitalize()


def _job_finished(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return bool(status.get("succeeded") or status.get("failed"))


def _json_patch(obj: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/remove/replace/test (what kubectl and the API server accept), written apart from
    the server's own patch code so the fake checks it rather than mirrors it."""
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = obj
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(index, op["value"])
            elif op["op"] == "remove":
                del parent[index]
            elif op["op"] == "replace":
                parent[index] = op["value"]
            elif op["op"] == "test" and parent[index] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        else:
            if op["op"] in ("remove", "replace", "test") and last not in parent:
                raise KeyError(op["path"])
            if op["op"] in ("add", "replace"):
                parent[last] = op["value"]
            elif op["op"] == "remove":
                del parent[last]
            elif op["op"] == "test" and parent[last] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
    return obj


def _merge_patch(obj: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(obj, dict):
        return patch
    for key, value in patch.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = _merge_patch(obj.get(key), value)
    return obj


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


_PATH_RE = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+)(?=/))?"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|status))?$"
)


class _QuietServer(ThreadingHTTPServer):
    """A client closing a kept-alive connection is normal, not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -------------------------------------------------------------- plumbing

    def _send_json(self, code: int, body: Any) -> None:
        self._send_bytes(code, json.dumps(body).encode())

    def _send_bytes(self, code: int, data: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _authorized(self) -> bool:
        if self.fake.token is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.fake.token}":
            return True
        self._send_json(401, _status(401, "Unauthorized", "Unauthorized"))
        return False

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.fake.requests.append((method, self.path))
        if not self._authorized():
            return
        if split.path == "/_fake/requests":  # for a benchmark running the fake in another process
            return self._send_json(200, {"count": len(self.fake.requests) - 1})
        if split.path.rstrip("/") == "/version":
            major, minor = self.fake.git_version.lstrip("v").split(".")[:2]
            return self._send_json(200, {
                "major": major, "minor": minor, "gitVersion": self.fake.git_version,
                "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2024-06-11T20:20:00Z",
                "goVersion": "go1.22.4", "compiler": "gc", "platform": "linux/amd64"})
        if re.fullmatch(r"/apis(/[^/]+/[^/]+)?", split.path.rstrip("/")):
            doc = self.fake.discovery(split.path.rstrip("/"))
            if doc is None:
                return self._send_json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return self._send_json(200, doc)
        m = _PATH_RE.match(split.path)
        if not m:
            return self._send_json(404, _status(404, "NotFound", f"the server could not find {split.path}"))
        prefix, ns, plural, name, sub = m["prefix"], m["ns"], m["plural"], m["name"], m["sub"]
        if plural == "namespaces" and ns is None and name is not None and sub is None:
            pass
        verb = {"GET": "list" if name is None else "get", "POST": "create", "DELETE": "delete",
                "PATCH": "patch"}.get(method, "")
        if method == "GET" and query.get("watch") in ("true", "1"):
            verb = "watch"
        if (verb, plural) in self.fake.forbidden:
            group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
            scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            target = f'{plural}.{group}' if group else plural
            return self._send_json(403, _status(
                403, "Forbidden", f'{target} is forbidden: User "fake" cannot {verb} resource "{plural}" in API group '
                f'"{group}" {scope}'))
        try:
            handler = getattr(self, f"_{method.lower()}")
            handler(prefix, ns, plural, name, sub, query)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except ValueError as exc:
            self._send_json(400, _status(400, "BadRequest", str(exc)))

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._route("PATCH")

    # -------------------------------------------------------------- verbs

    def _get(self, prefix: str, ns: str | None, plural: str, name: str | None, sub: str | None,
             query: dict[str, str]) -> None:
        fake = self.fake
        if name is None:
            if query.get("watch") in ("true", "1"):
                return self._stream(fake.watch(prefix, plural, ns, query))
            return self._send_bytes(200, fake.list_body(prefix, plural, ns, query))
        key = (prefix, plural, "" if plural in _CLUSTER_SCOPED else (ns or ""), name)
        with fake._lock:
            obj = _copy(fake._store.get(key))
        if obj is None:
            return self._send_json(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
        if sub == "log":
            fake.log_reads.append(name)
            log = obj.get("_log")
            if log is None:
                phase = obj.get("status", {}).get("phase")
                return self._send_json(400, _status(
                    400, "BadRequest",
                    f'container "{obj["spec"]["containers"][0]["name"]}" in pod "{name}" is waiting to start: '
                    f"{phase}"))
            data = log if isinstance(log, bytes) else str(log).encode()
            if query.get("limitBytes"):
                data = data[: int(query["limitBytes"])]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        obj.pop("_log", None)
        return self._send_json(200, obj)

    def _stream(self, events: Iterable[dict[str, Any] | None]) -> None:
        """Chunked JSON lines: urllib3 hands each chunk to the client as it arrives."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        with self.fake._lock:
            self.fake.open_watches += 1
        try:
            for event in events:
                if event is None:
                    if self._client_gone():
                        return
                    continue
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            with self.fake._lock:
                self.fake.open_watches -= 1
        self.close_connection = True

    def _client_gone(self) -> bool:
        """True when the client closed its end (a watch it stopped): readable with nothing to read."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _patch(self, prefix: str, ns: str | None, plural: str, name: str | None, sub: str | None,
               query: dict[str, str]) -> None:
        """JSON Patch (RFC 6902) or merge patch of one object, as the API server does it: ``dryRun=All``
        runs the patch and admission and answers the result without storing anything; any other
        dryRun value is refused, as the real server refuses it."""
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        dry_run = query.get("dryRun")
        fake.patches.append((self.path, dry_run, body))
        if dry_run not in (None, "All"):
            return self._send_json(400, _status(400, "BadRequest", f'Invalid dryRun value "{dry_run}"'))
        if name is None:
            return self._send_json(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))
        key = (prefix, plural, "" if plural in _CLUSTER_SCOPED else (ns or ""), name)
        with fake._lock:
            current = _copy(fake._store.get(key))
        if current is None:
            return self._send_json(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/json-patch+json":
            try:
                patched = _json_patch(current, body)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                return self._send_json(422, _status(422, "Invalid", f"the JSON patch does not apply: {exc}"))
        elif kind == "application/merge-patch+json":
            patched = _merge_patch(current, body)
        else:
            return self._send_json(415, _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"))
        denial = fake.admission(patched) if fake.admission is not None else None
        if denial is not None:
            return self._send_json(403, _status(403, "Forbidden", f'admission webhook "fake.admission" denied the request: {denial}'))
        if dry_run is None:
            with fake._lock:
                patched = fake._put(patched, "MODIFIED")
        return self._send_json(200, patched)

    def _post(self, prefix: str, ns: str | None, plural: str, name: str | None, sub: str | None,
              query: dict[str, str]) -> None:
        fake = self.fake
        body = self._body()
        meta = body.get("metadata") or {}
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                body["metadata"] = meta
            else:
                return self._send_json(422, _status(422, "Invalid", "metadata.name: Required value"))
        with fake._lock:
            if ns is not None and plural not in _CLUSTER_SCOPED and ("/api/v1", "namespaces", "", ns) not in fake._store:
                return self._send_json(404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            key = (prefix, plural, "" if plural in _CLUSTER_SCOPED else (ns or "default"), meta["name"])
            if key in fake._store:
                return self._send_json(409, _status(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists'))
            if plural == "jobs":
                fake.created_jobs.append(_copy(body))
                obj = fake._create_job(ns or "default", body)
            else:
                body.setdefault("apiVersion", "v1")
                body.setdefault("kind", _kind_of(plural, []))
                if plural == "namespaces":
                    body.setdefault("status", {"phase": "Active"})
                obj = fake._put(_copy(body), "ADDED")
            obj = _copy(obj)
        return self._send_json(201, obj)

    def _delete(self, prefix: str, ns: str | None, plural: str, name: str | None, sub: str | None,
                query: dict[str, str]) -> None:
        fake = self.fake
        body = self._body()
        propagation = body.get("propagationPolicy") or query.get("propagationPolicy")
        with fake._lock:
            if name is None:
                ok = fake._match(prefix, plural, ns, query)
                keys = [k for k, o in fake._store.items() if k[0] == prefix and k[1] == plural and ok(o)]
                gone = [fake._delete(k, propagation) for k in keys]
                items = [g for g in gone if g]
                return self._send_json(200, {"kind": f"{_kind_of(plural, items)}List",
                                             "apiVersion": prefix.rsplit("/", 1)[-1] if prefix == "/api/v1"
                                             else prefix.split("/", 2)[2],
                                             "metadata": {}, "items": items})
            key = (prefix, plural, "" if plural in _CLUSTER_SCOPED else (ns or ""), name)
            gone = fake._delete(key, propagation)
        if gone is None:
            return self._send_json(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
        gone.pop("_log", None)
        return self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "details": {"name": name, "kind": plural}})


# --------------------------------------------------------------------------- object helpers


def namespace_object(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}},
            "status": {"phase": "Active"}}


def node_object(
    name: str,
    *,
    control_plane: bool = False,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    provider_id: str | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A Node as the API returns it: hostname label, Ready condition, control-plane role label/taint."""
    node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
    spec: dict[str, Any] = {}
    if control_plane:
        node_labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    if taints:
        spec["taints"] = spec.get("taints", []) + taints
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                   "reason": "KubeletReady" if ready else "KubeletNotReady",
                                   "message": "kubelet is posting ready status" if ready
                                   else "container runtime network not ready"}]},
    }


__all__ = ["FakeKubeAPI", "Behaviour", "KUBESCAPE_API", "TRIVY_API", "node_object", "namespace_object",
           "selector_matches", "plural_of"]
