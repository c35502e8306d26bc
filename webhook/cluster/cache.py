"""ClusterCache: the informers the webhook decides from, and how fresh they are.

Decisions read `cache.state` (a ClusterState) instead of calling the API per request. Pods: the
capacity rule needs the requests of every non-terminated pod on a node, so all pods that are not
Succeeded/Failed are watched (the state keeps only what the rules read).
"""

from __future__ import annotations

import json
import logging
import time

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from webhook.cluster.informer import Informer
from webhook.cluster.resources import RESOURCES
from webhook.cluster.state import VMI, ClusterState, slim
from webhook.errors import InputError

log = logging.getLogger("migration_guard.cache")


class ClusterCache:
    """Watch-fed ClusterState of Nodes, Pods, VMs, VMIs, VMIMs, NADs, and of KubeVirt CRs,
    MigrationPolicies (optional: a cluster without the CRD has none) and Namespaces."""

    def __init__(
        self,
        api: k8s.ApiClient,
        state: ClusterState | None = None,
        *,
        watch_timeout_seconds: int = 60,
    ) -> None:
        self.api = api
        self.state = state or ClusterState()
        self._custom = k8s.CustomObjectsApi(api)
        self.informers: list[Informer] = [
            Informer(
                self.state,
                r.kind,
                r.list_fn(api),
                api_version=r.api_version,
                field_selector=r.field_selector,
                watch_timeout_seconds=watch_timeout_seconds,
                optional=r.optional,
            )
            for r in RESOURCES.values()
        ]
        self.fetches = 0

    def start(self) -> ClusterCache:
        for informer in self.informers:
            informer.start()
        return self

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop(timeout=0)
        for informer in self.informers:
            informer.stop()

    @property
    def synced(self) -> bool:
        """Every informer finished its first full list."""
        return all(i.synced for i in self.informers)

    def age_seconds(self) -> float:
        """Age of the stalest informer (infinity until all have listed)."""
        return max(i.age_seconds() for i in self.informers)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.synced and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.synced

    def status(self) -> dict:
        """Per-kind detail for /readyz and logs."""
        out = {}
        for i in self.informers:
            age = i.age_seconds()
            out[i.kind] = {
                "synced": i.synced,
                "ageSeconds": None if age == float("inf") else round(age, 3),
                "resourceVersion": i.resource_version,
                "lists": i.lists,
                "errors": i.errors,
            }
            if i.optional:
                out[i.kind]["served"] = not i.missing
        return out

    def get_vmi_or_fetch(self, namespace: str, name: str) -> dict | None:
        """The VMI from the cache; if absent, read once from the API (and cached) before None.

        Why: a VMI created a moment ago may not have reached the watch yet.
        """
        vmi = self.state.vmi(namespace, name)
        if vmi is not None:
            return vmi
        self.fetches += 1
        try:
            vmis = RESOURCES[VMI]
            resp = self._custom.get_namespaced_custom_object(
                vmis.group,
                vmis.version,
                namespace,
                vmis.plural,
                name,
                _preload_content=False,
                _request_timeout=5,
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        obj = json.loads(resp.data)
        try:
            slim(obj)
        except InputError as e:
            log.warning("fetched VMI %s/%s is malformed: %s", namespace, name, e)
            return None
        self.state.apply(obj)
        return self.state.vmi(namespace, name)


class StaticCache:
    """A cache over a fixed ClusterState (unit and bad-input tests of the app); synced unless told."""

    def __init__(self, state: ClusterState, *, synced: bool = True, age: float = 0.0) -> None:
        self.state = state
        self.synced = synced
        self.age = age

    def age_seconds(self) -> float:
        return self.age if self.synced else float("inf")

    def status(self) -> dict:
        return {"static": {"synced": self.synced, "ageSeconds": self.age}}

    def get_vmi_or_fetch(self, namespace: str, name: str) -> dict | None:
        return self.state.vmi(namespace, name)
