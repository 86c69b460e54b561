"""kube-bench's report out of a Job's pod log (stdout and stderr interleaved)."""

from __future__ import annotations

from typing import Any

from mcp_kscan import strict_json
from mcp_kscan.readers.kube_bench_json import parse_output
from mcp_kscan.reports import KubeBenchReport


def extract_report(data: bytes, node: str) -> tuple[Any, KubeBenchReport]:
    """kube-bench's JSON out of a pod log, parsed with the adapter's parser.

    A pod log interleaves stdout and stderr, so log lines may precede or follow the JSON
    document: if the whole log does not parse, the first ``{``/``[`` line is decoded on its own.
    """
    text = data.decode("utf-8", "replace")
    try:
        doc = strict_json.loads(text)
    except ValueError:
        doc = None
        decoder = strict_json.decoder()
        offset = 0
        for line in text.splitlines(keepends=True):
            if line.lstrip().startswith(("{", "[")):
                try:
                    doc, _ = decoder.raw_decode(text, offset + (len(line) - len(line.lstrip())))
                    break
                except ValueError:
                    pass
            offset += len(line)
        if doc is None:
            parse_output(data, node=node)  # raises ScanOutputError with the adapter's message
    return doc, parse_output(doc, node=node)
