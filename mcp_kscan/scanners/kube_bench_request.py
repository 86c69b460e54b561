"""kube-bench scan requests: what to check (``KubeBenchRun``), the whole request (``KubeBenchRequest``,
with ``executors.placement.JobPlacement``), their validators and the ``additional_args`` allow-list.

Facts this module relies on (kube-bench cmd/root.go, cmd/run.go):
- ``--version`` (a Kubernetes version) and ``--benchmark`` exclude each other, as do
  ``--check`` and ``--group``: kube-bench exits 1 for both, we reject them before starting.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mcp_kscan.client_roots import RootedRequest, bases_in, roots_in
from mcp_kscan.executors.placement import JobPlacement
from mcp_kscan.scanners.common import has_control_chars, shown, split_csv
from mcp_kscan.scanners.paths import validate_path

KubeBenchTarget = Literal["master", "node", "controlplane", "etcd", "policies", "managedservices"]

VERSION_RE = re.compile(r"^(\d+\.\d+(\.\d+)?|(ocp|gke|eks|aks)-\d+(\.\d+)*)$", re.ASCII)
BENCHMARK_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,39}$", re.ASCII)
# CIS IDs (1.2.3, sections like 4 or 4.2) and DISA STIG IDs (V-242390).
CHECK_ID_RE = re.compile(r"^(\d{1,3}(\.\d{1,3}){0,5}|[A-Z]{1,5}-\d{1,8})$", re.ASCII)
MAX_IDS = 200
MAX_ADDITIONAL_ARGS_CHARS = 1000
MAX_TIMEOUT_S = 24 * 3600

# additional_args allow-list: flag -> kind of value. Everything else (--outputfile, --pgsql,
# --asff, --config, --config-dir, --targets, --version, --benchmark, ...) is refused: those either
# write files, talk to databases/cloud APIs, or are request fields with their own validation.
_VALUE_FLAGS: dict[str, str] = {
    "--skip": "ids",
    "--check": "ids",
    "-c": "ids",
    "--group": "ids",
    "-g": "ids",
    "--exit-code": "int",
    "-v": "level",
    "--v": "level",
}
_BOOL_FLAGS = frozenset({"--scored", "--unscored", "--nototals", "--noremediations", "--noresults", "--nosummary"})
ALLOWED_ADDITIONAL_FLAGS = tuple(sorted({*_VALUE_FLAGS, *_BOOL_FLAGS}))
_CANONICAL = {"-c": "--check", "-g": "--group", "--v": "-v"}
_SHELL_META = set(";&|`$<>(){}[]*?!~\\'\"#")


def _check_ids(ids: Sequence[str]) -> list[str]:
    if len(ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} IDs")
    out: list[str] = []
    for item in ids:
        if not CHECK_ID_RE.fullmatch(item):
            raise ValueError(f"not a check/group ID like 1.2.3: {shown(item)}")
        if item not in out:
            out.append(item)
    return out


def parse_additional_args(text: str) -> list[tuple[str, str | None]]:
    """Split ``additional_args`` with shlex and check every token against the allow-list.

    Returns (canonical flag, value or None) pairs. Raises ``ValueError`` naming the first bad
    token: a flag that is not allowed, a value that fails its pattern, or a stray word.
    """
    if len(text) > MAX_ADDITIONAL_ARGS_CHARS:
        raise ValueError(f"longer than {MAX_ADDITIONAL_ARGS_CHARS} characters")
    if has_control_chars(text):
        raise ValueError("contains control characters (newline, NUL, ...)")
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError as exc:
        raise ValueError(f"cannot be split into arguments: {exc}") from None
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        flag, eq, value = token.partition("=")
        if flag in _BOOL_FLAGS:
            if eq and value.lower() not in ("true", "false"):
                raise ValueError(f"{flag} takes true or false, not {shown(value)}")
            pairs.append((flag, value.lower() if eq else None))
            continue
        if flag in _VALUE_FLAGS:
            if not eq:
                if i >= len(tokens):
                    raise ValueError(f"{flag} needs a value")
                value = tokens[i]
                i += 1
            kind = _VALUE_FLAGS[flag]
            if kind == "ids":
                _check_ids(split_csv(value) or ["<empty>"])
            elif kind == "int":
                if not re.fullmatch(r"\d{1,3}", value) or int(value) > 255:
                    raise ValueError(f"{flag} takes an exit code 0-255, not {shown(value)}")
            elif not re.fullmatch(r"\d", value):
                raise ValueError(f"{flag} takes a log level 0-9, not {shown(value)}")
            pairs.append((_CANONICAL.get(flag, flag), value))
            continue
        if any(ch in _SHELL_META for ch in token):
            raise ValueError(f"shell metacharacters are not allowed (no shell runs here): {shown(token)}")
        if token.startswith("-"):
            raise ValueError(f"flag not allowed: {shown(flag)}; allowed: {', '.join(ALLOWED_ADDITIONAL_FLAGS)}")
        raise ValueError(f"unexpected word (not a flag or a flag's value): {shown(token)}")
    return pairs


class KubeBenchRun(RootedRequest):
    """What kube-bench is asked to check: its own flags, the same wherever it runs.

    A ``RootedRequest`` (no field of its own): it keeps the roots that resolved ``config_dir``, so
    another server that runs the queued scan validates it the same way."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    targets: list[KubeBenchTarget] = Field(
        default_factory=list,
        description="Benchmark targets (`kube-bench run --targets`); empty = auto-detect.",
    )
    version: str | None = Field(None, description="Kubernetes version, e.g. 1.28 or eks-1.2 (not with benchmark).")
    benchmark: str | None = Field(None, description="CIS benchmark, e.g. cis-1.10 (not with version).")
    config_dir: str | None = Field(None, description="kube-bench cfg directory (an existing directory).")
    check: list[str] = Field(default_factory=list, description="Only these check IDs, e.g. 1.2.3.")
    skip: list[str] = Field(default_factory=list, description="Skip these check or group IDs.")
    group: list[str] = Field(default_factory=list, description="Only these group IDs (not with check).")
    scored: bool | None = Field(None, description="--scored=<bool>: include scored checks (default true).")
    unscored: bool | None = Field(None, description="--unscored=<bool>: include unscored checks (default true).")
    additional_args: str | None = Field(None, description="Extra allow-listed flags, e.g. '--exit-code 1'.")
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S, description="Stop the scan after this long (default: the server's).")

    @field_validator("targets", "check", "skip", "group", mode="before")
    @classmethod
    def _accept_csv(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("targets")
    @classmethod
    def _dedupe_targets(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is not None and not VERSION_RE.fullmatch(value):
            raise ValueError(f"not a Kubernetes version like 1.28 or eks-1.2: {shown(value)}")
        return value

    @field_validator("benchmark")
    @classmethod
    def _check_benchmark(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not BENCHMARK_RE.fullmatch(value):
            raise ValueError(f"not a benchmark name like cis-1.10: {shown(value)}")
        if info.data.get("version"):
            raise ValueError("give version or benchmark, not both (kube-bench rejects the pair)")
        return value

    @field_validator("config_dir")
    @classmethod
    def _check_config_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else validate_path(
            value, allowed_roots=roots_in(info), kind="dir", bases=bases_in(info))

    @field_validator("check", "skip")
    @classmethod
    def _check_id_list(cls, value: list[str]) -> list[str]:
        return _check_ids(value)

    @field_validator("group")
    @classmethod
    def _check_group(cls, value: list[str], info: ValidationInfo) -> list[str]:
        value = _check_ids(value)
        if value and info.data.get("check"):
            raise ValueError("give check or group, not both (kube-bench rejects the pair)")
        return value

    @field_validator("additional_args")
    @classmethod
    def _check_additional(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        pairs = parse_additional_args(value)
        flags = {flag for flag, _ in pairs}
        has_check = bool(info.data.get("check")) or "--check" in flags
        has_group = bool(info.data.get("group")) or "--group" in flags
        if has_check and has_group:
            raise ValueError("--check and --group together (kube-bench rejects the pair)")
        return value.strip() or None


# One flat object, as MCP, REST and the CLI take it: what to check (KubeBenchRun) and where
# kube-bench runs (JobPlacement). Bases in this order keep the published field order, kube-bench's
# flags first, so tools/list and the OpenAPI document did not change when the two were split.
class KubeBenchRequest(JobPlacement, KubeBenchRun):
    """A kube-bench scan as a caller may ask for it; every field is checked before any process."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _check_config_dir_placement(self) -> KubeBenchRequest:
        if self.executor == "job" and self.config_dir:
            raise ValueError("config_dir is a path on this host: it cannot be used with executor='job'")
        return self
