"""The Kubernetes resources the rules read: one table for the cache, the enforcer, the CLI, the demo.

Each entry knows its API path and how to list (and watch) it with the official client, so the
group, version and plural of a kind are written once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook.cluster.state import (
    HARVESTER_SETTING,
    KUBEVIRT,
    MIGRATION_POLICY,
    NAD,
    NAMESPACE,
    NODE,
    POD,
    SERVER_VERSION,
    VM,
    VMI,
    VMIM,
)

ListFn = Callable[..., Any]


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str  # "" for the core API
    version: str
    plural: str
    namespaced: bool = True
    # KubeVirt's VMI CRD has no status subresource: its status is written with the object.
    status_subresource: bool = True
    # A cluster may lack the CRD (404 on list): then there are none, and readiness says so.
    optional: bool = False
    # Only these objects are listed and watched (the rules read no others).
    field_selector: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path of the collection (in `namespace` when namespaced) or of one object."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        path = f"{prefix}/{self.plural}"
        return f"{path}/{name}" if name else path

    def status_path(self, namespace: str | None, name: str) -> str:
        """Where a controller writes the object's status."""
        path = self.path(namespace, name)
        return f"{path}/status" if self.status_subresource else path

    def list_fn(self, api: Any, namespace: str | None = None) -> ListFn:
        """An official-client list function (also used to watch): all namespaces, or one."""
        from kubernetes import client as k8s  # the CLI reads files without the client loaded

        if not self.group:
            core = k8s.CoreV1Api(api)
            if not self.namespaced:
                return getattr(core, f"list_{self.kind.lower()}")
            if namespace:
                return functools.partial(
                    getattr(core, f"list_namespaced_{self.kind.lower()}"), namespace
                )
            return getattr(core, f"list_{self.kind.lower()}_for_all_namespaces")
        custom = k8s.CustomObjectsApi(api)
        if namespace:
            return functools.partial(
                custom.list_namespaced_custom_object,
                self.group,
                self.version,
                namespace,
                self.plural,
            )
        return functools.partial(
            custom.list_cluster_custom_object, self.group, self.version, self.plural
        )


RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in (
        Resource(NODE, "", "v1", "nodes", namespaced=False),
        # the capacity rule needs the requests of every pod that is not Succeeded/Failed
        Resource(
            POD, "", "v1", "pods", field_selector="status.phase!=Succeeded,status.phase!=Failed"
        ),
        Resource(VMI, "kubevirt.io", "v1", "virtualmachineinstances", status_subresource=False),
        Resource(VMIM, "kubevirt.io", "v1", "virtualmachineinstancemigrations"),
        Resource(VM, "kubevirt.io", "v1", "virtualmachines"),
        Resource(NAD, "k8s.cni.cncf.io", "v1", "network-attachment-definitions"),
        # KubeVirt's own migration limits: its CR, MigrationPolicies, namespace labels they select
        Resource(KUBEVIRT, "kubevirt.io", "v1", "kubevirts"),
        Resource(
            MIGRATION_POLICY,
            "migrations.kubevirt.io",
            "v1alpha1",
            "migrationpolicies",
            namespaced=False,
            optional=True,
        ),
        Resource(NAMESPACE, "", "v1", "namespaces", namespaced=False),
        # Harvester's version, for the policy's profile (absent outside Harvester)
        Resource(
            HARVESTER_SETTING,
            "harvesterhci.io",
            "v1beta1",
            "settings",
            namespaced=False,
            optional=True,
            field_selector=f"metadata.name={SERVER_VERSION}",
        ),
    )
}
