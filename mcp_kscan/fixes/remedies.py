"""What fixes a finding: Kubescape's fix paths, its delete paths, and the values a person must choose.

A finding carries ``fix_paths`` (set this path to this value) and ``failed_paths``. Kubescape's
rules report some failed paths as ``deletePaths`` (remove ``hostNetwork``, remove an added
capability); reports and the built-in engine keep them among the failed paths, so the table
below says, per control, which failed paths are removed and which are set. Everything else a
rule points at (an image, an RBAC subject, a credential) is a choice for the user, given with a
suggested value and the reason for it. Data over code: each row is one rule a reviewer can read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_kscan.fixes.patch import Edit, typed_value

# A fix path's value that names no value, only what to put there.
_PLACEHOLDER = re.compile(r"^(YOUR_[A-Z_]+|<[^>]*>)$")

DELETE, SET = "delete", "set"

RBAC_CONTROLS = ("C-0002", "C-0007", "C-0015", "C-0031", "C-0035", "C-0037", "C-0053", "C-0063", "C-0065",
                 "C-0186", "C-0187", "C-0188", "C-0191", "C-0262", "C-0278", "C-0279", "C-0280", "C-0281",
                 "C-0282")

# Failed paths that have a remedy: (controls, path pattern, action, value). The actions follow
# regolibrary's deletePaths/fixPaths for the same rules.
FAILED_PATH_RULES: tuple[tuple[tuple[str, ...], str, str, Any], ...] = (
    (("C-0038", "C-0275"), r"(^|\.)hostPID$", DELETE, None),
    (("C-0038", "C-0276"), r"(^|\.)hostIPC$", DELETE, None),
    (("C-0041",), r"(^|\.)hostNetwork$", DELETE, None),
    (("C-0044",), r"\.hostPort$", DELETE, None),
    (("C-0046", "C-0057"), r"\.capabilities\.add\[\d+\]$", DELETE, None),
    (("C-0057", "C-0211", "C-0016"), r"\.securityContext\.privileged$", SET, False),
    (("C-0034", "C-0190", "C-0261", "C-0189"), r"(^|\.)automountServiceAccountToken$", SET, False),
    (("C-0075",), r"\.imagePullPolicy$", SET, "Always"),
    (("C-0294",), r"(^|\.)serviceAccount$", DELETE, None),
    (("C-0210",), r"\.seccompProfile\.type$", SET, "RuntimeDefault"),
)
# Paths a rule names only to show where the problem is; nothing is changed there.
CONTEXT_PATHS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("C-0075", "C-0078", "C-0001"), r"\.image$"),
    (RBAC_CONTROLS, r"^roleRef\.name$"),
    (("C-0012", "C-0259"), r"\.env\[\d+\]\.name$"),
)


@dataclass(frozen=True, slots=True)
class Choice:
    """A value the user must choose: the field, what we suggest, and why."""

    field: str
    suggested: Any
    reason: str
    edit: Edit | None
    """The edit made with the suggested value (None when there is nothing safe to suggest)."""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "suggested_value": self.suggested, "reason": self.reason}


# Failed paths whose remedy is the user's decision: (controls, pattern, action, reason).
USER_RULES: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (RBAC_CONTROLS, r"^subjects\[\d+\]$", DELETE,
     "removing the subject takes these permissions away from it; confirm nothing relies on them"),
    (("C-0048", "C-0074", "C-0045", "C-0020"), r"(volumes|volumeMounts)\[\d+\]$", DELETE,
     "removing the host path volume and its mounts changes what the container can read; confirm it is not needed"),
    (("C-0014",), r"\.serviceAccountName$", DELETE,
     "the workload then runs as the namespace's default service account; give it one of its own"),
    (("C-0062",), r"\.command\[\d+\]$", "", "rewrite the command so it needs no sudo (run as the user it needs)"),
    (("C-0078", "C-0001", "C-0253", "C-0306", "C-0292"), r"\.image$", "",
     "pick an image from an allowed registry, pinned by digest (image@sha256:…); only you know which one"),
)


def _matches(rules: Sequence[tuple[Any, ...]], control_id: str, path: str) -> tuple[Any, ...] | None:
    for row in rules:
        if control_id in row[0] and re.search(row[1], path):
            return row
    return None


def _suggestion(control_id: str, path: str, resource: Mapping[str, Any], obj: Mapping[str, Any]) -> tuple[Any, str]:
    """A value for a placeholder, and why; ``None`` when nothing is a sensible default."""
    name = str(resource.get("name") or "app")
    leaf = path.rsplit(".", 1)[-1]
    if re.search(r"\.resources\.limits\.memory$", path):
        return "512Mi", "a memory limit is the workload's own size: start from its observed peak plus headroom"
    if re.search(r"\.resources\.requests\.memory$", path):
        return "256Mi", "a memory request should be the workload's usual use; this is a common starting point"
    if re.search(r"\.resources\.limits\.cpu$", path):
        return "500m", "a CPU limit depends on the workload's load; this is a common starting point"
    if re.search(r"\.resources\.requests\.cpu$", path):
        return "100m", "a CPU request should be the workload's usual use; this is a common starting point"
    if leaf == "seccompProfile":
        return {"type": "RuntimeDefault"}, "the container runtime's default seccomp profile blocks rarely used syscalls"
    if leaf in ("livenessProbe", "readinessProbe"):
        port = _first_port(obj, path)
        if port is not None:
            return {"tcpSocket": {"port": port}, "periodSeconds": 10}, \
                f"checks the container's first port ({port}); an HTTP probe on a health endpoint is better when it has one"
        return None, "the container declares no port: only you know how to tell it is healthy"
    if re.search(r"labels\[(app|app\.kubernetes\.io/name)\]$", path):
        return name, "the resource's own name is the usual value of this label"
    if leaf == "fsGroup":
        return 1000, "a non-root group that owns the mounted volumes; use the group the image expects"
    if leaf == "runAsUser":
        return 1000, "a non-root user; use the user the image is built for"
    if leaf == "namespace":
        return None, "pick the namespace this workload belongs in (not default)"
    if path.endswith("labels[pod-security.kubernetes.io/enforce]"):
        return "restricted", "the strictest Pod Security level; use baseline if a workload there needs more"
    return None, "only you know the right value for this field"


def _first_port(obj: Mapping[str, Any], probe_path: str) -> int | None:
    from mcp_kscan.locations import parse_field_path

    container: Any = obj
    for token in parse_field_path(probe_path)[:-1]:
        if isinstance(container, dict) and isinstance(token, str):
            container = container.get(token)
        elif isinstance(container, list) and isinstance(token, int) and token < len(container):
            container = container[token]
        else:
            return None
    ports = container.get("ports") if isinstance(container, dict) else None
    if isinstance(ports, list) and ports and isinstance(ports[0], dict):
        port = ports[0].get("containerPort")
        return port if isinstance(port, int) and not isinstance(port, bool) else None
    return None


@dataclass(slots=True)
class Remedy:
    """The edits that fix one finding: those with known values, and those a person must choose."""

    edits: list[Edit] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.edits and not self.choices


def remedy_for(finding: Mapping[str, Any], obj: Mapping[str, Any]) -> Remedy:
    """The remedy of a stored finding (``control_id``, ``failed_paths``, ``fix_paths``) on ``obj``."""
    control_id = str(finding.get("control_id") or "")
    resource = finding.get("resource") or {}
    remedy = Remedy()
    fixed: set[str] = set()
    if control_id == "C-0073":
        return remedy  # "kind: Deployment" is Kubescape's hint, not an edit: a Pod needs a controller written around it
    for fp in finding.get("fix_paths") or []:
        path, raw = str(fp.get("path") or ""), fp.get("value")
        if not path:
            continue
        fixed.add(path)
        if isinstance(raw, str) and _PLACEHOLDER.fullmatch(raw):
            suggested, reason = _suggestion(control_id, path, resource, obj)
            remedy.choices.append(Choice(path, suggested, reason, None if suggested is None else Edit("set", path, suggested)))
        else:
            remedy.edits.append(Edit("set", path, typed_value(path, raw)))
    for path in finding.get("failed_paths") or []:
        if path in fixed or _matches(CONTEXT_PATHS, control_id, path):
            continue
        row = _matches(FAILED_PATH_RULES, control_id, path)
        if row is not None:
            remedy.edits.append(Edit("delete", path) if row[2] == DELETE else Edit("set", path, row[3]))
            continue
        user = _matches(USER_RULES, control_id, path)
        if user is not None:
            edit = Edit("delete", path) if user[2] == DELETE else None
            remedy.choices.append(Choice(path, "(remove)" if edit else None, user[3], edit))
    return remedy
