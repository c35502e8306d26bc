"""RBAC that lets a user of the test control plane use the extension in one namespace."""

from __future__ import annotations

from extension import aggregated


def vm_migrator_rbac(namespace: str, user: str, also_read: tuple[str, ...] = ()) -> dict:
    """A Role and RoleBinding (as a List): look up VMs, start and abort migrations in `namespace`.

    These are the permissions the extension's SubjectAccessReviews ask for, and the aggregated
    API's subresources kube-apiserver checks (the chart's `:view` and `:migrate` roles); `also_read` adds
    get/list of other kubevirt.io resources (the demo lets alice `kubectl get vmi` too).
    """
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "vm-migrator", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["kubevirt.io"],
                "resources": ["virtualmachines", *also_read],
                "verbs": ["get", "list"],
            },
            {
                "apiGroups": ["kubevirt.io"],
                "resources": ["virtualmachineinstancemigrations"],
                "verbs": ["get", "list", "create", "delete"],
            },
            *(
                {
                    "apiGroups": [aggregated.GROUP],
                    "resources": [f"virtualmachines/{s.name}"],
                    "verbs": [s.verb],
                }
                for s in aggregated.SUBRESOURCES
                if s.namespaced
            ),
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"vm-migrator-{user}", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vm-migrator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    return {"apiVersion": "v1", "kind": "List", "items": [role, binding]}
