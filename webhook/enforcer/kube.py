"""A thin JSON-in, JSON-out call to the Kubernetes API for the enforcer's few writes.

Why not the typed client models: Lease times are MicroTime, and the typed models serialise
datetimes in a form the API server may reject; plain dicts keep what we send exactly as written.
"""

from __future__ import annotations

import json

from kubernetes.client import ApiClient


class KubeError(RuntimeError):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def call(
    api: ApiClient,
    method: str,
    path: str,
    body: dict | list | None = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    timeout: float = 10.0,
) -> dict:
    """`method path` with a JSON body; returns the decoded answer; KubeError on any failure."""
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
    except Exception as err:  # urllib3 connection errors and the like: the server was not reached
        raise KubeError(f"{method} {path}: {type(err).__name__}: {err}") from None
    if not 200 <= response.status < 300:
        raise KubeError(f"{method} {path}: HTTP {response.status} {_reason(data)}", response.status)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        raise KubeError(f"{method} {path}: answer is not JSON") from None


def _reason(data: bytes) -> str:
    """The API server's Status message, else the start of the body."""
    try:
        return json.loads(data).get("message") or ""
    except Exception:
        return data[:200].decode("utf-8", "replace")
