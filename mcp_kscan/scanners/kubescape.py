"""Kubescape adapter: request model (Kubescape HTTP API names accepted), argv builder, v2 parser.

Facts this module relies on (kubescape cmd/scan, httphandler, opa-utils reporthandling/v2):
- ``scan framework <a,b|all> [paths…]`` and ``scan control <C-0001,…> [paths…]``; "all" (or no
  names) is the HTTP handler's ScanAll. ``--output F`` writes the report to F; logs go to stderr.
- Exit 1 means any error, *including* a failed ``--compliance-threshold``/``--severity-threshold``
  gate, and the report file is written before the gates run: exit 1 with a parseable report
  file is a finished scan.
- The access key is read from ``KS_ACCESS_KEY``; we never put it in argv (``ps`` shows argv to
  every local user).
- v2 JSON: ``summaryDetails`` (``ResourceCounters`` with a capital R; ``score`` is a risk score,
  ``complianceScore`` 0–100), ``resources[]`` (object + source) and ``results[]`` (per resource,
  per control, with ``rules[]``). Old reports (2022) have no per-control status in ``results``
  (derived from the rules) and use "irrelevant"/"excluded" statuses.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mcp_kscan import strict_json
from mcp_kscan.client_roots import bases_in, roots_in
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.k8s_names import is_namespace
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.redact import redact_text
from mcp_kscan.risk import risk_key
from mcp_kscan.reports import (
    ControlCounts,
    FailedControl,
    FixPath,
    FrameworkScore,
    KubescapeFinding,
    KubescapeReport,
    ResourceCounts,
    ResourceRef,
)
from mcp_kscan.scanners.common import ScanOutputError, check_kube_context, minimal_env, shown
from mcp_kscan.scanners.paths import scan_path, validate_path
from mcp_kscan.settings import Settings

FRAMEWORK_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$", re.ASCII)
CONTROL_RE = re.compile(r"^C-\d{4}$", re.ASCII)
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$", re.ASCII)
ACCESS_KEY_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", re.ASCII)
"""Kubescape (ARMO platform) access keys are UUIDs. Anything else is refused, so a caller cannot
hand in '127.0.0.1' or 'json' and have it scrubbed from that scan's outputs as a secret."""
# kube contexts are free-form in kubeconfig (eks ARNs, user@cluster); no leading '-', no spaces.
KUBESCAPE_FORMATS = frozenset(
    {"json", "junit", "prometheus", "pdf", "html", "sarif", "pretty-printer", "gitlab-sast", "yaml", "csv",
     "markdown", "cyclonedx", "spdx", "policyreport"}
)
MAX_NAMES = 100
MAX_PATHS = 100
MAX_TIMEOUT_S = 24 * 3600


def _alias(snake: str, camel: str | None = None) -> AliasChoices:
    return AliasChoices(snake, camel) if camel else AliasChoices(snake)


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return value


BINARY_ONLY_FIELDS: dict[str, str] = {
    "submit": "--submit",
    "account": "--account",
    "access_key": "KS_ACCESS_KEY",
    "keep_local": "--keep-local",
    "use_cached_artifacts": "--use-artifacts-from",
}
"""Request fields only the Kubescape binary honours (what each becomes there): its cloud backend
and its policy cache. The built-in engine has neither, so the planner (``scan_plan``) refuses a
scan that asks for one and runs on the built-in engine, rather than ignoring it."""


class KubescapeRequest(BaseModel):
    """A Kubescape scan. Field names of Kubescape's HTTP API (camelCase) are accepted as aliases."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    _server_defaults: frozenset[str] = PrivateAttr(default=frozenset())
    """Fields the server filled from its own settings (REST's KS_* defaults), not the caller."""

    format: str | None = Field(None, description="Kept as asked; the scan always writes JSON internally.")
    exclude_namespaces: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("exclude_namespaces", "excludedNamespaces", "excluded_namespaces"),
        description="Namespaces to skip (cluster scans).",
    )
    include_namespaces: list[str] = Field(
        default_factory=list, validation_alias=_alias("include_namespaces", "includeNamespaces"),
        description="Only these namespaces (cluster scans).",
    )
    use_cached_artifacts: bool | None = Field(
        None, validation_alias=_alias("use_cached_artifacts", "useCachedArtifacts"),
        description="Kubescape binary: the policies cached in ~/.kubescape, not downloaded.",
    )
    keep_local: bool | None = Field(
        None, validation_alias=_alias("keep_local", "keepLocal"),
        description="Kubescape binary: --keep-local (never send results to a backend).",
    )
    submit: bool | None = Field(None, description="Kubescape binary: --submit the results to the configured backend.")
    host_scanner: bool | None = Field(
        None, validation_alias=_alias("host_scanner", "hostScanner"),
        description="Carried for API compatibility; the CLI scan does not deploy the host scanner.",
    )
    account: str | None = Field(None, description="Kubescape binary: --account ID used by submit.")
    access_key: SecretStr | None = Field(
        None, validation_alias=_alias("access_key", "accessKey"),
        description="Kubescape binary: KS_ACCESS_KEY (environment, never argv).",
    )
    target_type: str | None = Field(
        None, validation_alias=_alias("target_type", "targetType"),
        description="framework or control (any case): what target_names are.",
    )
    target_names: list[str] = Field(
        default_factory=list, validation_alias=_alias("target_names", "targetNames"),
        description='Frameworks (["nsa"]) or control ids (["C-0057"]): list_controls; empty = all frameworks.',
    )
    paths: list[Annotated[str, AfterValidator(scan_path)]] = Field(
        default_factory=list,
        max_length=MAX_PATHS,
        description="Manifest files/directories to scan instead of the cluster; relative ones start at the client's roots.",
    )
    kube_context: str | None = Field(
        None, validation_alias=_alias("kube_context", "kubeContext"),
        description="A context of the server's kubeconfig (list_contexts); default: MCP_KSCAN_KUBE_CONTEXT, "
        "else the current context.",
    )
    compliance_threshold: float | None = Field(
        None, ge=0, le=100, validation_alias=_alias("compliance_threshold", "complianceThreshold"),
        description="Gate: fails when the compliance score (0-100) is below it.",
    )
    severity_threshold: str | None = Field(
        None, validation_alias=_alias("severity_threshold", "severityThreshold"),
        description="Gate: fails when a control of this severity or worse fails (critical, high, medium, low).",
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=MAX_TIMEOUT_S, validation_alias=_alias("timeout_seconds", "timeoutSeconds"),
        description="Stop the scan after this long (default: the server's).",
    )
    workload: str | None = Field(
        None, description='One cluster object to scan, "Kind/namespace/name" (e.g. Deployment/shop/web).',
    )
    engine: Literal["auto", "kubescape", "builtin"] = Field(
        "auto", description="auto: the Kubescape binary if installed, else builtin (needs nothing installed).",
    )
    controls_config: str | None = Field(
        None, validation_alias=_alias("controls_config", "controlsConfig"),
        description="Kubescape's --controls-config JSON file (settings.postureControlInputs: sensitive key names, "
                    "insecure capabilities, trusted registries, ...); keys it sets replace the defaults.",
    )

    exceptions: str | None = Field(
        None,
        description="A Kubescape exceptions file (a JSON list of postureExceptionPolicy entries): accepted risk, reported "
                    "passed w/exceptions. A path under the allowed roots; Kubescape's system exceptions always apply.",
    )

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = [p.strip().lower() for p in value.split(",") if p.strip()]
        if not parts or any(p not in KUBESCAPE_FORMATS for p in parts):
            raise ValueError(f"unknown format {shown(value)}; one of {', '.join(sorted(KUBESCAPE_FORMATS))}")
        return ",".join(parts)

    @field_validator("exclude_namespaces", "include_namespaces", mode="before")
    @classmethod
    def _ns_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("exclude_namespaces", "include_namespaces")
    @classmethod
    def _check_namespaces(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_NAMES:
            raise ValueError(f"at most {MAX_NAMES} namespaces")
        for ns in value:
            if not is_namespace(ns):
                raise ValueError(f"not a Kubernetes namespace name (DNS label): {shown(ns)}")
        return list(dict.fromkeys(value))

    @field_validator("account")
    @classmethod
    def _check_account(cls, value: str | None) -> str | None:
        if value is not None and not ACCOUNT_RE.fullmatch(value):
            raise ValueError(f"not an account ID (letters, digits, '-'): {shown(value)}")
        return value

    @field_validator("access_key")
    @classmethod
    def _check_access_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Never quote the value: it is a secret.
        if value is not None and not ACCESS_KEY_RE.fullmatch(value.get_secret_value()):
            raise ValueError("not a Kubescape access key (a UUID like 1e3a88bf-92ce-44f8-914e-cbe71830d566)")
        return value

    @field_validator("target_type", "severity_threshold", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # Kubescape compares targetType case-insensitively ("Framework" works); severities are
        # written "High" by get_results and "high" by Kubescape's CLI: both are accepted.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("target_type")
    @classmethod
    def _check_target_type(cls, value: str | None) -> str | None:
        if value is not None and value not in ("framework", "control"):
            raise ValueError(f"{shown(value)} is not a target type; use framework or control")
        return value

    @field_validator("severity_threshold")
    @classmethod
    def _check_severity_threshold(cls, value: str | None) -> str | None:
        if value is not None and value not in get_args(v2.SeverityThreshold):
            raise ValueError(f"{shown(value)} is not a severity; use one of critical, high, medium, low (any case)")
        return value

    @field_validator("target_names", mode="before")
    @classmethod
    def _names_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("target_names")
    @classmethod
    def _check_names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(value) > MAX_NAMES:
            raise ValueError(f"at most {MAX_NAMES} names")
        target_type = info.data.get("target_type")
        for name in value:
            if target_type == "control":
                if not CONTROL_RE.fullmatch(name):
                    raise ValueError(f"not a control ID like C-0057: {shown(name)}")
            elif not FRAMEWORK_RE.fullmatch(name):
                raise ValueError(f"not a framework name like nsa or cis-v1.10.0: {shown(name)}")
        return list(dict.fromkeys(value))

    @field_validator("paths", mode="before")
    @classmethod
    def _paths_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("paths")
    @classmethod
    def _dedupe_paths(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("controls_config")
    @classmethod
    def _check_controls_config(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A readable file under the path rules whose content is a usable controls config (checked
        now, so a bad file is a request error rather than a failed scan)."""
        if value is None:
            return None
        from mcp_kscan.engine.inputs import load_controls_config

        path = validate_path(value, allowed_roots=roots_in(info), kind="file", bases=bases_in(info))
        load_controls_config(path)
        return path

    @field_validator("exceptions", mode="before")
    @classmethod
    def _check_exceptions(cls, value: Any, info: ValidationInfo) -> Any:
        """A readable file under the path rules that parses as exceptions, checked now: a bad file is a
        request error naming the entry, never a scan that runs as if no exceptions were given."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be the path of a Kubescape exceptions file (inline policy lists are not accepted)")
        from mcp_kscan.engine.exceptions import load_exceptions_file

        path = validate_path(value, allowed_roots=roots_in(info), kind="file", bases=bases_in(info))
        load_exceptions_file(path)
        return path

    _check_context = field_validator("kube_context")(classmethod(lambda cls, v: check_kube_context(v)))

    @field_validator("workload")
    @classmethod
    def _check_workload(cls, value: str | None) -> str | None:
        if value is not None:
            _workload_ref(value)
        return value

    @model_validator(mode="after")
    def _workload_alone(self) -> KubescapeRequest:
        # Kubescape's `scan workload` takes one object and its own frameworks (workloadscan,
        # allcontrols): paths, namespace filters and targets would be silently ignored.
        if self.workload is not None:
            for name in ("paths", "include_namespaces", "exclude_namespaces", "target_names"):
                if getattr(self, name):
                    raise ValueError(f"workload scans one cluster object: leave {name} empty")
        return self

    def with_server_defaults(self, fields: set[str] | frozenset[str]) -> KubescapeRequest:
        """Mark ``fields`` as filled by the server's own settings: never refused as the caller's ask."""
        self._server_defaults = self._server_defaults | frozenset(fields)
        return self

    def binary_only_asked(self) -> list[str]:
        """The ``BINARY_ONLY_FIELDS`` the caller asked for (a true or non-empty value the server did not fill)."""
        return [name for name in BINARY_ONLY_FIELDS if getattr(self, name) and name not in self._server_defaults]

    @property
    def workload_ref(self) -> tuple[str, str, str] | None:
        """(kind, namespace, name) of ``workload``."""
        return _workload_ref(self.workload) if self.workload is not None else None

    @model_validator(mode="after")
    def _infer_target_type(self) -> KubescapeRequest:
        # Names without a type: if they all look like control IDs the caller means controls.
        # (Kubescape's HTTP handler would silently scan everything instead.)
        if self.target_type is None and self.target_names:
            names = [n for n in self.target_names if n.lower() != "all"]
            if names and all(CONTROL_RE.fullmatch(n) for n in names):
                self.target_type = "control"
        return self

    @property
    def scan_all(self) -> bool:
        """Kubescape's ScanAll: no names, or "all" among them (frameworks only)."""
        return self.target_type != "control" and (
            not self.target_names or any(n.lower() == "all" for n in self.target_names)
        )


def _workload_ref(value: str) -> tuple[str, str, str]:
    """``Kind/namespace/name``, checked by the one workload rule (``operators.filters``): the kind
    and name reach Kubescape's argv and an API path, so only what Kubernetes allows passes."""
    from mcp_kscan.operators.filters import parse_workload

    try:
        ref = parse_workload(value)
    except InvalidRequest as exc:
        raise ValueError(exc.reason) from None
    return ref.kind, ref.namespace or "", ref.name


def build_argv(
    req: KubescapeRequest, binary: str, output_file: str | Path, kube_context: str | None = None
) -> list[str]:
    """The argv for ``req``; the JSON report goes to ``output_file`` (a private per-scan path).

    ``kube_context`` is the context the cluster resolver chose (request, then MCP_KSCAN_KUBE_CONTEXT);
    the kubeconfig itself reaches Kubescape as ``KUBECONFIG`` (``build_env``), never as a flag a
    request could fill.
    """
    argv = [binary, "scan"]
    ref = req.workload_ref
    if ref is not None:
        kind, namespace, name = ref
        argv += ["workload", f"{kind}/{name}", "--namespace", namespace]
    elif req.target_type == "control":
        argv += ["control", ",".join(req.target_names)]
    elif req.scan_all:
        argv += ["framework", "all"]
    else:
        argv += ["framework", ",".join(req.target_names)]
    argv += req.paths
    argv += ["--format", "json", "--output", str(output_file)]
    if req.include_namespaces:
        argv += ["--include-namespaces", ",".join(req.include_namespaces)]
    if req.exclude_namespaces:
        argv += ["--exclude-namespaces", ",".join(req.exclude_namespaces)]
    if req.keep_local:
        argv.append("--keep-local")
    if req.use_cached_artifacts:
        argv += ["--use-artifacts-from", str(Path.home() / ".kubescape")]
    if kube_context:
        argv += ["--kube-context", kube_context]
    if req.controls_config:
        argv += ["--controls-config", req.controls_config]
    if req.exceptions:
        argv += ["--exceptions", req.exceptions]
    if req.compliance_threshold is not None:
        argv += ["--compliance-threshold", f"{req.compliance_threshold:g}"]
    if req.severity_threshold:
        argv += ["--severity-threshold", req.severity_threshold]
    if req.submit:
        argv.append("--submit")
    if req.account:
        argv += ["--account", req.account]
    return argv


def access_key_of(req: KubescapeRequest, settings: Settings) -> str | None:
    """The access key for the child: the request's, else the server's KS_ACCESS_KEY setting."""
    if req.access_key is not None:
        return req.access_key.get_secret_value()
    return settings.ks_access_key


def build_env(
    req: KubescapeRequest, settings: Settings, base: Mapping[str, str] | None = None, kubeconfig: str | None = None
) -> dict[str, str]:
    """The child's complete environment: minimal pass-through, the operator's kubeconfig, KS_ACCESS_KEY.

    ``kubeconfig`` is the resolver's (``ClusterSource.kubeconfig``); without one, the server's
    ``KUBECONFIG`` setting.
    """
    extra: dict[str, str | None] = {}
    if kubeconfig or settings.kubeconfig:
        extra["KUBECONFIG"] = kubeconfig or settings.kubeconfig
    key = access_key_of(req, settings)
    if key:
        extra["KS_ACCESS_KEY"] = key
    return minimal_env(base, extra)


# --------------------------------------------------------------------------- parsing

_EXCEPTED_STATUSES = frozenset({"excluded", "warning"})


def _is_excepted(status: Any, sub_status: Any = None) -> bool:
    """Failed but covered by a posture exception: old reports say "excluded"/"warning", new ones
    say passed with subStatus "w/exceptions"."""
    if isinstance(status, dict):
        status, sub_status = status.get("status"), status.get("subStatus", sub_status)
    return str(status or "").lower() in _EXCEPTED_STATUSES or str(sub_status or "").lower() == "w/exceptions"


def resource_from_id(resource_id: str) -> ResourceRef:
    """Best-effort identity from a resourceID alone (when ``resources[]`` lacks the object)."""
    rid = v2.parse_resource_id(resource_id)
    return ResourceRef(api_version=rid.api_version, kind=rid.kind, namespace=rid.namespace, name=rid.name)


def resource_ref(entry: Mapping[str, Any] | None, resource_id: str) -> ResourceRef:
    fallback = resource_from_id(resource_id)
    if not entry:
        return fallback
    obj = entry.get("object")
    obj = obj if isinstance(obj, dict) else {}
    md = obj.get("metadata")
    md = md if isinstance(md, dict) else {}
    source = entry.get("source")
    source = source if isinstance(source, dict) else {}
    return ResourceRef(
        api_version=obj.get("apiVersion") or fallback.api_version,
        kind=obj.get("kind") or fallback.kind,
        # "External" RBAC objects carry name/namespace at the top, not under metadata.
        namespace=md.get("namespace") or obj.get("namespace") or fallback.namespace,
        name=md.get("name") or obj.get("name") or fallback.name,
        file=source_file(source, obj),
        rendered_by=v2.rendered_by(source),
        relative_path=source.get("relativePath") if isinstance(source.get("relativePath"), str) else None,
    )


def source_file(source: Mapping[str, Any], obj: Mapping[str, Any]) -> str | None:
    """The manifest file as the scan saw it: ``source.path`` (the scanned base) joined with
    ``relativePath``; the relative path alone when the report has no base (2022 reports)."""
    base = source.get("path")
    rel = source.get("relativePath")
    base = base if isinstance(base, str) and base else None
    rel = rel if isinstance(rel, str) and rel else None
    if base and rel:
        return base if base.endswith(rel) and base != rel and os.path.isabs(base) else os.path.join(base, rel)
    found = rel or base or obj.get("sourcePath")
    return found if isinstance(found, str) and found else None


def _paths(rules: Any) -> tuple[list[str], list[FixPath]]:
    """(failed paths, fix paths) of one control's rules."""
    failed: list[str] = []
    fixes: list[FixPath] = []
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        entries = list(rule.get("paths") or [])
        # Older reports put these lists straight on the rule.
        entries += [{"failedPath": p} for p in rule.get("failedPaths") or []]
        entries += [{"fixPath": p} for p in rule.get("fixPaths") or []]
        for p in entries:
            if not isinstance(p, dict):
                continue
            for key in ("failedPath", "reviewPath", "deletePath"):
                if isinstance(p.get(key), str) and p[key]:
                    failed.append(p[key])
            fix = p.get("fixPath")
            if isinstance(fix, dict) and isinstance(fix.get("path"), str):
                fixes.append(FixPath(path=fix["path"], value=str(fix.get("value", ""))))
    return failed, fixes


def _exception_of(rules: Any) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """(the exception a rule names, an expired inline one) of one control's rules.

    Kubescape puts the applied postureExceptionPolicy objects on the rule (``exception``); the
    built-in engine adds ``attributes.source`` there and ``expiredException`` for an inline
    exception past its ``kubescape.io/skip-expiry``.
    """
    applied: dict[str, str] | None = None
    expired: dict[str, str] | None = None
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        for policy in rule.get("exception") or []:
            if isinstance(policy, dict) and applied is None:
                attributes: dict[str, Any] = policy["attributes"] if isinstance(policy.get("attributes"), dict) else {}
                name = str(policy.get("name") or "")
                applied = {"name": name, "reason": str(policy.get("reason") or ""),
                           "source": str(attributes.get("source") or (f"exception {name}" if name else "exception"))}
        found = rule.get("expiredException")
        if isinstance(found, dict) and expired is None:
            expired = {str(k): str(v) for k, v in found.items() if isinstance(v, str | int | float)}
    return applied, expired


def _control_order(
    failed: list[FailedControl], summary: Mapping[str, Mapping[str, Any]], findings: list[KubescapeFinding]
) -> list[str]:
    """Every control id, most urgent first: the failed controls in risk order, then the rest.

    Controls failing in ``results`` but missing from ``summaryDetails`` (hand-made or cut reports)
    are ranked by their findings, so the findings order never depends on the summary being whole.
    """
    failed_ids = {c.control_id for c in failed}
    extra_failed: dict[str, list[Any]] = {}
    others: dict[str, str] = {}
    for f in findings:
        if f.control_id in failed_ids:
            continue
        if f.status == "failed":
            entry = extra_failed.setdefault(f.control_id, [f.severity, 0])
            entry[1] += 1
        else:
            others.setdefault(f.control_id, f.severity)
    for cid, ctrl in summary.items():
        if cid not in failed_ids and cid not in extra_failed:
            others.setdefault(cid, v2.control_severity(ctrl))
    order = [c.control_id for c in failed]
    order += sorted(extra_failed, key=lambda cid: risk_key(cid, extra_failed[cid][0], extra_failed[cid][1]))
    order += sorted((cid for cid in others if cid not in extra_failed), key=lambda cid: risk_key(cid, others[cid], 0))
    return order


def _load(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    if not text.strip():
        raise ScanOutputError("Kubescape wrote an empty report")
    try:
        doc = strict_json.loads(text)
    except ValueError as exc:
        start = " ".join(text.strip()[:60].split())
        raise ScanOutputError(
            f"Kubescape report is not valid JSON ({strict_json.reason(exc)}); "
            f"it starts with {redact_text(repr(start))}"
        ) from None
    if not isinstance(doc, dict):
        raise ScanOutputError("Kubescape report is JSON but not an object")
    return doc


def parse_report(data: bytes | str | Mapping[str, Any]) -> KubescapeReport:
    """Turn a Kubescape v2 JSON report (any shape in the wild) into a ``KubescapeReport``.

    Also accepts a bare ``summaryDetails`` section (scores and counts, no findings). Raises
    ``ScanOutputError`` (one line) for anything that is not a Kubescape report. Works on the
    parsed dict in place, without copying per finding: a 1 MB report parses in milliseconds.
    """
    doc = _load(data)
    errors: list[str] = []
    if isinstance(doc.get("summaryDetails"), dict):
        summary: Mapping[str, Any] = doc["summaryDetails"]
    elif isinstance(doc.get("controls"), dict | list) and any(
        k in doc for k in ("frameworks", "ResourceCounters", "score", "complianceScore")
    ):
        summary = doc
        errors.append("the report holds only a summaryDetails section: no per-resource findings")
    else:
        raise ScanOutputError("JSON is not a Kubescape report (no summaryDetails section)")

    controls_info = v2.summary_controls(summary)

    counts = ControlCounts()
    failed_controls: list[FailedControl] = []
    for cid, ctrl in controls_info.items():
        status = v2.control_status(ctrl)
        setattr(counts, status, getattr(counts, status) + 1)
        if status == "failed":
            failed_controls.append(
                FailedControl(
                    control_id=str(ctrl.get("controlID") or cid),
                    name=str(ctrl.get("name") or ""),
                    severity=v2.control_severity(ctrl),
                    failed_resources=v2.resource_counts(ctrl).failed,
                )
            )
    failed_controls.sort(key=lambda c: risk_key(c.control_id, c.severity, c.failed_resources))

    tally = v2.resource_counts(summary)
    resources = ResourceCounts(passed=tally.passed, failed=tally.failed, skipped=tally.skipped)
    frameworks = [
        FrameworkScore(name=str(fw.get("name") or ""), compliance_score=v2.score(fw.get("complianceScore")))
        for fw in summary.get("frameworks") or []
        if isinstance(fw, dict)
    ]

    entries: dict[str, Mapping[str, Any]] = {}
    for entry in doc.get("resources") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resourceID"), str):
            entries[entry["resourceID"]] = entry
    findings: list[KubescapeFinding] = []
    for result in doc.get("results") or []:
        if not isinstance(result, dict):
            continue
        rid = str(result.get("resourceID") or "")
        ref = resource_ref(entries.get(rid), rid)
        for ctrl in result.get("controls") or []:
            if not isinstance(ctrl, dict):
                continue
            cid = str(ctrl.get("controlID") or "")
            info = controls_info.get(cid)
            failed_paths, fix_paths = _paths(ctrl.get("rules"))
            status = v2.control_status(ctrl)
            excepted = _is_excepted(ctrl.get("status")) or any(
                _is_excepted(r.get("status"), r.get("subStatus")) for r in ctrl.get("rules") or [] if isinstance(r, dict)
            )
            applied, expired = _exception_of(ctrl.get("rules"))
            findings.append(
                KubescapeFinding(
                    control_id=cid,
                    control_name=str(ctrl.get("name") or (info or {}).get("name") or ""),
                    severity=v2.control_severity(ctrl, info),
                    status=status,
                    resource=ref,
                    failed_paths=failed_paths,
                    fix_paths=fix_paths,
                    excepted=excepted and status == "passed",
                    exception=applied if excepted and status == "passed" else None,
                    exception_expired=expired if status == "failed" else None,
                )
            )

    control_order = _control_order(failed_controls, controls_info, findings)

    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    scan_md = metadata.get("scanMetadata")
    scan_md = scan_md if isinstance(scan_md, dict) else {}
    engine = metadata.get("engine")
    engine_name: str | None = None
    warnings: list[str] = []
    if isinstance(engine, dict):
        engine_name = engine.get("name") if isinstance(engine.get("name"), str) else None
        for err in engine.get("errors") or []:
            errors.append(err if isinstance(err, str) else json.dumps(err, sort_keys=True)[:500])
        warnings += [w for w in engine.get("warnings") or [] if isinstance(w, str)]
    elif isinstance(engine, str):
        engine_name = engine
    coverage = doc.get("scanCoverage")
    if coverage:
        errors.append("the scan did not cover everything: " + json.dumps(coverage, sort_keys=True)[:500])

    empty = v2.nothing_scanned(doc)
    if empty:
        # Whatever the writer printed (a mean over untouched controls is 100), nothing scanned has no score.
        frameworks = [fw.model_copy(update={"compliance_score": None}) for fw in frameworks]
        if v2.NOTHING_SCANNED not in warnings:
            warnings.append(v2.NOTHING_SCANNED)
    return KubescapeReport(
        compliance_score=None if empty else v2.score(summary.get("complianceScore")),
        risk_score=None if empty else v2.score(summary.get("score")),
        frameworks=frameworks,
        controls=counts,
        resources=resources,
        failed_controls=failed_controls,
        control_order=control_order,
        findings=findings,
        engine=engine_name,
        kubescape_version=scan_md.get("kubescapeVersion") if isinstance(scan_md.get("kubescapeVersion"), str) else None,
        errors=errors,
        warnings=warnings,
        nothing_scanned=empty,
    )
