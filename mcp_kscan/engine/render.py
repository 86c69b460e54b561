"""Kustomize directories and Helm charts, rendered into the manifests they deploy before a scan.

Why: the files of an overlay are patches and the files of a chart are Go templates. Read as
they are, a patch looks like a whole object (false verdicts) and a template reads as nothing, so
a chart folder used to scan as "compliant, 0 failed of 0". What is deployed is what
``kubectl kustomize DIR`` and ``helm template NAME CHART`` print, so that is what is scanned.
When a renderer is missing or fails, the unit is reported as not rendered (named, with the
reason, in the report's warnings) and none of its files are scanned as plain manifests.

Safety, because the folders are chosen by whoever sent the request:

- the renderers never see the scanned folders. Every file of the unit (and, for Kustomize, of
  every local base and component it references) is read with ``read_manifest`` (regular files,
  the size cap, inside the allowed roots, no symlink tricks) and copied into a private
  directory that mirrors the real paths; ``kubectl`` and ``helm`` run on that copy. A symlink
  to ``/etc/shadow`` or to a folder outside the roots is refused before anything runs;
- a Kustomize reference that is remote (a URL, ``github.com/...``), absolute, through a
  symlink, missing, or outside the roots refuses the unit: nothing is fetched or read from
  outside (``kubectl kustomize`` would clone a remote base). Kustomize's own
  ``LoadRestrictionsRootOnly`` (passed explicitly) keeps patches and generator files inside
  their kustomization; Helm inflation, plugins and exec functions stay off (their flags are
  never passed);
- argv lists only; a minimal environment whose HOME and Helm directories are the private
  directory (no user plugins, repositories or kubeconfig); a timeout; stdout capped at the
  manifest size cap, stderr at a few kB. The processes stay in the engine's process group, so
  cancelling or timing out the scan (the server kills that group) stops them too.

Locations: a rendered object has no line in any file. Helm's ``# Source:`` comments name the
template each object came from, so Helm objects point at their template file; Kustomize objects
point at the overlay's kustomization file. Both carry Kubescape's ``helmChartName`` /
``kustomizeDirectoryName`` in their report source, which says they were rendered.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

import yaml

from mcp_kscan.engine.reading import ReadLimits, UnreadableFile, read_manifest, within_roots

if TYPE_CHECKING:
    import subprocess

# subprocess, threading, tempfile and shutil are imported where a chart or overlay is rendered:
# most scans render none, and every engine process (one per scan) paid for them at start-up.

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CHART_FILE = "Chart.yaml"
RENDER_TIMEOUT_S = 120.0
"""Per unit. A scan's own deadline still applies: the server kills the engine's whole group."""
MAX_UNIT_FILES = 5000
MAX_UNIT_BYTES = 128 * 1024 * 1024
"""What one unit may copy: a chart or a kustomization graph is small; a whole disk is not."""
STDERR_CAP = 16 * 1024
HELM_RELEASE_NAME = "release-name"
"""What ``helm template`` itself calls a release when none is given."""
KUSTOMIZE_REFERENCE_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
"""Kustomization fields whose entries may name another directory (a base or a component)."""
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|(?:github|gitlab|bitbucket)\.(?:com|org)/)|\?ref=|\.git(?:/|$)",
                     re.IGNORECASE)
_HELM_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)
_DOC_START = re.compile(r"^---[ \t]*$", re.MULTILINE)

UnitKind = Literal["kustomize", "helm"]
TOOLS: dict[str, str] = {"kustomize": "kubectl kustomize", "helm": "helm template"}
WHAT: dict[str, str] = {"kustomize": "Kustomize directory", "helm": "Helm chart"}


def unit_kind(filenames: Collection[str], dirnames: Collection[str] = ()) -> UnitKind | None:
    """What a directory is: a Helm chart (``Chart.yaml`` beside ``templates/`` or ``charts/``), a
    Kustomize directory (a kustomization file), or neither (a stray ``Chart.yaml`` is just a file)."""
    if CHART_FILE in filenames and ("templates" in dirnames or "charts" in dirnames):
        return "helm"
    if any(name in filenames for name in KUSTOMIZATION_FILES):
        return "kustomize"
    return None


@dataclass(frozen=True, slots=True)
class RenderUnit:
    """One chart or overlay found in a scanned folder."""

    kind: UnitKind
    directory: str
    """Absolute path, as the scan names it."""
    relative_path: str
    """Relative to the scanned root; ``""`` when the root itself is the unit."""
    root: str

    @property
    def shown(self) -> str:
        """How warnings name it: its path under the root, else the root's own name."""
        return self.relative_path or os.path.basename(self.directory.rstrip(os.sep)) or self.directory


@dataclass(frozen=True, slots=True)
class Renderers:
    """The renderer executables a scan may run (found by the planner; None = not available)."""

    kubectl: str | None = None
    helm: str | None = None
    timeout_s: float = RENDER_TIMEOUT_S


@dataclass(slots=True)
class Rendered:
    """A piece of rendered output, with where it came from (for the report's ``source``)."""

    relative_path: str
    """The template (Helm) or the kustomization file (Kustomize), relative to the scanned root."""
    data: bytes
    origin: dict[str, str]
    """Kubescape's source fields: ``helmChartName`` or ``kustomizeDirectoryName``."""


class NotRendered(Exception):
    """A unit that was not rendered; ``str()`` is the warning (names the unit and the reason)."""

    def __init__(self, unit: RenderUnit, reason: str) -> None:
        super().__init__(f"{WHAT[unit.kind]} {unit.shown} not rendered: {reason}; its files were not scanned")


class _Refused(Exception):
    """Why a unit cannot be rendered (becomes ``NotRendered`` with the unit)."""


# --------------------------------------------------------------------------- the bounded process


@dataclass(slots=True)
class BoundedResult:
    return_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    stdout_over_cap: bool


def _drain(stream: IO[bytes], cap: int, sink: list[bytes], over: list[bool], proc: subprocess.Popen[bytes]) -> None:
    kept = 0
    while True:
        chunk = stream.read(64 * 1024)
        if not chunk:
            return
        if kept + len(chunk) > cap:
            over[0] = True
            proc.kill()  # output past the cap is refused anyway: stop the child now
            return
        sink.append(chunk)
        kept += len(chunk)


def run_bounded(argv: Sequence[str], *, cwd: str, env: dict[str, str], timeout_s: float,
                stdout_cap: int, stderr_cap: int = STDERR_CAP) -> BoundedResult:
    """Run ``argv`` (a list) with a timeout and capped output, in the engine's own process group.

    Not ``runner.process.run_process``: that starts a new session, which the server's kill of the
    engine's group would miss. Here the child dies with the engine, and is killed on its own
    timeout or as soon as its output passes the cap.
    """
    import subprocess
    import threading

    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a list, not a shell string")
    proc = subprocess.Popen(  # noqa: S603 - argv list from the planner's binaries and our own paths
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=cwd, env=env, close_fds=True,
    )
    out: list[bytes] = []
    err: list[bytes] = []
    out_over, err_over = [False], [False]
    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=_drain, args=(proc.stdout, stdout_cap, out, out_over, proc), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, stderr_cap, err, err_over, proc), daemon=True)]
    for t in readers:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    for t in readers:
        t.join(timeout=5)
    proc.stdout.close()
    proc.stderr.close()
    return BoundedResult(proc.returncode, b"".join(out), b"".join(err), timed_out, out_over[0])


# --------------------------------------------------------------------------- the private copy


class _Mirror:
    """A private directory holding copies of real directories at their real paths."""

    def __init__(self, base: str, limits: ReadLimits) -> None:
        self.base = base
        self.limits = limits
        self.copied: set[str] = set()
        self.files = 0
        self.bytes = 0

    def path(self, real: str) -> str:
        return os.path.join(self.base, real.lstrip(os.sep))

    def copy_tree(self, real_dir: str) -> None:
        """Copy every regular file under ``real_dir`` (hidden folders skipped, as the scan does)."""
        for dirpath, dirnames, filenames in os.walk(real_dir):
            kept = []
            for d in sorted(dirnames):
                if d.startswith("."):
                    continue
                full = os.path.join(dirpath, d)
                if os.path.islink(full):
                    raise _Refused(f"{os.path.relpath(full, real_dir)} is a symlinked folder (not followed)")
                kept.append(d)
            dirnames[:] = kept
            os.makedirs(self.path(dirpath), mode=0o700, exist_ok=True)
            for name in sorted(filenames):
                self._copy_file(os.path.join(dirpath, name), real_dir)

    def _copy_file(self, src: str, real_dir: str) -> None:
        if src in self.copied:
            return
        try:
            data = read_manifest(src, self.limits)
        except UnreadableFile as exc:
            raise _Refused(f"{os.path.relpath(src, real_dir)}: {str(exc).removesuffix('; skipped')}") from None
        self.copied.add(src)
        self.files += 1
        self.bytes += len(data)
        if self.files > MAX_UNIT_FILES or self.bytes > MAX_UNIT_BYTES:
            raise _Refused(f"more than {MAX_UNIT_FILES} files or {MAX_UNIT_BYTES // (1024 * 1024)} MiB to render")
        dest = self.path(src)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def _kustomization_file(real_dir: str) -> str | None:
    for name in KUSTOMIZATION_FILES:
        candidate = os.path.join(real_dir, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _references(kustomization: Any) -> list[str]:
    """The entries of a kustomization that may name a directory or a remote base."""
    if not isinstance(kustomization, dict):
        raise _Refused("its kustomization file is not a YAML mapping")
    refs: list[str] = []
    for key in KUSTOMIZE_REFERENCE_FIELDS:
        entries = kustomization.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, str) and "\n" not in entry:  # multi-line entries are inline configs
                refs.append(entry.strip())
    return refs


def kustomize_graph(start: str, limits: ReadLimits) -> list[str]:
    """The real directories a kustomization builds from (itself, its local bases and components).

    Refuses (``_Refused``) what must not be followed: remote bases, absolute paths, references
    through symlinks, missing targets (Kustomize would try them as remote bases), and anything
    outside the allowed roots.
    """
    order: list[str] = []
    todo = [os.path.realpath(start)]
    while todo:
        real_dir = todo.pop()
        if real_dir in order:
            continue
        if limits.allowed_roots and not within_roots(real_dir, limits.allowed_roots):
            raise _Refused(f"it builds on {real_dir}, outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS)")
        order.append(real_dir)
        kfile = _kustomization_file(real_dir)
        if kfile is None:
            raise _Refused(f"{os.path.relpath(real_dir, order[0])} is referenced as a base but has no kustomization file")
        try:
            parsed = yaml.safe_load(read_manifest(kfile, limits))
        except UnreadableFile as exc:
            raise _Refused(f"{os.path.basename(kfile)}: {str(exc).removesuffix('; skipped')}") from None
        except yaml.YAMLError:
            raise _Refused(f"{os.path.relpath(kfile, order[0])} is not valid YAML") from None
        for ref in _references(parsed):
            if _REMOTE.search(ref):
                raise _Refused(f"it references the remote base {ref!r}; remote bases are never fetched")
            if os.path.isabs(ref):
                raise _Refused(f"it references the absolute path {ref!r}; only relative references are followed")
            target = os.path.normpath(os.path.join(real_dir, ref))
            if not os.path.lexists(target):
                raise _Refused(f"it references {ref!r}, which does not exist here (remote bases are never fetched)")
            if os.path.realpath(target) != target:
                raise _Refused(f"it references {ref!r} through a symlink (not followed)")
            if limits.allowed_roots and not within_roots(target, limits.allowed_roots):
                raise _Refused(f"it references {ref!r}, outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS)")
            if os.path.isdir(target):
                todo.append(target)
            # A file is loaded by Kustomize itself, which keeps it inside its kustomization (root only).
    return order


# --------------------------------------------------------------------------- rendering


def _child_env(private: str) -> dict[str, str]:
    """Nothing of the user's: HOME, Helm's directories and the temp dir are the private directory."""
    home = os.path.join(private, "home")
    os.makedirs(home, mode=0o700, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "HELM_CACHE_HOME": os.path.join(home, "helm-cache"),
        "HELM_CONFIG_HOME": os.path.join(home, "helm-config"),
        "HELM_DATA_HOME": os.path.join(home, "helm-data"),
        "KUBECONFIG": os.path.join(home, "no-kubeconfig"),
    }


def _failure(tool: str, result: BoundedResult, mirror_base: str, limits: ReadLimits, timeout_s: float) -> str | None:
    if result.timed_out:
        return f"{tool} did not finish within {timeout_s:g}s"
    if result.stdout_over_cap:
        return f"{tool} printed more than {limits.max_file_bytes} bytes (MCP_KSCAN_MAX_FILE_BYTES)"
    if result.return_code != 0:
        # The copy's paths mean nothing to the caller: show the real ones.
        text = result.stderr.decode("utf-8", "replace").replace(mirror_base, "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        why = " ".join(lines[-3:])[:300] if lines else f"exit status {result.return_code}"
        return f"{tool} failed: {why}"
    return None


def is_component(directory: str, limits: ReadLimits) -> bool:
    """A Kustomize ``kind: Component``: it deploys nothing by itself (the overlays that list it
    render it), and ``kubectl kustomize`` refuses to build it alone."""
    kfile = _kustomization_file(os.path.realpath(directory))
    if kfile is None:
        return False
    try:
        parsed = yaml.safe_load(read_manifest(kfile, limits))
    except (UnreadableFile, yaml.YAMLError):
        return False  # render_unit reports it
    return isinstance(parsed, dict) and parsed.get("kind") == "Component"


def render_unit(unit: RenderUnit, renderers: Renderers, limits: ReadLimits) -> list[Rendered]:
    """The unit's rendered manifests, or ``NotRendered`` saying why not.

    Every kustomization directory found is rendered on its own: a base and each overlay built on
    it are separate deployables, so a base's objects appear once for the base and once (renamed,
    patched) per overlay. A Component renders nothing by itself.
    """
    if unit.kind == "kustomize" and is_component(unit.directory, limits):
        return []
    binary = renderers.kubectl if unit.kind == "kustomize" else renderers.helm
    if binary is None:
        tool = "kubectl" if unit.kind == "kustomize" else "helm"
        raise NotRendered(unit, f"{tool} was not found (install it, or set MCP_KSCAN_{tool.upper()}_PATH)")
    import shutil
    import tempfile

    private = tempfile.mkdtemp(prefix="mcp-kscan-render-")
    try:
        mirror = _Mirror(os.path.join(private, "copy"), limits)
        real_dir = os.path.realpath(unit.directory)
        try:
            if limits.allowed_roots and not within_roots(real_dir, limits.allowed_roots):
                raise _Refused("it is outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS)")
            dirs = kustomize_graph(real_dir, limits) if unit.kind == "kustomize" else [real_dir]
            for d in dirs:
                mirror.copy_tree(d)
        except _Refused as exc:
            raise NotRendered(unit, str(exc)) from None
        target = mirror.path(real_dir)
        if unit.kind == "kustomize":
            argv = [binary, "kustomize", "--load-restrictor", "LoadRestrictionsRootOnly", target]
        else:
            argv = [binary, "template", HELM_RELEASE_NAME, target]
        try:
            result = run_bounded(argv, cwd=private, env=_child_env(private), timeout_s=renderers.timeout_s,
                                 stdout_cap=limits.max_file_bytes)
        except OSError as exc:
            raise NotRendered(unit, f"{TOOLS[unit.kind]} could not start ({exc.strerror or exc.__class__.__name__})") from None
        why = _failure(TOOLS[unit.kind], result, mirror.base, limits, renderers.timeout_s)
        if why is not None:
            raise NotRendered(unit, why)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if unit.kind == "kustomize":
        kfile = _kustomization_file(real_dir) or os.path.join(real_dir, KUSTOMIZATION_FILES[0])
        rel = os.path.join(unit.relative_path, os.path.basename(kfile))
        return [Rendered(rel, result.stdout, {"kustomizeDirectoryName": unit.shown})]
    return split_helm_output(result.stdout, unit)


def split_helm_output(data: bytes, unit: RenderUnit) -> list[Rendered]:
    """One piece per rendered document, named by its ``# Source:`` template.

    Helm writes ``# Source: <chart name>/templates/x.yaml`` above each document; the chart name
    is replaced by the chart's path under the scanned root (subcharts keep ``charts/<sub>/...``).
    """
    text = data.decode("utf-8", "replace")
    chart = _chart_name(text) or unit.shown
    pieces: list[Rendered] = []
    bounds = [m.start() for m in _DOC_START.finditer(text)]
    if not bounds or bounds[0] != 0:
        bounds.insert(0, 0)
    for begin, end in zip(bounds, [*bounds[1:], len(text)]):
        chunk = text[begin:end]
        if not chunk.strip() or chunk.strip() == "---":
            continue
        source = _HELM_SOURCE.search(chunk)
        template = source.group(1).strip() if source else ""
        inside = template.split("/", 1)[1] if "/" in template else ""
        rel = os.path.join(unit.relative_path, inside) if inside else (unit.relative_path or unit.shown)
        pieces.append(Rendered(os.path.normpath(rel), chunk.encode("utf-8"), {"helmChartName": chart}))
    return pieces


def _chart_name(text: str) -> str | None:
    """The chart name Helm put in front of every ``# Source:`` path."""
    m = _HELM_SOURCE.search(text)
    if m is None:
        return None
    return m.group(1).strip().split("/", 1)[0] or None

