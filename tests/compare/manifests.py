"""A small repository of Deployments before and after an edit, for comparison tests."""

from __future__ import annotations

from pathlib import Path

CONTROLS = ["C-0057", "C-0017"]


def deployment(name: str, containers: list[tuple[str, bool, bool]]) -> str:
    """(container name, privileged, read-only root fs) per container."""
    lines = [f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n"
             f"  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n"
             "    spec:\n      containers:"]
    for cname, privileged, read_only in containers:
        lines.append(f"      - name: {cname}\n        image: nginx:1.25\n        securityContext:\n"
                     f"          privileged: {str(privileged).lower()}\n"
                     f"          readOnlyRootFilesystem: {str(read_only).lower()}")
    return "\n".join(lines) + "\n"


def write_before(root: Path) -> None:
    (root / "web.yaml").write_text(deployment("web", [("web", True, True)]))
    (root / "api.yaml").write_text(deployment("api", [("api", False, False)]))
    (root / "worker.yaml").write_text(deployment("worker", [("w", False, False)]))


def edit(root: Path) -> None:
    """A second privileged container in web (new evidence), api renamed (new + fixed), worker fixed."""
    (root / "web.yaml").write_text(deployment("web", [("web", True, True), ("sidecar", True, True)]))
    (root / "api.yaml").write_text(deployment("api-v2", [("api", False, False)]))
    (root / "worker.yaml").write_text(deployment("worker", [("w", False, True)]))
