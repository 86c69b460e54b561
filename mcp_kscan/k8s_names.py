"""Kubernetes' naming rules (apimachinery's validation), written once for every request field and
results filter that names a Kubernetes object.

A namespace is a DNS-1123 label (at most 63 characters); a node is a DNS-1123 subdomain (at most
253). A filter with a name Kubernetes would refuse can never match, so it is refused too.
"""

from __future__ import annotations

import re

DNS_LABEL_MAX = 63
DNS_LABEL_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
"""Unanchored: use with ``fullmatch``, or anchor it for a JSON-schema ``pattern``."""

DNS_SUBDOMAIN_MAX = 253
DNS_SUBDOMAIN_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"

_DNS_LABEL_RE = re.compile(DNS_LABEL_PATTERN, re.ASCII)
_DNS_SUBDOMAIN_RE = re.compile(DNS_SUBDOMAIN_PATTERN, re.ASCII)


def is_namespace(name: str) -> bool:
    """A valid namespace name (DNS-1123 label)."""
    return _DNS_LABEL_RE.fullmatch(name) is not None


def is_dns_subdomain(name: str) -> bool:
    """A valid node (or other object) name: a DNS-1123 subdomain of at most 253 characters."""
    return len(name) <= DNS_SUBDOMAIN_MAX and _DNS_SUBDOMAIN_RE.fullmatch(name) is not None
