"""pjsua2 endpoint and account configuration for the SIP gateway (runs on the pjsua thread).

Owns how Theo's pjsua is set up: one poller thread (the PjsuaThread), log level and
writer, the null audio device, which codecs pjsua may stream (hence answer), the SIP
transports (TLS beside UDP/TCP when sip.tls.enabled), and the account's session timers
and loop media transport (pjsua opens no RTP socket: media belongs to the CallActors).
"""

from __future__ import annotations

import logging

import pjsua2 as pj

from theo_ray.sip.pj_thread import PjLogWriter
from theo_ray.sip.settings import PJSUA_MAX_CALLS, SipSettings
from theo_ray.sip.tls import tls_transport_config

log = logging.getLogger("theo_ray.sip.user_agent")  # its logger before the split: filters keep working

_TIMER_USE = {
    "inactive": pj.PJSUA_SIP_TIMER_INACTIVE,
    "optional": pj.PJSUA_SIP_TIMER_OPTIONAL,
    "required": pj.PJSUA_SIP_TIMER_REQUIRED,
    "always": pj.PJSUA_SIP_TIMER_ALWAYS,
}


def start_endpoint(
    ep: pj.Endpoint, s: SipSettings, log_writer: PjLogWriter, tls_passphrase: str = ""
) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """libInit, codecs, transports, libStart. Returns the bound address of each transport
    and the codec preference narrowed to what this pjsua build can stream. The TLS files
    were checked by the caller (check_tls_files), which also read `tls_passphrase`."""
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = False
    # One pjsua slot more than Theo admits: with every slot taken pjsua itself answers
    # 486, while Theo answers a full shard with 503 + Retry-After from the spare slot.
    cfg.uaConfig.maxCalls = min(PJSUA_MAX_CALLS, s.max_calls + 1)
    cfg.uaConfig.userAgent = s.user_agent
    cfg.uaConfig.mwiUnsolicitedEnabled = False  # pjsua would 200 any message-summary NOTIFY
    cfg.medConfig.threadCnt = 0  # one poller only: the PjsuaThread
    cfg.medConfig.noVad = True
    # Level 4 carries pjsua's "RX/TX <n> bytes ... msg" lines the DatagramRecord and
    # DialogRelease read; the writer forwards only up to s.log_level to Python logging.
    level = max(s.log_level, 4)
    cfg.logConfig.level = level
    cfg.logConfig.consoleLevel = level
    cfg.logConfig.writer = log_writer
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    # The loop stream pjsua keeps must be creatable for every codec we may answer.
    # pjsua keeps a (loop) stream per call, so only codecs it can instantiate may be
    # answered; this wheel, for one, registers L16 at 44.1 kHz only.
    available = {c.codecId.split("/")[0].upper() + "/" + c.codecId.split("/")[1]
                 for c in ep.codecEnum2()}
    for codec_id in ("L16/8000/1", "L16/16000/1", "G722/16000/1", "PCMU/8000/1", "PCMA/8000/1"):
        name, rate, _ = codec_id.split("/")
        if f"{name.upper()}/{rate}" in available:
            ep.codecSetPriority(codec_id, 128)
    pjsua_names = {key.split("/")[0] for key in available if not key.startswith("L16/44100")}
    preference = [n for n in s.codec_preference if n.upper() in pjsua_names]
    dropped = [n for n in s.codec_preference if n not in preference]
    if dropped:
        log.warning("codecs %s left out of answers: this pjsua build cannot stream them", dropped)
    kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}
    configs: dict[str, pj.TransportConfig] = {}
    for name in s.transports:
        configs[name] = pj.TransportConfig()
        configs[name].port = s.port
        configs[name].boundAddress = s.host
    if s.tls.enabled:
        configs["tls"] = tls_transport_config(pj, s.tls, s.host, s.tls.port, tls_passphrase)
    addresses: dict[str, tuple[str, int]] = {}
    for name, tcfg in configs.items():
        tid = ep.transportCreate(kinds[name], tcfg)
        local = ep.transportGetInfo(tid).localName
        host, _, port = local.rpartition(":")
        addresses[name] = (host.strip("[]"), int(port))
    ep.libStart()
    return addresses, preference


def account_config(s: SipSettings, addresses: dict[str, tuple[str, int]]) -> pj.AccountConfig:
    """The gateway account: its URI on the first transport, session timers, loop media."""
    acfg = pj.AccountConfig()
    first = next(iter(addresses.values()))
    acfg.idUri = f"sip:{s.account_user}@{first[0]}:{first[1]}"
    acfg.callConfig.timerUse = _TIMER_USE[s.session_timers]
    acfg.callConfig.timerSessExpiresSec = s.session_expires
    acfg.callConfig.timerMinSESec = s.min_se
    acfg.mediaConfig.useLoopMedTp = True
    if s.srtp != "off":
        # Without it pjsua refuses an RTP/SAVP offer itself (488) before Theo answers it;
        # the keys and the SRTP are Theo's (sdes.py, the CallActor's RtpSession): pjsua's
        # own SRTP only wraps its loop transport, which carries no packets.
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_OPTIONAL
        acfg.mediaConfig.srtpSecureSignaling = 0  # Theo's sdes.py applies sip.srtp_over_udp
        keyings = pj.IntVector()
        keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)  # never DTLS-SRTP
        acfg.mediaConfig.srtpOpt.keyings = keyings
    return acfg
