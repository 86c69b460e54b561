"""Credentials and service-account tokens (C-0012, C-0034), as regolibrary v2.0.33 writes them.

C-0012 reads the control inputs: ``sensitiveKeyNames`` (a substring of a variable or key name,
case-insensitive), ``sensitiveValues`` (regular expressions over the value; case-insensitive for
environment variables, case-sensitive for ConfigMaps, where a base64-decoded value is tried too),
and the ``*Allowed`` lists that exempt a value or a name. An environment value that is a file
path (starts with ``/``) is exempt, and only literal values count (``valueFrom`` never does).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, fail
from mcp_kscan.engine.controls.workload import containers
from mcp_kscan.engine.model import Resource


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


def _required_literal(expr: str, ignore_case: bool) -> tuple[str, bool] | None:
    """The longest run of plain characters every match of ``expr`` contains, and whether it is
    matched without regard to case; None when there is none (``a|b``, ``x*``) or it cannot tell.

    Read from Python's own parse of the pattern (``re._parser``, the module ``re.compile`` uses),
    so it agrees with the compiled pattern on escapes, verbose mode and inline flags.
    """
    try:
        parsed = re._parser.parse(expr, re.IGNORECASE if ignore_case else 0)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no hint; the regular expression decides alone
        return None
    best: list[int] = []
    run: list[int] = []
    for op, arg in list(parsed) + [(None, None)]:
        if op is re._constants.LITERAL:  # type: ignore[attr-defined]
            run.append(arg)
            continue
        if len(run) > len(best):
            best = run
        run = []
    if not best:
        return None
    return "".join(map(chr, best)), bool(parsed.state.flags & re.IGNORECASE)


@dataclass(frozen=True)
class _Search:
    """A list of control-input patterns, searched as one.

    Most texts (environment values, ConfigMap data) match none of them, and a case-insensitive
    alternation tries every pattern at every position. So before the regular expression runs,
    a plain substring test asks whether the text holds at least one pattern's required literal
    (``AKIA`` of ``AKIA[0-9A-Z]{16}``): without one, no pattern can match. Case-insensitive
    literals are compared lowercased, and only for ASCII texts and literals, where Python's
    case-insensitive matching is exactly ``str.lower`` equality.
    """

    joined: re.Pattern[str] | None
    each: tuple[re.Pattern[str], ...]
    needles: tuple[str, ...] | None
    """One required literal per pattern, or None when some pattern has none."""
    folded: bool
    """The needles are lowercased ASCII and the text is lowercased to compare."""

    def search(self, text: str) -> bool:
        if self.needles is not None:
            if not self.folded:
                if not _holds_any(text, self.needles):
                    return False
            elif text.isascii() and not _holds_any(text.lower(), self.needles):
                return False
        if self.joined is not None:
            return self.joined.search(text) is not None
        return any(p.search(text) is not None for p in self.each)

    def none_in(self, texts: list[str]) -> bool:
        """True when ``search`` is False for every one of ``texts`` by the required-literal test
        alone, found with one substring test per literal over the texts joined, rather than one
        per text (an object's environment values are searched together). A literal never spans
        two texts: the joining character is in none of them. False when it cannot tell (no
        literals; non-ASCII texts where the literals are compared lowercased)."""
        if self.needles is None:
            return False
        joined = _JOIN.join(texts)
        if self.folded:
            if not joined.isascii():
                return False
            joined = joined.lower()
        return not _holds_any(joined, self.needles)


_JOIN = "\x00"


def _holds_any(text: str, needles: tuple[str, ...]) -> bool:
    """``any(n in text for n in needles)`` without a generator: this runs for every environment
    value and ConfigMap entry of a scan, and the generator cost several times the tests."""
    for n in needles:
        if n in text:
            return True
    return False


@lru_cache(maxsize=64)
def _compiled_search(exprs: tuple[str, ...], ignore_case: bool) -> _Search:
    valid = [e for e in exprs if _pattern(e, ignore_case) is not None]
    literals = [_required_literal(e, ignore_case) for e in valid]
    needles: tuple[str, ...] | None = None
    folded = any(lit is not None and lit[1] for lit in literals)
    if valid and all(lit is not None and _JOIN not in lit[0] for lit in literals):
        texts = [lit[0] for lit in literals if lit is not None]
        if not folded:
            needles = tuple(texts)
        elif all(t.isascii() for t in texts):
            needles = tuple(t.lower() for t in texts)
    return _Search(_any_pattern(exprs, ignore_case), tuple(p for e in valid if (p := _pattern(e, ignore_case))),
                   needles, folded)


def _search_any(exprs: tuple[str, ...], text: str, ignore_case: bool = False) -> bool:
    if not exprs:
        return False
    return _compiled_search(exprs, ignore_case).search(text)


_NAME_CACHE_LIMIT = 100_000


class _Rules:
    """C-0012's inputs for one scan, prepared once: the name lists lowered, and each name's
    answers remembered (a scan repeats the same variable and key names thousands of times)."""

    def __init__(self, ctx: ScanContext) -> None:
        # The value searches are looked up here once, not per value (every env value of every
        # workload); ``_search_any`` is the same search for one call.
        values, allowed = ctx.input("sensitiveValues"), ctx.input("sensitiveValuesAllowed")
        self._values_any_case = _compiled_search(values, True) if values else None
        self._values_exact = _compiled_search(values, False) if values else None
        self._values_allowed = _compiled_search(allowed, False) if allowed else None
        self._names = tuple(k.lower() for k in ctx.input("sensitiveKeyNames"))
        self._names_allowed = tuple(a.lower() for a in ctx.input("sensitiveKeyNamesAllowed"))
        self._name_answers: dict[str, tuple[bool, bool]] = {}

    def value_allowed(self, value: str) -> bool:
        return self._values_allowed is not None and self._values_allowed.search(value)

    def value_sensitive(self, value: str, ignore_case: bool) -> bool:
        search = self._values_any_case if ignore_case else self._values_exact
        return search is not None and search.search(value)

    def name(self, name: str) -> tuple[bool, bool]:
        """(the name is allowed, the name is sensitive): substrings, case-insensitive."""
        answer = self._name_answers.get(name)
        if answer is None:
            lowered = name.lower()
            answer = (any(a in lowered for a in self._names_allowed), any(k in lowered for k in self._names))
            if len(self._name_answers) >= _NAME_CACHE_LIMIT:
                self._name_answers.clear()
            self._name_answers[name] = answer
        return answer


def _rules(ctx: ScanContext) -> _Rules:
    return ctx.memo(_Rules, lambda: _Rules(ctx))


def _env_is_sensitive(rules: _Rules, name: str, value: Any, clear: bool = False) -> bool:
    """An environment variable's literal value is a credential: by its name, else by its value
    (case-insensitive; ``clear``: the caller found that no value pattern can match it). Spelled
    out over the rules' fields (``_Rules.name``, ``value_allowed``, ``value_sensitive``): it runs
    for every environment variable of every workload."""
    if not isinstance(value, str) or value.startswith("/"):
        return False
    answer = rules._name_answers.get(name)
    allowed, sensitive = answer if answer is not None else rules.name(name)
    if allowed:
        return False
    values_allowed = rules._values_allowed
    if values_allowed is not None and values_allowed.search(value):
        return False
    if value != "" and sensitive:
        return True
    search = rules._values_any_case
    return search is not None and not clear and search.search(value)


def _decoded(value: str) -> str | None:
    """``base64.b64decode(value, validate=True)`` as text, or None: the same strict decode
    (``a2b_base64``'s strict mode is what b64decode runs), without its Python wrapper: it runs
    for every ConfigMap value of a scan."""
    try:
        return binascii.a2b_base64(value, strict_mode=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None


def _configmap_is_sensitive(rules: _Rules, key: str, value: Any) -> bool:
    """A ConfigMap value is a credential: by its key's name, else by its value or the value
    base64-decoded (case-sensitive). The name and allowed-value tests are spelled out as in
    ``_env_is_sensitive``: this runs for every ConfigMap entry of a scan."""
    if not isinstance(value, str) or value == "":
        return False
    answer = rules._name_answers.get(key)
    allowed, sensitive = answer if answer is not None else rules.name(key)
    if allowed:
        return False
    values_allowed = rules._values_allowed
    if values_allowed is not None and values_allowed.search(value):
        return False
    if sensitive or rules.value_sensitive(value, False):
        return True
    decoded = _decoded(value)  # only when the value itself does not already tell
    return decoded is not None and rules.value_sensitive(decoded, False)


def credentials_in_config(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0012: a literal credential in an environment variable or a ConfigMap."""
    rules = _rules(ctx)
    # One finding for all the credentials found: what ``merge`` makes of one per key or
    # variable (their paths in order, the first one's message), without building each.
    if res.kind == "ConfigMap":
        data = res.obj.get("data")
        keys = [key for key, value in (data.items() if isinstance(data, dict) else ())
                if _configmap_is_sensitive(rules, str(key), value)]
        if not keys:
            return PASSED
        return fail([f"data[{key}]" for key in keys], [], f"ConfigMap key {keys[0]!r} holds a credential")
    paths: list[str] = []
    first: Any = None
    search = rules._values_any_case
    for path, c in containers(res):
        env = c.get("env")
        if not isinstance(env, list):
            continue
        clear = search is not None and search.none_in(
            [value for var in env if isinstance(var, dict) and isinstance(value := var.get("value"), str)])
        for j, var in enumerate(env):
            if isinstance(var, dict) and _env_is_sensitive(rules, str(var.get("name", "")), var.get("value"), clear):
                if not paths:
                    first = var
                paths += (f"{path}.env[{j}].name", f"{path}.env[{j}].value")
    if not paths:
        return PASSED
    return fail(paths, [], f"environment variable {first.get('name')!r} holds a credential; use a Secret")


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
