"""/openapi.json is a valid OpenAPI 3 document that describes exactly the blueprint's routes."""

from __future__ import annotations

import re

from kubernetes.client import ApiClient, Configuration
from openapi_spec_validator import validate

from extension.api import ExtensionContext, create_blueprint
from extension.auth import Authenticator
from extension.openapi import build_spec
from webhook.admission.server import create_app
from webhook.admission.settings import Settings
from webhook.cluster.cache import StaticCache
from webhook.cluster.kubeapi import Kube
from webhook.cluster.state import ClusterState


def app():
    configuration = Configuration()
    configuration.host = "https://127.0.0.1:1"  # never called by these tests
    kube = Kube(ApiClient(configuration))
    ctx = ExtensionContext(StaticCache(ClusterState()), kube, Authenticator(kube))
    blueprint = create_blueprint(ctx)
    return create_app(Settings(), StaticCache(ClusterState()), extra_blueprints=[blueprint])


def blueprint_routes(flask_app) -> set[tuple[str, str]]:
    out = set()
    for rule in flask_app.url_map.iter_rules():
        if not rule.endpoint.startswith("extension."):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


def spec_operations(spec: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in spec["paths"].items() for method in item}


def test_spec_is_valid_openapi_3():
    validate(build_spec())


def test_every_route_is_described_and_every_description_is_a_route():
    flask_app = app()
    routes = blueprint_routes(flask_app)
    assert len(routes) == 11
    assert routes == spec_operations(build_spec())


def test_path_parameters_match_the_route_variables():
    for path, item in build_spec()["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_every_authenticated_operation_documents_401_403_and_404():
    for path, item in build_spec()["paths"].items():
        for operation in item.values():
            if operation.get("security") == []:
                continue
            assert {"401", "403", "404"} <= set(operation["responses"]), path


def test_openapi_is_served_without_a_token():
    response = app().test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == build_spec()


def test_unknown_action_is_refused_only_after_authentication():
    response = app().test_client().post("/v1/harvester/kubevirt.io.virtualmachines/ns/vm?action=x")
    assert response.status_code == 401
    assert "missing Authorization header" in response.get_json()["error"]


def test_discovery_is_served_without_a_token_or_a_redirect():
    """kube-apiserver's availability check and discovery read it; a 3xx would fail both."""
    from extension import aggregated

    client = app().test_client()
    for path in (aggregated.PREFIX, aggregated.PREFIX + "/"):
        response = client.get(path)
        assert response.status_code == 200, path
        listing = response.get_json()
        assert listing["kind"] == "APIResourceList"
        assert listing["groupVersion"] == aggregated.GROUP_VERSION
        assert len(listing["resources"]) == len(aggregated.SUBRESOURCES)
