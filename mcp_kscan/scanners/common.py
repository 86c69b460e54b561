"""Helpers shared by both adapters: the output error, the child environment, safe echoing."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from mcp_kscan.errors import KscanError
from mcp_kscan.redact import redact_text
from mcp_kscan.reports import cut_text

# Variables a scanner child may need, and nothing else: the server's own environment can hold
# its API token (MCP_KSCAN_TOKEN) and cloud credentials the scanner has no business seeing.
CHILD_ENV_PASSTHROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "KUBECONFIG",
    # kube-bench asks the in-cluster API for the Kubernetes version when it runs in a pod.
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    # Kubescape downloads its policies; corporate networks need the proxy settings for that.
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ScanOutputError(KscanError):
    """The scanner's output could not be read as the report we expected (one-line message)."""


def minimal_env(
    base: Mapping[str, str] | None = None, extra: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """The child's whole environment: a few pass-through variables plus ``extra`` (None drops)."""
    base = os.environ if base is None else base
    env = {k: base[k] for k in CHILD_ENV_PASSTHROUGH if base.get(k)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def split_csv(value: Any) -> Any:
    """Accept ``"1.1,1.2"`` as well as a list: agents and HTTP clients send both."""
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return value


def has_control_chars(value: str) -> bool:
    return bool(_CONTROL_RE.search(value))


def shown(value: object, limit: int = 60) -> str:
    """How an error message quotes a caller's value: cut, control characters escaped, redacted.

    Why: a message must never carry more than a short piece of what the caller sent (a 10 kB
    string or a newline would break the one-line error contract).
    """
    text = value if isinstance(value, str) else repr(value)
    text = cut_text(text, limit) or ""
    return repr(redact_text(text))


def stderr_tail(stderr: bytes, limit: int = 300) -> str:
    """The last meaningful line(s) of stderr, one line, redacted: what an error message quotes."""
    text = stderr[-4000:].decode("utf-8", "replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    tail = " | ".join(lines[-2:])
    tail = _CONTROL_RE.sub(" ", tail)
    if len(tail) > limit:
        tail = "…" + tail[-(limit - 1) :]
    return redact_text(tail)


KUBE_CONTEXT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@:/+-]{0,252}")
"""kubeconfig context names as kubectl creates them (cloud CLIs use ARNs and slashes)."""


def check_kube_context(value: str | None) -> str | None:
    """A kube_context field: a context name, never something that could pass for a flag."""
    if value is not None and not KUBE_CONTEXT_RE.fullmatch(value):
        raise ValueError(f"not a kubeconfig context name: {shown(value)}")
    return value
