"""What propose_fix and apply_fix answer, as every front end shows it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_FIX_PAGE = 50
MAX_FINDING_IDS = 200


class FixRequest(BaseModel):
    """``POST /api/v1/fixes``: propose (the default) or, with ``apply``, write the named findings' fixes.

    Only lengths are bounded here: what each value must look like is checked once, by the
    operations every front end calls (``fixes.operations``)."""

    model_config = ConfigDict(extra="forbid")

    scan_id: str = Field(max_length=64)
    finding_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=MAX_FINDING_IDS)
    control_id: str | None = Field(None, max_length=64)
    limit: int = Field(10, ge=1, le=MAX_FIX_PAGE)
    cursor: str | None = Field(None, max_length=512)
    apply: bool = False


class UserValue(BaseModel):
    """A value only the user can choose, with what we suggest and why."""

    field: str
    suggested_value: Any = None
    reason: str


class DryRun(BaseModel):
    """The API server's answer to the patch sent with ``dryRun=All`` (nothing is changed)."""

    accepted: bool
    status: int | None = None
    message: str | None = None


class ProposedFix(BaseModel):
    """One failed finding's fix: the patch, the file's diff, and whether a re-scan says it works."""

    finding_id: str
    control_id: str
    severity: str | None = None
    resource: dict[str, Any]
    file: str | None = None
    document_index: int | None = None
    line: int | None = None
    json_patch: list[dict[str, Any]]
    """RFC 6902, against the document (or, for a cluster finding, the live object)."""
    diff: str | None = None
    """Unified diff of the file; only the fixed lines change."""
    needs_user_value: list[UserValue] = []
    """Placeholders and choices: the patch and the diff use the suggested values."""
    verified: bool
    verification: str
    """Why ``verified`` is what it is (the re-scan's verdict)."""
    helm_values: list[dict[str, str]] | None = None
    """For a Helm template: the values.yaml keys that feed the failing fields (templates are never edited)."""
    dry_run: DryRun | None = None
    """For a cluster finding: the API server's verdict on the patch (``dryRun=All``)."""


class NoFix(BaseModel):
    """A failed finding on the page without a fix, and why."""

    finding_id: str
    control_id: str
    reason: str


class FixPage(BaseModel):
    scan_id: str
    fixes: list[ProposedFix]
    without_fix: list[NoFix] = []
    total_matching: int
    """Failed findings matching the filters, across all pages."""
    returned: int
    next_cursor: str | None = None
    note: str | None = None


class FixResult(BaseModel):
    finding_id: str
    status: Literal["applied", "refused"]
    reason: str | None = None
    file: str | None = None


class ApplyResult(BaseModel):
    scan_id: str
    results: list[FixResult]
    files_written: list[str]
    applied: int
    refused: int
    diffs: dict[str, str] = {}
    """File → the unified diff of all its applied fixes together (what was, or would be, written)."""
