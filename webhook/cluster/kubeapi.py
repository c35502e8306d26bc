"""JSON in, JSON out calls to the Kubernetes API, shared by the extension, the enforcer and tests.

Custom resources, reviews and Leases are plain dicts everywhere in migration-guard, so this uses
`ApiClient.param_serialize` and `call_api` instead of the generated model classes (which would
reshape the objects, and serialise Lease MicroTimes in a form the API server may reject). Every
failure is a `KubeError` carrying the HTTP status and the API server's `Status`, so callers can tell
"not found" from "conflict" or relay an admission webhook's causes.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient

REQUEST_TIMEOUT_S = 10.0
Query = list[tuple[str, str]]


class KubeError(Exception):
    """A failed API call: `status` is the HTTP code (0 when the server was not reached)."""

    def __init__(self, status: int, message: str, body: dict | None = None, call: str = "") -> None:
        super().__init__(f"{call}: {message}" if call else message)
        self.status = status
        self.message = message
        self.body = body or {}

    def causes(self) -> list[dict]:
        """`details.causes` of the API server's Status as {code, message, field}."""
        details = self.body.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        return [
            {
                "code": cause.get("reason") or "Denied",
                "message": cause.get("message") or "",
                "field": cause.get("field"),
            }
            for cause in causes or []
            if isinstance(cause, dict)
        ]


def call(
    api: ApiClient,
    method: str,
    path: str,
    body: dict | list | None = None,
    query: Query | None = None,
    content_type: str = "application/json",
    timeout: float = REQUEST_TIMEOUT_S,
) -> dict:
    """`method path` with a JSON body; the decoded answer, or KubeError on any failure."""
    where = f"{method} {path}"
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    try:
        verb, url, headers, payload, _ = api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(
            verb, url, header_params=headers, body=payload, _request_timeout=timeout
        )
        data = response.read()
    except Exception as err:  # connection refused, TLS, timeout: the API server was not reached
        raise KubeError(
            0, f"Kubernetes API unreachable: {type(err).__name__}: {err}", call=where
        ) from None
    if not 200 <= response.status < 300:
        raise _error_from(response.status, response.reason, data, where)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        raise KubeError(502, "the API answered with invalid JSON", call=where) from None


def _error_from(status: int, reason: str | None, data: bytes | None, where: str) -> KubeError:
    body: Any = None
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    else:
        message = f"HTTP {status} {reason or ''}".strip()
    return KubeError(int(status or 0), message, body if isinstance(body, dict) else None, where)


class Kube:
    """`call` bound to one ApiClient (the credentials it carries) and one timeout."""

    def __init__(self, api_client: ApiClient, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.api_client = api_client
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: dict | None = None, query: Query | None = None
    ) -> dict:
        return call(self.api_client, method, path, body, query, timeout=self.timeout)

    def get(self, path: str, query: Query | None = None) -> dict:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str) -> dict | None:
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body=body)

    def delete(self, path: str, body: dict | None = None) -> dict:
        return self.request("DELETE", path, body=body)


def kubevirt_path(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/kubevirt.io/v1/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
