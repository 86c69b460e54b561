"""What every hostile case must show, whichever front end it came through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .conftest import SecEnv
from .corpus import CANARY


def assert_rejected_cleanly(env: SecEnv, text: str, field: str, starts_before: int, files_before: set[str]) -> None:
    if field:
        assert field.split(".")[0].lstrip("-_") in text or field in text, f"error does not name the field {field!r}: {text[:300]}"
    assert len(text) < 4000, f"error text is {len(text)} characters long"
    for secret in env.forbidden_texts():
        assert secret not in text, f"error text leaks {secret!r}: {text[:300]}"
    assert len(env.fake.starts()) == starts_before, "a scanner process was started"
    assert not os.path.exists(CANARY), "an attack wrote the canary file"
    assert env.files() == files_before, f"files appeared: {env.files() - files_before}"


class CaseFailures:
    """Runs every case of a corpus test and names each one that failed, with why.

    The corpus has thousands of cases; as one pytest item each, collection, setup, teardown and
    xdist's report per item cost more CPU than the calls themselves, in the controller and in
    every worker. One test per tool (or per front end) loops its cases instead, without stopping
    at the first failure, so a failing run still lists the exact cases, as separate items did.
    """

    def __init__(self) -> None:
        self.ran = 0
        self.failures: list[str] = []

    @contextmanager
    def case(self, case_id: str) -> Iterator[None]:
        self.ran += 1
        try:
            yield
        # An AssertionError, or a transport or protocol error: each fails this case, and is reported.
        except Exception as exc:  # noqa: BLE001
            self.failures.append(f"{case_id}: {type(exc).__name__}: {str(exc)[:600]}")

    def assert_none(self) -> None:
        assert self.ran, "no case ran"
        shown = "\n".join(self.failures[:40])
        more = f"\n... and {len(self.failures) - 40} more" if len(self.failures) > 40 else ""
        assert not self.failures, f"{len(self.failures)} of {self.ran} cases failed:\n{shown}{more}"
