"""Benchmark: the engine's YAML step alone, for each fast path this installation has.

    python benchmarks/bench_yaml.py DIR [--repeat 3]

Reads every ``*.yaml``/``*.yml``/``*.json`` under DIR into memory (a corpus that
``bench_engine.py --keep DIR`` generated, or any manifests), then runs ``fastyaml``'s loaders over
all of them in this process and prints, per loader: the files it answered (the others go to
PyYAML in a scan), its best CPU seconds of ``--repeat`` runs, and the Python heap its objects
hold (tracemalloc, a separate run). PyYAML's loader (the reference, and the full path) is measured
alike. CPU seconds, not wall time: other load on the machine distorts them less.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_kscan.engine import fastyaml


def _run(load: Callable[[bytes], list[Any]], datas: list[bytes]) -> tuple[int, list[Any]]:
    answered, kept = 0, []
    for data in datas:
        try:
            kept.append(load(data))
            answered += 1
        except fastyaml.NotFast:
            pass
    return answered, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="runs per loader (the best CPU time is reported)")
    args = ap.parse_args()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))
    datas = [p.read_bytes() for p in files]
    print(f"{len(files)} files, {sum(map(len, datas)) / 1e6:.1f} MB; fast_load is {fastyaml.YAML_LOADER}")
    loaders: dict[str, Callable[[bytes], list[Any]]] = {**fastyaml.FAST_LOADERS, "pyyaml": fastyaml.pyyaml_load_all}
    print(f"{'loader':<10} {'answered':>9} {'CPU s':>7} {'held MB':>8}")
    for name, load in loaders.items():
        _run(load, datas[:50])  # imports and first-use caches outside the timing
        best = float("inf")
        for _ in range(args.repeat):
            start = time.process_time()
            answered, kept = _run(load, datas)
            best = min(best, time.process_time() - start)
            del kept
        tracemalloc.start()
        _, kept = _run(load, datas)
        held = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        del kept
        print(f"{name:<10} {answered:>9} {best:>7.3f} {held:>8.1f}")


if __name__ == "__main__":
    main()
