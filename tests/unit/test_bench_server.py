"""The benchmark server's replaying mode: each review decided once and timed, then replayed."""

from __future__ import annotations

import json

import pytest

from bench import server as bench_server
from tests import webhook_objects as o
from webhook.admission import server
from webhook.admission.server import create_app
from webhook.admission.settings import Settings
from webhook.cluster.cache import StaticCache
from webhook.cluster.state import ClusterState

NS = "vms"


def test_replay_decides_each_review_once_and_answers_it_the_same(monkeypatch):
    decided: list[str] = []
    real = server.decide

    def counted(cache, settings, req, *args):
        decided.append(req.uid)
        return real(cache, settings, req, *args)

    monkeypatch.setattr(server, "decide", counted)  # the original is back after the test
    spent = bench_server.replay_decisions()
    state = ClusterState.from_objects(
        [o.node("node-1"), o.node("node-2"), o.vmi(NS, "vm", "node-1", cdrom=True)]
    )
    app = create_app(
        Settings(), StaticCache(state), extensions=[bench_server.decisions_route(spent)]
    )
    client = app.test_client()
    bodies = [o.review(o.vmim(NS, f"m-{i}", "vm"), uid=f"uid-{i}") for i in range(2)]

    answers = [
        client.post("/validate", data=json.dumps(b), content_type="application/json").get_json()
        for b in (*bodies, *bodies)
    ]

    assert decided == ["uid-0", "uid-1"]
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert answers[0]["response"]["uid"] == "uid-0" and answers[0]["response"]["allowed"] is False
    assert len(spent) == 2 and all(ns > 0 for ns in spent)  # the two real decisions, timed
    cost = client.get(bench_server.DECISIONS_PATH).get_json()
    assert cost["decided"] == 2
    assert cost["threadCpuMedianUs"] == pytest.approx(sum(spent) / 2 / 1e3)  # median of two
