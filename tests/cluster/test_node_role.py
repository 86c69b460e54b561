"""One answer to "is this host a node?" for doctor, kube-bench's warning and executor=auto (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kscan import doctor
from mcp_kscan.cluster.node_role import host_is_node, host_runs_kubernetes, running_components
from mcp_kscan.executors import select


def fake_proc(root: Path, *comms: str) -> Path:
    proc = root / "proc"
    for pid, comm in enumerate(("systemd", "bash", *comms), start=1):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "cmdline").write_bytes(f"/usr/bin/{comm}".encode() + b"\0")
    return proc


@pytest.mark.parametrize(("comms", "expected"), [
    (("k3s",), ["k3s"]),  # all-in-one: was "not a node" for doctor
    (("kube-proxy",), ["kube-proxy"]),  # was a node for kube-bench's warning only
    (("kubelet", "containerd"), ["kubelet"]),
    (("etcd",), ["etcd"]),
    (("kube-controller",), ["kube-controller"]),  # comm cut to 15 characters
    (("containerd", "python3"), []),
])
def test_every_caller_gives_the_same_answer(tmp_path: Path, comms: tuple[str, ...], expected: list[str]) -> None:
    proc = fake_proc(tmp_path, *comms)
    assert running_components(proc) == expected
    is_node = bool(expected)
    assert host_runs_kubernetes(proc) is is_node
    assert select.host_is_node(proc) is is_node and host_is_node(proc) is is_node
    check = doctor.check_host(proc)
    assert (check.level == "ok") is is_node and check.data["running"] == expected


def test_unreadable_proc_is_cannot_tell(tmp_path: Path) -> None:
    assert running_components(tmp_path / "absent") is None
    assert host_runs_kubernetes(tmp_path / "absent") is None
    assert host_is_node(tmp_path / "absent") is False
