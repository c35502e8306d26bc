"""Settings of `migration-guard enforcer`: one flag and one environment variable for each.

Flags win over environment variables (MIGRATION_GUARD_<FLAG>), which win over defaults. The same
names as the webhook's for shared settings (completion timeout per GiB, progress timeout), so a Helm
chart sets them once. docs/enforcer.md lists every setting.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from webhook.errors import InputError
from webhook.rules.model import TimeoutSettings
from webhook.settings import ENV_PREFIX, parse_duration

HARVESTER_PROMETHEUS = "http://rancher-monitoring-prometheus.cattle-monitoring-system.svc:9090"


@dataclass(frozen=True)
class EnforcerSettings:
    """Everything the enforcer reads at start; immutable so threads can share it."""

    kubeconfig: str | None = None
    completion_timeout_per_gib: int = 800
    progress_timeout_seconds: int = 150
    check_interval_seconds: float = 10.0
    prometheus_url: str = HARVESTER_PROMETHEUS
    virt_handler_urls: tuple[str, ...] = ()
    progress_timeout_http_seconds: float = 5.0
    lease_name: str = "migration-guard-enforcer"
    lease_namespace: str = "migration-guard"
    lease_duration_seconds: int = 15
    identity: str = ""
    dry_run: bool = False
    bind: str = "127.0.0.1:9102"
    watch_namespace: str | None = None
    log_level: str = "info"

    def timeout_settings(self) -> TimeoutSettings:
        """The global defaults handed to the rule engine (per-VM annotations override them)."""
        return TimeoutSettings(
            completion_timeout_per_gib=self.completion_timeout_per_gib,
            progress_timeout_seconds=self.progress_timeout_seconds,
        )


# (attribute, flag, help). The environment variable is ENV_PREFIX + FLAG_IN_CAPITALS.
_SPECS: list[tuple[str, str, str]] = [
    ("kubeconfig", "--kubeconfig", "kubeconfig file; default: in-cluster config, else KUBECONFIG"),
    (
        "completion_timeout_per_gib",
        "--completion-timeout-per-gib",
        "seconds allowed per GiB of migrated data (default 800)",
    ),
    (
        "progress_timeout_seconds",
        "--progress-timeout",
        "seconds without data remaining going down before an abort (default 150)",
    ),
    (
        "check_interval_seconds",
        "--check-interval",
        "how often migrations are checked (default 10s)",
    ),
    (
        "prometheus_url",
        "--prometheus-url",
        f"Prometheus to query for progress ('' = none; default {HARVESTER_PROMETHEUS})",
    ),
    (
        "virt_handler_urls",
        "--virt-handler-urls",
        "comma-separated virt-handler metrics URLs to scrape instead of Prometheus",
    ),
    (
        "progress_timeout_http_seconds",
        "--progress-http-timeout",
        "HTTP timeout of one progress query (default 5s)",
    ),
    (
        "lease_name",
        "--lease-name",
        "name of the coordination.k8s.io Lease (default migration-guard-enforcer)",
    ),
    ("lease_namespace", "--lease-namespace", "namespace of the Lease (default migration-guard)"),
    (
        "lease_duration_seconds",
        "--lease-duration",
        "seconds a leader's Lease is valid without renewal (default 15)",
    ),
    (
        "identity",
        "--identity",
        "this replica's name in the Lease (default: POD_NAME or hostname-pid)",
    ),
    ("dry_run", "--dry-run", "true: only log and count what would be aborted (default false)"),
    ("bind", "--bind", "host:port for /metrics, /healthz, /readyz (default 127.0.0.1:9102)"),
    ("watch_namespace", "--watch-namespace", "watch one namespace only (default: all)"),
    ("log_level", "--log-level", "debug, info, warning or error (default info)"),
]
_INTS = {"completion_timeout_per_gib", "progress_timeout_seconds", "lease_duration_seconds"}
_DURATIONS = {"check_interval_seconds", "progress_timeout_http_seconds"}
_BOOLS = {"dry_run"}


def env_name(flag: str) -> str:
    """--lease-name -> MIGRATION_GUARD_LEASE_NAME."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def settings_help() -> list[tuple[str, str, str]]:
    """(flag, env var, help) for every setting; used by docs and --help."""
    return [(flag, env_name(flag), text) for _, flag, text in _SPECS]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def build_parser(prog: str = "migration-guard enforcer") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Abort live migrations that overrun their completion or progress timeout.",
        epilog="Each flag can also be set with the environment variable shown in brackets.",
    )
    for attr, flag, text in _SPECS:
        if attr in _BOOLS:
            parser.add_argument(
                flag,
                dest=attr,
                nargs="?",
                const="true",
                default=None,
                help=f"{text} [{env_name(flag)}]",
            )
        else:
            parser.add_argument(flag, dest=attr, default=None, help=f"{text} [{env_name(flag)}]")
    return parser


def _convert(attr: str, flag: str, raw: str) -> object:
    if attr in _INTS:
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"{flag}: {raw!r} is not a whole number") from None
        if value <= 0:
            raise InputError(f"{flag}: must be greater than zero, got {raw!r}")
        return value
    if attr in _DURATIONS:
        return parse_duration(raw, flag)
    if attr in _BOOLS:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise InputError(f"{flag}: must be true or false, got {raw!r}")
    if attr == "virt_handler_urls":
        urls = tuple(u.strip() for u in raw.split(",") if u.strip())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise InputError(f"{flag}: {url!r} is not an http(s) URL")
        return urls
    if attr == "prometheus_url" and raw and not raw.startswith(("http://", "https://")):
        raise InputError(f"{flag}: {raw!r} is not an http(s) URL")
    if attr == "log_level" and raw.lower() not in ("debug", "info", "warning", "error"):
        raise InputError(f"{flag}: must be debug, info, warning or error, got {raw!r}")
    if attr == "bind":
        host, sep, port = raw.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InputError(f"{flag}: {raw!r} is not host:port")
    if attr == "watch_namespace":
        return raw or None
    return raw


def default_identity(env: Mapping[str, str]) -> str:
    """POD_NAME in a cluster (unique per replica), else hostname-pid."""
    return env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> EnforcerSettings:
    """Settings from flags, then environment, then defaults; InputError naming what is wrong."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(list(argv))
    values: dict[str, object] = {}
    for attr, flag, _ in _SPECS:
        raw = getattr(args, attr)
        if raw is None:
            raw = env.get(env_name(flag))
        if raw is None and attr == "kubeconfig":
            raw = env.get("KUBECONFIG")
        if raw is None:
            continue
        values[attr] = _convert(attr, flag, raw)
    if not values.get("identity"):
        values["identity"] = default_identity(env)
    return EnforcerSettings(**values)  # type: ignore[arg-type]
