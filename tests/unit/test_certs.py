"""Certificate generation and renewal planning (pure parts of webhook.admission.certs) and settings."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509

from webhook.admission import certs
from webhook.admission.settings import Settings, env_name, parse_settings
from webhook.errors import InputError
from webhook.flags import parse_duration

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
S = Settings(
    namespace="mg",
    service_name="hook",
    cert_hosts=("127.0.0.1", "hook.example.com"),
    ca_validity_seconds=1000,
    cert_validity_seconds=100,
    cert_renew_before_seconds=20,
)


def sans(pem: str) -> set[str]:
    return certs._sans(pem)


def test_new_bundle_has_service_names_and_hosts_and_chains_to_ca():
    b = certs.plan_bundle(None, S, NOW)
    assert b is not None
    assert sans(b.cert) == {
        "hook",
        "hook.mg",
        "hook.mg.svc",
        "hook.mg.svc.cluster.local",
        "hook.example.com",
        "127.0.0.1",
    }
    ca = x509.load_pem_x509_certificate(b.ca_cert.encode())
    leaf = x509.load_pem_x509_certificate(b.cert.encode())
    leaf.verify_directly_issued_by(ca)
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(seconds=100)
    assert b.ca_bundle == b.ca_cert


def test_bundle_kept_until_renew_window_then_renewed_with_same_ca():
    b = certs.plan_bundle(None, S, NOW)
    assert certs.plan_bundle(b, S, NOW + dt.timedelta(seconds=79)) is None
    renewed = certs.plan_bundle(b, S, NOW + dt.timedelta(seconds=81))
    assert renewed is not None and renewed.cert != b.cert
    assert renewed.ca_cert == b.ca_cert


def test_new_host_triggers_a_new_cert():
    b = certs.plan_bundle(None, S, NOW)
    more = Settings(**{**S.__dict__, "cert_hosts": ("127.0.0.1", "hook.example.com", "10.0.0.9")})
    renewed = certs.plan_bundle(b, more, NOW)
    assert renewed is not None and "10.0.0.9" in sans(renewed.cert)


def test_ca_rotation_keeps_old_ca_in_bundle():
    b = certs.plan_bundle(None, S, NOW)
    later = NOW + dt.timedelta(seconds=1000 - 110)  # CA has less than validity + renew-before
    rotated = certs.plan_bundle(b, S, later)
    assert rotated is not None and rotated.ca_cert != b.ca_cert
    assert rotated.ca_bundle == rotated.ca_cert + b.ca_cert


def test_secret_data_round_trip_and_garbage():
    b = certs.plan_bundle(None, S, NOW)
    assert certs.CertBundle.from_secret_data(b.to_secret_data()) == b
    assert certs.CertBundle.from_secret_data({"tls.crt": "bm9wZQ=="}) is None


def test_ssl_context_is_tls12_minimum(tmp_path):
    b = certs.plan_bundle(None, S, dt.datetime.now(dt.UTC))
    (tmp_path / "c").write_text(b.cert)
    (tmp_path / "k").write_text(b.key)
    ctx = certs.make_ssl_context(str(tmp_path / "c"), str(tmp_path / "k"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_given_files_are_reloaded_when_they_change(tmp_path):
    first = certs.plan_bundle(None, S, dt.datetime.now(dt.UTC))
    (tmp_path / "c").write_text(first.cert)
    (tmp_path / "k").write_text(first.key)
    s = Settings(tls_cert_file=str(tmp_path / "c"), tls_key_file=str(tmp_path / "k"))
    manager = certs.CertManager(s, None)
    assert manager.refresh() is True
    ctx1 = manager.ssl_context()
    assert manager.refresh() is False and manager.ssl_context() is ctx1
    second = certs.plan_bundle(None, S, dt.datetime.now(dt.UTC))
    (tmp_path / "c").write_text(second.cert)
    (tmp_path / "k").write_text(second.key)
    assert manager.refresh() is True
    assert manager.ssl_context() is not ctx1 and manager.reloads == 2


def test_durations_and_settings_from_flags_and_env():
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("2d") == 172800
    with pytest.raises(InputError, match="not a duration"):
        parse_duration("soon")
    env = {env_name("--cert-validity"): "2h", env_name("--stale-cache-policy"): "allow"}
    s = parse_settings(["--cert-renew-before", "30m", "--cert-hosts", "a, 127.0.0.1"], env)
    assert s.cert_validity_seconds == 7200 and s.cert_renew_before_seconds == 1800
    assert s.stale_cache_policy == "allow" and s.cert_hosts == ("a", "127.0.0.1")
    assert env_name("--cert-validity") == "MIGRATION_GUARD_CERT_VALIDITY"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--stale-cache-policy", "maybe"], "must be one of deny, allow"),
        (["--bind", "8443"], "host:port"),
        (["--cert-validity", "1h", "--cert-renew-before", "2h"], "shorter than --cert-validity"),
        (["--tls-cert-file", "/nope"], "given together"),
        (["--threads", "zero"], "whole number"),
    ],
)
def test_bad_settings_name_the_flag(argv, needle):
    with pytest.raises(InputError, match=needle):
        parse_settings(argv, {})


def test_docs_list_every_setting():
    from pathlib import Path

    from webhook.admission.settings import settings_help

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhook.md").read_text()
    for flag, env, _ in settings_help():
        assert f"`{flag}`" in doc and f"`{env}`" in doc, flag
