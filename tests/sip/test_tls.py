"""SIP over TLS on loopback: a real gateway (SipUserAgent) with a TLS listener beside UDP,
pjsua2 callers dialling `;transport=tls` with certificates made in the test, and the
start-up checks of the certificate settings."""

from __future__ import annotations

import asyncio
import logging

import msgspec

import pytest

from tests.sip.conftest import free_port
from tests.sip.tls_certs import make_pki
from theo_ray.errors import ConfigError
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.tls import SipTlsSettings, check_tls_files
from theo_ray.sip.user_agent import SipUserAgent

PASSPHRASE = "canary-7c1e-tls-passphrase"


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki", passphrase=PASSPHRASE)


@pytest.fixture
async def tls_gateway(router, pki, monkeypatch):
    monkeypatch.setenv("THEO_SIP_TLS_KEY_PASSPHRASE", PASSPHRASE)
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file)
    agent = SipUserAgent(SipSettings(port=free_port(), transports=["udp"], tls=tls, log_level=1), router)
    await agent.start()
    yield agent
    await agent.stop()


async def _call(caller: SipCaller, uri: str, session: str, router, tone_wav: str) -> None:
    await caller.dial(uri, headers={"X-Theo-Session": session}, play_wav=tone_wav)
    answered = await caller.wait_for("answered", 10)
    assert answered.status == 200
    await caller.wait_for("media_active", 5)
    await router.wait(lambda: router.rtp_count(session) >= 10, 5)  # the caller's audio reached the call socket
    await caller.hangup()
    await caller.wait_for("disconnected", 5)


async def test_a_call_over_tls_and_a_udp_call_on_the_same_shard(tls_gateway, router, pki, tone_wav, caplog):
    caplog.set_level(logging.DEBUG)
    assert set(tls_gateway.addresses) == {"udp", "tls"}
    host, port = tls_gateway.addresses["tls"]
    assert port > 0
    # The caller verifies the gateway's certificate against the test CA.
    settings = CallerSettings(transport="tls", tls_ca_file=pki.ca_file, codecs=["PCMU"])
    async with SipCaller(settings) as caller:
        await _call(caller, f"sip:theo@{host}:{port};transport=tls", "tls-1", router, tone_wav)
    udp_host, udp_port = tls_gateway.addresses["udp"]
    async with SipCaller(CallerSettings(codecs=["PCMU"])) as caller:
        await _call(caller, f"sip:theo@{udp_host}:{udp_port}", "udp-1", router, tone_wav)
    await router.wait(lambda: len(router.closed) == 2, 5)
    assert [s.session_id for s in router.setups] == ["tls-1", "udp-1"]
    stats = tls_gateway.stats()
    assert (stats.invites, stats.answered) == (2, 2)
    assert PASSPHRASE not in caplog.text


async def test_a_caller_that_does_not_trust_the_certificate_gets_no_call(tls_gateway, router, tmp_path, tone_wav):
    other_ca = make_pki(tmp_path / "other")
    host, port = tls_gateway.addresses["tls"]
    async with SipCaller(CallerSettings(transport="tls", tls_ca_file=other_ca.ca_file)) as caller:
        await caller.dial(f"sip:theo@{host}:{port};transport=tls", play_wav=tone_wav)
        ended = await caller.wait_for("disconnected", 10)
    assert ended.status >= 400 and not router.setups  # the handshake failed, nothing reached Theo


def test_missing_or_unreadable_files_are_named(pki, tmp_path):
    def error(**fields) -> str:
        tls = SipTlsSettings(**{"enabled": True, "cert_file": pki.cert_file, "key_file": pki.key_file} | fields)
        with pytest.raises(ConfigError) as info:
            check_tls_files(tls, {"THEO_SIP_TLS_KEY_PASSPHRASE": PASSPHRASE})
        return str(info.value)

    assert "sip.tls.cert_file" in error(cert_file=str(tmp_path / "absent.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert "sip.tls.key_file" in error(key_file=str(garbage))
    assert "sip.tls.ca_file" in error(ca_file=str(tmp_path / "absent-ca.pem"))
    with pytest.raises(ConfigError, match="sip.tls.key_file"):  # encrypted key, no passphrase
        check_tls_files(SipTlsSettings(enabled=True, cert_file=pki.cert_file, key_file=pki.key_file), {})
    with pytest.raises(ConfigError, match="cert_file and key_file"):
        SipTlsSettings(enabled=True)


def test_the_passphrase_file_is_read_and_must_not_be_world_readable(pki, tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    tls = SipTlsSettings(enabled=True, cert_file=pki.cert_file, key_file=pki.key_file,
                         key_passphrase_file=str(secret))
    assert check_tls_files(tls, {}) == PASSPHRASE
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="every user") as info:
        check_tls_files(tls, {})
    assert PASSPHRASE not in str(info.value)


async def test_the_gateway_refuses_to_start_without_its_key(router, pki, tmp_path):
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=str(tmp_path / "no-key.pem"))
    agent = SipUserAgent(SipSettings(port=free_port(), transports=["udp"], tls=tls), router)
    with pytest.raises(ConfigError, match="sip.tls.key_file"):
        await asyncio.wait_for(agent.start(), 20)
    await agent.stop()


def test_the_pbx_is_told_tls_only_where_theo_listens_for_it(pki):
    from theo_ray.asterisk.settings import AsteriskSiteSettings, TheoGatewaySettings
    from theo_ray.config import CallSettings, TheoConfig

    asterisk = AsteriskSiteSettings(theo=TheoGatewaySettings(transport="tls", tls_port=5090))
    with pytest.raises(ConfigError, match="sip.tls.enabled"):
        TheoConfig(call=CallSettings(use_ami=True), asterisk=asterisk)
    tls = SipTlsSettings(enabled=True, port=5090, cert_file=pki.cert_file, key_file=pki.key_file)
    TheoConfig(call=CallSettings(use_ami=True), asterisk=asterisk, sip=SipSettings(tls=tls))
    # SRTP: SDES keys only over TLS, and "required" only when the PBX is told to offer it.
    sdes = msgspec.structs.replace(asterisk, sip=msgspec.structs.replace(asterisk.sip, media_encryption="sdes"))
    TheoConfig(call=CallSettings(use_ami=True), asterisk=sdes, sip=SipSettings(tls=tls, srtp="required"))
    with pytest.raises(ConfigError, match="media_encryption"):
        TheoConfig(call=CallSettings(use_ami=True), asterisk=sdes, sip=SipSettings(tls=tls, srtp="off"))
    with pytest.raises(ConfigError, match="sip.srtp"):
        TheoConfig(call=CallSettings(use_ami=True), asterisk=asterisk, sip=SipSettings(tls=tls, srtp="required"))
    with pytest.raises(ConfigError, match="listens on"):  # a TLS-only gateway, a PBX told UDP
        TheoConfig(call=CallSettings(use_ami=True), sip=SipSettings(transports=[], tls=tls))
    plain = msgspec.structs.replace(sdes, theo=TheoGatewaySettings())
    with pytest.raises(ConfigError, match="media_encryption"):
        TheoConfig(call=CallSettings(use_ami=True), asterisk=plain)


async def test_verify_client_takes_only_a_pbx_with_a_certificate_from_the_ca(router, pki, monkeypatch, tone_wav):
    monkeypatch.setenv("THEO_SIP_TLS_KEY_PASSPHRASE", PASSPHRASE)
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file,
                         ca_file=pki.ca_file, verify_client=True)
    agent = SipUserAgent(SipSettings(port=free_port(), transports=["udp"], tls=tls, log_level=1), router)
    await agent.start()
    try:
        host, port = agent.addresses["tls"]
        uri = f"sip:theo@{host}:{port};transport=tls"
        async with SipCaller(CallerSettings(transport="tls", tls_ca_file=pki.ca_file)) as caller:
            await caller.dial(uri, play_wav=tone_wav)  # no client certificate
            ended = await caller.wait_for("disconnected", 10)
        assert ended.status >= 400 and not router.setups
        # The PBX's own certificate, from the CA Theo trusts (sip.tls.ca_file).
        settings = CallerSettings(transport="tls", tls_ca_file=pki.ca_file, tls_cert_file=pki.client_cert_file,
                                  tls_key_file=pki.client_key_file, codecs=["PCMU"])
        async with SipCaller(settings) as caller:
            await _call(caller, uri, "mtls-1", router, tone_wav)
    finally:
        await agent.stop()


def test_theo_call_dials_tls_when_the_uri_asks_for_it(pki):
    import argparse

    from theo_ray.cli.call_cmds import add_parsers, caller_settings_for

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    args = parser.parse_args(["call", "--scenario", "x.yaml", "--srtp", "--tls-ca", pki.ca_file])
    settings = caller_settings_for("sip:theo@127.0.0.1:5090;transport=tls", args)
    assert (settings.transport, settings.tls_ca_file, settings.srtp) == ("tls", pki.ca_file, True)
    assert caller_settings_for("sips:theo@127.0.0.1:5090", args).transport == "tls"
    with pytest.raises(ConfigError, match="TLS options"):
        caller_settings_for("sip:theo@127.0.0.1:5080", args)
    plain = parser.parse_args(["call", "--scenario", "x.yaml"])
    assert caller_settings_for("sip:theo@127.0.0.1:5080", plain).transport == "udp"


async def test_a_shard_process_names_a_bad_key_and_keeps_its_tls_port_across_a_restart(router, pki, monkeypatch):
    import os
    import signal

    from tests.sip.test_shard_process import wait_standby
    from theo_ray.sip.shard_process import ShardProcess

    bad = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file)
    with pytest.raises(ConfigError, match="sip.tls.key_file"):  # no passphrase in the environment
        await ShardProcess(SipSettings(port=free_port(), tls=bad), "shard-bad-key", router).start()
    monkeypatch.setenv("THEO_SIP_TLS_KEY_PASSPHRASE", PASSPHRASE)  # the shard process inherits it
    shard = ShardProcess(SipSettings(port=free_port(), transports=["udp"], tls=bad), "shard-tls", router)
    await shard.start()
    try:
        [tls] = [a for a in shard.status().addresses if a.transport == "tls"]
        assert tls.port > 0  # asked for port 0: pjsip chose one
        await wait_standby(shard)
        dead = shard.status().pid
        os.kill(dead, signal.SIGKILL)
        for _ in range(100):
            if shard.status().pid != dead and shard.status().state == "listening":
                break
            await asyncio.sleep(0.05)
        assert shard.status().restarts == 1
        assert [a for a in shard.status().addresses if a.transport == "tls"] == [tls]
    finally:
        await shard.stop()


async def test_a_tls_only_gateway_listens_on_nothing_else_and_answers(router, pki, monkeypatch, tone_wav):
    with pytest.raises(ConfigError, match="sip.transports"):
        SipSettings(transports=[])
    monkeypatch.setenv("THEO_SIP_TLS_KEY_PASSPHRASE", PASSPHRASE)
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file)
    agent = SipUserAgent(SipSettings(port=free_port(), transports=[], tls=tls, log_level=1), router)
    await agent.start()
    try:
        assert list(agent.addresses) == ["tls"]
        host, port = agent.addresses["tls"]
        async with SipCaller(CallerSettings(transport="tls", tls_ca_file=pki.ca_file, codecs=["PCMU"])) as caller:
            await _call(caller, f"sip:theo@{host}:{port};transport=tls", "tls-only-1", router, tone_wav)
    finally:
        await agent.stop()
