"""The hostile-input corpus, as data: attacks per JSON type, expanded per field of every MCP tool.

Fields come from the tools' own input schemas (so a new field is covered the day it lands);
every attack is a value no field may accept. ``{ROOT}`` and ``{OUTSIDE}`` are filled in at run
time (the allowed root, and a directory outside it that a symlink in the root points to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CANARY = "/tmp/mcp-kscan-security-canary"
"""Every file-writing attack aims here; the tests assert it never appears."""


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


STRING_ATTACKS: dict[str, Any] = {
    "shell_semicolon": f"x; touch {CANARY}",
    "cmd_subst": f"$(touch {CANARY})",
    "backticks": f"`touch {CANARY}`",
    "pipe": "a|nc 127.0.0.1 1",
    "ampersand": f"x && touch {CANARY}",
    "redirect": f"x > {CANARY}",
    "newline": "ok\nX-Injected: 1",
    "trailing_newline": "nsa\n",
    "carriage_return": "ok\rforged",
    "nul": "a\x00b",
    "opt_long": f"--outputfile={CANARY}",
    "opt_short": f"-o{CANARY}",
    "opt_help": "--help",
    "traversal": "../../../../../../etc/passwd",
    "abs_outside": "/etc/shadow",
    "symlink_out": "{ROOT}/escape/secret.yaml",
    "huge": "A" * 100_000,
    "rtl_override": "nsa\u202egpj.exe",
    "zero_width": "ns\u200ba",
    "fullwidth_digits": "\uff11.\uff12\uff18",
    "fullwidth_dash": "\uff0d\uff0dhelp",
    "fullwidth_control_id": "C-\uff10\uff10\uff15\uff17",
    "arabic_digits": "\u0661.\u0662",
    "glob": "*",
    "sql": "' OR '1'='1",
    "url": "http://169.254.169.254/latest/meta-data?x=$(id)",
    "wrong_int": 12345,
    "wrong_obj": {"$ne": None},
    "wrong_list": ["a"],
}

LIST_ATTACKS: dict[str, Any] = {
    **{f"item_{name}": [value] for name, value in STRING_ATTACKS.items() if not name.startswith("wrong_")},
    "csv_injection": "master,node;id",
    "wrong_str_huge": "B" * 100_000,
    "wrong_obj": {"a": 1},
    "wrong_int": 7,
    "deep_nesting": _deep(100),
    "null_item": [None],
    "int_items": [1, 2],
    "too_many": ["a1"] * 5000,
}

NUMBER_ATTACKS: dict[str, Any] = {
    "negative": -1,
    "huge": 1e12,
    "nan": "nan",
    "inf": "inf",
    "shell": "1; rm -rf /",
    "wrong_list": [1],
    "wrong_obj": {"a": 1},
    "deep_nesting": _deep(50),
}

BOOL_ATTACKS: dict[str, Any] = {
    "shell": "yes; id",
    "two": 2,
    "wrong_list": [True],
    "wrong_obj": {"$gt": ""},
    "huge": "t" * 100_000,
}

EXTRA_FIELDS: dict[str, Any] = {
    "outputfile": CANARY,
    "__proto__": {"polluted": True},
    "config": "/etc/kubernetes/admin.conf",
    # A kubeconfig is configuration: its exec plugin would run (issue 20). No tool takes one.
    "kubeconfig": "{ROOT}/kubeconfig",
    "--json": True,
    "argv": ["sh", "-c", "id"],
}


@dataclass(frozen=True)
class Case:
    tool: str
    field: str
    attack: str
    value: Any

    @property
    def id(self) -> str:
        return f"{self.tool}.{self.field}.{self.attack}"


def _kinds(schema: dict[str, Any]) -> set[str]:
    kinds: set[str] = set()
    for branch in schema.get("anyOf", [schema]):
        types = branch.get("type")
        for t in types if isinstance(types, list) else [types]:  # "type": ["string", "null"] is nullable too
            if t in ("number", "integer"):
                kinds.add("number")
            elif t:
                kinds.add(t)
    kinds.discard("null")
    return kinds


def attacks_for(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = _kinds(schema)
    if "array" in kinds:
        return LIST_ATTACKS
    if "string" in kinds:
        return STRING_ATTACKS
    if "number" in kinds:
        return NUMBER_ATTACKS
    if "boolean" in kinds:
        return BOOL_ATTACKS
    return {**STRING_ATTACKS, **NUMBER_ATTACKS}


def tool_cases(tools: dict[str, dict[str, Any]]) -> list[Case]:
    """One case per (tool, field, attack), plus unknown fields per tool."""
    cases: list[Case] = []
    for tool, schema in sorted(tools.items()):
        for field, prop in sorted(schema.get("properties", {}).items()):
            for attack, value in attacks_for(prop).items():
                cases.append(Case(tool, field, attack, value))
        for extra, value in EXTRA_FIELDS.items():
            cases.append(Case(tool, extra, "unknown_field", value))
    return cases


def fill(value: Any, root: str, outside: str) -> Any:
    if isinstance(value, str):
        return value.replace("{ROOT}", root).replace("{OUTSIDE}", outside)
    if isinstance(value, list) and len(value) == 1:
        return [fill(value[0], root, outside)]
    return value
