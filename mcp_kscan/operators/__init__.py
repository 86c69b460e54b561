"""Results the cluster's security operators already hold (Kubescape operator, Trivy operator).

Both operators keep scanning and store their results as API objects; this package reads them
through the Kubernetes API (read-only) and turns them into one row shape:

- ``client``: GET and paged LIST with caller-safe errors; the one place a client is made.
- ``discovery``: which operators are installed, by API group.
- ``severity``: each operator's severity spelling, read in one place.
- ``models``: the normalised rows (vulnerabilities, findings) and the pages callers get.
- ``filters``: request validation (CVE/GHSA ids, ``Kind/namespace/name``, images) and cursors.
- ``kubescape``, ``trivy``: one reader per operator.
- ``service``: the operations the MCP tools, REST routes and doctor call.
"""
