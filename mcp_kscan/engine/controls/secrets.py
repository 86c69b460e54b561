"""Credentials and service-account tokens (C-0012, C-0034), as regolibrary v2.0.33 writes them.

C-0012 reads the control inputs: ``sensitiveKeyNames`` (a substring of a variable or key name,
case-insensitive), ``sensitiveValues`` (regular expressions over the value; case-insensitive for
environment variables, case-sensitive for ConfigMaps, where a base64-decoded value is tried too),
and the ``*Allowed`` lists that exempt a value or a name. An environment value that is a file
path (starts with ``/``) is exempt, and only literal values count (``valueFrom`` never does).
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, fail, merge
from mcp_kscan.engine.controls.workload import containers
from mcp_kscan.engine.model import Finding, Resource


@lru_cache(maxsize=512)
def _pattern(expr: str, ignore_case: bool) -> re.Pattern[str] | None:
    """A control input's regular expression; one Python cannot compile matches nothing (OPA's
    regex.match errors, which makes the rule's condition undefined)."""
    try:
        return re.compile(expr, re.IGNORECASE if ignore_case else 0)
    except re.error:
        return None


@lru_cache(maxsize=64)
def _any_pattern(exprs: tuple[str, ...], ignore_case: bool) -> re.Pattern[str] | None:
    """One alternation of the patterns that compile (searching it once equals searching each);
    None when they cannot be joined (e.g. a pattern with its own inline flags)."""
    valid = [e for e in exprs if _pattern(e, ignore_case) is not None]
    if not valid:
        return None
    try:
        return re.compile("|".join(f"(?:{e})" for e in valid), re.IGNORECASE if ignore_case else 0)
    except re.error:
        return None


def _search_any(exprs: tuple[str, ...], text: str, ignore_case: bool = False) -> bool:
    if not exprs:
        return False
    joined = _any_pattern(exprs, ignore_case)
    if joined is not None:
        return joined.search(text) is not None
    return any(_search(e, text, ignore_case) for e in exprs)


def _search(expr: str, text: str, ignore_case: bool = False) -> bool:
    p = _pattern(expr, ignore_case)
    return p is not None and p.search(text) is not None


def _allowed(ctx: ScanContext, name: str, value: str) -> bool:
    if _search_any(ctx.input("sensitiveValuesAllowed"), value):
        return True
    lowered = name.lower()
    return any(a.lower() in lowered for a in ctx.input("sensitiveKeyNamesAllowed"))


def _sensitive_name(ctx: ScanContext, name: str) -> bool:
    lowered = name.lower()
    return any(k.lower() in lowered for k in ctx.input("sensitiveKeyNames"))


def _env_is_sensitive(ctx: ScanContext, name: str, value: Any) -> bool:
    if not isinstance(value, str) or value.startswith("/") or _allowed(ctx, name, value):
        return False
    if value != "" and _sensitive_name(ctx, name):
        return True
    return _search_any(ctx.input("sensitiveValues"), value, ignore_case=True)


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None


def _configmap_is_sensitive(ctx: ScanContext, key: str, value: Any) -> bool:
    if not isinstance(value, str) or value == "" or _allowed(ctx, key, value):
        return False
    if _sensitive_name(ctx, key):
        return True
    decoded = _decoded(value)
    values = ctx.input("sensitiveValues")
    return _search_any(values, value) or (decoded is not None and _search_any(values, decoded))


def credentials_in_config(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0012: a literal credential in an environment variable or a ConfigMap."""
    out: list[Finding] = []
    if res.kind == "ConfigMap":
        data = res.obj.get("data")
        for key, value in (data.items() if isinstance(data, dict) else ()):
            if _configmap_is_sensitive(ctx, str(key), value):
                out.append(fail([f"data[{key}]"], [], f"ConfigMap key {key!r} holds a credential"))
        return merge(out)
    for path, c in containers(res):
        env = c.get("env")
        for j, var in enumerate(env if isinstance(env, list) else []):
            if isinstance(var, dict) and _env_is_sensitive(ctx, str(var.get("name", "")), var.get("value")):
                out.append(fail([f"{path}.env[{j}].name", f"{path}.env[{j}].value"], [],
                                f"environment variable {var.get('name')!r} holds a credential; use a Secret"))
    return merge(out)


def automount_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0034: the pod mounts an API token: automountServiceAccountToken is true, or it is unset
    and the service account (matched by serviceAccountName, else ``default``) is missing from
    the scan or does not set it to false. The pod's own setting wins over the account's."""
    spec = res.pod_spec or {}
    setting = spec.get("automountServiceAccountToken")
    p = f"{res.pod_path}automountServiceAccountToken"
    if setting is True:
        return fail([p], [(p, "false")], "automountServiceAccountToken is true")
    if setting is False:
        return PASSED
    name = spec.get("serviceAccountName") or "default"
    sa = ctx.service_accounts.get((res.effective_namespace, str(name)))
    if sa is not None and sa.get("automountServiceAccountToken") is False:
        return PASSED
    return fail([], [(p, "false")], f"the pods mount service account {name!r}'s token")
