"""Who started a migration: a person, or one of KubeVirt's own controllers.

virt-controller creates VMIMs itself: its evacuation controller when a node is drained or tainted
`kubevirt.io/drain` (annotation `kubevirt.io/evacuationMigration: <node>`), and its workload
updater after a KubeVirt upgrade (annotation `kubevirt.io/workloadUpdateMigration`). Anyone may
write those annotations, so, as virt-api does for `spec.priority`, a VMIM counts as KubeVirt's only
when the request comes from one of virt-controller's service accounts; any other is a person's.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from webhook.rules import access as a

EVACUATION_ANNOTATION = "kubevirt.io/evacuationMigration"
WORKLOAD_UPDATE_ANNOTATION = "kubevirt.io/workloadUpdateMigration"
USER = "user"
EVACUATION = "evacuation"
WORKLOAD_UPDATE = "workload-update"
# virt-controller's service account where Harvester installs KubeVirt, and upstream's.
DEFAULT_CONTROLLER_USERS = (
    "system:serviceaccount:harvester-system:kubevirt-controller",
    "system:serviceaccount:kubevirt:kubevirt-controller",
)


@dataclass(frozen=True)
class Origin:
    """`kind` is USER, EVACUATION or WORKLOAD_UPDATE; `node` the node an evacuation drains."""

    kind: str
    node: str | None = None

    @property
    def by_kubevirt(self) -> bool:
        return self.kind != USER

    def describe(self) -> str:
        """'evacuation from node-1' / 'workload update' / 'migration', for messages."""
        if self.kind == EVACUATION:
            return f"evacuation from node {self.node}" if self.node else "evacuation"
        return "workload update" if self.kind == WORKLOAD_UPDATE else "migration"


_BY_USER = Origin(USER)  # immutable: one for every migration a person starts


def migration_origin(vmim: dict, username: str, controller_users: Container[str]) -> Origin:
    """The origin of `vmim` created by `username` (see the module docstring)."""
    if username not in controller_users:
        return _BY_USER
    annotations = a.str_map(vmim, "metadata.annotations", "VirtualMachineInstanceMigration")
    if EVACUATION_ANNOTATION in annotations:
        return Origin(EVACUATION, annotations[EVACUATION_ANNOTATION] or None)
    if WORKLOAD_UPDATE_ANNOTATION in annotations:
        return Origin(WORKLOAD_UPDATE)
    return _BY_USER
