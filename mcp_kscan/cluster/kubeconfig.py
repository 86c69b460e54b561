"""The operator's kubeconfig, read as data: which files, which contexts, which is current.

Reading here is ``yaml.safe_load`` and nothing else: no credential plugin runs, no token or
certificate file is opened. That is what ``list_contexts``, the context check of a request and
``doctor`` need; only ``source.new_api_client`` hands a file to the Kubernetes client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field


def kubeconfig_files(kubeconfig_setting: str | None) -> tuple[list[Path], bool]:
    """The kubeconfig files the server uses and whether the operator named them.

    ``KUBECONFIG`` (the setting; a list separated by ``os.pathsep``, merged like kubectl does),
    else ``~/.kube/config``. The files may not exist: callers decide what that means.
    """
    if kubeconfig_setting:
        parts = [p.strip() for p in kubeconfig_setting.split(os.pathsep) if p.strip()]
        return [Path(p).expanduser() for p in parts], True
    return [Path.home() / ".kube" / "config"], False


class ContextInfo(BaseModel):
    """What a caller may know about one context: names only, never a credential or a file path."""

    name: str
    cluster: str | None = Field(description="The cluster entry's name (not its server URL).")
    namespace: str = Field(description="The context's default namespace.")
    user: str | None = Field(description="The user entry's name (never its credential).")
    current: bool = Field(description="True for the kubeconfig's current-context.")


@dataclass
class Kubeconfig:
    """The merged view of the operator's files (first file wins per name, as with kubectl)."""

    files: list[Path]
    """The files that exist and were read."""
    clusters: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    current_context: str | None = None
    problems: list[str] = field(default_factory=list)
    """One line per file that could not be read (path, error type, first line of the error)."""

    @property
    def context_names(self) -> list[str]:
        return [str(c.get("name")) for c in self.contexts]

    def named(self, kind: str, name: str | None) -> dict[str, Any] | None:
        """The entry called ``name`` among ``clusters``/``contexts``/``users``."""
        if not name:
            return None
        for entry in getattr(self, kind):
            if entry.get("name") == name:
                return entry
        return None

    def context_info(self) -> list[ContextInfo]:
        out: list[ContextInfo] = []
        for entry in self.contexts:
            raw = entry.get("context")
            body: dict[str, Any] = raw if isinstance(raw, dict) else {}
            name = str(entry.get("name"))
            out.append(ContextInfo(
                name=name,
                cluster=_str_or_none(body.get("cluster")),
                namespace=_str_or_none(body.get("namespace")) or "default",
                user=_str_or_none(body.get("user")),
                current=name == self.current_context,
            ))
        return out


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read_kubeconfig(files: list[Path]) -> Kubeconfig:
    """Merge ``files`` like kubectl: the first file that sets current-context wins; named entries, first wins."""
    merged = Kubeconfig(files=[f for f in files if f.is_file()])
    for path in merged.files:
        try:
            with path.open("rb") as fh:
                doc = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            merged.problems.append(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            continue
        if doc is None:
            continue
        if not isinstance(doc, dict):
            merged.problems.append(f"{path}: not a kubeconfig (top level is not a mapping)")
            continue
        if not merged.current_context and isinstance(doc.get("current-context"), str) and doc["current-context"]:
            merged.current_context = doc["current-context"]
        for key in ("clusters", "contexts", "users"):
            entries = doc.get(key)
            if isinstance(entries, list):
                have: list[dict[str, Any]] = getattr(merged, key)
                names = {e.get("name") for e in have}
                have.extend(e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)
                            and e.get("name") not in names)
    return merged


__all__ = ["ContextInfo", "Kubeconfig", "kubeconfig_files", "read_kubeconfig"]
