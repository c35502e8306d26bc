"""The extension as a Kubernetes aggregated API: its group, its subresources, its discovery.

kube-apiserver serves `/apis/subresources.migration-guard.io/v1/...` by proxying to this backend
(APIService `v1.subresources.migration-guard.io`), after authenticating the user and authorizing
the path with RBAC. RBAC sees only the first path segment after the VM's name, so every
subresource is one segment; its verb is the HTTP method's (GET: get, PUT: update), as KubeVirt's
`subresources.kubevirt.io` does for `virtualmachines/migrate`.

The group is migration-guard's own: not KubeVirt's, whose virt-api serves its subresources, nor
Harvester's.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "subresources.migration-guard.io"
VERSION = "v1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"/apis/{GROUP_VERSION}"
APISERVICE_NAME = f"{VERSION}.{GROUP}"


@dataclass(frozen=True)
class Subresource:
    """A subresource: `<PREFIX>/namespaces/<ns>/virtualmachines/<vm>/<name>` of a VM, or
    `<PREFIX>/nodes/<node>/<name>` of a node."""

    name: str
    method: str
    verb: str  # what RBAC grants on `<parent>/<name>`
    kind: str  # the kind of what it answers, for discovery
    view: str  # the _Views method that serves it (extension.api)
    parent: str = "virtualmachines"  # or "nodes" (cluster-scoped)

    @property
    def namespaced(self) -> bool:
        return self.parent != "nodes"


SUBRESOURCES = (
    Subresource("migrationtargets", "GET", "get", "MigrationTargets", "migration_targets"),
    Subresource("migration", "GET", "get", "MigrationStatus", "migration"),
    Subresource("migrate", "PUT", "update", "MigrationStarted", "migrate"),
    Subresource("abortmigration", "PUT", "update", "MigrationAborted", "abort"),
    Subresource("drainplan", "GET", "get", "DrainPlan", "drain_plan", parent="nodes"),
)


def route(sub: Subresource) -> str:
    """The Flask rule of a subresource."""
    if not sub.namespaced:
        return f"{PREFIX}/{sub.parent}/<name>/{sub.name}"
    return f"{PREFIX}/namespaces/<namespace>/{sub.parent}/<name>/{sub.name}"


def discovery() -> dict:
    """The APIResourceList kube-apiserver reads at `GET <PREFIX>` (its availability check and
    discovery): every subresource with its verb and kind, so client-go keeps them."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": f"{s.parent}/{s.name}",
                "singularName": "",
                "namespaced": s.namespaced,
                "kind": s.kind,
                "verbs": [s.verb],
            }
            for s in SUBRESOURCES
        ],
    }
