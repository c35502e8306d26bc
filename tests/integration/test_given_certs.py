"""A certificate that is given (as cert-manager mounts it) is served as is and reloaded on change.

The real `migration-guard webhook` process serves files it did not write; when the files are
replaced (a renewal by cert-manager), new TLS connections get the new certificate without a
restart, and the process never touches a webhook configuration.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path

from tests.harness.controlplane import REPO, free_port
from tests.harness.pki import write_pki
from tests.harness.processes import stop_process
from tests.harness.tls import served_certificate


def _served_cert(port: int, ca_file: Path) -> bytes | None:
    """The DER certificate a new connection gets, when it verifies against `ca_file`."""
    try:
        return served_certificate(port, ca_file, timeout=2)[0]
    except (ssl.SSLError, OSError):
        return None


def _wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


def _install(pki: dict[str, Path], cert: Path, key: Path) -> None:
    """Swap both files in by rename, as a projected Secret volume changes them at once."""
    for source, target in ((pki["key"], key), (pki["cert"], cert)):
        staged = target.with_suffix(".new")
        shutil.copy(source, staged)
        os.replace(staged, target)


def test_given_certificate_is_served_and_reloaded_when_its_files_change(controlplane, tmp_path):
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first, second = write_pki(tmp_path / "first"), write_pki(tmp_path / "second")
    mounted = tmp_path / "tls"
    mounted.mkdir()
    cert, key = mounted / "tls.crt", mounted / "tls.key"
    _install(first, cert, key)
    port = free_port()
    log = tmp_path / "webhook.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(REPO / ".venv/bin/migration-guard"),
                "webhook",
                f"--bind=127.0.0.1:{port}",
                f"--kubeconfig={controlplane.kubeconfig}",
                f"--tls-cert-file={cert}",
                f"--tls-key-file={key}",
                "--webhook-config-name=",
                "--cert-check-interval=0.5s",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        served = _wait_for(lambda: _served_cert(port, first["ca"]), 30)
        assert served == ssl.PEM_cert_to_DER_cert(first["cert"].read_text()), log.read_text()
        assert _served_cert(port, second["ca"]) is None

        _install(second, cert, key)
        renewed = _wait_for(lambda: _served_cert(port, second["ca"]), 15)
        assert renewed == ssl.PEM_cert_to_DER_cert(second["cert"].read_text()), log.read_text()
        assert proc.poll() is None  # reloaded in place, not restarted
    finally:
        stop_process(proc)
