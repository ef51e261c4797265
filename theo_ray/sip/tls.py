"""SIP over TLS for the gateway: the `[sip.tls]` settings, the checks made before a shard
listens, and the pjsua2 TLS transport configuration built from them.

The private key's passphrase is never a setting: it is read at start from the environment
variable named by `key_passphrase_env` or from the file named by `key_passphrase_file`
(a Docker/Kubernetes secret), and only handed to pjsip, never logged.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated

import msgspec

from theo_ray.errors import ConfigError

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class SipTlsSettings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = False
    # Shard k listens on port + k, beside its UDP/TCP port (sip.port + k); 0: any free port.
    port: Port = 5090
    cert_file: str = ""  # PEM certificate (chain) Theo presents to the PBX
    key_file: str = ""  # PEM private key of that certificate
    # CA bundle Theo verifies PBX client certificates with (needed by verify_client).
    ca_file: str = ""
    # Require the PBX to present a certificate signed by ca_file (mutual TLS).
    verify_client: bool = False
    key_passphrase_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "THEO_SIP_TLS_KEY_PASSPHRASE"
    key_passphrase_file: str = ""

    def __post_init__(self) -> None:
        if self.enabled and not (self.cert_file and self.key_file):
            raise ConfigError("sip.tls", "enabled needs cert_file and key_file")
        if self.verify_client and not self.ca_file:
            raise ConfigError("sip.tls.verify_client", "needs sip.tls.ca_file (the CA of the PBX's certificate)")


def _readable(key: str, path: str) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in head:
        raise ConfigError(key, f"{path} is not a PEM file")


def _key_passphrase(tls: SipTlsSettings, environ: dict[str, str]) -> str:
    value = environ.get(tls.key_passphrase_env, "")
    if value or not tls.key_passphrase_file:
        return value
    path = tls.key_passphrase_file
    try:
        if os.stat(path).st_mode & (stat.S_IROTH | stat.S_IWOTH):
            raise ConfigError("sip.tls.key_passphrase_file", f"{path} is readable or writable by every user: chmod 600")
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("sip.tls.key_passphrase_file", f"cannot read {path}: {exc.strerror or exc}") from exc


def check_tls_files(tls: SipTlsSettings, environ: dict[str, str] | None = None) -> str:
    """Raise ConfigError naming the setting when a file is missing, unreadable or not PEM,
    or the key cannot be opened with the passphrase; return the passphrase ("" if none).

    pjsip's own failure here is a bare "Invalid argument" at transport creation, so the
    files are opened by Python first to say which one is wrong."""
    for key, path in (("sip.tls.cert_file", tls.cert_file), ("sip.tls.key_file", tls.key_file)):
        _readable(key, path)
    if tls.ca_file:
        _readable("sip.tls.ca_file", tls.ca_file)
    passphrase = _key_passphrase(tls, os.environ if environ is None else environ)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(Path(tls.key_file).read_bytes(), passphrase.encode() or None)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        raise ConfigError("sip.tls.key_file", f"{tls.key_file}: {exc} (passphrase from ${tls.key_passphrase_env} "
                          "or sip.tls.key_passphrase_file)") from None
    except ValueError:
        raise ConfigError("sip.tls.key_file", f"{tls.key_file}: not a private key, or the passphrase is wrong") from None
    return passphrase


def tls_transport_config(pj, tls: SipTlsSettings, host: str, port: int, passphrase: str):
    """The pjsua2 TransportConfig of a shard's TLS listener (TLS 1.2 or newer)."""
    tcfg = pj.TransportConfig()
    tcfg.port = port
    tcfg.boundAddress = host
    t = tcfg.tlsConfig
    t.certFile = tls.cert_file
    t.privKeyFile = tls.key_file
    t.password = passphrase
    t.CaListFile = tls.ca_file
    t.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
    t.verifyClient = tls.verify_client
    t.requireClientCert = tls.verify_client
    return tcfg
