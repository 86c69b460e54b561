"""Resource requests and limits (C-0004, C-0009, C-0050, C-0268..C-0271), as regolibrary writes them.

A rule fails a container that leaves a value out; C-0004 and C-0050 also fail a value outside the
``*_min``/``*_max`` control inputs. Quantities are read as the rules read them: memory in bytes
(binary and decimal suffixes, ``m`` as thousandths), CPU in millicores; a value the rules cannot
read as a number is never "out of range".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import YOUR_VALUE, Check, Verdict, fail, merge
from mcp_kscan.engine.controls.workload import containers, truthy
from mcp_kscan.engine.model import Finding, Resource

_MEMORY_SUFFIXES: tuple[tuple[str, float], ...] = (
    ("Ki", 1024), ("Mi", 1024**2), ("Gi", 1024**3), ("Ti", 1024**4), ("Pi", 1024**5), ("Ei", 1024**6),
    ("m", 1 / 1000), ("k", 1e3), ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18),
)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# _MEMORY_SUFFIXES by length: the two-letter ones all end in "i", which no one-letter one is, so
# a text ends with at most one of them, and one dictionary lookup finds it.
_BINARY_SUFFIXES = {suffix: factor for suffix, factor in _MEMORY_SUFFIXES if len(suffix) == 2}
_DECIMAL_SUFFIXES = {suffix: factor for suffix, factor in _MEMORY_SUFFIXES if len(suffix) == 1}


def memory_bytes(value: Any) -> float | None:
    s = _text(value)
    if s.endswith("i"):
        factor = _BINARY_SUFFIXES.get(s[-2:])
        size = 2
    else:
        factor = _DECIMAL_SUFFIXES.get(s[-1:])
        size = 1
    if factor is None:
        return _number(s)
    n = _number(s[:-size])
    return None if n is None else n * factor


def cpu_millicores(value: Any) -> float | None:
    s = _text(value)
    if s.endswith("m"):
        return _number(s[:-1])
    n = _number(s)
    return None if n is None else n * 1000


def _get(c: dict[str, Any], section: str, name: str) -> Any:
    """``c.resources.<section>.<name>``, None where any level is missing or not a mapping."""
    block = c.get("resources")
    if not isinstance(block, dict):
        return None
    block = block.get(section)
    return block.get(name) if isinstance(block, dict) else None


def _bounds(inputs: tuple[Any, ...], convert: Callable[[Any], float | None]) -> tuple[float, ...]:
    """A control input's bounds that read as numbers (worked out once per scan, ``limit_and_request``)."""
    return tuple(b for b in map(convert, inputs) if b is not None)


_QUANTITIES: dict[tuple[Callable[[Any], float | None], type, Any], float | None] = {}


def _quantity(value: Any, convert: Callable[[Any], float | None]) -> float | None:
    """``convert(value)``, remembered: a scan repeats the same few quantities ("512Mi", "100m")
    in thousands of containers. Keyed by the value's type too (``True == 1`` as keys, but the
    rules read them apart); values that cannot be keys are converted every time."""
    key = (convert, type(value), value)
    try:
        return _QUANTITIES[key]
    except KeyError:
        pass
    except TypeError:
        return convert(value)
    if len(_QUANTITIES) > 4096:
        _QUANTITIES.clear()
    found = _QUANTITIES[key] = convert(value)
    return found


def _out_of_range(value: Any, low: tuple[float, ...], high: tuple[float, ...],
                  convert: Callable[[Any], float | None]) -> bool:
    """The value reads as a number below one of the ``low`` bounds or above one of the ``high``."""
    given = _quantity(value, convert)
    if given is None:
        return False
    for b in low:
        if given < b:
            return True
    for b in high:
        if given > b:
            return True
    return False


def required(*fields: tuple[str, str]) -> Check:
    """Each container must set every (section, resource) pair, e.g. ("limits", "cpu")."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        out: list[Finding] = []
        for path, c in containers(res):
            missing = [f"{path}.resources.{s}.{n}" for s, n in fields if not truthy(_get(c, s, n))]
            if missing:
                out.append(fail([], [(m, YOUR_VALUE) for m in missing],
                                f"container {c.get('name')!r} does not set {', '.join(m.split('.resources.')[1] for m in missing)}"))
        return merge(out)

    return check


def limit_and_request(resource: str, convert: Callable[[Any], float | None], input_prefix: str) -> Check:
    """C-0004/C-0050: request and limit set, and within the control inputs' bounds."""
    presence = required(("requests", resource), ("limits", resource))
    sections = tuple((section, f"{input_prefix}_{key}_min", f"{input_prefix}_{key}_max")
                     for section, key in (("limits", "limit"), ("requests", "request")))

    def bounds(ctx: ScanContext) -> tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]:
        """Each section with its bounds (the inputs that read as numbers), once per scan."""
        return tuple((section, _bounds(ctx.input(mins), convert), _bounds(ctx.input(maxs), convert))
                     for section, mins, maxs in sections)

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        out: list[Finding] = []
        first = presence(res, ctx)
        if isinstance(first, Finding):
            out.append(first)
        in_range = ctx.memo(bounds, lambda: bounds(ctx))
        for path, c in containers(res):
            for section, low, high in in_range:
                value = _get(c, section, resource)
                if value is None:
                    continue
                if _out_of_range(value, low, high, convert):
                    out.append(fail([f"{path}.resources.{section}.{resource}"], [],
                                    f"container {c.get('name')!r}: {section}.{resource} {value} is outside the allowed range"))
        return merge(out)

    return check


memory_limit_and_request = limit_and_request("memory", memory_bytes, "memory")  # C-0004
cpu_limit_and_request = limit_and_request("cpu", cpu_millicores, "cpu")  # C-0050
cpu_limits = required(("limits", "cpu"))  # C-0270
memory_limits = required(("limits", "memory"))  # C-0271
cpu_requests = required(("requests", "cpu"))  # C-0268
memory_requests = required(("requests", "memory"))  # C-0269


_cpu_and_memory_limits = required(("limits", "cpu"), ("limits", "memory"))


def resource_limits(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0009 (resource-policies): limits.cpu and limits.memory on every container."""
    return _cpu_and_memory_limits(res, ctx)
