"""``resource_key`` is the standard library's compact JSON of the four names, whatever they hold."""

from __future__ import annotations

import json

import pytest

from mcp_kscan.readers.kubescape_fields import resource_key

TRICKY = ["", "svc-1", 'a"b', "a\\b", "tab\there", "nl\n", "\x00\x1f", "del\x7f", "café", "日本", "😀",
          "\ud800", "/slash/", "a b", "~`!@#$%^&*()"]


@pytest.mark.parametrize("text", TRICKY)
def test_resource_key_is_the_standard_librarys_json(text: str) -> None:
    for parts in ([text, "ns", "name", "f.yaml"], ["Pod", text, None, text], [None, None, None, None]):
        assert resource_key(*parts) == json.dumps([p or "" for p in parts], separators=(",", ":"))
