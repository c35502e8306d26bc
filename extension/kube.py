"""The extension's few raw calls to the Kubernetes API, as JSON in and JSON out.

Custom resources and review objects are plain dicts everywhere else in migration-guard, so this
uses `ApiClient.param_serialize` and `call_api` instead of the generated model classes. Errors come back as `KubeError`
carrying the HTTP status and the API server's `Status` object, so callers can relay an admission
webhook's causes or tell "not found" from "forbidden".
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient

REQUEST_TIMEOUT_S = 10.0


class KubeError(Exception):
    """A failed API call: `status` is the HTTP code (0 when the server was not reached)."""

    def __init__(self, status: int, message: str, body: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body or {}

    def causes(self) -> list[dict]:
        """`details.causes` of the API server's Status as {code, message, field}."""
        details = self.body.get("details") if isinstance(self.body, dict) else None
        causes = details.get("causes") if isinstance(details, dict) else None
        out = []
        for cause in causes or []:
            if isinstance(cause, dict):
                out.append(
                    {
                        "code": cause.get("reason") or "Denied",
                        "message": cause.get("message") or "",
                        "field": cause.get("field"),
                    }
                )
        return out


class Kube:
    """JSON requests against the API server with the credentials of `api_client`."""

    def __init__(self, api_client: ApiClient, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.api_client = api_client
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> dict:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        try:
            verb, url, headers, payload, _ = self.api_client.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(
                verb, url, header_params=headers, body=payload, _request_timeout=self.timeout
            )
            data = response.read()
        except Exception as exc:  # connection refused, TLS, timeout: the API is unreachable
            raise KubeError(0, f"Kubernetes API unreachable: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status < 300:
            raise _error_from(response.status, response.reason, data)
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise KubeError(502, f"{method} {path}: the API answered with invalid JSON") from None

    def get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict:
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


def _error_from(status: int, reason: str | None, data: bytes | None) -> KubeError:
    body: Any = None
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    else:
        message = f"{status} {reason or ''}".strip()
    return KubeError(int(status or 0), message, body if isinstance(body, dict) else None)


def kubevirt_path(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/kubevirt.io/v1/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
