"""The Kubescape operator's objects (aggregated API ``spdx.softwarecomposition.kubescape.io/v1beta1``).

How the objects tie together (../shared/fixtures/operators/kubescape/FIELDS.md):

- a VulnerabilityManifestSummary per workload container, in the workload's namespace, small,
  with match counts per severity and ``vulnerabilitiesRef.all.name``: the image-level
  VulnerabilityManifest, shared by every workload running that image;
- the manifest holds Grype's whole document (often megabytes), lives in kubevuln's namespace
  whatever the reference says, and a LIST returns it without spec unless asked for ``fullSpec``.

So: list the summaries (``fullSpec``: they are small and carry the counts), drop those the
filters exclude (namespace, workload, image, severity counts), list the manifests' metadata
only (names, namespaces, resourceVersions), and GET just the manifests still needed, each once
per resourceVersion (``ManifestCache``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio

from mcp_kscan.errors import KscanError

from mcp_kscan.operators.client import KubeReader, NotFound, Resource
from mcp_kscan.operators.filters import ImageMatcher, VulnerabilityQuery, canonical_kind, normalise_vuln_id, split_image
from mcp_kscan.operators.models import (
    ImageRef,
    ObjectRef,
    OperatorFinding,
    PackageRef,
    PostureRead,
    VulnerabilityRead,
    VulnerabilityRow,
    WorkloadRef,
)
from mcp_kscan.operators.severity import KUBESCAPE_SUMMARY_KEYS, RANK, SEVERITIES, config_severity, parse_severity
from mcp_kscan.reports import FixPath, ResourceRef

GROUP, VERSION = "spdx.softwarecomposition.kubescape.io", "v1beta1"
MANIFESTS = Resource(GROUP, VERSION, "vulnerabilitymanifests")
MANIFEST_SUMMARIES = Resource(GROUP, VERSION, "vulnerabilitymanifestsummaries")
CONFIG_SCANS = Resource(GROUP, VERSION, "workloadconfigurationscans")
CONFIG_SCAN_SUMMARIES = Resource(GROUP, VERSION, "workloadconfigurationscansummaries")

KUBEVULN_NAMESPACE = "kubescape"
L_KIND, L_NAME, L_NAMESPACE = "kubescape.io/workload-kind", "kubescape.io/workload-name", "kubescape.io/workload-namespace"
L_CONTAINER, L_CONTEXT = "kubescape.io/workload-container-name", "kubescape.io/context"
A_IMAGE_ID, A_IMAGE_TAG, A_WLID = "kubescape.io/image-id", "kubescape.io/image-tag", "kubescape.io/wlid"
MAX_LABEL_VALUE = 63


@dataclass(frozen=True)
class Match:
    """One Grype match, without the workload: shared by every workload running the image."""

    severity: str
    fixable: bool
    fix_state: str | None
    vulnerability_id: str
    cve: str | None
    aliases: list[str]
    score: float | None
    package: PackageRef

    @property
    def ids(self) -> tuple[str | None, ...]:
        return (self.vulnerability_id, self.cve, *self.aliases)


@dataclass
class ParsedManifest:
    ref: ObjectRef
    matches: list[Match]
    image: ImageRef
    """From the manifest itself (annotations, Grype's source): used when no summary names it."""


class ManifestCache:
    """Parsed manifests by (namespace, name, resourceVersion): a manifest is read once per change."""

    def __init__(self, capacity: int = 2_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str, str, str], ParsedManifest] = OrderedDict()

    def get(self, key: tuple[str, str, str, str]) -> ParsedManifest | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: tuple[str, str, str, str], value: ParsedManifest) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


def workload_of(meta: dict[str, Any]) -> WorkloadRef | None:
    labels = meta.get("labels") or {}
    kind, name = labels.get(L_KIND), labels.get(L_NAME)
    if not kind or not name:
        return None
    return WorkloadRef(kind=canonical_kind(kind), namespace=labels.get(L_NAMESPACE) or meta.get("namespace"), name=name)


def _worst_possible(spec: dict[str, Any], minimum: str | None) -> bool:
    """False only when the summary's counts say no match reaches ``minimum``."""
    severities = spec.get("severities")
    if minimum is None or not isinstance(severities, dict) or not severities:
        return True
    return any(
        int(((severities.get(KUBESCAPE_SUMMARY_KEYS[s]) or {}).get("all")) or 0) > 0
        for s in SEVERITIES
        if RANK[s] >= RANK[minimum]
    )


def _score(vuln: dict[str, Any]) -> float | None:
    scores = [
        float(c["metrics"]["baseScore"])
        for c in vuln.get("cvss") or []
        if isinstance(c, dict) and isinstance((c.get("metrics") or {}).get("baseScore"), int | float)
    ]
    return max(scores) if scores else None


def parse_manifest(obj: dict[str, Any]) -> ParsedManifest:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    payload = (obj.get("spec") or {}).get("payload") or {}
    matches: list[Match] = []
    for m in payload.get("matches") or []:
        vuln = m.get("vulnerability") or {}
        vid = normalise_vuln_id(str(vuln.get("id") or "")) or "UNKNOWN"
        related = [normalise_vuln_id(str(r.get("id"))) for r in m.get("relatedVulnerabilities") or [] if r.get("id")]
        aliases = sorted({r for r in related if r != vid})
        cve = vid if vid.startswith("CVE-") else next((a for a in aliases if a.startswith("CVE-")), None)
        fix = vuln.get("fix") or {}
        versions = [str(v) for v in fix.get("versions") or [] if v]
        state = fix.get("state") or None
        artifact = m.get("artifact") or {}
        score = _score(vuln)
        if score is None:
            score = max((s for s in (_score(r) for r in m.get("relatedVulnerabilities") or []) if s is not None), default=None)
        matches.append(
            Match(
                severity=parse_severity(vuln.get("severity")),
                fixable=state == "fixed" and bool(versions),
                fix_state=state,
                vulnerability_id=vid,
                cve=cve,
                aliases=aliases,
                score=score,
                package=PackageRef.model_construct(
                    name=str(artifact.get("name") or "?"),
                    installed_version=artifact.get("version") or None,
                    fixed_version=", ".join(versions) or None,
                    type=artifact.get("type") or None,
                ),
            )
        )
    image = split_image(annotations[A_IMAGE_ID]) if annotations.get(A_IMAGE_ID) else ImageRef()
    target = ((payload.get("source") or {}).get("target")) or {}
    tags = [t for t in target.get("tags") or [] if isinstance(t, str)] if isinstance(target, dict) else []
    tag = annotations.get(A_IMAGE_TAG) or (split_image(tags[0]).tag if tags else None)
    if image.repository is None and (tags or (isinstance(target, dict) and target.get("userInput"))):
        image = split_image(tags[0] if tags else str(target["userInput"]))
        if isinstance(target, dict) and target.get("manifestDigest") and not image.digest:
            image.digest = str(target["manifestDigest"])
    if tag and not image.tag:
        image = image.model_copy(update={"tag": tag})
    ref = ObjectRef(kind="VulnerabilityManifest", namespace=meta.get("namespace"), name=meta.get("name") or "")
    return ParsedManifest(ref=ref, matches=matches, image=image)


def _row(match: Match, manifest: ParsedManifest, image: ImageRef, workload: WorkloadRef | None,
         namespace: str | None, container: str | None) -> VulnerabilityRow:
    # model_construct: the values were parsed above; validating 100k rows again would cost seconds.
    return VulnerabilityRow.model_construct(
        source="kubescape",
        severity=match.severity,
        fixable=match.fixable,
        vulnerability_id=match.vulnerability_id,
        cve=match.cve,
        aliases=match.aliases,
        title=None,
        score=match.score,
        fix_state=match.fix_state,
        package=match.package,
        image=image,
        namespace=namespace,
        workload=workload,
        container=container,
        report=manifest.ref,
    )


@dataclass
class _Wanted:
    """A summary that survived the filters: whose rows come from which manifest."""

    workload: WorkloadRef | None
    namespace: str | None
    container: str | None
    image: ImageRef
    manifest: str
    manifest_namespace: str | None


class KubescapeReader:
    def __init__(self, reader: KubeReader, cache: ManifestCache) -> None:
        self.reader = reader
        self.cache = cache

    async def _manifest_index(self) -> tuple[dict[str, list[tuple[str, str]]], list[dict[str, Any]]]:
        """name → [(namespace, resourceVersion)], and the metadata of image-level manifests."""
        index: dict[str, list[tuple[str, str]]] = {}
        image_level: list[dict[str, Any]] = []
        async for page in self.reader.list_pages(MANIFESTS):
            for item in page:
                meta = item.get("metadata") or {}
                index.setdefault(meta.get("name") or "", []).append((meta.get("namespace") or "", str(meta.get("resourceVersion") or "")))
                labels = meta.get("labels") or {}
                if not (meta.get("annotations") or {}).get(A_WLID) and labels.get(L_CONTEXT) != "filtered":
                    image_level.append(meta)
        return index, image_level

    async def _fetch(self, namespace: str, name: str, rv: str) -> ParsedManifest | None:
        key = (self.reader.source.describe(), namespace, name, rv)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            obj = await self.reader.get_object(MANIFESTS, namespace, name)
        except NotFound:
            return None
        parsed = await anyio.to_thread.run_sync(parse_manifest, obj)
        self.cache.put(key, parsed)
        return parsed

    async def read_vulnerabilities(self, query: VulnerabilityQuery) -> VulnerabilityRead:
        out = VulnerabilityRead()
        wanted = query.workload_ref()
        namespace = query.namespace or (wanted.namespace if wanted else None)
        if query.namespace and wanted and wanted.namespace != query.namespace:
            return out
        images = query.image_matcher()
        repo_only = ImageMatcher(images.repo) if images and images.repo else None
        selector = f"{L_NAME}={wanted.name}" if wanted and len(wanted.name) <= MAX_LABEL_VALUE else None
        chosen: list[_Wanted] = []
        async for page in self.reader.list_pages(MANIFEST_SUMMARIES, namespace, label_selector=selector, full_spec=True):
            out.objects += len(page)
            for summary in page:
                meta = summary.get("metadata") or {}
                spec = summary.get("spec") or {}
                workload = workload_of(meta)
                if wanted and workload != wanted:
                    continue
                annotations = meta.get("annotations") or {}
                image = split_image(annotations[A_IMAGE_ID]) if annotations.get(A_IMAGE_ID) else ImageRef()
                if repo_only and not repo_only.matches(image):
                    continue
                if not _worst_possible(spec, query.min_severity):
                    continue
                refs = spec.get("vulnerabilitiesRef") or {}
                ref = refs.get("all") or {}
                if not ref.get("name"):
                    continue  # not scanned yet (or the scan failed: kubescape.io/status says why)
                chosen.append(
                    _Wanted(
                        workload=workload,
                        namespace=(workload.namespace if workload else None) or meta.get("namespace"),
                        container=(meta.get("labels") or {}).get(L_CONTAINER) or annotations.get(L_CONTAINER),
                        image=image,
                        manifest=ref["name"],
                        manifest_namespace=ref.get("namespace") or None,
                    )
                )
        index, image_level = await self._manifest_index()
        # Image scans no summary points at (no workload runs them now): rows without a workload.
        referenced = {w.manifest for w in chosen}
        if not wanted and not namespace:
            for meta in image_level:
                name = meta.get("name") or ""
                if name in referenced:
                    continue
                annotations = meta.get("annotations") or {}
                image = split_image(annotations[A_IMAGE_ID]) if annotations.get(A_IMAGE_ID) else ImageRef()
                if repo_only and image.repository and not repo_only.matches(image):
                    continue
                chosen.append(_Wanted(None, None, None, image, name, meta.get("namespace") or None))
        # One GET per distinct manifest, whatever the number of workloads sharing it.
        locations: dict[str, tuple[str, str]] = {}
        for w in chosen:
            if w.manifest in locations:
                continue
            where = index.get(w.manifest) or []
            if not where:
                continue
            by_ns = dict(where)
            ns = next((n for n in (w.manifest_namespace, KUBEVULN_NAMESPACE) if n and n in by_ns), where[0][0])
            locations[w.manifest] = (ns, by_ns[ns])
        parsed: dict[str, ParsedManifest] = {}
        failed: list[KscanError] = []

        async def fetch(name: str, ns: str, rv: str) -> None:
            try:
                manifest = await self._fetch(ns, name, rv)
            except KscanError as exc:  # re-raised below as itself, not wrapped in an ExceptionGroup
                failed.append(exc)
                return
            if manifest is not None:
                parsed[name] = manifest

        async with anyio.create_task_group() as tg:
            for name, (ns, rv) in locations.items():
                tg.start_soon(fetch, name, ns, rv)
        if failed:
            raise failed[0]
        missing = sorted({w.manifest for w in chosen if w.manifest not in parsed})
        if missing:
            out.warnings.append(
                f"{len(missing)} VulnerabilityManifest(s) named by summaries are not in the cluster "
                f"(not scanned yet or deleted), e.g. {missing[0]}"
            )
        for w in chosen:
            manifest = parsed.get(w.manifest)
            if manifest is None:
                continue
            image = w.image if w.image.repository else manifest.image
            if not image.tag and manifest.image.tag and _same_repo(image, manifest.image):
                image = image.model_copy(update={"tag": manifest.image.tag})
            if images and not images.matches(image):
                continue
            for match in manifest.matches:
                if not query.passes(match.severity, match.fixable, match.ids):
                    continue
                out.rows.append(_row(match, manifest, image, w.workload, w.namespace, w.container))
        return out

    # ------------------------------------------------------------------ posture

    async def read_posture(self, workload: WorkloadRef) -> PostureRead:
        out = PostureRead()
        selector = f"{L_NAME}={workload.name}" if len(workload.name) <= MAX_LABEL_VALUE else None
        if selector and workload.namespace:
            selector += f",{L_NAMESPACE}={workload.namespace}"
        # Cluster-wide: RBAC subjects' scans are kept in the kubescape namespace, not the subject's.
        summaries = [
            s for s in await self.reader.list_all(CONFIG_SCAN_SUMMARIES, None, label_selector=selector)
            if workload_of(s.get("metadata") or {}) == workload
        ]
        for summary in summaries:
            meta = summary.get("metadata") or {}
            out.objects += 1
            try:
                scan = await self.reader.get_object(CONFIG_SCANS, meta.get("namespace"), meta.get("name") or "")
                kind = "WorkloadConfigurationScan"
            except NotFound:
                # Summaries exist without scans when continuous posture scanning is off.
                scan = await self.reader.get_object(CONFIG_SCAN_SUMMARIES, meta.get("namespace"), meta.get("name") or "")
                kind = "WorkloadConfigurationScanSummary"
            ref = ObjectRef(kind=kind, namespace=meta.get("namespace"), name=meta.get("name") or "")
            for control in ((scan.get("spec") or {}).get("controls") or {}).values():
                status = ((control.get("status") or {}).get("status") or "").lower()
                if status == "passed":
                    out.passed += 1
                elif status == "failed":
                    out.findings.append(_finding(control, workload, ref))
                else:
                    out.skipped += 1
        vuln_selector = f"{L_NAME}={workload.name}" if len(workload.name) <= MAX_LABEL_VALUE else None
        for summary in await self.reader.list_all(
            MANIFEST_SUMMARIES, workload.namespace, label_selector=vuln_selector, full_spec=True
        ):
            if workload_of(summary.get("metadata") or {}) != workload:
                continue
            out.objects += 1
            for severity, key in KUBESCAPE_SUMMARY_KEYS.items():
                count = int((((summary.get("spec") or {}).get("severities") or {}).get(key) or {}).get("all") or 0)
                if count:
                    out.vulnerabilities[severity] = out.vulnerabilities.get(severity, 0) + count
        return out


def _same_repo(a: ImageRef, b: ImageRef) -> bool:
    return bool(a.repository and b.repository and ImageMatcher(a.repository).matches(b))


def _finding(control: dict[str, Any], workload: WorkloadRef, ref: ObjectRef) -> OperatorFinding:
    failed: list[str] = []
    fixes: list[FixPath] = []
    for rule in control.get("rules") or []:
        for path in rule.get("paths") or []:
            if path.get("failedPath"):
                failed.append(str(path["failedPath"]))
            if path.get("fixPath"):
                fixes.append(FixPath(path=str(path["fixPath"]), value=str(path.get("fixPathValue") or "")))
    severity = control.get("severity") or {}
    return OperatorFinding(
        source="kubescape",
        control_id=str(control.get("controlID") or "?"),
        control_name=str(control.get("name") or ""),
        severity=config_severity(severity.get("severity")),
        status="failed",
        resource=ResourceRef(kind=workload.kind, namespace=workload.namespace, name=workload.name),
        failed_paths=failed,
        fix_paths=fixes,
        report=ref,
    )


__all__ = ["KubescapeReader", "ManifestCache", "parse_manifest"]
