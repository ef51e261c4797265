"""Renders the Asterisk 22 configuration for a site from the templates in asterisk/templates/:
pjsip.conf (trunk to Theo), extensions.conf (inbound, transfer routes, no-dead-air fallback),
manager.conf (Theo's AMI account) and rtp.conf (RTP port range).

Templates use `{{name}}` placeholders because Asterisk configs use `${VAR}` themselves.
Repeated or optional blocks (transfer routes, the transport) are small fragment templates chosen and
joined here, so every line of Asterisk syntax lives in a template an admin can read.
"""

from __future__ import annotations

import ipaddress
import os
import string
from pathlib import Path

from theo_ray.asterisk.settings import (
    AsteriskSiteSettings,
    TransferRoute,
    resolve_ami_secret,
)
from theo_ray.errors import ConfigError

__all__ = ["AsteriskSiteSettings", "default_templates_dir", "render_asterisk_config"]

RENDERED_FILES = ("pjsip.conf", "extensions.conf", "manager.conf", "rtp.conf")


class ConfTemplate(string.Template):
    """string.Template with `{{name}}` placeholders; `${...}` stays Asterisk's."""

    delimiter = "{{"
    pattern = r"""
    \{\{(?:
      (?P<escaped>(?!)) |
      (?P<named>[a-z_][a-z0-9_]*)\}\} |
      (?P<braced>(?!)) |
      (?P<invalid>)
    )
    """


def default_templates_dir() -> Path:
    """asterisk/templates/ of the source tree this package sits in."""
    return Path(__file__).resolve().parents[2] / "asterisk" / "templates"


def render_asterisk_config(
    settings: AsteriskSiteSettings,
    out_dir: str | Path,
    *,
    templates_dir: str | Path | None = None,
    environ: dict[str, str] | None = None,
    include_secret: bool = False,
) -> list[Path]:
    """Write the rendered files into `out_dir` (created if needed) and return their paths.

    The AMI secret is written into manager.conf only when asked (`include_secret`,
    `theo asterisk-config --with-secret`) and available from the environment/secrets file
    now; otherwise manager.conf `#include`s `ami.secret_include_file`, which the admin
    creates on the PBX (see asterisk/README.md).
    """
    tdir = Path(templates_dir) if templates_dir is not None else default_templates_dir()
    if not tdir.is_dir():
        raise ConfigError("templates_dir", f"{tdir} is not a directory")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    secret = resolve_ami_secret(settings.ami, environ) if include_secret else None
    texts = {
        "pjsip.conf": _render(tdir, "pjsip.conf.tmpl", _pjsip_values(settings, tdir)),
        "extensions.conf": _render(tdir, "extensions.conf.tmpl", _extensions_values(settings, tdir)),
        "manager.conf": _render(tdir, "manager.conf.tmpl", _manager_values(settings, secret)),
        "rtp.conf": _render(
            tdir,
            "rtp.conf.tmpl",
            {"rtp_port_start": settings.pbx.rtp_port_start, "rtp_port_end": settings.pbx.rtp_port_end},
        ),
    }
    written = []
    for name in RENDERED_FILES:
        path = out / name
        # manager.conf with the AMI secret in it is never world-readable; without it (the
        # secret #included from the PBX's own file) it is an ordinary config file, readable by
        # the container's asterisk user when bind-mounted.
        mode = 0o640 if name == "manager.conf" and secret is not None else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(texts[name])
        os.chmod(path, mode)
        written.append(path)
    return written


def _render(tdir: Path, name: str, values: dict[str, object]) -> str:
    path = tdir / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("templates_dir", f"cannot read template {path}: {exc}") from exc
    try:
        rendered = ConfTemplate(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise ConfigError(name, f"template uses unknown placeholder {exc}") from exc
    except ValueError as exc:
        raise ConfigError(name, f"malformed placeholder: {exc}") from exc
    # Collapse the blank lines left by empty optional blocks.
    lines: list[str] = []
    for line in rendered.splitlines():
        if line.strip() or (lines and lines[-1].strip()):
            lines.append(line.rstrip())
    return "\n".join(lines).rstrip() + "\n"


def _transport_param(transport: str) -> str:
    # ';' starts a comment in Asterisk configs: the URI parameter must be written '\;'.
    return "" if transport == "udp" else f"\\;transport={transport}"


def _theo_port(theo) -> int:
    """Shard 0's port for the PBX: Theo's TLS listeners have ports of their own (sip.tls.port)."""
    return theo.tls_port if theo.transport == "tls" else theo.sip_port


def _tls_lines(settings: AsteriskSiteSettings) -> str:
    """The TLS transport's certificate lines (nothing for UDP/TCP)."""
    if settings.theo.transport != "tls":
        return ""
    tls = settings.pbx.tls
    return "\n".join([
        "; TLS toward Theo: Theo's certificate is checked against ca_list_file; the PBX's own",
        "; certificate is what Theo checks when it has sip.tls.verify_client.",
        "method=tlsv1_2",
        f"ca_list_file={tls.ca_list_file}",
        f"cert_file={tls.cert_file}",
        f"priv_key_file={tls.priv_key_file}",
        f"verify_server={'yes' if tls.verify_server else 'no'}",
    ])


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _host_network(host: str) -> str | None:
    """The one-address network of an IP host ("10.0.0.5/32", "fd00::5/128"); None for a name."""
    try:
        return str(ipaddress.ip_network(host.strip("[]")))
    except ValueError:
        return None


def _nat_lines(settings: AsteriskSiteSettings) -> str:
    pbx = settings.pbx
    if not pbx.external_media_address:
        return "; Fixed addresses, no NAT between this PBX and its peers: SDP is sent untouched."
    lines = [
        f"external_media_address={pbx.external_media_address}",
        f"external_signaling_address={pbx.external_media_address}",
    ]
    # Theo is reached directly (no NAT between it and the PBX): its address is always local.
    # A host name is not a network: the admin lists Theo's in pbx.local_nets (README §3).
    theo_net = _host_network(settings.theo.host)
    nets = [*pbx.local_nets, *([theo_net] if theo_net else [])]
    lines += [f"local_net={net}" for net in dict.fromkeys(nets)]
    return "\n".join(lines)


def _pjsip_values(settings: AsteriskSiteSettings, tdir: Path) -> dict[str, object]:
    theo, pbx, sip = settings.theo, settings.pbx, settings.sip
    transport_name = f"{theo.endpoint}-transport-{theo.transport}"
    common = {"transport_name": transport_name, "pbx_host_uri": _uri_host(pbx.host), "nat_lines": _nat_lines(settings)}
    transport = _render(
        tdir,
        "pjsip.transport.conf.tmpl",
        common | {"transport_protocol": theo.transport, "tls_lines": _tls_lines(settings),
                  "pbx_sip_port": pbx.tls.port if theo.transport == "tls" else pbx.sip_port},
    )
    return {
        "transport_section": transport,
        "transport_name": transport_name,
        "theo_endpoint": theo.endpoint,
        "theo_host": theo.host,
        "theo_host_uri": _uri_host(theo.host),
        "theo_sip_port": _theo_port(theo),
        # One static contact per gateway shard: each is qualified (OPTIONS) on its own.
        "aor_contacts": "\n".join(
            f"contact=sip:{theo.endpoint}@{_uri_host(theo.host)}:{_theo_port(theo) + k}{_transport_param(theo.transport)}"
            for k in range(theo.shards)
        ),
        "theo_shards": theo.shards,
        "codecs": ",".join(dict.fromkeys(sip.codecs)),
        "session_min_se_s": sip.session_min_se_s,
        "session_expires_s": sip.session_expires_s,
        "rtp_timeout_s": sip.rtp_timeout_s,
        "media_encryption": sip.media_encryption,
        "qualify_frequency_s": sip.qualify_frequency_s,
        "qualify_timeout_s": f"{sip.qualify_timeout_s:g}",
    }


def _route_block(settings: AsteriskSiteSettings, tdir: Path, name: str, route: TransferRoute) -> str:
    dialplan = settings.dialplan
    if name == dialplan.fallback_route:
        # The last resort: nobody answered within the route's timeout.
        after = "Hangup()"
    else:
        after = f"Goto({dialplan.transfer_context},{dialplan.fallback_route},1)"
    template = "extensions.route-queue.conf.tmpl" if route.kind == "queue" else "extensions.route-dial.conf.tmpl"
    return _render(
        tdir,
        template,
        {
            "route_name": name,
            "route_target": route.target,
            "route_timeout_s": route.timeout_s,
            "route_after": after,
            "moh_class": dialplan.moh_class,
        },
    )


def _extensions_values(settings: AsteriskSiteSettings, tdir: Path) -> dict[str, object]:
    dialplan = settings.dialplan
    routes = "\n".join(
        _route_block(settings, tdir, name, route) for name, route in dialplan.transfer_routes.items()
    )
    return {
        "inbound_context": dialplan.inbound_context,
        "inbound_exten": dialplan.inbound_exten,
        "dial_timeout_s": dialplan.dial_timeout_s,
        "dial_total_timeout_s": dialplan.dial_total_timeout_s,
        "transfer_context": dialplan.transfer_context,
        "fallback_route": dialplan.fallback_route,
        "moh_class": dialplan.moh_class,
        "theo_endpoint": settings.theo.endpoint,
        "theo_host_uri": _uri_host(settings.theo.host),
        "theo_sip_port": _theo_port(settings.theo),
        "theo_shards": settings.theo.shards,
        "theo_last_shard": settings.theo.shards - 1,
        "theo_last_port": _theo_port(settings.theo) + settings.theo.shards - 1,
        "dial_transport_param": _transport_param(settings.theo.transport),
        "transfer_routes": routes,
        "mixmonitor_lines": _mixmonitor_lines(dialplan, tdir),
    }


def _mixmonitor_lines(dialplan, tdir: Path) -> str:
    """The inbound context's MixMonitor step, or nothing (dialplan.mixmonitor off)."""
    if not dialplan.mixmonitor:
        return ""
    stereo = dialplan.mixmonitor_format == "stereo-raw"
    folder = dialplan.mixmonitor_dir.rstrip("/") or "/"
    return _render(tdir, "extensions.mixmonitor.conf.tmpl", {
        # THEO_SESSION_ID is ${UNIQUEID}: nothing the caller controls goes into the name.
        "mixmonitor_file": f"{folder}/${{THEO_SESSION_ID}}.{'raw' if stereo else 'wav'}",
        "mixmonitor_options": ",D" if stereo else "",
    })


def _manager_values(settings: AsteriskSiteSettings, secret: str | None) -> dict[str, object]:
    ami = settings.ami
    if secret is None:
        secret_line = (
            f"; The secret is not in this file: create {ami.secret_include_file} (mode 0640)\n"
            f"; holding one line `secret=<the value of {ami.secret_env} on Theo's host>`.\n"
            f"#include {ami.secret_include_file}"
        )
    else:
        # ';' starts a comment in Asterisk configs; a literal one is written '\;'.
        secret_line = "secret=" + secret.replace(";", "\\;")
    theo_net = _host_network(settings.theo.host)
    if not ami.permit and theo_net is None:
        raise ConfigError("ami.permit", f"theo.host {settings.theo.host!r} is a name: list Theo's address(es) here")
    permits = ami.permit or [theo_net]
    bind = ami.bind_address or ami.host
    if _host_network(bind) is None:
        raise ConfigError("ami.bind_address", f"ami.host {ami.host!r} is a name: set the PBX's AMI address here")
    if ami.tls:
        tls_lines = "\n".join(
            [
                "; AMI over TLS for Theo (GAP 22); the plain port above only serves local tools.",
                "tlsenable=yes",
                f"tlsbindaddr={_uri_host(bind)}:{ami.tls_port}",
                f"tlscertfile={ami.tls_cert_file}",
                f"tlsprivatekey={ami.tls_key_file}",
            ]
        )
        plain_bind = "127.0.0.1"
    else:
        tls_lines = "; AMI without TLS: keep Theo and the PBX on a private network (see README)."
        plain_bind = bind
    return {
        "ami_port": ami.port,
        "ami_plain_bind_address": plain_bind,
        "tls_lines": tls_lines,
        "ami_username": ami.username,
        "secret_line": secret_line,
        "permit_lines": "\n".join(f"permit={cidr}" for cidr in permits),
    }
