"""What callers may ask for: validated filters, the worst-first row order, and page cursors.

Every value is checked before any API call, with a one-line error naming the field and what it
accepts. Filters never reach a path or a command: they select rows (and, where the API offers
it, a namespace path segment or a label selector built from validated values only).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from mcp_kscan.errors import InvalidRequest
from mcp_kscan.operators.models import ImageRef, VulnerabilityRow, WorkloadRef
from mcp_kscan.operators.severity import RANK, SEVERITIES, VulnSeverity, parse_severity

MAX_PAGE_LIMIT = 200  # the same page limit as get_results (service.MAX_PAGE_LIMIT)

CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)
GHSA_RE = re.compile(r"^GHSA(-[23456789cfghjmpqrvwx]{4}){3}$", re.IGNORECASE)
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,62}$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
CURSOR_RE = re.compile(r"^c[A-Za-z0-9_-]{1,511}$")

CVE_HELP = "a CVE id (CVE-2023-39325) or a GitHub advisory id (GHSA-xxxx-xxxx-xxxx)"
WORKLOAD_HELP = "Kind/namespace/name, e.g. Deployment/default/nginx"

_KINDS = {k.lower(): k for k in (
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job", "CronJob", "ReplicationController",
    "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Namespace", "Node",
    "Service", "ConfigMap", "Secret", "Ingress", "NetworkPolicy",
)}


def canonical_kind(kind: str) -> str:
    """Kubescape writes ``deployment`` in some labels and ``Deployment`` in others."""
    return _KINDS.get(kind.lower(), kind[:1].upper() + kind[1:])


def normalise_vuln_id(value: str) -> str:
    """CVE ids upper case, GHSA ids as GitHub writes them (``GHSA-`` then lower case)."""
    value = value.strip()
    if GHSA_RE.fullmatch(value):
        return "GHSA" + value[4:].lower()
    return value.upper()


def parse_vuln_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not (CVE_RE.fullmatch(value) or GHSA_RE.fullmatch(value)):
        raise InvalidRequest(field, f"must be {CVE_HELP}; got {str(value)[:60]!r}")
    return normalise_vuln_id(value)


def parse_workload(value: str, field: str = "workload") -> WorkloadRef:
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 3 or not KIND_RE.fullmatch(parts[0]) or not NAMESPACE_RE.fullmatch(parts[1]) or not NAME_RE.fullmatch(parts[2]):
        raise InvalidRequest(field, f"must be {WORKLOAD_HELP}; got {str(value)[:80]!r}")
    return WorkloadRef(kind=canonical_kind(parts[0]), namespace=parts[1], name=parts[2])


def _docker_hub(repo: str) -> str:
    """``index.docker.io/library/nginx``, ``docker.io/nginx`` and ``nginx`` are the same repository."""
    repo = repo.lower()
    for prefix in ("index.docker.io/", "registry-1.docker.io/", "docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            break
    return repo.removeprefix("library/")


def split_image(reference: str) -> ImageRef:
    """``registry/repo:tag@sha256:…`` into its parts (a port in the registry is not a tag)."""
    digest = None
    if "@" in reference:
        reference, digest = reference.split("@", 1)
    tag = None
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        reference, tag = reference.rsplit(":", 1)
    return ImageRef(repository=reference or None, tag=tag or None, digest=digest or None)


class ImageMatcher:
    """A caller's image filter: repository (suffix at a ``/``), and tag/digest when given."""

    def __init__(self, text: str) -> None:
        ref = split_image(text)
        self.repo = _docker_hub(ref.repository or "")
        self.tag = ref.tag
        self.digest = ref.digest.lower() if ref.digest else None

    def matches(self, image: ImageRef) -> bool:
        repo = _docker_hub(image.repository or "")
        if self.repo and not (repo == self.repo or repo.endswith("/" + self.repo)):
            return False
        if self.tag and image.tag != self.tag:
            return False
        if self.digest and (image.digest or "").lower() != self.digest:
            return False
        return True


class VulnerabilityQuery(BaseModel):
    """The filters of list_vulnerabilities, GET /api/v1/vulnerabilities and find_cve."""

    model_config = ConfigDict(extra="forbid")

    namespace: str | None = None
    workload: str | None = None
    image: str | None = None
    min_severity: VulnSeverity | None = None
    fixable: bool | None = None
    cve: str | None = None
    limit: int = 20
    cursor: str | None = None

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if not 1 <= value <= MAX_PAGE_LIMIT:
            raise ValueError(f"must be between 1 and {MAX_PAGE_LIMIT}; got {value}")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not NAMESPACE_RE.fullmatch(value):
            raise ValueError(f"must be a namespace name (lower-case letters, digits, '-'); got {value[:70]!r}")
        return value

    @field_validator("workload")
    @classmethod
    def _workload(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_workload(value)
            except InvalidRequest as exc:
                raise ValueError(exc.reason) from None
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_RE.fullmatch(value):
            raise ValueError(f"must be an image reference like nginx, nginx:1.25 or repo@sha256:…; got {value[:70]!r}")
        return value

    @field_validator("min_severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or value.strip().upper() not in {s.upper() for s in SEVERITIES} | {"NONE"}:
            raise ValueError(f"must be one of {', '.join(SEVERITIES)}; got {str(value)[:40]!r}")
        return parse_severity(value)

    @field_validator("cve")
    @classmethod
    def _cve(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return parse_vuln_id(value, "cve")
        except InvalidRequest as exc:
            raise ValueError(exc.reason) from None

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None and not CURSOR_RE.fullmatch(value):
            raise ValueError("not a next_cursor from a previous page")
        return value

    def workload_ref(self) -> WorkloadRef | None:
        return parse_workload(self.workload) if self.workload else None

    def image_matcher(self) -> ImageMatcher | None:
        return ImageMatcher(self.image) if self.image else None

    def fingerprint(self) -> str:
        """The filters a cursor is bound to (not the page size: a caller may change it)."""
        data = self.model_dump(exclude={"limit", "cursor"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def passes(self, severity: str, fixable: bool, ids: tuple[str | None, ...] | list[str]) -> bool:
        """The row-level filters, asked before a row is built (namespace/workload/image are
        decided per report object, earlier). ``ids``: the vulnerability id, its CVE, its aliases."""
        if self.min_severity and RANK[severity] < RANK[self.min_severity]:
            return False
        if self.fixable is not None and fixable != self.fixable:
            return False
        return not self.cve or self.cve in ids


# --------------------------------------------------------------------------- order and cursors

SortKey = tuple[int, int, str, str]


def sort_key(row: VulnerabilityRow) -> SortKey:
    """Worst first: severity, then fixable before not, then by id; a digest of the rest breaks ties.

    The digest makes the order total, so a cursor (the last row's key) resumes exactly after it
    even when the operators rewrite their objects between two pages.
    """
    where = "\x00".join(
        (
            row.source,
            row.namespace or "",
            row.workload.key() if row.workload else "",
            row.container or "",
            row.image.repository or "",
            row.image.tag or "",
            row.image.digest or "",
            row.package.name,
            row.package.installed_version or "",
            row.vulnerability_id,
            row.report.namespace or "",
            row.report.name,
        )
    )
    digest = hashlib.sha1(where.encode(), usedforsecurity=False).hexdigest()[:16]
    return (-RANK[row.severity], 0 if row.fixable else 1, row.cve or row.vulnerability_id, digest)


def encode_cursor(query: VulnerabilityQuery, key: SortKey) -> str:
    raw = json.dumps([query.fingerprint(), *key], separators=(",", ":")).encode()
    return "c" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: VulnerabilityQuery) -> SortKey | None:
    if not query.cursor:
        return None
    try:
        text = query.cursor[1:]
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        fingerprint, rank, fix, vid, digest = data
        if fingerprint != query.fingerprint():
            raise ValueError("other filters")
        return (int(rank), int(fix), str(vid), str(digest))
    except Exception:
        raise InvalidRequest("cursor", "not a next_cursor from a previous page with these filters") from None


__all__ = [
    "CVE_HELP",
    "ImageMatcher",
    "MAX_PAGE_LIMIT",
    "VulnerabilityQuery",
    "WORKLOAD_HELP",
    "canonical_kind",
    "decode_cursor",
    "encode_cursor",
    "normalise_vuln_id",
    "parse_vuln_id",
    "parse_workload",
    "sort_key",
    "split_image",
]
