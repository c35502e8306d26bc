"""Lease election against the real API server, with controllable clocks for expiry."""

from __future__ import annotations

import pytest

from tests.harness.enforcers import lease_holder
from webhook.cluster.kubeapi import call
from webhook.enforcer.leader import LeaseElector

pytestmark = pytest.mark.controlplane


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_acquire_renew_and_takeover_after_expiry(controlplane, namespace) -> None:
    api = controlplane.api_client()
    mono_a, mono_b = Clock(), Clock()
    a = LeaseElector(api, namespace, "lease", "a", duration_seconds=15, mono=mono_a)
    b = LeaseElector(api, namespace, "lease", "b", duration_seconds=15, mono=mono_b)
    assert a.step() is True and a.is_leader()
    assert b.step() is False and not b.is_leader()
    spec = lease_holder(api, namespace, "lease")
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    first_renew = spec["renewTime"]

    mono_a.now += 5
    assert a.step() is True  # renewal
    assert lease_holder(api, namespace, "lease")["renewTime"] >= first_renew
    mono_b.now += 14  # b saw the record change less than 15 s ago (its own clock)
    assert b.step() is False

    # a stops renewing (dies); b sees the same record for a whole lease duration.
    mono_b.now += 15
    assert b.step() is True and b.is_leader()
    spec = lease_holder(api, namespace, "lease")
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1

    # a wakes up after its renew deadline: it is no longer leader and does not grab the Lease back.
    mono_a.now += 11
    assert not a.is_leader()
    assert a.step() is False
    assert lease_holder(api, namespace, "lease")["holderIdentity"] == "b"


def test_stale_write_loses_optimistic_concurrency(controlplane, namespace) -> None:
    api = controlplane.api_client()
    a = LeaseElector(api, namespace, "lease", "a", duration_seconds=15)
    assert a.step()
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/lease"
    stale = call(api, "GET", path)
    assert a.step()  # a renews: resourceVersion moves on
    c = LeaseElector(api, namespace, "lease", "c", duration_seconds=15)
    assert c._replace(stale, c._spec("2025-01-01T00:00:00.000000Z", 1), "take over") is False
    assert lease_holder(api, namespace, "lease")["holderIdentity"] == "a"


def test_release_hands_over_at_once(controlplane, namespace) -> None:
    api = controlplane.api_client()
    a = LeaseElector(api, namespace, "lease", "a", duration_seconds=15)
    b = LeaseElector(api, namespace, "lease", "b", duration_seconds=15)
    assert a.step() and not b.step()
    a.release()
    assert not a.is_leader()
    assert lease_holder(api, namespace, "lease")["holderIdentity"] == ""
    assert b.step() is True
    assert lease_holder(api, namespace, "lease")["leaseTransitions"] == 1
