"""Certificates for the TLS tests, made by the test: certificate authorities, a server
certificate for 127.0.0.1/localhost, client certificates (valid, expired, from another
authority), written as PEM files the broker and the clients read."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str, org: str = "Strata tests") -> x509.Name:
    """Most general first, as certificates usually are: its RFC 4514 (and Kafka's RFC
    2253) string is then `CN=<cn>,O=<org>`."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    ca_path: Path

    @staticmethod
    def create(folder: Path, cn: str) -> "Authority":
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        ca_path = folder / f"{cn}.ca.pem"
        ca_path.write_bytes(_cert_pem(cert))
        return Authority(key, cert, ca_path)

    def issue(self, folder: Path, cn: str, server: bool, days_valid: tuple[int, int] = (-1, 30),
              client_too: bool = False) -> "Issued":
        """A certificate for `cn`, valid from `days_valid[0]` to `days_valid[1]` days
        from now; a server certificate names 127.0.0.1 and localhost, and with
        `client_too` may also authenticate as a client (a Raft peer's)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
        if client_too:
            usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days_valid[0]))
            .not_valid_after(now + datetime.timedelta(days=days_valid[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        folder.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = folder / f"{cn}.key.pem", folder / f"{cn}.cert.pem"
        key_path.write_bytes(_key_pem(key))
        cert_path.write_bytes(_cert_pem(cert))
        # Kafka's PEM keystore: the private key and the chain in one file.
        keystore = folder / f"{cn}.keystore.pem"
        keystore.write_bytes(_key_pem(key) + _cert_pem(cert))
        return Issued(key_path, cert_path, keystore)


@dataclass
class Issued:
    key_path: Path
    cert_path: Path
    keystore: Path
