"""A local CA and a server certificate for the lab, made with `cryptography` on first use.

Private keys stay in ``certs/`` (git-ignored) and are never committed. The client verifies the
server against ``ca.crt``; the interop runner's names (``cert.pem``, ``priv.key``) are written too.
The CA's private key is used once, to sign the server certificate, and is never written.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPaths:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def key(self) -> Path:
        return self.directory / "server.key"


@dataclass(frozen=True)
class Certificates:
    """A CA certificate and a server certificate with its private key, in memory."""

    ca: x509.Certificate
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        """The server certificate followed by the CA's, as a TLS server presents them."""
        return self.cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_certificates(dns_names: tuple[str, ...] = ("server", "localhost"),
                      ip_addresses: tuple[str, ...] = ("127.0.0.1", "::1")) -> Certificates:
    """A new CA and a server certificate for ``dns_names`` and ``ip_addresses`` (no file is written)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quic-migration-lab CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Certificates(ca=ca_cert, cert=cert, key=key)


def ensure_certificates(directory: Path, dns_names: tuple[str, ...] = ("server", "localhost"),
                        ip_addresses: tuple[str, ...] = ("127.0.0.1", "::1")) -> tuple[CertPaths, bool]:
    """Create the CA and server certificate unless they exist with the same names.

    Returns the paths and whether anything was (re)generated. A ``ca.key`` left by an earlier
    version of the lab is deleted: nothing reads it.
    """
    paths = CertPaths(Path(directory))
    names_file = paths.directory / "names.txt"
    wanted = "\n".join(sorted(dns_names) + sorted(ip_addresses))
    (paths.directory / "ca.key").unlink(missing_ok=True)
    if paths.cert.exists() and paths.key.exists() and paths.ca.exists() and names_file.exists() \
            and names_file.read_text() == wanted:
        return paths, False
    paths.directory.mkdir(parents=True, exist_ok=True)
    made = make_certificates(dns_names, ip_addresses)
    paths.ca.write_bytes(made.ca_pem)
    paths.cert.write_bytes(made.chain_pem)
    paths.key.write_bytes(made.key_pem)
    # The quic-interop-runner's file names, so that the lab's images work in the runner.
    (paths.directory / "cert.pem").write_bytes(made.chain_pem)
    (paths.directory / "priv.key").write_bytes(made.key_pem)
    for private in ("server.key", "priv.key"):
        (paths.directory / private).chmod(0o644)  # read by the container's user; never committed
    names_file.write_text(wanted)
    return paths, True
