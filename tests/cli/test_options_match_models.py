"""The CLI's options against the request models, by construction: every option of ``scan`` and
``kube-bench`` either names a request field (which must exist, with the model's choices) or is
listed as the terminal's own (output, gates, listings, the kubeconfig setting)."""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from mcp_kscan import kube_bench_cli
from mcp_kscan.engine import cli as scan_cli
from mcp_kscan.readers.kubescape_v2 import SeverityThreshold
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest


def _options(add_parser: Callable[[Any], None]) -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    (command,) = parser._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
    return {a.dest: a for a in command._actions if not isinstance(a, argparse._HelpAction)}


def _literal_values(annotation: Any) -> set[str] | None:
    """The values a Literal field (or an optional one, or a list of one) accepts; None otherwise."""
    if get_origin(annotation) is Literal:
        return {str(v) for v in get_args(annotation)}
    if get_origin(annotation) in (Union, types.UnionType, list):
        for arg in get_args(annotation):
            found = _literal_values(arg)
            if found is not None:
                return found
    return None


CASES = [
    pytest.param(scan_cli.add_scan_parser, KubescapeRequest, scan_cli.REQUEST_FIELDS, scan_cli.CLI_ONLY, id="scan"),
    pytest.param(kube_bench_cli.add_kube_bench_parser, KubeBenchRequest, kube_bench_cli.REQUEST_FIELDS,
                 kube_bench_cli.CLI_ONLY, id="kube-bench"),
]


@pytest.mark.parametrize(("add_parser", "model", "fields", "cli_only"), CASES)
def test_every_option_is_a_field_or_the_terminals_own(add_parser: Callable[[Any], None], model: type[BaseModel],
                                                      fields: dict[str, str], cli_only: frozenset[str]) -> None:
    options = _options(add_parser)
    assert set(options) == set(fields) | cli_only, "an option is neither mapped to a request field nor CLI-only"
    assert not set(fields) & cli_only
    for dest, field in fields.items():
        assert field in model.model_fields, f"--{dest} maps to {model.__name__}.{field}, which does not exist"
        assert options[dest].help, f"--{dest} has no help"


@pytest.mark.parametrize(("add_parser", "model", "fields", "cli_only"), CASES)
def test_choices_are_the_models(add_parser: Callable[[Any], None], model: type[BaseModel],
                                fields: dict[str, str], cli_only: frozenset[str]) -> None:
    options = _options(add_parser)
    for dest, field in fields.items():
        allowed = _literal_values(model.model_fields[field].annotation)
        if field == "severity_threshold":  # a str field checked by a validator against this Literal
            allowed = set(get_args(SeverityThreshold))
        choices = options[dest].choices
        if allowed is not None and choices is not None:
            assert {str(c) for c in choices} == allowed, f"--{dest}"
        elif choices is not None:
            pytest.fail(f"--{dest} has choices {choices} but {model.__name__}.{field} is not a Literal")
