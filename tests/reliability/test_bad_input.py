"""Bad input: /validate and every extension endpoint fuzzed with hypothesis and schemathesis.

Two ways in, said per test:
- volume: the real Flask app (webhook routes + extension blueprint) through Flask's test client.
  The webhook decides from a fixed ClusterState; the extension authenticates and authorizes every
  call against the real kube-apiserver (TokenReview, SubjectAccessReview) with real tokens.
- the wire: a bounded number of cases against the real `migration-guard webhook` process over TLS
  (gunicorn worker, TLS, body limit), then the worker must still answer /healthz and decide right.

What must hold for every input: never a 5xx, a JSON answer, and every rejection names the problem.
"""

from __future__ import annotations

import copy
import json
import urllib.parse

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from extension.api import ExtensionContext, register
from extension.auth import Authenticator
from tests import webhook_objects as o
from tests.harness.controlplane import ControlPlane
from tests.integration.test_extension import grant
from tests.reliability.support import FIGURES, https, post_json
from tests.webhook_process import WebhookProcess, running_webhook
from webhook.admission.server import create_app
from webhook.admission.settings import Settings
from webhook.cluster.cache import StaticCache
from webhook.cluster.kubeapi import Kube
from webhook.cluster.state import ClusterState

pytestmark = pytest.mark.controlplane

LIMIT = 64 * 1024  # --max-body-bytes of these tests
NODES = ("fz-node-1", "fz-node-2", "fz-node-3")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---- strategies ---------------------------------------------------------------------------------

ODD_TEXT = st.text(
    st.characters(codec="utf-8", categories=None, exclude_categories=()), max_size=40
) | st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e",  # right-to-left override
        "\ufeff",  # byte order mark
        "e\u0301",  # combining accent
        "😀" * 20,
        "a" * 300,
        "../../etc",
        "%2F%00",
        "${jndi:x}",
        "\ud800",  # lone surrogate (escaped by json.dumps)
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=15,
)


def state(ns: str) -> ClusterState:
    return ClusterState.from_objects(
        [
            o.node(NODES[0]),
            o.node(NODES[1]),
            o.node(NODES[2], cordoned=True),
            o.nad(ns),
            o.vm(ns, "clean"),
            o.vmi(ns, "clean", NODES[0]),
            o.launcher_pod(ns, "clean", NODES[0]),
            o.vm(ns, "messy", cdrom=True, pci=True),
            o.vmi(ns, "messy", NODES[0], cdrom=True, pci=True),
            o.launcher_pod(ns, "messy", NODES[0]),
        ]
    )


def paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path inside `doc` (for mutations)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, (*prefix, i))
    return out


def mutate(doc: dict, path: tuple, value: object, delete: bool) -> object:
    """A copy of `doc` with the thing at `path` deleted or replaced by `value`."""
    if not path:
        return value
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def base_review(ns: str, vmi: str = "clean", target: str | None = NODES[1]) -> dict:
    return o.review(o.vmim(ns, "fz-mig", vmi, target), uid="fuzz-uid")


# ---- answers ------------------------------------------------------------------------------------


def check_validate_answer(status: int, body: dict, sent: object) -> None:
    """The contract for any input to /validate: no 5xx; 4xx names the problem; 200 is a review."""
    assert status < 500, (status, body, sent)
    assert isinstance(body, dict), body
    if status != 200:
        assert body.get("error") and body.get("message"), body
        assert "internal error" not in body["message"], body
        return
    assert body["kind"] == "AdmissionReview", body
    response = body["response"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        st_ = response["status"]
        assert st_["code"] == 403 and st_["message"], st_
        causes = st_["details"]["causes"]
        assert causes and all(c["reason"] and c["message"] for c in causes), causes


# ---- volume: the Flask app through its test client ----------------------------------------------


@pytest.fixture(scope="module")
def fuzz_ns(controlplane: ControlPlane) -> str:
    """A namespace where alice may use the extension; bob may not."""
    name = "fz-reliability"
    controlplane.kubectl("create", "namespace", name)
    grant(controlplane, name, "alice")
    return name


@pytest.fixture(scope="module")
def app(controlplane: ControlPlane, fuzz_ns: str):
    """The webhook app with the extension; the extension talks to the real API server."""
    cache = StaticCache(state(fuzz_ns))
    flask_app = create_app(Settings(max_body_bytes=LIMIT), cache)
    kube = Kube(controlplane.api_client())
    register(flask_app, ExtensionContext(cache=cache, kube=kube, authenticator=Authenticator(kube)))
    return flask_app


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def _post_validate(client, raw: bytes) -> tuple[int, dict]:
    resp = client.post("/validate", data=raw, content_type="application/json")
    FIGURES.add("inputs tried (Flask test client)")
    return resp.status_code, resp.get_json(silent=True)


@FUZZ
@given(doc=JSON)
def test_validate_any_json_value(client, doc) -> None:
    """Volume (test client): arbitrary JSON documents."""
    status, body = _post_validate(client, json.dumps(doc).encode())
    check_validate_answer(status, body, doc)
    if status == 400:
        assert body["error"] == "BadRequest"


@FUZZ
@given(data=st.data(), vmi=st.sampled_from(["clean", "messy", "ghost"]))
def test_validate_review_with_one_field_broken(client, fuzz_ns, data, vmi) -> None:
    """Volume (test client): a real review with one field removed or given a wrong type/value;
    a 400 names the broken field, a decision still lists its problems."""
    review = base_review(fuzz_ns, vmi)
    path = data.draw(st.sampled_from(paths(review)), label="path")
    delete = bool(path) and data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(JSON, label="value")
    sent = mutate(review, path, value, delete)
    status, body = _post_validate(client, json.dumps(sent).encode())
    check_validate_answer(status, body, sent)
    if status == 400:
        message = body["message"]
        named = [str(p) for p in path if isinstance(p, str)]
        assert not named or any(p in message for p in named) or "JSON object" in message, (
            path,
            message,
        )
    elif body["response"]["uid"] != sent["request"]["uid"]:  # the uid sent, mutated or not
        pytest.fail(f"uid not echoed: {body}")


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(max_size=64))
def test_validate_truncated_and_binary_bodies(client, fuzz_ns, cut, junk) -> None:
    """Volume (test client): a valid review cut short, or followed/replaced by random bytes."""
    raw = json.dumps(base_review(fuzz_ns)).encode()
    for body in (raw[: cut % len(raw)], junk, raw[: cut % len(raw)] + junk):
        status, answer = _post_validate(client, body)
        check_validate_answer(status, answer, body)
        if status == 400 and body != raw:
            assert "not JSON" in answer["message"] or "AdmissionReview" in answer["message"]


@pytest.mark.parametrize("depth", [10, 500, 5_000, 50_000])
def test_validate_deep_nesting(client, fuzz_ns, depth) -> None:
    """Volume (test client): nesting at the top and inside the reviewed object."""
    top = b"[" * depth + b"]" * depth
    inner = json.dumps(base_review(fuzz_ns)).replace(
        '"spec"', '"deep": ' + "[" * depth + "]" * depth + ', "spec"', 1
    )
    for raw in (top, inner.encode()):
        status, body = _post_validate(client, raw)
        check_validate_answer(status, body, raw[:80])
        if status == 400 and depth >= 5_000:
            assert "nested" in body["message"], body


def test_validate_body_over_the_limit_is_413_naming_the_limit(client, fuzz_ns) -> None:
    """Volume (test client): the configured limit, not more, not less."""
    review = base_review(fuzz_ns)
    review["request"]["object"]["metadata"]["annotations"] = {"pad": ""}
    size = len(json.dumps(review).encode())
    review["request"]["object"]["metadata"]["annotations"]["pad"] = "x" * (LIMIT - size)
    exact = json.dumps(review).encode()
    assert len(exact) == LIMIT
    status, body = _post_validate(client, exact)
    assert status == 200 and body["response"]["allowed"] is True, body
    status, body = _post_validate(client, exact + b" ")
    assert status == 413, body
    assert body["message"] == f"the request body is larger than {LIMIT} bytes"


# ---- the extension through the test client, authenticated against the real API server ---------


def _migrate(controlplane, client, ns: str, raw: bytes, name: str = "messy"):
    resp = client.post(
        f"/v1/harvester/kubevirt.io.virtualmachines/{ns}/{name}?action=migrate",
        data=raw,
        headers=_auth_headers(controlplane, "alice"),
        content_type="application/json",
    )
    FIGURES.add("inputs tried (Flask test client)")
    return resp.status_code, resp.get_json(silent=True)


@pytest.mark.parametrize("depth", [10, 5_000, 30_000])
def test_extension_migrate_deep_nesting(controlplane, client, fuzz_ns, depth) -> None:
    """Volume (test client): a migrate body nested deeply is a 400 that says so."""
    raw = b'{"nodeName": ' + b"[" * depth + b"]" * depth + b"}"
    status, body = _migrate(controlplane, client, fuzz_ns, raw)
    assert status == 400, body
    assert "nested" in body["error"] or "nodeName must be a string" in body["error"], body


def test_extension_body_over_its_limit_is_413(controlplane, client, fuzz_ns) -> None:
    """Volume (test client): the extension's own body limit (64 KiB) is a 413 naming it."""
    padded = json.dumps({"nodeName": NODES[1], "pad": "x" * (64 * 1024)}).encode()
    status, body = _migrate(controlplane, client, fuzz_ns, padded)
    assert status == 413, body
    assert "larger than 65536 bytes" in body["error"], body


@pytest.mark.parametrize("namespace", ["..", "a%3Fb", "UPPER", "a" * 64, "%00"])
def test_extension_refuses_names_that_are_not_kubernetes_names(
    controlplane, client, namespace
) -> None:
    """Volume (test client): even an admin gets a 400 naming the bad namespace, and a name like
    '..' never reaches an API path (it used to list every VM of the cluster)."""
    headers = _auth_headers(controlplane, "admin")
    for name in ("..", "vm1"):
        resp = client.get(
            f"/v1/namespaces/{namespace}/virtualmachines/{name}/migration-targets", headers=headers
        )
        FIGURES.add("inputs tried (Flask test client)")
        assert resp.status_code == 400, resp.get_json()
        assert "is not a valid" in resp.get_json()["error"]


ENDPOINTS = ("action", "targets", "migration", "openapi")


def _auth_headers(controlplane: ControlPlane, who: str) -> dict:
    tokens = {
        "none": None,
        "empty": "",
        "garbage": "Bearer not-a-token",
        "basic": "Basic YWxpY2U6cHc=",
        "bare": "Bearer",
        "alice": f"Bearer {controlplane.token('alice')}",
        "bob": f"Bearer {controlplane.token('bob')}",
        "admin": f"Bearer {controlplane.token('admin')}",
    }
    header = tokens[who]
    return {} if header is None else {"Authorization": header}


@FUZZ
@given(
    who=st.sampled_from(["none", "empty", "garbage", "basic", "bare", "alice", "bob", "admin"]),
    endpoint=st.sampled_from(ENDPOINTS),
    namespace=st.sampled_from(["<fuzz>", "default", "kube-system"]) | ODD_TEXT,
    name=st.sampled_from(["messy", "clean", "nope"]) | ODD_TEXT,
    action=st.sampled_from(["findMigratableNodes", "migrate", "abortMigration", ""]) | ODD_TEXT,
    body=JSON.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200),
    method=st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE"]),
)
def test_extension_endpoints_any_input(
    controlplane, client, fuzz_ns, who, endpoint, namespace, name, action, body, method
) -> None:
    """Volume (test client): every extension endpoint with odd names, actions, bodies, methods and
    credentials; the extension's TokenReviews and SubjectAccessReviews go to the real API server.
    """
    if namespace == "<fuzz>":
        namespace = fuzz_ns

    def q(text: str, safe: str = "/") -> str:  # lone surrogates become invalid UTF-8 bytes
        return urllib.parse.quote(text, safe=safe, errors="surrogatepass")

    ns, nm = q(namespace, safe=""), q(name, safe="")
    url = {
        "action": f"/v1/harvester/kubevirt.io.virtualmachines/{ns}/{nm}?action={q(action)}",
        "targets": f"/v1/namespaces/{ns}/virtualmachines/{nm}/migration-targets",
        "migration": f"/v1/namespaces/{ns}/virtualmachines/{nm}/migration",
        "openapi": "/openapi.json",
    }[endpoint]
    if who == "admin" and namespace == fuzz_ns and name == "clean" and action == "migrate":
        name = "messy"  # never start a real migration from the fuzzer
    resp = client.open(
        url,
        method=method,
        data=body,
        headers=_auth_headers(controlplane, who),
        content_type="application/json",
    )
    FIGURES.add("inputs tried (Flask test client)")
    answer = resp.get_json(silent=True)
    assert resp.status_code < 500, (resp.status_code, answer, url)
    assert isinstance(answer, dict), resp.data[:200]
    if resp.status_code >= 400:
        message = answer.get("error") if isinstance(answer.get("error"), str) else None
        message = message or answer.get("message")
        assert message, answer
        assert "internal error" not in message
    if resp.status_code == 401:
        assert who in ("none", "empty", "garbage", "basic", "bare"), answer
    if who in ("none", "empty", "garbage", "basic", "bare") and endpoint != "openapi":
        assert resp.status_code in (401, 404, 405), (resp.status_code, answer)
    if resp.status_code == 200 and endpoint != "openapi":
        # only what the caller may read: alice in her namespace, admin anywhere
        assert who in ("alice", "admin"), (who, answer)
        assert who == "admin" or namespace == fuzz_ns, (who, namespace, answer)


# ---- schemathesis against /openapi.json (volume, through the WSGI app) -------------------------


@pytest.fixture(scope="module")
def operations(app) -> list:
    """Every operation of /openapi.json, as schemathesis loads it from the WSGI app."""
    loaded = schemathesis.openapi.from_wsgi("/openapi.json", app)
    ops = [result.ok() for result in loaded.get_all_operations()]
    # the action, the target report, the migration status, the drain plan; the same five as
    # subresources of the aggregated API, and its discovery
    assert len(ops) == 10, ops
    return ops


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_openapi_operations_never_fail_the_server(data, operations, controlplane, fuzz_ns) -> None:
    """Volume (WSGI): schemathesis draws requests for every operation of /openapi.json (its own
    pytest plugin does not load under pytest 9, so its strategies are drawn here); alice's token."""
    case = data.draw(st.sampled_from(operations).flatmap(lambda op: op.as_strategy()))
    if (case.path_parameters or {}).get("namespace") == fuzz_ns:
        case.path_parameters["name"] = "messy"  # never start a real migration
    response = case.call(headers={"Authorization": f"Bearer {controlplane.token('alice')}"})
    FIGURES.add("inputs tried (schemathesis)")
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, response.text
    answer = response.json()
    assert isinstance(answer, dict)
    if response.status_code >= 400:
        assert answer.get("error") or answer.get("message"), answer


# ---- the wire: the real server over TLS, a bounded number of cases ------------------------------


@pytest.fixture(scope="module")
def served(controlplane: ControlPlane, fuzz_ns: str):
    """`migration-guard webhook` (with the extension) over TLS, body limit LIMIT."""
    with running_webhook(controlplane, "--max-body-bytes", str(LIMIT)) as hook:
        yield hook


def _wire(hook: WebhookProcess, path: str, raw: bytes, method: str = "POST", headers=None):
    status, body = https(
        hook.url + path,
        hook.ca_file,
        method,
        raw,
        {"Content-Type": "application/json", **(headers or {})},
    )
    FIGURES.add("inputs tried (TLS, real server)")
    return status, body


WIRE = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@WIRE
@given(
    raw=JSON.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=300)
    | st.integers(1, 2000).map(lambda n: json.dumps(o.review(o.vmim("x", "m", "v"))).encode()[:n])
)
def test_validate_over_tls_any_body(served, raw) -> None:
    """The wire (TLS, real gunicorn worker): bodies of every kind."""
    status, body = _wire(served, "/validate", raw)
    check_validate_answer(status, json.loads(body), raw[:200])


@WIRE
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    namespace=ODD_TEXT,
    name=ODD_TEXT,
    raw=st.binary(max_size=100),
    who=st.sampled_from(["none", "garbage", "bob", "alice"]),
)
def test_extension_over_tls_any_input(
    controlplane, served, endpoint, namespace, name, raw, who
) -> None:
    """The wire (TLS, real gunicorn worker): extension endpoints with odd paths and bodies."""
    q = urllib.parse.quote
    ns = q(namespace, safe="", errors="surrogatepass")
    nm = q(name, safe="", errors="surrogatepass")
    path = {
        "action": f"/v1/harvester/kubevirt.io.virtualmachines/{ns}/{nm}?action=migrate",
        "targets": f"/v1/namespaces/{ns}/virtualmachines/{nm}/migration-targets",
        "migration": f"/v1/namespaces/{ns}/virtualmachines/{nm}/migration",
        "openapi": "/openapi.json",
    }[endpoint]
    method = "GET" if endpoint in ("targets", "migration", "openapi") else "POST"
    status, body = _wire(
        served, path, raw if method == "POST" else None, method, _auth_headers(controlplane, who)
    )
    assert status < 500, (status, body[:300])
    if not body.startswith(b"{"):
        raise AssertionError((status, body[:300], path))
    answer = json.loads(body)
    if status >= 400:
        assert answer.get("error") or answer.get("message"), answer


def test_wire_limits_nesting_and_worker_survival(controlplane, served, fuzz_ns) -> None:
    """The wire: over-limit bodies are 413 naming the limit, deep nesting a 400, a request line
    over gunicorn's limit a 414; afterwards the same worker answers /healthz and decides right."""
    pid_before = served.proc.pid
    status, body = _wire(served, "/validate", b"{" + b" " * LIMIT + b"}")
    assert status == 413 and json.loads(body)["message"].endswith(f"{LIMIT} bytes"), body
    big = json.dumps({"nodeName": "x", "pad": "x" * LIMIT}).encode()
    alice = _auth_headers(controlplane, "alice")
    path = f"/v1/harvester/kubevirt.io.virtualmachines/{fuzz_ns}/messy?action=migrate"
    status, body = _wire(served, path, big, headers=alice)
    assert status == 413 and "larger than 65536 bytes" in json.loads(body)["error"], body
    status, body = _wire(served, "/validate", b"[" * 30_000 + b"]" * 30_000)
    assert status == 400 and "nested too deeply" in json.loads(body)["message"], body
    status, body = _wire(served, "/v1/namespaces/" + "a" * 9000, None, "GET")
    assert status == 414, body[:200]  # gunicorn's own answer (HTML), before the app
    assert b"Request Line is too large" in body, body[:200]
    status, body = served.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert served.proc.poll() is None and served.proc.pid == pid_before
    # still deciding: a VMI that does not exist is named as not running
    review = o.review(o.vmim(fuzz_ns, "after-fuzz", "ghost"), uid="after")
    status, answer = post_json(served.url + "/validate", served.ca_file, review)
    FIGURES.add("inputs tried (TLS, real server)")
    assert status == 200 and answer["response"]["uid"] == "after"
    assert answer["response"]["allowed"] is False
    assert "VMINotRunning" in answer["response"]["status"]["message"]
    assert "Traceback" not in served.log_text()
