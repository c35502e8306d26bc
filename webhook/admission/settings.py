"""Settings of `migration-guard webhook`: one flag and one environment variable for each.

Flags win over environment variables, which win over defaults. Every setting is listed, with its
meaning, in docs/webhook.md; `migration-guard webhook --help` prints the same text.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from webhook import flags
from webhook.errors import InputError
from webhook.flags import LOG_LEVELS, Flag, env_name
from webhook.rules.model import TimeoutSettings
from webhook.rules.origin import DEFAULT_CONTROLLER_USERS, EVACUATION, WORKLOAD_UPDATE, Origin
from webhook.rules.policy import PolicySettings

__all__ = [
    "Settings",
    "build_parser",
    "env_name",
    "parse_settings",
    "settings_help",
]


@dataclass(frozen=True)
class Settings:
    """Everything the webhook server reads at start; immutable so threads can share it."""

    bind: str = "0.0.0.0:8443"
    kubeconfig: str | None = None
    namespace: str = "migration-guard"
    service_name: str = "migration-guard-webhook"
    webhook_config_name: str = "migration-guard"
    apiservice_name: str = "v1.subresources.migration-guard.io"
    requestheader_configmap: str = "kube-system/extension-apiserver-authentication"
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
    prometheus_url: str = ""
    max_body_bytes: int = 1024 * 1024
    threads: int = 8
    log_level: str = "info"
    evacuation_migrations: str = "enforce"
    workload_update_migrations: str = "enforce"
    kubevirt_controller_users: tuple[str, ...] = DEFAULT_CONTROLLER_USERS
    event_interval_seconds: float = 60.0
    migratability_interval_seconds: float = 30.0
    policy_reports: bool = False
    harvester_version: str = "auto"
    rule_actions: tuple[str, ...] = ()
    policy_mode: str = "enforce"
    exempt_namespaces: tuple[str, ...] = ()
    exempt_namespace_selector: str = ""

    @cached_property
    def policy(self) -> PolicySettings:
        """The policy as configured (rules.policy; InputError naming a setting that cannot work)."""
        return PolicySettings.parse(**{f.attr: getattr(self, f.attr) for f in POLICY_FLAGS})

    @cached_property
    def timeouts(self) -> TimeoutSettings:
        """The rule engine's timeout settings, so webhook warnings and extension deadlines agree."""
        return TimeoutSettings(
            completion_timeout_per_gib=self.completion_timeout_per_gib,
            progress_timeout_seconds=self.progress_timeout_seconds,
        )

    def warn_only(self, origin: Origin) -> str | None:
        """Why problems of a migration from `origin` are only warned about, or None: enforced."""
        flag, value = {
            EVACUATION: ("--evacuation-migrations", self.evacuation_migrations),
            WORKLOAD_UPDATE: ("--workload-update-migrations", self.workload_update_migrations),
        }.get(origin.kind, ("", "enforce"))
        return f"{flag}=warn lets it through" if value == "warn" else None

    def check_interval(self) -> float:
        """How often certificates are checked: never less often than a quarter of renew-before."""
        return max(0.2, min(self.cert_check_interval_seconds, self.cert_renew_before_seconds / 4))


# The policy (rules.policy): shared with `migration-guard check` and `migration-guard policy`.
POLICY_FLAGS: list[Flag] = [
    Flag(
        "harvester_version",
        "--harvester-version",
        "Harvester version whose profile sets the rules' defaults: auto (read the server-version "
        "Setting, default) or e.g. v1.8.0",
    ),
    Flag(
        "rule_actions",
        "--rule-actions",
        "CODE=ACTION pairs, comma-separated: deny, warn or off for a rule of migration-guard's "
        "own (e.g. CDROMVolume=warn); they override the profile",
        "list",
    ),
    Flag(
        "policy_mode",
        "--policy-mode",
        "enforce (default), or audit: every denial becomes a warning",
        "choice",
        ("enforce", "audit"),
    ),
    Flag(
        "exempt_namespaces",
        "--exempt-namespaces",
        "namespaces whose VMs are not checked, comma-separated",
        "list",
    ),
    Flag(
        "exempt_namespace_selector",
        "--exempt-namespace-selector",
        "label selector of namespaces whose VMs are not checked (e.g. 'team=legacy')",
    ),
]

FLAGS: list[Flag] = [
    Flag("bind", "--bind", "host:port to listen on with TLS (default 0.0.0.0:8443)", "hostport"),
    Flag(
        "kubeconfig", "--kubeconfig", "kubeconfig file; default: in-cluster config, else KUBECONFIG"
    ),
    Flag("namespace", "--namespace", "namespace of the Service and the certificate Secret"),
    Flag("service_name", "--service-name", "Service name put in the certificate's DNS names"),
    Flag(
        "webhook_config_name",
        "--webhook-config-name",
        "ValidatingWebhookConfiguration whose webhooks get the caBundle ('' = do not patch)",
    ),
    Flag(
        "apiservice_name",
        "--apiservice-name",
        "APIService of the extension API that gets the caBundle ('' = do not patch)",
    ),
    Flag(
        "requestheader_configmap",
        "--requestheader-configmap",
        "namespace/name of the ConfigMap where kube-apiserver publishes its front-proxy CA and "
        "identity headers ('' = no front-proxy callers, Bearer tokens only)",
    ),
    Flag("cert_secret_name", "--cert-secret-name", "Secret that stores the generated CA and cert"),
    Flag(
        "tls_cert_file", "--tls-cert-file", "serving certificate (PEM) given e.g. by cert-manager"
    ),
    Flag("tls_key_file", "--tls-key-file", "private key (PEM) of --tls-cert-file"),
    Flag("cert_dir", "--cert-dir", "where generated cert files are written (default: a temp dir)"),
    Flag(
        "cert_hosts",
        "--cert-hosts",
        "extra DNS names or IPs for the generated cert, comma-separated",
        "list",
    ),
    Flag(
        "ca_validity_seconds",
        "--ca-validity",
        "lifetime of a generated CA (default 3650d)",
        "duration",
    ),
    Flag(
        "cert_validity_seconds",
        "--cert-validity",
        "lifetime of a serving cert (default 365d)",
        "duration",
    ),
    Flag(
        "cert_renew_before_seconds",
        "--cert-renew-before",
        "renew a generated cert this long before it expires (default 30d)",
        "duration",
    ),
    Flag(
        "cert_check_interval_seconds",
        "--cert-check-interval",
        "how often certs/files are checked for renewal or change (default 60s)",
        "duration",
    ),
    Flag(
        "stale_cache_policy",
        "--stale-cache-policy",
        "answer when the cache never synced or is too old: deny (default) or allow",
        "choice",
        ("deny", "allow"),
    ),
    Flag(
        "max_cache_age_seconds",
        "--max-cache-age",
        "the cache is stale when no list/event/bookmark arrived for this long (default 180s)",
        "duration",
    ),
    Flag(
        "watch_timeout_seconds",
        "--watch-timeout",
        "server-side timeout of each watch request, seconds (default 60)",
        "int",
    ),
    Flag(
        "completion_timeout_per_gib",
        "--completion-timeout-per-gib",
        "seconds of completion timeout per GiB, shown in warnings (default 800)",
        "int",
    ),
    Flag(
        "progress_timeout_seconds",
        "--progress-timeout",
        "progress timeout, seconds (default 150)",
        "int",
    ),
    Flag(
        "prometheus_url",
        "--prometheus-url",
        "Prometheus the extension reads migration progress (data remaining) from ('' = none)",
        "url",
    ),
    Flag(
        "max_body_bytes",
        "--max-body-bytes",
        "largest accepted request body (default 1048576)",
        "int",
    ),
    Flag(
        "threads", "--threads", "request threads of the single gunicorn worker (default 8)", "int"
    ),
    Flag(
        "evacuation_migrations",
        "--evacuation-migrations",
        "evacuations KubeVirt starts to drain a node: enforce (deny, default) or warn (allow)",
        "choice",
        ("enforce", "warn"),
    ),
    Flag(
        "workload_update_migrations",
        "--workload-update-migrations",
        "migrations KubeVirt starts after its upgrade: enforce (deny, default) or warn (allow)",
        "choice",
        ("enforce", "warn"),
    ),
    Flag(
        "kubevirt_controller_users",
        "--kubevirt-controller-users",
        "virt-controller's user names, comma-separated: only their VMIMs count as KubeVirt's "
        "(default: kubevirt-controller in harvester-system and kubevirt)",
        "list",
    ),
    Flag(
        "event_interval_seconds",
        "--event-interval",
        "a repeated Event's count is written at most this often (default 60s)",
        "duration",
    ),
    Flag(
        "migratability_interval_seconds",
        "--migratability-interval",
        "every VM's migratability gauges are recomputed at most this often (default 30s)",
        "duration",
    ),
    Flag(
        "policy_reports",
        "--policy-reports",
        "write every VM's migratability as a PolicyReport per namespace (wgpolicyk8s.io/v1alpha2; "
        "one replica writes, elected with a Lease) (default false)",
        "bool",
    ),
    *POLICY_FLAGS,
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


def build_parser(prog: str = "migration-guard webhook") -> argparse.ArgumentParser:
    return flags.build_parser(
        prog, "Serve the migration rules as a validating admission webhook over TLS.", FLAGS
    )


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from command-line flags, then environment, then defaults; InputError if bad."""
    env = os.environ if env is None else env
    settings = Settings(**flags.parse(build_parser(), FLAGS, argv, env))  # type: ignore[arg-type]
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    s.policy  # noqa: B018 (parses the policy settings: InputError names the bad one)
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise InputError("--tls-cert-file and --tls-key-file must be given together")
    for path in (s.tls_cert_file, s.tls_key_file):
        if path and not Path(path).is_file():
            raise InputError(f"TLS file {path!r} does not exist")
    if s.requestheader_configmap:
        namespace, _, name = s.requestheader_configmap.partition("/")
        if not namespace or not name or "/" in name:
            raise InputError(
                f"--requestheader-configmap must be namespace/name, got {s.requestheader_configmap!r}"
            )
    if s.cert_renew_before_seconds >= s.cert_validity_seconds:
        raise InputError("--cert-renew-before must be shorter than --cert-validity")
    if s.ca_validity_seconds <= s.cert_validity_seconds + s.cert_renew_before_seconds:
        # The CA is replaced when it would expire within one cert lifetime plus renew-before.
        raise InputError(
            "--ca-validity must be longer than --cert-validity plus --cert-renew-before"
        )
