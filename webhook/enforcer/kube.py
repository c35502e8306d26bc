"""A thin JSON-in, JSON-out call to the Kubernetes API for the enforcer's few writes.

Why not the typed client models: Lease times are MicroTime, and the typed models serialise
datetimes in a form the API server may reject; plain dicts keep what we send exactly as written.
"""

from __future__ import annotations

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException


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
    try:
        return api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
    except ApiException as err:
        raise KubeError(f"{method} {path}: HTTP {err.status} {_reason(err)}", err.status) from None
    except Exception as err:  # urllib3 connection errors and the like: the server was not reached
        raise KubeError(f"{method} {path}: {type(err).__name__}: {err}") from None


def _reason(err: ApiException) -> str:
    import json

    try:
        return json.loads(err.body).get("message") or err.reason
    except Exception:
        return str(err.reason)
