"""Progress sources: data remaining per migrating VMI, from Prometheus or from virt-handler.

KubeVirt's virt-handler exports `kubevirt_vmi_migration_data_remaining_bytes` with labels
`namespace` and `name` (the VMI). Harvester's bundled monitoring scrapes it into Prometheus, which is
the default source; scraping virt-handler endpoints directly is the alternative when no Prometheus
runs. Each `fetch()` returns every VMI the source knows in one call (one query per check interval,
not one per migration) or raises `ProgressUnavailable` saying why.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

METRIC = "kubevirt_vmi_migration_data_remaining_bytes"

Key = tuple[str, str]  # (namespace, VMI name)


class ProgressUnavailable(RuntimeError):
    """The source could not be read; the message names the source and the cause."""


class ProgressSource(Protocol):
    """Anything that can report data remaining per VMI."""

    description: str

    def fetch(self) -> dict[Key, int]: ...


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json, text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        raise ProgressUnavailable(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise ProgressUnavailable(f"{url}: {reason}") from None


def _merge(out: dict[Key, int], key: Key, value: float) -> None:
    """Several series for one VMI (source and target handler, duplicate jobs): keep the lowest."""
    if value != value or value < 0:  # NaN or nonsense
        return
    as_int = int(value)
    out[key] = min(out.get(key, as_int), as_int)


class PrometheusSource:
    """Instant query of Prometheus' HTTP API (`GET /api/v1/query`)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.description = f"prometheus {self.base_url}"

    def fetch(self) -> dict[Key, int]:
        query = urllib.parse.urlencode({"query": METRIC})
        url = f"{self.base_url}/api/v1/query?{query}"
        body = _get(url, self.timeout)
        return parse_query_response(body, url)


def parse_query_response(body: bytes, where: str = "prometheus") -> dict[Key, int]:
    """Prometheus query API JSON (vector result) -> {(namespace, name): bytes remaining}."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise ProgressUnavailable(f"{where}: response is not JSON") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error") if isinstance(doc, dict) else None
        raise ProgressUnavailable(f"{where}: query failed: {error or 'no status success'}")
    data = doc.get("data") or {}
    if data.get("resultType") != "vector":
        raise ProgressUnavailable(
            f"{where}: expected a vector result, got {data.get('resultType')}"
        )
    out: dict[Key, int] = {}
    for series in data.get("result") or []:
        labels = series.get("metric") or {}
        namespace, name = labels.get("namespace"), labels.get("name")
        value = series.get("value")
        if not namespace or not name or not isinstance(value, list) or len(value) != 2:
            continue
        try:
            _merge(out, (namespace, name), float(value[1]))
        except (TypeError, ValueError):
            continue
    return out


class ScrapeSource:
    """Reads virt-handler `/metrics` endpoints (Prometheus text format) directly.

    Up when at least one endpoint answers: a VMI whose handler did not answer simply has no sample
    this time, which can only delay a stall verdict, never hasten it.
    """

    def __init__(self, urls: list[str], timeout: float = 5.0) -> None:
        if not urls:
            raise ValueError("ScrapeSource needs at least one URL")
        self.urls = list(urls)
        self.timeout = timeout
        self.description = "virt-handler scrape " + ",".join(self.urls)

    def fetch(self) -> dict[Key, int]:
        out: dict[Key, int] = {}
        errors: list[str] = []
        for url in self.urls:
            try:
                text = _get(url, self.timeout).decode("utf-8", "replace")
                for key, value in parse_metrics_text(text, url).items():
                    _merge(out, key, value)
            except ProgressUnavailable as err:
                errors.append(str(err))
        if len(errors) == len(self.urls):
            raise ProgressUnavailable("; ".join(errors))
        return out


def parse_metrics_text(text: str, where: str = "metrics") -> dict[Key, int]:
    """Prometheus text exposition -> {(namespace, name): bytes remaining}."""
    out: dict[Key, int] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != METRIC:
                    continue
                namespace, name = sample.labels.get("namespace"), sample.labels.get("name")
                if namespace and name:
                    _merge(out, (namespace, name), float(sample.value))
    except (ValueError, TypeError) as err:
        raise ProgressUnavailable(f"{where}: not Prometheus text format: {err}") from None
    return out
