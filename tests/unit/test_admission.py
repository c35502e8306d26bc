"""The admission contract through the Flask app, on a fixed ClusterState and the real rule engine."""

from __future__ import annotations

import json

import pytest

from tests import webhook_objects as o
from webhook.admission import review as admission_review
from webhook.admission.server import create_app
from webhook.admission.settings import Settings
from webhook.cluster.cache import StaticCache
from webhook.cluster.state import ClusterState

NS = "vms"


def cluster(*, cordon_node3: bool = False, only_one_target: bool = False) -> ClusterState:
    nodes = [o.node("node-1"), o.node("node-2"), o.node("node-3", cordoned=cordon_node3)]
    if only_one_target:
        nodes[2] = o.node("node-3", cordoned=True)
    return ClusterState.from_objects(
        [
            *nodes,
            o.nad(NS),
            o.vm(NS, "clean"),
            o.vmi(NS, "clean", "node-1"),
            o.launcher_pod(NS, "clean", "node-1"),
            o.vm(NS, "messy", cdrom=True, pci=True),
            o.vmi(NS, "messy", "node-1", cdrom=True, pci=True),
            o.launcher_pod(NS, "messy", "node-1"),
        ]
    )


def client(state: ClusterState, settings: Settings | None = None, **cache_kw):
    app = create_app(settings or Settings(), StaticCache(state, **cache_kw))
    return app.test_client()


def post(c, body) -> tuple[int, dict]:
    resp = c.post("/validate", data=json.dumps(body), content_type="application/json")
    return resp.status_code, resp.get_json()


def test_denial_lists_every_blocker_with_causes_and_403():
    code, out = post(client(cluster()), o.review(o.vmim(NS, "m1", "messy"), uid="abc"))
    assert code == 200
    r = out["response"]
    assert r["uid"] == "abc" and r["allowed"] is False
    assert r["status"]["code"] == 403 and r["status"]["reason"] == "Forbidden"
    reasons = [c["reason"] for c in r["status"]["details"]["causes"]]
    assert "CDROMVolume" in reasons and "PCIDevicePassthrough" in reasons
    lines = r["status"]["message"].splitlines()
    assert lines[0].startswith(f"live migration of VM {NS}/messy is not allowed")
    assert len(lines) == 1 + len(reasons)
    assert any("CDROMVolume" in line for line in lines[1:])
    assert all(c["message"] for c in r["status"]["details"]["causes"])


def test_cordoned_target_is_denied_naming_node():
    review = o.review(o.vmim(NS, "m2", "clean", target="node-3"))
    _, out = post(client(cluster(cordon_node3=True)), review)
    r = out["response"]
    assert r["allowed"] is False
    assert r["status"]["details"]["causes"][0]["reason"] == "TargetNotEligible"
    assert "node-3" in r["status"]["message"] and "cordoned" in r["status"]["message"]


def test_clean_vm_allowed_with_timeout_warning_and_single_target_warning():
    _, out = post(client(cluster(only_one_target=True)), o.review(o.vmim(NS, "m3", "clean")))
    r = out["response"]
    assert r["allowed"] is True and "status" not in r
    assert any("1600s" in w and "2 GiB" in w for w in r["warnings"])  # 2 GiB x 800 s/GiB
    assert any("only one node" in w and "node-2" in w for w in r["warnings"])


def test_dry_run_gets_the_same_answer():
    c = client(cluster())
    _, real = post(c, o.review(o.vmim(NS, "m4", "messy"), uid="u"))
    _, dry = post(c, o.review(o.vmim(NS, "m4", "messy"), uid="u", dry_run=True))
    assert real == dry


def test_missing_vmi_is_denied():
    _, out = post(client(cluster()), o.review(o.vmim(NS, "m5", "ghost")))
    causes = out["response"]["status"]["details"]["causes"]
    assert [c["reason"] for c in causes] == ["VMINotRunning"]


def test_missing_vmi_name_is_denied_with_field():
    bad = o.vmim(NS, "m6", "x")
    del bad["spec"]["vmiName"]
    _, out = post(client(cluster()), o.review(bad))
    cause = out["response"]["status"]["details"]["causes"][0]
    assert cause["reason"] == "InvalidMigration" and cause["field"] == "spec.vmiName"


def test_other_kinds_and_operations_are_allowed_and_counted():
    c = client(cluster())
    review = o.review(o.vmim(NS, "m7", "messy"), operation="DELETE")
    review["request"]["object"] = None
    code, out = post(c, review)
    assert code == 200 and out["response"]["allowed"] is True
    pod_review = o.review(o.launcher_pod(NS, "clean", "node-1"))
    pod_review["request"]["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    pod_review["request"]["resource"] = {"group": "", "version": "v1", "resource": "pods"}
    _, out = post(c, pod_review)
    assert out["response"]["allowed"] is True
    metrics = c.get("/metrics").get_data(as_text=True)
    assert (
        'migration_guard_admission_requests_total{kind="VirtualMachineInstanceMigration",'
        'operation="DELETE",result="ignored"} 1.0' in metrics
    )
    assert 'kind="Pod",operation="CREATE",result="ignored"} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is missing"),
        ('{"apiVersion": "v1", "kind": "AdmissionReview", "request": {}}', "apiVersion"),
        (
            '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            ' "request": {"uid": 5}}',
            "request.uid must be a str",
        ),
        (
            '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            ' "request": {"uid": "u", "operation": "CREATE", "kind": {"kind": "X"}}}',
            "request.object is missing",
        ),
    ],
)
def test_malformed_review_is_400_json_naming_the_problem(body, needle):
    resp = client(cluster()).post("/validate", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert needle in resp.get_json()["message"]


def test_oversized_body_is_413_json():
    c = client(cluster(), Settings(max_body_bytes=1000))
    resp = c.post("/validate", data="x" * 5000, content_type="application/json")
    assert resp.status_code == 413
    assert "1000 bytes" in resp.get_json()["message"]


def test_unknown_path_and_method_are_json():
    c = client(cluster())
    assert c.get("/nope").status_code == 404 and c.get("/nope").get_json()["code"] == 404
    resp = c.get("/validate")
    assert resp.status_code == 405 and resp.get_json()["code"] == 405


def test_unsynced_cache_denies_by_default_and_allows_when_configured():
    review = o.review(o.vmim(NS, "m8", "clean"))
    _, out = post(client(cluster(), synced=False), review)
    r = out["response"]
    assert r["allowed"] is False and "not finished its first sync" in r["status"]["message"]
    assert r["status"]["details"]["causes"][0]["reason"] == "CacheNotReady"
    _, out = post(client(cluster(), Settings(stale_cache_policy="allow"), synced=False), review)
    assert out["response"]["allowed"] is True
    assert "did not check" in out["response"]["warnings"][0]


def test_stale_cache_says_how_old():
    _, out = post(client(cluster(), age=400.0), o.review(o.vmim(NS, "m9", "clean")))
    assert "400 s old" in out["response"]["status"]["message"]


def test_readyz_and_healthz_and_metrics():
    c = client(cluster(), synced=False)
    assert c.get("/healthz").status_code == 200
    resp = c.get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["ready"] is False
    c2 = client(cluster())
    post(c2, o.review(o.vmim(NS, "m10", "messy")))
    assert c2.get("/readyz").get_json()["ready"] is True
    text = c2.get("/metrics").get_data(as_text=True)
    assert 'migration_guard_admission_denials_total{code="CDROMVolume"} 1.0' in text
    assert "migration_guard_admission_decision_seconds_count 1.0" in text
    assert "migration_guard_cache_age_seconds 0.0" in text


def test_extensions_are_registered_with_cache_and_settings():
    seen = {}

    def register(app, cache, settings):
        seen["args"] = (cache, settings)

        @app.get("/ext")
        def ext():
            return {"nodes": len(cache.state.nodes())}

    settings = Settings()
    app = create_app(settings, StaticCache(cluster()), extensions=[register])
    assert app.test_client().get("/ext").get_json() == {"nodes": 3}
    assert seen["args"][1] is settings


def test_warnings_are_clipped():
    long = admission_review._clip("x" * 1000)
    assert len(long) == admission_review.MAX_WARNING_CHARS and long.endswith("...")


def test_odd_slashes_get_json_never_an_html_redirect():
    """Found by the bad-input fuzzer: Werkzeug answered `//` in a path with a 308 HTML page."""
    c = client(cluster())
    for path in ("//healthz", "/v1/namespaces/vms/virtualmachines//migration-targets"):
        resp = c.get(path)
        assert resp.status_code == 404 and resp.get_json()["error"] == "NotFound", path
    assert c.get("/healthz/").get_json() == {"status": "ok"}
