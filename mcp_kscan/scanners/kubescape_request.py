"""Kubescape scan requests: the model (Kubescape HTTP API names accepted) and its validators.

Every field that reaches Kubescape's argv, a path or the child's environment is checked here,
before any process starts; ``scanners.kubescape_argv`` turns a valid request into the command.
"""


from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mcp_kscan.client_roots import RootedRequest, bases_in, roots_in
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.k8s_names import is_namespace
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.scanners.common import check_kube_context, shown, split_csv
from mcp_kscan.scanners.paths import scan_path, validate_path

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


class KubescapeRequest(RootedRequest):
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
        return split_csv(value)

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
        return split_csv(value)

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

    @property
    def server_defaults(self) -> frozenset[str]:
        return self._server_defaults

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
