"""One hostile-input environment per module: fakes, an allowed root with a symlink out, secrets.

Module scope keeps ~1,300 cases fast: one server, one client, many calls. Each case checks the
fakes' start log grew by nothing, so sharing the server loses no precision.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mcp_kscan.settings
from conftest import REPO_ROOT, FakeBin, make_fake_bin

TOKEN = "tok-5b0e7c1d9a2f4e6b8c3d"
ACCESS_KEY = "ak-8f2d4c6e0a1b3c5d7e9f"
MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


@dataclass
class SecEnv:
    fake: FakeBin
    root: Path
    outside: Path
    env: dict[str, str]
    tmp: Path

    def forbidden_texts(self) -> list[str]:
        """What no error may contain: the server's own paths, secrets, where symlinks lead."""
        site = Path(mcp_kscan.settings.__file__).resolve().parent
        return [
            str(self.fake.data_dir),
            str(self.fake.bin_dir),
            str(site),
            str(REPO_ROOT),
            sys.prefix,
            self.outside.name,
            TOKEN,
            ACCESS_KEY,
            "Traceback",
        ]

    def files(self) -> set[str]:
        """Every file under the test's tmp dir except the database and the start log."""
        out: set[str] = set()
        for dirpath, _dirs, names in os.walk(self.tmp):
            for name in names:
                path = os.path.join(dirpath, name)
                if name.startswith("scans.db") or path == str(self.fake.record_file):
                    continue
                out.add(path)
        return out


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sec_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecEnv]:
    tmp = tmp_path_factory.mktemp("sec")
    fake = make_fake_bin(tmp)
    root = tmp / "root"
    root.mkdir()
    (root / "deploy.yaml").write_text(MANIFEST)
    outside = tmp / "outside-d41d8cd9"
    outside.mkdir()
    (outside / "secret.yaml").write_text(MANIFEST)
    (root / "escape").symlink_to(outside)
    (root / "escape-file.yaml").symlink_to(outside / "secret.yaml")
    env = {
        **fake.env,
        "MCP_KSCAN_ALLOWED_ROOTS": str(root),
        "MCP_KSCAN_TOKEN": TOKEN,
        "KS_ACCESS_KEY": ACCESS_KEY,
        "MCP_KSCAN_MAX_CONCURRENT_SCANS": "2",
    }
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    mcp_kscan.settings.configure(None)
    try:
        yield SecEnv(fake=fake, root=root, outside=outside, env=env, tmp=tmp)
    finally:
        mp.undo()
        mcp_kscan.settings.configure(None)
