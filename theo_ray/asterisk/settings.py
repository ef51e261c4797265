"""Site settings of the Asterisk side: where Theo's SIP gateway and the PBX live, the AMI
account Theo uses, the dialplan names (inbound extension, transfer routes, music on hold)
and the AMI client's timing. One Struct, `AsteriskSiteSettings`, feeds both the config
renderer (`theo asterisk-config`) and the AmiBridge, so the PBX files and Theo agree.

The AMI secret is never a setting: it is read at run time from the environment variable
named by `ami.secret_env` or from the file named by `ami.secret_file` (a Docker/Kubernetes
secret), see `resolve_ami_secret`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from theo_ray.errors import ConfigError

# Values that end up inside Asterisk config files. Newlines would inject config lines and
# ';' starts a comment there, so every rendered string is constrained by a pattern.
Host = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.:\-\[\]]+$", max_length=253)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$", max_length=64)]
HostOrEmpty = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.:\-\[\]]*$", max_length=253)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Cidr = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Fa-f.:]+(/[0-9.]+)?$", max_length=64)]
FilePath = Annotated[str, msgspec.Meta(pattern=r"^[^\s;]*$", max_length=512)]
DialString = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-/@.:&]+$", max_length=200)]
# What Theo's gateway answers (pjsua2: G.722, PCMU, PCMA). Opus and L16 are not offered by it:
# a PBX that sent only those would get 488 on every call.
Codec = Literal["g722", "ulaw", "alaw"]


class TheoGatewaySettings(msgspec.Struct, forbid_unknown_fields=True):
    """Theo's SIP gateway (SipGateway actor, pjsua2) as the PBX sees it."""

    host: Host = "127.0.0.1"  # address Asterisk sends INVITEs and OPTIONS to (no NAT between)
    sip_port: Port = 5080
    # How the PBX reaches Theo's gateway: UDP or TCP (sip.transports), or TLS (sip.tls,
    # on tls_port + k); without TLS the link belongs on a private network (asterisk/README.md §8).
    transport: Literal["udp", "tcp", "tls"] = "udp"
    tls_port: Port = 5090  # Theo's sip.tls.port: the PBX dials tls_port .. tls_port + shards - 1
    endpoint: Name = "theo"  # PJSIP endpoint/aor/identify name on the PBX
    # Gateway processes Theo runs (its `sip.shards`), on sip_port .. sip_port + shards - 1.
    shards: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4


class PbxTlsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The PBX's TLS transport toward Theo (asterisk.theo.transport = "tls")."""

    port: Port = 5061
    # The CA (bundle) that signed Theo's sip.tls.cert_file: Asterisk verifies Theo with it.
    ca_list_file: FilePath = "/etc/asterisk/keys/theo-ca.crt"
    # The PBX's own certificate and key, presented to Theo when it has sip.tls.verify_client.
    cert_file: FilePath = "/etc/asterisk/keys/asterisk.crt"
    priv_key_file: FilePath = "/etc/asterisk/keys/asterisk.key"
    verify_server: bool = True  # Asterisk checks Theo's certificate (and its name: theo.host)


class PbxSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The Asterisk host: SIP transport, RTP range, NAT knobs (GAP 10)."""

    host: Host = "127.0.0.1"  # address the SIP transport binds to (a fixed address, no NAT)
    sip_port: Port = 5060
    # Only when the PBX is behind NAT toward the callers; empty keeps SDP addresses untouched.
    external_media_address: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.:\-]*$")] = ""
    local_nets: list[Cidr] = msgspec.field(default_factory=list)
    rtp_port_start: Port = 10000
    rtp_port_end: Port = 20000
    tls: PbxTlsSettings = msgspec.field(default_factory=PbxTlsSettings)


class SipTrunkSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The `[asterisk.sip]` table: the PBX's side of its trunk to Theo (GAP 8: session timers
    and OPTIONS keep-alive). Theo's own gateway is `theo_ray.sip.settings.SipSettings` (`[sip]`)."""

    codecs: list[Codec] = msgspec.field(default_factory=lambda: ["g722", "ulaw", "alaw"])
    session_expires_s: Annotated[int, msgspec.Meta(ge=90)] = 1800
    session_min_se_s: Annotated[int, msgspec.Meta(ge=90)] = 90
    qualify_frequency_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 30
    qualify_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    # Hang up the AI leg when Theo sent no RTP for this long (a crashed Theo sends no BYE);
    # the caller then falls back to a human. Theo sends RTP every 20 ms while a call is up.
    rtp_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=600)] = 5
    # "sdes": the PBX offers SRTP to Theo (RTP/SAVP, keys in the SDP: Theo's sip.srtp), which
    # needs theo.transport = "tls" (or Theo's sip.srtp_over_udp); "no": plain RTP.
    media_encryption: Literal["no", "sdes"] = "no"


class TransferRoute(msgspec.Struct, forbid_unknown_fields=True):
    """Where a transfer destination goes: an app_queue queue or a dial string."""

    kind: Literal["queue", "dial"] = "queue"
    target: DialString = "atendimento"  # queue name, or e.g. PJSIP/2000
    timeout_s: Annotated[int, msgspec.Meta(ge=5, le=7200)] = 300


class DialplanSettings(msgspec.Struct, forbid_unknown_fields=True):
    inbound_context: Name = "theo-inbound"
    inbound_exten: Name = "8000"  # extension the trunk/DID routes to Theo
    # One try: a gateway shard must answer within this (Theo answers in well under a second);
    # a shard that is full, down or silent is passed over for the next one.
    dial_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=120)] = 5
    # All tries together: after this the caller goes to the fallback route (ringback until then).
    dial_total_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=300)] = 15
    transfer_context: Name = "theo-transfer"
    # Destination names the agent may transfer to (the `destination` of transfer_call).
    # Each name is an extension in transfer_context.
    transfer_routes: dict[Name, TransferRoute] = msgspec.field(
        default_factory=lambda: {"atendimento": TransferRoute()}
    )
    # Where the caller goes when the AI leg fails, times out or ends without a transfer.
    fallback_route: Name = "atendimento"
    moh_class: Name = "default"
    # Asterisk-side recording, the alternative to Theo's own (call_data.recording): MixMonitor
    # on the caller's channel from Answer() to hang-up, named `<THEO_SESSION_ID>.<ext>`.
    mixmonitor: bool = False
    mixmonitor_dir: FilePath = "/var/spool/asterisk/monitor/theo"
    # "wav": both directions mixed into one mono WAV. "stereo-raw": MixMonitor's D option,
    # the two directions interleaved as 2-channel 16-bit PCM at the channel's rate in a .raw
    # file (the D option only writes .raw correctly).
    mixmonitor_format: Literal["wav", "stereo-raw"] = "wav"


class AmiSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The AMI account Theo logs in with, and the AMI client's timing (GAP 11)."""

    host: Host = "127.0.0.1"
    port: Port = 5038
    tls: bool = False
    tls_port: Port = 5039
    tls_cert_file: FilePath = "/etc/asterisk/keys/asterisk.crt"
    tls_key_file: FilePath = "/etc/asterisk/keys/asterisk.key"
    tls_ca_file: FilePath = ""  # CA Theo trusts for the AMI certificate; empty = system CAs
    # Where the PBX's AMI listens (manager.conf bindaddr / tlsbindaddr). "" = `host` above,
    # the PBX address Theo connects to, so the AMI is not open on every interface of the PBX.
    bind_address: HostOrEmpty = ""
    # The address Theo's AMI client connects from, so the PBX's `permit=` ACL sees what it
    # expects. "" = asterisk.theo.host ("0.0.0.0" = whatever the OS picks).
    source_address: HostOrEmpty = ""
    username: Name = "theo"
    secret_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "THEO_AMI_SECRET"
    secret_file: FilePath = ""
    # Where the PBX reads the secret when it is not known at render time (see README).
    secret_include_file: FilePath = "/etc/asterisk/theo_ami_secret.conf"
    # Networks allowed to log in as this user; empty = only theo.host (needed when that is a name).
    # On the command line: --set 'ami.permit=["10.0.0.5/32", "10.0.1.0/24"]' (a JSON array).
    permit: list[Cidr] = msgspec.field(default_factory=list)
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    action_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # How long a Redirect/Hangup waits for a session being re-established before it fails: the
    # caller is waiting in silence after the goodbye, and a failure is not the end (the
    # CallActor's BYE sends them to the dialplan's fallback route, a human).
    reconnect_wait_s: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    ping_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    unhealthy_after_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    backoff_initial_s: Annotated[float, msgspec.Meta(gt=0)] = 0.2
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Redirects and hang-ups remembered for idempotency (oldest forgotten first).
    remembered_sessions: Annotated[int, msgspec.Meta(ge=16)] = 10000


class AsteriskSiteSettings(msgspec.Struct, forbid_unknown_fields=True):
    theo: TheoGatewaySettings = msgspec.field(default_factory=TheoGatewaySettings)
    pbx: PbxSettings = msgspec.field(default_factory=PbxSettings)
    sip: SipTrunkSettings = msgspec.field(default_factory=SipTrunkSettings)
    dialplan: DialplanSettings = msgspec.field(default_factory=DialplanSettings)
    ami: AmiSettings = msgspec.field(default_factory=AmiSettings)

    def ami_source_address(self) -> str | None:
        """The local address the AMI client binds before connecting (None: the OS picks)."""
        source = self.ami.source_address or self.theo.host
        return None if source in ("", "0.0.0.0", "::") else source.strip("[]")

    def __post_init__(self) -> None:
        if self.pbx.rtp_port_start >= self.pbx.rtp_port_end:
            raise ConfigError("pbx.rtp_port_start", "must be below pbx.rtp_port_end")
        if not self.sip.codecs:
            raise ConfigError("sip.codecs", "needs at least one codec")
        if self.sip.session_min_se_s > self.sip.session_expires_s:
            raise ConfigError("sip.session_min_se_s", "must not exceed sip.session_expires_s")
        if self.dialplan.fallback_route not in self.dialplan.transfer_routes:
            raise ConfigError("dialplan.fallback_route", "must name one of dialplan.transfer_routes")
        if self.dialplan.dial_total_timeout_s < self.dialplan.dial_timeout_s:
            raise ConfigError("dialplan.dial_total_timeout_s", "must be at least dialplan.dial_timeout_s")
        if self.ami.unhealthy_after_s <= self.ami.ping_interval_s:
            raise ConfigError("ami.unhealthy_after_s", "must be longer than ami.ping_interval_s")


# Secrets shipped in samples, distributions and tutorials (Asterisk's sample manager.conf,
# FreePBX's AMPMGRPASS, the usual placeholders): an AMI account that can move or drop every
# call on the PBX must not use one. Compared without case.
KNOWN_DEFAULT_SECRETS = frozenset({
    "mysecret", "amp111", "amp109", "secret", "password", "passw0rd", "admin", "administrator", "manager",
    "asterisk", "changeme", "change-me", "changeit", "theo", "1234", "12345", "123456", "12345678",
    "default", "test", "s3cret", "letmein", "ami", "amipass",
})


def _read_secret_file(path: str) -> str:
    """The secret file's one line; refused when every user of the host could read it."""
    try:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise ConfigError(
                "ami.secret_file",
                f"{path} is readable or writable by every user (mode {stat.S_IMODE(mode):04o}): "
                "chmod 600 (or 640 for a group); Kubernetes secret volumes: defaultMode 0400; "
                "Docker secrets: mode 0400",
            )
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("ami.secret_file", f"cannot read {path}: {exc.strerror or exc}") from exc


def resolve_ami_secret(ami: AmiSettings, environ: dict[str, str] | None = None) -> str | None:
    """The AMI secret from the environment, else from the secrets file; None when neither."""
    env = os.environ if environ is None else environ
    value = env.get(ami.secret_env, "")
    if not value and ami.secret_file:
        value = _read_secret_file(ami.secret_file)
    if not value:
        return None
    if value.strip().lower() in KNOWN_DEFAULT_SECRETS:
        raise ConfigError(ami.secret_env, "a well-known default AMI secret: generate one (openssl rand -base64 32)")
    if any(ch in value for ch in "\r\n"):
        raise ConfigError(ami.secret_env, "the AMI secret must be one line")
    if "\\" in value:
        # Asterisk's config parser unescapes "\;" only: a backslash in manager.conf would never
        # match what Theo sends. `openssl rand -base64 32` never writes one.
        raise ConfigError(ami.secret_env, "the AMI secret must not contain a backslash")
    return value
