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

from webhook import flags
from webhook.flags import LOG_LEVELS, Flag, env_name
from webhook.rules.model import TimeoutSettings

__all__ = ["EnforcerSettings", "build_parser", "env_name", "parse_settings", "settings_help"]

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


FLAGS: list[Flag] = [
    Flag(
        "kubeconfig", "--kubeconfig", "kubeconfig file; default: in-cluster config, else KUBECONFIG"
    ),
    Flag(
        "completion_timeout_per_gib",
        "--completion-timeout-per-gib",
        "seconds allowed per GiB of migrated data (default 800)",
        "int",
    ),
    Flag(
        "progress_timeout_seconds",
        "--progress-timeout",
        "seconds without data remaining going down before an abort (default 150)",
        "int",
    ),
    Flag(
        "check_interval_seconds",
        "--check-interval",
        "how often migrations are checked (default 10s)",
        "duration",
    ),
    Flag(
        "prometheus_url",
        "--prometheus-url",
        f"Prometheus to query for progress ('' = none; default {HARVESTER_PROMETHEUS})",
        "url",
    ),
    Flag(
        "virt_handler_urls",
        "--virt-handler-urls",
        "comma-separated virt-handler metrics URLs to scrape instead of Prometheus",
        "urls",
    ),
    Flag(
        "progress_timeout_http_seconds",
        "--progress-http-timeout",
        "HTTP timeout of one progress query (default 5s)",
        "duration",
    ),
    Flag(
        "lease_name",
        "--lease-name",
        "name of the coordination.k8s.io Lease (default migration-guard-enforcer)",
    ),
    Flag(
        "lease_namespace", "--lease-namespace", "namespace of the Lease (default migration-guard)"
    ),
    Flag(
        "lease_duration_seconds",
        "--lease-duration",
        "seconds a leader's Lease is valid without renewal (default 15)",
        "int",
    ),
    Flag(
        "identity",
        "--identity",
        "this replica's name in the Lease (default: POD_NAME or hostname-pid)",
    ),
    Flag(
        "dry_run",
        "--dry-run",
        "true: only log and count what would be aborted (default false)",
        "bool",
    ),
    Flag(
        "bind",
        "--bind",
        "host:port for /metrics, /healthz, /readyz (default 127.0.0.1:9102)",
        "hostport",
    ),
    Flag(
        "watch_namespace",
        "--watch-namespace",
        "watch one namespace only (default: all)",
        "optional",
    ),
    Flag(
        "log_level",
        "--log-level",
        "debug, info, warning or error (default info)",
        "choice",
        LOG_LEVELS,
    ),
]


def settings_help() -> list[tuple[str, str, str]]:
    """(flag, env var, help) for every setting; used by docs and --help."""
    return flags.settings_help(FLAGS)


def build_parser(prog: str = "migration-guard enforcer") -> argparse.ArgumentParser:
    return flags.build_parser(
        prog, "Abort live migrations that overrun their completion or progress timeout.", FLAGS
    )


def default_identity(env: Mapping[str, str]) -> str:
    """POD_NAME in a cluster (unique per replica), else hostname-pid."""
    return env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> EnforcerSettings:
    """Settings from flags, then environment, then defaults; InputError naming what is wrong."""
    env = os.environ if env is None else env
    values = flags.parse(build_parser(), FLAGS, argv, env)
    if not values.get("identity"):
        values["identity"] = default_identity(env)
    return EnforcerSettings(**values)  # type: ignore[arg-type]
