"""Progress sources and enforcer settings: parsing, real HTTP on loopback, clear errors."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhook.enforcer.settings import HARVESTER_PROMETHEUS, parse_settings
from webhook.errors import InputError
from webhook.progress import (
    ProgressUnavailable,
    PrometheusSource,
    ScrapeSource,
    parse_metrics_text,
    parse_query_response,
)

TEXT = """# HELP kubevirt_vmi_migration_data_remaining_bytes The remaining guest OS data to be migrated.
# TYPE kubevirt_vmi_migration_data_remaining_bytes gauge
kubevirt_vmi_migration_data_remaining_bytes{name="vm1",namespace="ns",node="n1"} 1.5e+09
kubevirt_vmi_migration_data_remaining_bytes{name="vm2",namespace="ns",node="n1"} 42
# TYPE kubevirt_vmi_migration_data_processed_bytes gauge
kubevirt_vmi_migration_data_processed_bytes{name="vm1",namespace="ns",node="n1"} 7
"""


def test_parse_metrics_text() -> None:
    assert parse_metrics_text(TEXT) == {("ns", "vm1"): 1500000000, ("ns", "vm2"): 42}
    with pytest.raises(ProgressUnavailable, match="not Prometheus text"):
        parse_metrics_text("this is { not metrics")


def test_parse_query_response_keeps_lowest_per_vmi() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"namespace": "ns", "name": "a"}, "value": [1, "300"]},
                {"metric": {"namespace": "ns", "name": "a", "job": "x"}, "value": [1, "200"]},
                {"metric": {"name": "nonamespace"}, "value": [1, "5"]},
            ],
        },
    }
    assert parse_query_response(json.dumps(body).encode()) == {("ns", "a"): 200}
    with pytest.raises(ProgressUnavailable, match="not JSON"):
        parse_query_response(b"<html>")
    err = {"status": "error", "error": "parse error"}
    with pytest.raises(ProgressUnavailable, match="parse error"):
        parse_query_response(json.dumps(err).encode())


class _Server:
    """A loopback HTTP server answering every GET with a fixed body and status."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        outer = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_prometheus_source_over_http() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"namespace": "ns", "name": "vm1"}, "value": [1, "1024"]}],
        },
    }
    server = _Server(json.dumps(body).encode())
    try:
        assert PrometheusSource(server.url + "/").fetch() == {("ns", "vm1"): 1024}
        assert server.paths[0].startswith(
            "/api/v1/query?query=kubevirt_vmi_migration_data_remaining"
        )
    finally:
        server.close()


def test_sources_report_unreachable_and_http_errors() -> None:
    broken = _Server(b"oops", status=500)
    try:
        with pytest.raises(ProgressUnavailable, match="HTTP 500"):
            PrometheusSource(broken.url).fetch()
    finally:
        broken.close()
    with pytest.raises(ProgressUnavailable, match=r"127\.0\.0\.1:9"):
        PrometheusSource("http://127.0.0.1:9", timeout=1).fetch()


def test_scrape_source_up_when_any_handler_answers() -> None:
    server = _Server(TEXT.encode())
    try:
        source = ScrapeSource([server.url + "/metrics", "http://127.0.0.1:9/metrics"], timeout=1)
        assert source.fetch()[("ns", "vm2")] == 42
        with pytest.raises(ProgressUnavailable):
            ScrapeSource(["http://127.0.0.1:9/metrics"], timeout=1).fetch()
    finally:
        server.close()


def test_settings_defaults_env_and_flags() -> None:
    s = parse_settings([], env={})
    assert s.completion_timeout_per_gib == 800 and s.progress_timeout_seconds == 150
    assert s.prometheus_url == HARVESTER_PROMETHEUS and not s.dry_run and s.identity
    env = {"MIGRATION_GUARD_PROGRESS_TIMEOUT": "4", "MIGRATION_GUARD_DRY_RUN": "true"}
    s = parse_settings(["--check-interval", "500ms", "--identity", "a"], env=env)
    assert s.progress_timeout_seconds == 4 and s.dry_run and s.check_interval_seconds == 0.5
    assert s.identity == "a"
    assert parse_settings(["--dry-run"], env={}).dry_run
    assert parse_settings(["--dry-run=false"], env={}).dry_run is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--completion-timeout-per-gib", "0"], "greater than zero"),
        (["--progress-timeout", "soon"], "not a whole number"),
        (["--check-interval", "fast"], "not a duration"),
        (["--prometheus-url", "prom:9090"], "not an http"),
        (["--dry-run", "maybe"], "true or false"),
        (["--bind", "9102"], "not host:port"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_settings_errors_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_settings(argv, env={})
