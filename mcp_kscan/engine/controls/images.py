"""Where images come from (regolibrary v2.0.33): registries allowed or refused by the control
inputs, and images of components with known problems.

Two readings of an image name coexist in the rules, and each control applies both of its rules:
the older one matches ``^<registry>/`` as a regular expression against the name as written
(``docker.io/`` prefixed when it has no ``/``); the newer one compares prefixes with the fully
normalised name (``nginx`` -> ``docker.io/library/nginx``, tag and digest removed).
"""

from __future__ import annotations

import re
from functools import lru_cache

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, contains_any, fail
from mcp_kscan.engine.controls.workload import containers
from mcp_kscan.engine.model import Resource


def normalized_name(image: str) -> str:
    """Docker's normalised repository name (reference.ParseNormalizedNamed(...).Name())."""
    name = image.split("@", 1)[0]
    head, sep, last = name.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    name = f"{head}{sep}{last}"
    first, slash, rest = name.partition("/")
    if not slash:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def _host_wrapped(image: str) -> str:
    return image if "/" in image else f"docker.io/{image}"


@lru_cache(maxsize=256)
def _registry_pattern(registry: str) -> re.Pattern[str] | None:
    text = f"^{registry}.*$" if registry.endswith("/") else f"^{registry}/.*$"
    try:
        return re.compile(text)
    except re.error:
        return None


def _regex_match(registry: str, image: str) -> bool:
    pattern = _registry_pattern(registry)
    return pattern is not None and pattern.search(_host_wrapped(image)) is not None


def _refused(image: str, registries: tuple[str, ...]) -> bool:
    normalized = normalized_name(image)
    return any(_regex_match(r, image) or normalized.startswith(r) for r in registries)


def forbidden_registries(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0001: an image comes from one of the untrustedRegistries or publicRegistries inputs."""
    refused = ctx.input("untrustedRegistries") + ctx.input("publicRegistries")
    if not refused:  # the default: no registry is refused
        return PASSED
    paths = [f"{path}.image" for path, c in containers(res)
             if isinstance(c.get("image"), str) and _refused(c["image"], refused)]
    return fail(paths, [], "images come from a forbidden registry") if paths else PASSED


def registry_not_allowed(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0078: an image does not come from the imageRepositoryAllowList input (an empty list allows
    nothing). Either rule's reading failing fails the image."""
    allowed = ctx.input("imageRepositoryAllowList")
    paths = []
    for path, c in containers(res):
        image = c.get("image")
        if not isinstance(image, str):
            continue
        # Either reading failing fails the image: the second is read only when the first allows it.
        if not (any(_regex_match(r, image) for r in allowed)
                and any(normalized_name(image).startswith(r) for r in allowed)):
            paths.append(f"{path}.image")
    return fail(paths, [], "images come from registries outside the allowed list") if paths else PASSED


NGINX_INGRESS_IMAGES = ("ingress-nginx/controller", "k8s.gcr.io/ingress-nginx", "registry.k8s.io/ingress-nginx")


def nginx_ingress_eol(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0292: the workload runs the ingress-nginx controller, which reached end of life."""
    paths = [f"{path}.image" for path, c in containers(res)
             if isinstance(image := c.get("image"), str) and contains_any(image, NGINX_INGRESS_IMAGES)]
    return fail(paths, [], "runs the end-of-life ingress-nginx controller") if paths else PASSED
