"""What a request's connection tells beyond WSGI: its raw headers and its TLS client certificate.

WSGI joins repeated headers into one comma-separated value, which corrupts front-proxy groups (an
LDAP DN such as `CN=Domain Users,DC=ad` has commas). gunicorn's `pre_request` hook sees the raw
list; the gthread worker runs it in the request's own thread right before the app, so the list
is kept in a thread-local until `post_request` (webhook.admission.serve installs both hooks).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Set on every SSLContext that requests client certificates (webhook.admission.certs): the PEM
# of the client CA it trusts, so a request can tell which CA verified its connection.
CLIENT_CA_ATTR = "migration_guard_client_ca"

_local = threading.local()


def remember_headers(headers: Iterable[tuple[str, str]]) -> None:
    _local.headers = list(headers)


def forget_headers() -> None:
    _local.headers = None


def raw_headers() -> list[tuple[str, str]] | None:
    """This request's headers as received, repeats kept; None outside gunicorn."""
    return getattr(_local, "headers", None)


@dataclass(frozen=True)
class PeerCertificate:
    """A client certificate the TLS handshake verified."""

    common_name: str | None
    client_ca: str | None  # PEM of the client CA the connection's context trusted


def peer_certificate(environ: Mapping[str, Any]) -> PeerCertificate | None:
    """The verified client certificate of the request's connection, or None (none sent, or not
    served by gunicorn over TLS)."""
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        cert = getpeercert()
    except (OSError, ValueError):
        return None
    if not cert:  # {} when the context did not verify client certificates
        return None
    names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    ca = getattr(getattr(sock, "context", None), CLIENT_CA_ATTR, None)
    return PeerCertificate(names[0] if names else None, ca)
