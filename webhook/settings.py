"""Settings of `migration-guard webhook`: one flag and one environment variable for each.

Flags win over environment variables, which win over defaults. Every setting is listed, with its
meaning, in docs/webhook.md; `migration-guard webhook --help` prints the same text.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from webhook.errors import InputError

ENV_PREFIX = "MIGRATION_GUARD_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str | float | int, name: str = "duration") -> float:
    """Seconds from '90', '90s', '15m', '12h', '365d' (why: certificate lifetimes read better)."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InputError(f"{name}: {text!r} is not a duration (examples: 30s, 15m, 12h, 365d)")
        value = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if value <= 0:
        raise InputError(f"{name}: must be greater than zero, got {text!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the webhook server reads at start; immutable so threads can share it."""

    bind: str = "0.0.0.0:8443"
    kubeconfig: str | None = None
    namespace: str = "migration-guard"
    service_name: str = "migration-guard-webhook"
    webhook_config_name: str = "migration-guard"
    cert_secret_name: str = "migration-guard-webhook-tls"
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    cert_dir: str | None = None
    cert_hosts: tuple[str, ...] = ()
    ca_validity_seconds: float = 10 * 365 * 86400
    cert_validity_seconds: float = 365 * 86400
    cert_renew_before_seconds: float = 30 * 86400
    cert_check_interval_seconds: float = 60.0
    stale_cache_policy: str = "deny"
    max_cache_age_seconds: float = 180.0
    watch_timeout_seconds: int = 60
    completion_timeout_per_gib: int = 800
    progress_timeout_seconds: int = 150
    max_body_bytes: int = 1024 * 1024
    threads: int = 8
    log_level: str = "info"

    def check_interval(self) -> float:
        """How often certificates are checked: never less often than a quarter of renew-before."""
        return max(0.2, min(self.cert_check_interval_seconds, self.cert_renew_before_seconds / 4))


# (attribute, flag, help). The environment variable is ENV_PREFIX + FLAG_IN_CAPITALS.
_SPECS: list[tuple[str, str, str]] = [
    ("bind", "--bind", "host:port to listen on with TLS (default 0.0.0.0:8443)"),
    ("kubeconfig", "--kubeconfig", "kubeconfig file; default: in-cluster config, else KUBECONFIG"),
    ("namespace", "--namespace", "namespace of the Service and the certificate Secret"),
    ("service_name", "--service-name", "Service name put in the certificate's DNS names"),
    (
        "webhook_config_name",
        "--webhook-config-name",
        "ValidatingWebhookConfiguration whose webhooks get the caBundle ('' = do not patch)",
    ),
    ("cert_secret_name", "--cert-secret-name", "Secret that stores the generated CA and cert"),
    ("tls_cert_file", "--tls-cert-file", "serving certificate (PEM) given e.g. by cert-manager"),
    ("tls_key_file", "--tls-key-file", "private key (PEM) of --tls-cert-file"),
    ("cert_dir", "--cert-dir", "where generated cert files are written (default: a temp dir)"),
    (
        "cert_hosts",
        "--cert-hosts",
        "extra DNS names or IPs for the generated cert, comma-separated",
    ),
    ("ca_validity_seconds", "--ca-validity", "lifetime of a generated CA (default 3650d)"),
    ("cert_validity_seconds", "--cert-validity", "lifetime of a serving cert (default 365d)"),
    (
        "cert_renew_before_seconds",
        "--cert-renew-before",
        "renew a generated cert this long before it expires (default 30d)",
    ),
    (
        "cert_check_interval_seconds",
        "--cert-check-interval",
        "how often certs/files are checked for renewal or change (default 60s)",
    ),
    (
        "stale_cache_policy",
        "--stale-cache-policy",
        "answer when the cache never synced or is too old: deny (default) or allow",
    ),
    (
        "max_cache_age_seconds",
        "--max-cache-age",
        "the cache is stale when no list/event/bookmark arrived for this long (default 180s)",
    ),
    (
        "watch_timeout_seconds",
        "--watch-timeout",
        "server-side timeout of each watch request, seconds (default 60)",
    ),
    (
        "completion_timeout_per_gib",
        "--completion-timeout-per-gib",
        "seconds of completion timeout per GiB, shown in warnings (default 800)",
    ),
    ("progress_timeout_seconds", "--progress-timeout", "progress timeout, seconds (default 150)"),
    ("max_body_bytes", "--max-body-bytes", "largest accepted request body (default 1048576)"),
    ("threads", "--threads", "request threads of the single gunicorn worker (default 8)"),
    ("log_level", "--log-level", "debug, info, warning or error (default info)"),
]

_DURATIONS = {
    "ca_validity_seconds",
    "cert_validity_seconds",
    "cert_renew_before_seconds",
    "cert_check_interval_seconds",
    "max_cache_age_seconds",
}
_INTS = {
    "watch_timeout_seconds",
    "completion_timeout_per_gib",
    "progress_timeout_seconds",
    "max_body_bytes",
    "threads",
}


def env_name(flag: str) -> str:
    """--cert-validity -> MIGRATION_GUARD_CERT_VALIDITY."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def settings_help() -> list[tuple[str, str, str]]:
    """(flag, env var, help) for every setting; used by docs and --help."""
    return [(flag, env_name(flag), text) for _, flag, text in _SPECS]


def build_parser(prog: str = "migration-guard webhook") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the migration rules as a validating admission webhook over TLS.",
        epilog="Each flag can also be set with the environment variable shown in brackets.",
    )
    for attr, flag, text in _SPECS:
        parser.add_argument(flag, dest=attr, default=None, help=f"{text} [{env_name(flag)}]")
    return parser


def _convert(attr: str, flag: str, raw: str) -> object:
    if attr in _DURATIONS:
        return parse_duration(raw, flag)
    if attr in _INTS:
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"{flag}: {raw!r} is not a whole number") from None
        if value <= 0:
            raise InputError(f"{flag}: must be greater than zero, got {raw!r}")
        return value
    if attr == "cert_hosts":
        return tuple(h.strip() for h in raw.split(",") if h.strip())
    if attr == "stale_cache_policy" and raw not in ("deny", "allow"):
        raise InputError(f"{flag}: must be 'deny' or 'allow', got {raw!r}")
    if attr == "log_level" and raw.lower() not in ("debug", "info", "warning", "error"):
        raise InputError(f"{flag}: must be debug, info, warning or error, got {raw!r}")
    if attr == "bind":
        host, sep, port = raw.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InputError(f"{flag}: {raw!r} is not host:port")
    return raw


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from command-line flags, then environment, then defaults; InputError if bad."""
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
    settings = Settings(**values)  # type: ignore[arg-type]
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise InputError("--tls-cert-file and --tls-key-file must be given together")
    for path in (s.tls_cert_file, s.tls_key_file):
        if path and not Path(path).is_file():
            raise InputError(f"TLS file {path!r} does not exist")
    if s.cert_renew_before_seconds >= s.cert_validity_seconds:
        raise InputError("--cert-renew-before must be shorter than --cert-validity")
    if s.ca_validity_seconds <= s.cert_validity_seconds + s.cert_renew_before_seconds:
        # The CA is replaced when it would expire within one cert lifetime plus renew-before.
        raise InputError(
            "--ca-validity must be longer than --cert-validity plus --cert-renew-before"
        )
