"""Benchmark: the built-in engine (a whole ``mcp-kscan scan`` run) against checkov, on N resources.

    python benchmarks/bench_engine.py                 # 1k, 10k, 50k resources
    python benchmarks/bench_engine.py --sizes 1000,10000 --repeat 3 --no-checkov --no-server

Generates a corpus of realistic manifests (Deployments with probes, env and resources; Services;
ConfigMaps; RBAC; multi-document files), then measures on the same files:

- ``floor s`` and its ``cpu s``: PyYAML's C loader alone, one process (what a PyYAML-based scan
  costs at least);
- ``cli s``: a whole ``mcp-kscan scan --engine builtin --format json -o /dev/null`` in a subprocess,
  ``cpu s`` the CPU time of its whole process tree (a figure that other load on the machine
  distorts less than wall time), and ``peak MB``, the largest process's peak RSS (the scan forks
  one worker per CPU);
- ``file s``: the same CLI scan writing its report to a new file (``-o report.json``, deleted
  after each run, as a ``wait=true`` result is): what the server's scan produces too, a report
  file, so ``med x f`` below compares like with like (the kernel's page cache is part of both);
- ``server s``: the same scan through a real ``mcp-kscan serve --transport http``
  (``POST /v1/scan?wait=true``, from the request to the whole report received, taken piece by
  piece as a client that saves it does), with ``srv cpu``,
  the server process's CPU seconds, and ``eng cpu``, its engine processes' (children it waited for);
  ``kept s`` the same with ``keep=true``, whose findings are indexed for paging as every MCP
  scan's are (a result answered once and deleted skips that); ``x cli`` each over the CLI's time
  (best over best), ``med x`` the median over the rounds of each round's ratio to that round's
  CLI scan, taken seconds before it (steadier than ``x cli`` where the machine's speed drifts);
  ``med x f`` the same against that round's CLI scan to a file (``file s``);
- ``reads during the server scan`` (a second table): the scan as the REST API and the MCP tools
  run it by default (``POST /v1/scan``, answered at once, the findings indexed), while one client
  (``http.client``, one connection: light on the CPUs the scan uses) reads ``/livez``,
  ``/v1/status`` and MCP ``scan_status`` in turn, 20 ms apart, until the scan
  is done: the latency of each kind of read (p50, p99, max over every round's reads) and the
  scan's time, from the request to the first read that sees it done; and ``waited s``, the same
  scan while its client reads ``/v1/status`` alone, 50 ms apart (a client waiting for its result,
  not measuring latency), to the first read that sees it done (three reads every 20 ms took
  0.3-0.4 s of the two CPUs' time from a 10k scan on a slow machine);
- ``checkov s``, when ``checkov`` is on PATH: ``checkov --framework kubernetes`` (never a dependency;
  install it in its own virtualenv);
- the ratios: the CLI time over the floor (below 1 means faster than PyYAML can even parse) and
  checkov's time over the CLI's.

With ``--repeat N`` each figure is the best of N rounds, and each round measures the CLI, the
floor and both server scans once, in turn: the machine's speed drifts within a minute, and blocks
of runs (all the CLI's, then all the server's) would put that drift into the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MEASURE = r"""
import resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{dt:.4f} {usage.ru_maxrss} {p.returncode} {usage.ru_utime + usage.ru_stime:.4f}")
sys.stderr.write(p.stderr.decode(errors="replace")[-2000:])
"""


def last_applied(i: int, rng: random.Random) -> str:
    """What ``kubectl apply`` leaves on every object it created: the whole manifest as one JSON string."""
    env = ",".join(f'{{"name":"SETTING_{k}","value":"value-{i}-{k}-{"x" * rng.randint(10, 60)}"}}' for k in range(rng.randint(10, 25)))
    return ('{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"svc-%d","namespace":"team-%d"},'
            '"spec":{"template":{"spec":{"containers":[{"name":"main","env":[%s]}]}}}}' % (i, i % 40, env))


def deployment(i: int, rng: random.Random) -> str:
    ns = f"team-{i % 40}"
    insecure = rng.random() < 0.3
    envs = "\n".join(
        f"            - name: SETTING_{k}\n              value: \"value-{i}-{k}-{'x' * rng.randint(10, 60)}\""
        for k in range(rng.randint(6, 16))
    )
    sc = ("          securityContext:\n            privileged: yes\n            runAsUser: 0\n" if insecure else
          "          securityContext:\n            allowPrivilegeEscalation: false\n"
          "            readOnlyRootFilesystem: true\n            runAsNonRoot: true\n"
          "            capabilities: {drop: [ALL]}\n")
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-{i}
  namespace: {ns}
  labels:
    app: svc-{i}
    app.kubernetes.io/name: svc-{i}
    app.kubernetes.io/part-of: bench
  annotations:
    description: "synthetic workload {i} for the engine benchmark; {'lorem ipsum ' * rng.randint(2, 8)}"
    kubectl.kubernetes.io/last-applied-configuration: '{last_applied(i, rng)}'
spec:
  replicas: {rng.randint(1, 5)}
  selector:
    matchLabels:
      app: svc-{i}
  template:
    metadata:
      labels:
        app: svc-{i}
        app.kubernetes.io/name: svc-{i}
    spec:
      serviceAccountName: sa-{i % 40}
      containers:
        - name: main
          image: registry.example.com/team/svc-{i}:{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}
          imagePullPolicy: IfNotPresent
          ports:
            - containerPort: 8080
              name: http
          env:
{envs}
{sc}          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 500m, memory: 512Mi}}
          livenessProbe:
            httpGet: {{path: /healthz, port: 8080}}
            initialDelaySeconds: 5
            periodSeconds: 10
          readinessProbe:
            httpGet: {{path: /ready, port: 8080}}
          volumeMounts:
            - name: config
              mountPath: /etc/app
      volumes:
        - name: config
          configMap:
            name: cfg-{i}
            defaultMode: 0644
"""


def service(i: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
  namespace: team-{i % 40}
spec:
  selector:
    app: svc-{i}
  ports:
    - port: 80
      targetPort: 8080
"""


def configmap(i: int, rng: random.Random) -> str:
    data = "\n".join(f"  key{k}.conf: \"{'v' * rng.randint(40, 200)}\"" for k in range(rng.randint(10, 30)))
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg-{i}\n  namespace: team-{i % 40}\ndata:\n{data}\n"


def rbac(i: int) -> str:
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: role-{i}
  namespace: team-{i % 40}
rules:
  - apiGroups: [""]
    resources: ["configmaps", "secrets"]
    verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: bind-{i}
  namespace: team-{i % 40}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: role-{i}
subjects:
  - kind: ServiceAccount
    name: sa-{i % 40}
    namespace: team-{i % 40}
"""


def generate(root: Path, n: int, seed: int = 7) -> tuple[int, int, int]:
    """Write about ``n`` resources under ``root``; returns (resources, files, bytes)."""
    rng = random.Random(seed)
    resources = files = size = 0
    i = 0
    while resources < n:
        d = root / f"team-{i % 40}" / f"app-{i}"
        d.mkdir(parents=True, exist_ok=True)
        kind = i % 10
        if kind < 6:  # a deployment with its service in one file, its config in another
            docs = [deployment(i, rng), service(i)]
            (d / "deploy.yaml").write_text("---\n".join(docs))
            (d / "config.yaml").write_text(configmap(i, rng))
            resources += 3
            files += 2
            size += sum(len(x) for x in docs) + len(configmap(i, rng))
        elif kind < 8:
            text = rbac(i)
            (d / "rbac.yaml").write_text(text)
            resources += 2
            files += 1
            size += len(text)
        else:
            text = deployment(i, rng)
            (d / "deploy.yml").write_text(text)
            resources += 1
            files += 1
            size += len(text)
        i += 1
    return resources, files, size


FLOOR = r"""
import os, sys, time, yaml
texts = []
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        with open(os.path.join(d, f)) as fh:
            texts.append(fh.read())
t0, c0 = time.perf_counter(), time.process_time()
for t in texts:
    for _ in yaml.load_all(t, Loader=yaml.CSafeLoader):
        pass
print(f"{time.perf_counter() - t0:.4f} {time.process_time() - c0:.4f}")
"""


def yaml_floor(corpus: Path) -> tuple[float, float]:
    """PyYAML's C loader alone on the corpus, one process: what a PyYAML-based scan costs at least
    (wall s, CPU s)."""
    out = subprocess.run([sys.executable, "-c", FLOOR, str(corpus)], capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


def measure(argv: list[str]) -> tuple[float, int, int, str, float]:
    """(wall s, largest process's peak RSS in KB, exit code, stderr tail, CPU s of the process tree)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True)
    dt, rss, rc, cpu = out.stdout.split()
    return float(dt), int(rss), int(rc), out.stderr, float(cpu)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _process_cpu(pid: int) -> tuple[float, float]:
    """(CPU s of the process itself, CPU s of its children it has waited for) from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    # After the ")": state is field 3, so utime/stime/cutime/cstime (14-17) sit at 11-14.
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


@contextmanager
def _server(mcp: str, corpus: Path, data_dir: Path, timeout_s: float = 900) -> Iterator[tuple[Any, int]]:
    """A real ``mcp-kscan serve --transport http`` allowed to read ``corpus``, ready: (an httpx
    client of it, its pid)."""
    import httpx

    port = _free_port()
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": str(data_dir), "MCP_KSCAN_ALLOWED_ROOTS": str(corpus.parent),
           "MCP_KSCAN_LOG_LEVEL": "WARNING"}
    env.pop("MCP_KSCAN_TOKEN", None)
    server = subprocess.Popen([mcp, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout_s) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not become ready")
                time.sleep(0.1)
            yield http, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure_server(mcp: str, corpus: Path, data_dir: Path, resources: int | None,
                   timeout_s: float = 900, keep: bool = False) -> tuple[float, float, float]:
    """(wall s, server CPU s, engine CPU s) of one built-in scan of ``corpus`` through a real HTTP
    server, request to report. The engine runs in child processes of the server, which it waits
    for before it answers: their CPU time is the server's children's.

    Raises unless the scan succeeds with its whole report (``resources`` of them, when known): at
    the server's default caps this is the check that a 10,000-resource report (about 85 MB, over
    the 32 MiB scanner output cap) is stored and served; the test suite checks it on a small
    corpus with the scanner cap lowered (tests/faults/test_engine_process.py)."""
    with _server(mcp, corpus, data_dir) as (client, server_pid):
        body = {"engine": "builtin", "paths": [str(corpus)], "format": "json", "timeoutSeconds": timeout_s}
        own0, children0 = _process_cpu(server_pid)
        t0 = time.perf_counter()
        params = {"wait": "true", "keep": "true"} if keep else {"wait": "true"}
        # The body is taken as it comes, piece by piece, as a client that saves the report
        # does (curl -o): httpx's ``.content`` joins the pieces into one more 85 MB copy,
        # which took 0.11-0.14 s of the client's time for a 10k report the server had sent
        # in 0.02-0.04 (curl) -- the client's cost, not the server's.
        with client.stream("POST", "/v1/scan", params=params, json=body) as reply:
            chunks = list(reply.iter_bytes())
        dt = time.perf_counter() - t0
        own1, children1 = _process_cpu(server_pid)
        content = b"".join(chunks)
        answer = json.loads(content) if reply.status_code == 200 else {}
        if reply.status_code != 200 or answer.get("type") != "v1results":
            raise RuntimeError(f"server scan failed: {reply.status_code} {content[:300]!r}")
        served = len(answer["response"].get("resources") or [])
        if resources is not None and served != resources:
            raise RuntimeError(f"server scan served {served} of {resources} resources ({len(content)} bytes)")
        return dt, own1 - own0, children1 - children0


def measure_cli_to_file(mcp: str, corpus: Path, directory: Path, extra: list[str]) -> float:
    """Wall s of the CLI scan writing its report to a new file in ``directory`` (deleted after:
    the next run's pages are the kernel's to reuse, as after a ``wait=true`` answer)."""
    report = directory / "cli-report.json"
    try:
        dt, _, rc, err, _ = measure([mcp, "scan", str(corpus), "--engine", "builtin", "--format", "json",
                                     "-o", str(report), *extra])
    finally:
        report.unlink(missing_ok=True)
    if rc not in (0, 1):
        raise RuntimeError(f"mcp-kscan scan -o FILE failed (exit {rc}): {err[-300:]}")
    return dt


READS = ("livez", "status", "scan_status")
POLL_GAP_S = 0.02


def measure_reads(mcp: str, corpus: Path, data_dir: Path, timeout_s: float = 900) -> tuple[float, dict[str, list[float]]]:
    """(scan s, {read: [latency s, ...]}) of one default (async, indexed) built-in scan of
    ``corpus`` through a real HTTP server while one client polls it (see the module's doc).

    The polls go through ``http.client`` on one kept-alive connection, not httpx: the client runs
    on the same two CPUs as the scan, and httpx took 4.5 ms of its CPU a round of three reads
    against 1.4 (a slow 2 vCPU machine), time the scan lost to the measuring tool. The server's
    own CPU per read is the same either way (it answers the same requests)."""
    import http.client

    with _server(mcp, corpus, data_dir) as (client, _):
        headers = _mcp_session(client)
        polls = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=timeout_s)

        def read(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
            polls.request(method, path, body, headers if body is not None else {})
            reply = polls.getresponse()
            return reply.status, reply.read()

        def scan_status(n: int) -> tuple[int, bytes]:
            return read("POST", "/mcp", json.dumps({
                "jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": "scan_status", "arguments": {"scan_id": scan_id}}}).encode())

        scan_id = ""
        # Warmed first (imports, schemas, the MCP session): what is measured is the scan's effect.
        read("GET", "/livez")
        scan_status(1)
        latencies: dict[str, list[float]] = {name: [] for name in READS}
        t0 = time.perf_counter()
        started = client.post("/v1/scan", json={"engine": "builtin", "paths": [str(corpus)], "timeoutSeconds": timeout_s})
        scan_id = started.json()["id"]
        n = 1
        while True:
            n += 1
            a = time.perf_counter()
            if read("GET", "/livez")[0] != 200:
                raise RuntimeError("/livez failed during the scan")
            b = time.perf_counter()
            status, status_body = read("GET", f"/v1/status?id={scan_id}")
            c = time.perf_counter()
            called, called_body = scan_status(n)
            d = time.perf_counter()
            if status != 200 or called != 200 or b'"isError":true' in called_body:
                raise RuntimeError(f"a read failed during the scan: {status_body[:200]!r} {called_body[:200]!r}")
            for name, took in zip(READS, (b - a, c - b, d - c), strict=True):
                latencies[name].append(took)
            if json.loads(status_body).get("type") != "busy":
                took = time.perf_counter() - t0
                break
            time.sleep(POLL_GAP_S)
        polls.close()
        record = _scan_record(client, headers, scan_id, n + 1)
        if record.get("status") != "succeeded":
            raise RuntimeError(f"the polled scan did not succeed: {str(record)[:300]}")
        return took, latencies


WAIT_GAP_S = 0.05


def measure_waited(mcp: str, corpus: Path, data_dir: Path, timeout_s: float = 900) -> float:
    """Seconds from the request to the first read that sees the scan done, for the same default
    scan (async, indexed) while its client waits for it as a client that is not measuring latency
    does: one ``/v1/status`` read at a time, 50 ms apart (about 1% of a CPU of the server's; the
    gap adds 25 ms on average, never subtracts). Not the record's ``finished_at``: that is taken
    before the result is stored, and a client sees the scan done only once it is."""
    with _server(mcp, corpus, data_dir) as (client, _):
        client.get("/livez")
        t0 = time.perf_counter()
        started = client.post("/v1/scan", json={"engine": "builtin", "paths": [str(corpus)], "timeoutSeconds": timeout_s})
        scan_id = started.json()["id"]
        while client.get("/v1/status", params={"id": scan_id}).json().get("type") == "busy":
            time.sleep(WAIT_GAP_S)
        took = time.perf_counter() - t0
        headers = _mcp_session(client)
        record = _scan_record(client, headers, scan_id, 1)
        if record.get("status") != "succeeded":
            raise RuntimeError(f"the waited-for scan did not succeed: {str(record)[:300]}")
        return took


def _mcp_session(client: Any) -> dict[str, str]:
    """The headers of an initialized MCP session on ``client`` (an httpx client of the server)."""
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
    if "mcp-session-id" in init.headers:
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
    client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


def _scan_record(client: Any, headers: dict[str, str], scan_id: str, n: int) -> dict[str, Any]:
    """The scan's record as MCP ``scan_status`` gives it (its structured content)."""
    record: dict[str, Any] = _rpc_result(client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": n, "method": "tools/call",
        "params": {"name": "scan_status", "arguments": {"scan_id": scan_id}}})).get("structuredContent") or {}
    return record


def _rpc_result(reply: Any) -> dict[str, Any]:
    """A JSON-RPC answer's ``result``, whether it came as JSON or as one server-sent event."""
    text: str = reply.text
    if not text.lstrip().startswith("{"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    result: dict[str, Any] = json.loads(text)["result"]
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def byte_compile_package() -> str:
    """Write mcp_kscan's bytecode (``__pycache__``), as installing the wheel does, and say so.

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 (set on the machines this project is
    developed on) compiles every imported module from source on every start: about 0.35 G
    instructions, a tenth of a second and more, that no installed copy pays. compileall writes
    the caches whatever that variable says; Python still reads them.
    """
    import compileall

    import mcp_kscan

    package = Path(mcp_kscan.__file__).parent
    ok = compileall.compile_dir(str(package), quiet=1)
    return f"bytecode of {package} {'written' if ok else 'NOT fully written'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,50000", help="comma-separated resource counts")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (the best is reported)")
    ap.add_argument("--no-checkov", action="store_true", help="skip checkov even when installed")
    ap.add_argument("--checkov-max", type=int, default=10000, help="largest size to run checkov on (it is slow)")
    ap.add_argument("--no-server", action="store_true", help="skip the scan through the HTTP server")
    ap.add_argument("--server-max", type=int, default=50000, help="largest size to scan through the server")
    ap.add_argument("--no-reads", action="store_true", help="skip the polled scan (reads during a server scan)")
    ap.add_argument("--keep", help="generate corpora under this directory and keep them")
    ap.add_argument("--extra", default="", help="extra arguments for mcp-kscan scan, e.g. --omit-raw-resources")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    compiled = byte_compile_package()
    mcp = shutil.which("mcp-kscan") or str(Path(sys.executable).with_name("mcp-kscan"))
    checkov = None if args.no_checkov else shutil.which("checkov")
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-engine-"))
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; checkov: {checkov or 'not installed'}; "
          f"load average {os.getloadavg()[0]:.1f}; {compiled}")
    header = (f"{'resources':>9} {'files':>6} {'MB':>6} {'floor s':>7} {'cpu s':>6} | {'cli s':>6} {'cpu s':>6} {'res/s':>7} "
              f"{'peak MB':>7} {'vs floor':>8} {'load':>5} {'file s':>6} | {'server s':>8} {'srv cpu':>7} {'eng cpu':>7}"
              f" {'x cli':>6} {'med x':>6} {'med x f':>7} {'kept s':>7} {'x cli':>6} {'med x':>6} {'med x f':>7}")
    if checkov:
        header += f" | {'checkov s':>9} {'peak MB':>7} {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    read_rows: list[str] = []
    try:
        for n in sizes:
            corpus = base / f"corpus-{n}"
            generated: int | None = None  # unknown for a corpus kept from an earlier run
            if not corpus.exists():
                corpus.mkdir(parents=True)
                generated, _, _ = generate(corpus, n)
            nres = n
            nfiles = sum(1 for _ in corpus.rglob("*.y*ml"))
            mb = sum(p.stat().st_size for p in corpus.rglob("*.y*ml")) / 1e6
            serve = not args.no_server and n <= args.server_max
            best: tuple[float, int, float] | None = None
            floors: list[tuple[float, float]] = []
            runs: list[tuple[float, float, float]] = []
            kept_runs: list[float] = []
            polled: list[float] = []
            waited: list[float] = []
            cli_runs: list[float] = []
            file_runs: list[float] = []
            reads: dict[str, list[float]] = {name: [] for name in READS}
            # In rounds, each measuring everything once, the best of each kept: this machine's
            # speed drifts within a minute, and blocks of runs (the CLI's, then the server's)
            # would put that drift into the ratios between them.
            with tempfile.TemporaryDirectory(prefix="bench-server-") as data_dir:
                for _ in range(max(1, args.repeat)):
                    dt, rss, rc, err, cpu = measure([mcp, "scan", str(corpus), "--engine", "builtin", "--format",
                                                     "json", "-o", os.devnull, *args.extra.split()])
                    if rc not in (0, 1):
                        print(f"mcp-kscan failed (exit {rc}): {err}", file=sys.stderr)
                        return 1
                    # Wall time and CPU time are each the best of the runs: on a shared machine the
                    # other load inflates both, the CPU time less.
                    best = (dt, rss, cpu) if best is None else (min(dt, best[0]), max(rss, best[1]), min(cpu, best[2]))
                    cli_runs.append(dt)
                    file_runs.append(measure_cli_to_file(mcp, corpus, Path(data_dir), args.extra.split()))
                    floors.append(yaml_floor(corpus))
                    if serve:
                        runs.append(measure_server(mcp, corpus, Path(data_dir), generated))
                        kept_runs.append(measure_server(mcp, corpus, Path(data_dir), generated, keep=True)[0])
                        if not args.no_reads:
                            took, latencies = measure_reads(mcp, corpus, Path(data_dir))
                            polled.append(took)
                            waited.append(measure_waited(mcp, corpus, Path(data_dir)))
                            for name, values in latencies.items():
                                reads[name].extend(values)
            assert best is not None
            floor, floor_cpu = min(f[0] for f in floors), min(f[1] for f in floors)
            line = (f"{nres:>9} {nfiles:>6} {mb:>6.1f} {floor:>7.2f} {floor_cpu:>6.2f} | {best[0]:>6.2f} {best[2]:>6.2f} "
                    f"{nres / best[0]:>7.0f} {best[1] / 1024:>7.0f} {best[0] / floor:>7.2f}x {os.getloadavg()[0]:>5.1f}"
                    f" {min(file_runs):>6.2f} |")
            if not serve:
                line += f" {'-':>8} {'-':>7} {'-':>7} {'-':>6} {'-':>6} {'-':>7} {'-':>7} {'-':>6} {'-':>6} {'-':>7}"
            else:
                # Each the best of the runs, as for the CLI; ``med x`` the median of each round's
                # ratio to that round's CLI scan, taken seconds apart (steadier on a drifting machine).
                served, kept = min(r[0] for r in runs), min(kept_runs)
                med_served = statistics.median(r[0] / c for r, c in zip(runs, cli_runs, strict=True))
                med_kept = statistics.median(k / c for k, c in zip(kept_runs, cli_runs, strict=True))
                med_served_f = statistics.median(r[0] / f for r, f in zip(runs, file_runs, strict=True))
                med_kept_f = statistics.median(k / f for k, f in zip(kept_runs, file_runs, strict=True))
                line += (f" {served:>8.2f} {min(r[1] for r in runs):>7.2f}"
                         f" {min(r[2] for r in runs):>7.2f} {served / best[0]:>5.2f}x {med_served:>5.2f}x"
                         f" {med_served_f:>6.2f}x {kept:>7.2f} {kept / best[0]:>5.2f}x {med_kept:>5.2f}x"
                         f" {med_kept_f:>6.2f}x")
            if checkov:
                if n <= args.checkov_max:
                    cdt, crss, _, _, _ = measure([checkov, "--framework", "kubernetes", "-d", str(corpus), "--quiet",
                                               "--compact", "-o", "json"])
                    line += f" | {cdt:>9.1f} {crss / 1024:>7.0f} {cdt / best[0]:>7.0f}x"
                else:
                    line += f" | {'skipped':>9}"
            print(line, flush=True)
            if polled:
                med_polled_f = statistics.median(t / f for t, f in zip(polled, file_runs, strict=True))
                med_waited_f = statistics.median(t / f for t, f in zip(waited, file_runs, strict=True))
                row = (f"{nres:>9} {min(polled):>8.2f} {min(polled) / best[0]:>5.2f}x {med_polled_f:>6.2f}x"
                       f" {len(reads['livez']):>6} | {min(waited):>8.2f} {med_waited_f:>6.2f}x |")
                for name in READS:
                    ms = [v * 1000 for v in reads[name]]
                    row += f" {_percentile(ms, 0.5):>5.1f} {_percentile(ms, 0.99):>6.1f} {max(ms):>6.1f} |"
                read_rows.append(row)
        if read_rows:
            print(f"\nreads during the server scan (POST /v1/scan, one client reading every {POLL_GAP_S * 1000:g} ms; ms);"
                  f" 'waited': the same scan, /v1/status alone read every {WAIT_GAP_S * 1000:g} ms")
            head = f"{'resources':>9} {'scan s':>8} {'x cli':>6} {'med x f':>7} {'polls':>6} | {'waited s':>8} {'med x f':>7} |"
            for name in READS:
                head += f" {name[:18]:^20} |"
            sub = (f"{'':>9} {'':>8} {'':>6} {'':>7} {'':>6} | {'':>8} {'':>7} |"
                   + f" {'p50':>5} {'p99':>6} {'max':>6} |" * len(READS))
            print(head)
            print(sub)
            print("-" * len(sub))
            for row in read_rows:
                print(row)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
