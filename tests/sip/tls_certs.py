"""Test certificates made on the spot with `cryptography`: a CA and a certificate it signs
for 127.0.0.1/localhost, written as PEM files (the key optionally encrypted)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Pki(msgspec.Struct, frozen=True):
    ca_file: str
    cert_file: str
    key_file: str
    client_cert_file: str  # another certificate from the same CA (a PBX's, for mutual TLS)
    client_key_file: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path, passphrase: str = "") -> Pki:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("Theo test CA")).issuer_name(_name("Theo test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    def issue(common: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name(common)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return key, cert

    key, cert = issue("127.0.0.1")
    client_key, client_cert = issue("pbx")
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(str(folder / "ca.pem"), str(folder / "cert.pem"), str(folder / "key.pem"),
              str(folder / "client-cert.pem"), str(folder / "client-key.pem"))
    Path(pki.client_cert_file).write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    Path(pki.client_key_file).write_bytes(client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    Path(pki.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(pki.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    Path(pki.key_file).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption))
    Path(pki.key_file).chmod(0o600)
    return pki
