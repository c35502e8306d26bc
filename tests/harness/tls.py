"""What a TLS server on loopback presents to a new connection that trusts `ca_file`."""

from __future__ import annotations

import socket
import ssl


def served_certificate(port: int, ca_file: str, timeout: float = 5) -> tuple[bytes, str]:
    """(DER certificate, TLS version) of a verified handshake; ssl.SSLError/OSError otherwise."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.getpeercert(binary_form=True), tls.version()
