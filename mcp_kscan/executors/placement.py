"""Where kube-bench runs: this host, or Kubernetes Jobs on chosen nodes, and the Jobs' settings.

These fields are the Job executor's, not kube-bench's: kube-bench checks the machine it runs on,
so reaching a cluster's nodes means running it as a Job on each (``executors.k8s_jobs``). The
caller's request (``scanners.kube_bench_request.KubeBenchRequest``) is this model and kube-bench's
own flags in one flat object; a scan that runs kube-bench on this host refuses the Job-only
fields rather than ignore them (``scan_plan.kube_bench_task``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_kscan.k8s_names import is_dns_subdomain, is_namespace
from mcp_kscan.scanners.common import check_kube_context, shown, split_csv

MAX_NODES = 1000
_LABEL_KEY = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"
# Spaces only between tokens: \s would let a newline or U+2028 into a selector.
_LABEL_REQ = (
    rf"(!?{_LABEL_KEY}|{_LABEL_KEY}[ ]*(==|=|!=)[ ]*{_LABEL_VALUE}"
    rf"|{_LABEL_KEY}[ ]+(in|notin)[ ]*\([ ]*{_LABEL_VALUE}([ ]*,[ ]*{_LABEL_VALUE})*[ ]*\))"
)
LABEL_SELECTOR_RE = re.compile(rf"[ ]*{_LABEL_REQ}([ ]*,[ ]*{_LABEL_REQ})*[ ]*")
# [registry[:port]/]path[:tag][@sha256:digest]
IMAGE_RE = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?"
)

JOB_ONLY_FIELDS = ("namespace", "image", "max_parallel_jobs", "keep_jobs", "kube_context")
"""Fields only Jobs use (the node selection fields are checked by the model itself)."""


class JobPlacement(BaseModel):
    """Where kube-bench runs and, for Jobs, on which nodes and how."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    executor: Literal["auto", "local", "job"] = Field(
        "auto",
        description="Where kube-bench runs (see the tool description).",
    )
    nodes: list[str] = Field(default_factory=list, description="executor=job: only these node names.")
    node_selector: str | None = Field(None, description="executor=job: nodes matching this label selector.")
    all_nodes: bool = Field(False, description="executor=job: every node (the default when no nodes/node_selector).")
    namespace: str = Field("kube-bench", description="executor=job: namespace for the Jobs (created if missing).")
    image: str | None = Field(
        None, description="executor=job: kube-bench image (default: MCP_KSCAN_KUBE_BENCH_IMAGE, else pinned)."
    )
    max_parallel_jobs: int = Field(10, ge=1, le=100, description="executor=job: Jobs running at once.")
    keep_jobs: bool = Field(False, description="executor=job: keep finished Jobs (not deleted once read).")
    kube_context: str | None = Field(
        None, description="executor=job: a context of the server's kubeconfig (list_contexts).",
    )

    def job_only_asked(self) -> list[str]:
        """The ``JOB_ONLY_FIELDS`` set to something other than their default."""
        fields = type(self).model_fields
        return [name for name in JOB_ONLY_FIELDS
                if getattr(self, name) != fields[name].get_default(call_default_factory=True)]

    @field_validator("nodes", mode="before")
    @classmethod
    def _accept_csv_nodes(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("nodes")
    @classmethod
    def _check_nodes(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} node names (use node_selector or all_nodes)")
        for name in value:
            if not is_dns_subdomain(name):
                raise ValueError(f"not a node name (DNS-1123 subdomain): {shown(name)}")
        return list(dict.fromkeys(value))

    @field_validator("node_selector")
    @classmethod
    def _check_selector(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 1000 or not LABEL_SELECTOR_RE.fullmatch(value)):
            raise ValueError(f"not a label selector like 'key=value,key2 in (a,b)': {shown(value)}")
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not is_namespace(value):
            raise ValueError(f"not a namespace name (DNS-1123 label): {shown(value)}")
        return value

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 512 or not IMAGE_RE.fullmatch(value)):
            raise ValueError(f"not an image reference like registry/repo:tag or repo@sha256:…: {shown(value)}")
        return value

    _check_context = field_validator("kube_context")(classmethod(lambda cls, v: check_kube_context(v)))

    @model_validator(mode="after")
    def _check_node_choice(self) -> JobPlacement:
        chosen = [n for n, v in (("nodes", self.nodes), ("node_selector", self.node_selector),
                                 ("all_nodes", self.all_nodes)) if v]
        if len(chosen) > 1:
            raise ValueError(f"give one of nodes, node_selector, all_nodes (got {', '.join(chosen)})")
        if self.executor == "local" and chosen:
            raise ValueError(f"{chosen[0]} selects cluster nodes: use executor='job' (or 'auto')")
        return self
