"""TLS for the webhook: a generated CA and serving certificate, or files given by the operator.

Generated mode (no --tls-cert-file): the CA and certificate live in a Secret, so every replica
serves the same certificate and kube-apiserver trusts all of them through one caBundle, which is
written into every webhook of the ValidatingWebhookConfiguration. Before expiry one replica renews
(optimistic concurrency on the Secret); the others pick the new certificate up from the Secret.

Given mode (cert-manager): the files are used as they are and reloaded when their content changes.

Reloading never breaks a request: a new `ssl.SSLContext` is built and swapped in; gunicorn asks
for the context on every new connection (our `ssl_context` server hook), so new handshakes use
the new certificate while connections already open keep theirs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from webhook.admission.connection import CLIENT_CA_ATTR
from webhook.admission.settings import Settings

log = logging.getLogger("migration_guard.certs")

SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")
CA_BUNDLE_KEY = "ca-bundle.crt"
# Backdating covers clock skew between this pod and kube-apiserver.
BACKDATE = dt.timedelta(minutes=5)


# ---------------------------------------------------------------- pure certificate functions
@dataclass(frozen=True)
class CertBundle:
    """PEM text of the CA, the serving cert, and the CA bundle (current CA + a previous one)."""

    ca_cert: str
    ca_key: str
    cert: str
    key: str
    ca_bundle: str

    def to_secret_data(self) -> dict[str, str]:
        values = dict(
            zip(SECRET_KEYS, (self.ca_cert, self.ca_key, self.cert, self.key), strict=True)
        )
        values[CA_BUNDLE_KEY] = self.ca_bundle
        return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}

    @classmethod
    def from_secret_data(cls, data: dict[str, str] | None) -> CertBundle | None:
        """None when a key is missing or unreadable (the Secret is then rewritten)."""
        data = data or {}
        try:
            text = {k: base64.b64decode(v).decode() for k, v in data.items()}
            bundle = cls(
                text["ca.crt"],
                text["ca.key"],
                text["tls.crt"],
                text["tls.key"],
                text.get(CA_BUNDLE_KEY) or text["ca.crt"],
            )
            x509.load_pem_x509_certificate(bundle.cert.encode())
            x509.load_pem_x509_certificate(bundle.ca_cert.encode())
        except (KeyError, ValueError):
            return None
        return bundle


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names kube-apiserver may use to reach a Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def generate_ca(validity_seconds: float, now: dt.datetime, name: str) -> tuple[str, str]:
    """A self-signed CA (cert PEM, key PEM) that may only sign server certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(seconds=validity_seconds))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def split_hosts(hosts: list[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) from a mixed list."""
    dns, ips = [], []
    for host in hosts:
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.append(host)
    return dns, ips


def generate_serving_cert(
    ca_cert_pem: str,
    ca_key_pem: str,
    hosts: list[str],
    validity_seconds: float,
    now: dt.datetime,
) -> tuple[str, str]:
    """A server certificate (cert PEM, key PEM) for `hosts` (DNS names and IPs), signed by the CA.

    It never outlives its CA: kube-apiserver would reject the chain after the CA expires.
    """
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = split_hosts(hosts)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    not_after = min(now + dt.timedelta(seconds=validity_seconds), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _cert_pem(cert), _key_pem(key)


def not_after(cert_pem: str) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


def needs_renewal(cert_pem: str, now: dt.datetime, renew_before_seconds: float) -> bool:
    return not_after(cert_pem) - now <= dt.timedelta(seconds=renew_before_seconds)


def plan_bundle(
    current: CertBundle | None, settings: Settings, now: dt.datetime
) -> CertBundle | None:
    """The bundle to store, or None when `current` is still good (pure apart from key generation).

    The serving cert is renewed `cert_renew_before` ahead of expiry; the CA is replaced when it would
    expire within a serving cert's lifetime, and the old CA stays in the bundle while it is valid so
    replicas still serving the old cert are trusted until they reload.
    """
    hosts = service_dns_names(settings.service_name, settings.namespace) + list(settings.cert_hosts)
    ca_cert = ca_key = None
    bundle_extra = ""
    if current is not None:
        ca_left = not_after(current.ca_cert) - now
        if ca_left > dt.timedelta(
            seconds=settings.cert_validity_seconds + settings.cert_renew_before_seconds
        ):
            ca_cert, ca_key = current.ca_cert, current.ca_key
        elif ca_left > dt.timedelta(0):
            bundle_extra = current.ca_cert
        if (
            ca_cert is not None
            and not needs_renewal(current.cert, now, settings.cert_renew_before_seconds)
            and _sans(current.cert) >= set(hosts)
        ):
            return None
    if ca_cert is None or ca_key is None:
        ca_cert, ca_key = generate_ca(settings.ca_validity_seconds, now, "migration-guard-ca")
    cert, key = generate_serving_cert(ca_cert, ca_key, hosts, settings.cert_validity_seconds, now)
    return CertBundle(ca_cert, ca_key, cert, key, ca_cert + bundle_extra)


def _sans(cert_pem: str) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = set(ext.get_values_for_type(x509.DNSName))
    return names | {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def make_ssl_context(cert_file: str, key_file: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context, TLS 1.2 or newer only.

    `client_ca`: the front proxy's CA (PEM). A client may then present a certificate, which must
    chain to that CA alone (OpenSSL checks the chain and the clientAuth purpose); clients without
    one (kube-apiserver calling the webhook, probes, Bearer callers) are served as before. As
    KubeVirt's virt-api does (`tls.VerifyClientCertIfGiven`).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    if client_ca:
        context.load_verify_locations(cadata=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
        setattr(context, CLIENT_CA_ATTR, client_ca)
    return context


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- Kubernetes I/O
class SecretStore:
    """The certificate Secret, shared by replicas; conflicts resolve to whatever is stored."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str) -> None:
        self.core = k8s.CoreV1Api(api)
        self.namespace, self.name = namespace, name

    def read(self) -> tuple[CertBundle | None, str | None]:
        """(bundle, resourceVersion); (None, None) when the Secret does not exist."""
        try:
            secret = self.core.read_namespaced_secret(self.name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None, None
            raise
        return CertBundle.from_secret_data(secret.data), secret.metadata.resource_version

    def ensure(self, settings: Settings, now: dt.datetime | None = None) -> CertBundle:
        """The stored bundle, after creating or renewing it if needed (several replicas may race)."""
        for _ in range(5):
            now = now or _utcnow()
            current, rv = self.read()
            bundle = plan_bundle(current, settings, now)
            if bundle is None and current is not None:
                return current
            assert bundle is not None
            body = k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(
                    name=self.name,
                    namespace=self.namespace,
                    resource_version=rv,
                    labels={"app.kubernetes.io/managed-by": "migration-guard"},
                ),
                type="kubernetes.io/tls",
                data=bundle.to_secret_data(),
            )
            try:
                if rv is None:
                    self.core.create_namespaced_secret(self.namespace, body)
                    log.info("created certificate Secret %s/%s", self.namespace, self.name)
                else:
                    self.core.replace_namespaced_secret(self.name, self.namespace, body)
                    log.info("renewed certificate in Secret %s/%s", self.namespace, self.name)
                return bundle
            except ApiException as e:
                if e.status != 409:
                    raise
                log.info("certificate Secret changed under us (409); reading it again")
            now = None
        raise RuntimeError(f"could not store Secret {self.namespace}/{self.name}: conflicts")


def patch_ca_bundle(api: k8s.ApiClient, config_name: str, ca_bundle_pem: str) -> bool:
    """Write the CA bundle into every webhook of the configuration; False if it does not exist."""
    adm = k8s.AdmissionregistrationV1Api(api)
    encoded = base64.b64encode(ca_bundle_pem.encode()).decode()
    for _ in range(5):
        try:
            config = adm.read_validating_webhook_configuration(config_name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        hooks = config.webhooks or []
        if all(h.client_config.ca_bundle == encoded for h in hooks):
            return True
        for hook in hooks:
            hook.client_config.ca_bundle = encoded
        try:
            adm.replace_validating_webhook_configuration(config_name, config)
            log.info("wrote caBundle into ValidatingWebhookConfiguration %s", config_name)
            return True
        except ApiException as e:
            if e.status != 409:
                raise
    raise RuntimeError(f"could not update ValidatingWebhookConfiguration {config_name}: conflicts")


def patch_apiservice_ca_bundle(api: k8s.ApiClient, name: str, ca_bundle_pem: str) -> bool:
    """Write the CA bundle into the APIService, so kube-apiserver trusts the serving certificate
    when it proxies to the extension API; False if the APIService does not exist."""
    encoded = base64.b64encode(ca_bundle_pem.encode()).decode()
    reg = k8s.ApiregistrationV1Api(api)
    try:
        current = reg.read_api_service(name)
        if current.spec.ca_bundle == encoded:
            return True
        reg.patch_api_service(name, {"spec": {"caBundle": encoded}})
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    log.info("wrote caBundle into APIService %s", name)
    return True


# ---------------------------------------------------------------- runtime
def _digest(*paths: str) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def _write_private(path: Path, text: str) -> None:
    """Write then rename, so a reader never sees half a key."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class CertManager:
    """Keeps the serving certificate current and hands out the SSLContext for new connections."""

    def __init__(self, settings: Settings, api: k8s.ApiClient | None) -> None:
        self.settings = settings
        self.api = api
        self.generated = not settings.tls_cert_file
        if self.generated:
            if api is None:
                raise ValueError("a generated certificate needs a Kubernetes API client")
            base = settings.cert_dir or tempfile.mkdtemp(prefix="migration-guard-certs-")
            self.cert_dir = Path(base)
            self.cert_dir.mkdir(parents=True, exist_ok=True)
            self.cert_file = str(self.cert_dir / "tls.crt")
            self.key_file = str(self.cert_dir / "tls.key")
            self.store = SecretStore(api, settings.namespace, settings.cert_secret_name)
        else:
            self.cert_file = str(settings.tls_cert_file)
            self.key_file = str(settings.tls_key_file)
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()  # one context rebuild at a time (cert or client CA)
        self._context: ssl.SSLContext | None = None
        self._loaded_digest = ""
        self._ca_bundle_written: dict[str, str] = {}
        self._client_ca: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.expiry_timestamp = 0.0

    # -- one step, used at start and by the loop
    def refresh(self) -> bool:
        """Renew or pick up a new certificate if due; reload the context if it changed."""
        if self.generated:
            bundle = self.store.ensure(self.settings)
            self._sync_files(bundle)
            self._sync_ca_bundle(bundle.ca_bundle)
        return self._reload_if_changed()

    def _sync_files(self, bundle: CertBundle) -> None:
        current = ""
        if Path(self.cert_file).exists() and Path(self.key_file).exists():
            current = Path(self.cert_file).read_text() + Path(self.key_file).read_text()
        if current != bundle.cert + bundle.key:
            _write_private(Path(self.key_file), bundle.key)
            _write_private(Path(self.cert_file), bundle.cert)

    def _sync_ca_bundle(self, ca_bundle: str) -> None:
        """The CA bundle into all that calls us: the webhook configuration, the APIService."""
        targets = (
            ("ValidatingWebhookConfiguration", self.settings.webhook_config_name, patch_ca_bundle),
            ("APIService", self.settings.apiservice_name, patch_apiservice_ca_bundle),
        )
        for kind, name, patch in targets:
            if not name or self._ca_bundle_written.get(kind) == ca_bundle:
                continue
            assert self.api is not None
            if patch(self.api, name, ca_bundle):
                self._ca_bundle_written[kind] = ca_bundle
            else:
                log.warning("%s %s not found; will retry", kind, name)

    def set_client_ca(self, client_ca: str | None) -> None:
        """Trust this front-proxy CA (PEM; None: request no client certificates) from the next
        handshake on; connections already open keep the CA they were verified with."""
        with self._reload_lock:
            if client_ca == self._client_ca:
                return
            self._client_ca = client_ca
            self._reload(_digest(self.cert_file, self.key_file))
        log.info("front-proxy client CA %s", "loaded" if client_ca else "removed")

    def _reload_if_changed(self) -> bool:
        with self._reload_lock:
            digest = _digest(self.cert_file, self.key_file)
            if digest == self._loaded_digest:
                return False
            self._reload(digest)
        log.info(
            "serving certificate loaded (expires %s)",
            dt.datetime.fromtimestamp(self.expiry_timestamp, dt.UTC).isoformat(),
        )
        return True

    def _reload(self, digest: str) -> None:
        context = make_ssl_context(self.cert_file, self.key_file, self._client_ca)
        with self._lock:
            self._context = context
            self._loaded_digest = digest
            self.reloads += 1
        self.expiry_timestamp = not_after(Path(self.cert_file).read_text()).timestamp()

    def ssl_context(self) -> ssl.SSLContext:
        """The context for the next handshake (gunicorn calls this for every new connection)."""
        with self._lock:
            if self._context is None:
                raise RuntimeError("certificates not loaded: call refresh() first")
            return self._context

    # -- background loop
    def start(self) -> None:
        if self._context is None:
            self.refresh()
        self._thread = threading.Thread(target=self._run, name="cert-manager", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.check_interval()):
            try:
                self.refresh()
            except Exception:
                # Keep serving the current certificate; the next round tries again.
                log.exception("certificate refresh failed; keeping the current certificate")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
