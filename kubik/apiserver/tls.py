"""The cluster's certificates and the admin kubeconfig, made on first start.

Under `<data-dir>/tls/`: a cluster CA, the API server's serving certificate
(for localhost, 127.0.0.1, the machine's name and any extra SANs), and an
admin client certificate (CN `system:admin`, O `system:masters`, as k3s's
admin). `<data-dir>/admin.kubeconfig` carries the CA and the admin
credential. Existing files are reused, so clients keep working across
restarts; a serving certificate missing a needed SAN is made anew.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import socket
import ssl

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_DAYS = 3650


class Paths:
    """Where each file of the TLS directory lives."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.ca_crt = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        self.server_crt = os.path.join(directory, "server.crt")
        self.server_key = os.path.join(directory, "server.key")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
    )


class ClusterCA:
    """The CA that signs the serving certificate and every client certificate."""

    def __init__(self, tls_dir: str) -> None:
        os.makedirs(tls_dir, mode=0o700, exist_ok=True)
        self.paths = Paths(tls_dir)
        if not os.path.exists(self.paths.ca_crt):
            self._create()
        with open(self.paths.ca_key, "rb") as handle:
            self.key = serialization.load_pem_private_key(handle.read(), None)
        with open(self.paths.ca_crt, "rb") as handle:
            self.cert_pem = handle.read()
        self.cert = x509.load_pem_x509_certificate(self.cert_pem)

    def _create(self) -> None:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubik-ca")])
        cert = (
            _builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write(self.paths.ca_key, _pem_key(key))
        _write(self.paths.ca_crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue(
        self,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = False,
    ) -> tuple[bytes, bytes]:
        """A new (certificate PEM, key PEM) signed by this CA."""
        key = _key()
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(x509.Name(attributes), self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if dns_names or ips:
            alt_names = [x509.DNSName(d) for d in dns_names]
            alt_names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def serving_names(extra_sans: tuple[str, ...] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IPs) the serving certificate must cover."""
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        socket.gethostname(),
    ]
    ips = ["127.0.0.1", "::1"]
    for san in extra_sans:
        try:
            ipaddress.ip_address(san)
            ips.append(san)
        except ValueError:
            dns.append(san)
    return tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips))


def ensure_serving_cert(ca: ClusterCA, extra_sans: tuple[str, ...] = ()) -> tuple[str, str]:
    """(cert path, key path) of a serving certificate covering every needed name."""
    dns, ips = serving_names(extra_sans)
    paths = ca.paths
    if os.path.exists(paths.server_crt) and _covers(paths.server_crt, dns, ips):
        return paths.server_crt, paths.server_key
    cert, key = ca.issue(common_name="kube-apiserver", dns_names=dns, ips=ips, server=True)
    _write(paths.server_key, key)
    _write(paths.server_crt, cert + ca.cert_pem, 0o644)
    return paths.server_crt, paths.server_key


def _covers(cert_path: str, dns: tuple[str, ...], ips: tuple[str, ...]) -> bool:
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(sans.get_values_for_type(x509.DNSName))
    have_ips = {str(i) for i in sans.get_values_for_type(x509.IPAddress)}
    return set(dns) <= have_dns and {str(ipaddress.ip_address(i)) for i in ips} <= have_ips


def ensure_client_cert(
    ca: ClusterCA, name: str, *, common_name: str, organizations: tuple[str, ...]
) -> tuple[str, str]:
    """(cert path, key path) of a client certificate stored as `<name>.crt/.key`."""
    cert_path = os.path.join(ca.paths.directory, f"{name}.crt")
    key_path = os.path.join(ca.paths.directory, f"{name}.key")
    if not os.path.exists(cert_path):
        cert, key = ca.issue(common_name=common_name, organizations=organizations)
        _write(key_path, key)
        _write(cert_path, cert, 0o644)
    return cert_path, key_path


def write_kubeconfig(
    path: str, *, server: str, ca_pem: bytes, cert_path: str, key_path: str, user: str = "admin"
) -> None:
    """A kubeconfig with the credentials embedded (it works when copied elsewhere)."""
    with open(cert_path, "rb") as handle:
        cert = handle.read()
    with open(key_path, "rb") as handle:
        key = handle.read()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubik",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "kubik", "context": {"cluster": "kubik", "user": user}}],
        "current-context": "kubik",
        "preferences": {},
    }
    _write(path, yaml.safe_dump(config, sort_keys=False).encode())


def server_context(cert_path: str, key_path: str, ca_path: str) -> ssl.SSLContext:
    """TLS for the API: HTTP/1.1 only, client certificates verified when offered."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    context.load_verify_locations(ca_path)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context
