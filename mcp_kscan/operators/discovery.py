"""Which operators the cluster serves, found by API group (not by looking for their pods).

The API group is what the readers need: Kubescape's storage serves
``spdx.softwarecomposition.kubescape.io/v1beta1`` through an aggregated API (no CRDs), the Trivy
operator installs CRDs in ``aquasecurity.github.io/v1alpha1``. Discovery is readable by every
authenticated identity (``system:discovery``), so it works before any RBAC for the reports.
"""

from __future__ import annotations

from mcp_kscan.operators.client import KubeReader, NotFound
from mcp_kscan.operators.models import OperatorInventory, OperatorName

KUBESCAPE_GROUP = ("spdx.softwarecomposition.kubescape.io", "v1beta1")
TRIVY_GROUP = ("aquasecurity.github.io", "v1alpha1")
GROUPS: dict[OperatorName, tuple[str, str]] = {"kubescape": KUBESCAPE_GROUP, "trivy": TRIVY_GROUP}

LOOKED_FOR = (
    f"the Kubescape operator (API group {KUBESCAPE_GROUP[0]}/{KUBESCAPE_GROUP[1]}) and "
    f"the Trivy operator (API group {TRIVY_GROUP[0]}/{TRIVY_GROUP[1]})"
)


async def discover(reader: KubeReader) -> OperatorInventory:
    """The resources each operator's group serves; an operator that is absent has none."""
    found: dict[str, list[str]] = {}
    for operator, (group, version) in GROUPS.items():
        try:
            doc = await reader.get(f"/apis/{group}/{version}")
        except NotFound:
            found[operator] = []
            continue
        names = [r.get("name", "") for r in doc.get("resources") or []]
        found[operator] = sorted(n for n in names if n and "/" not in n)
    return OperatorInventory(**found)


__all__ = ["GROUPS", "KUBESCAPE_GROUP", "LOOKED_FOR", "TRIVY_GROUP", "discover"]
