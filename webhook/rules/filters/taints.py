"""TaintToleration: the NoSchedule and NoExecute taints of a node that the pod does not tolerate.

`Toleration.ToleratesTaint`: the effect must be equal unless the toleration's is empty; the key must
be equal unless the toleration's is empty; operator Exists ignores the value, Equal (the default)
compares it. PreferNoSchedule never keeps a pod off a node.

kube-apiserver's DefaultTolerationSeconds admission plugin (on by default) gives every pod that
lacks them a toleration of `node.kubernetes.io/not-ready` and `.../unreachable` with NoExecute,
so a pod rendered here carries them as the created pod would.
"""

from __future__ import annotations

EXCLUDING_EFFECTS = ("NoSchedule", "NoExecute")
DEFAULT_TOLERATIONS = tuple(
    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
)


def with_default_tolerations(tolerations: list[dict]) -> list[dict]:
    """`tolerations` plus what DefaultTolerationSeconds adds (only where none covers the taint)."""
    out = list(tolerations)
    for default in DEFAULT_TOLERATIONS:
        taint = {"key": default["key"], "effect": "NoExecute"}
        if not any(tolerates(t, taint) for t in tolerations if isinstance(t, dict)):
            out.append(default)  # shared: tolerations are read, never changed
    return out


def tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    t_effect = toleration.get("effect") or ""
    if t_effect and t_effect != taint.get("effect"):
        return False
    t_key = toleration.get("key") or ""
    if t_key and t_key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taints(taints: list[dict], tolerations: list[dict]) -> list[dict]:
    """The NoSchedule / NoExecute taints that no toleration tolerates."""
    return [
        t
        for t in taints
        if t.get("effect") in EXCLUDING_EFFECTS
        and not any(tolerates(tol, t) for tol in tolerations)
    ]
