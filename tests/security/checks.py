"""What every hostile case must show, whichever front end it came through."""

from __future__ import annotations

import os

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
