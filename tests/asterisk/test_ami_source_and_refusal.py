"""The AMI client connects from theo.host (the address manager.conf's permit= names), and a
refused login stops the AmiBridge with a typed error instead of a plane that cannot transfer.
Against the fake Asterisk AMI server (a test double) on 127.0.0.1; Theo's side on 127.0.0.x."""

from __future__ import annotations

import asyncio

import pytest

from tests.asterisk.conftest import SECRET, fast_settings
from theo_ray.actors.ami_bridge import AmiBridge
from theo_ray.asterisk.ami_client import AmiClient
from theo_ray.asterisk.errors import AmiAuthenticationFailed
from theo_ray.cli.asterisk_site import load_site_settings


async def test_the_client_connects_from_the_source_address_it_is_given(pbx):
    client = AmiClient(fast_settings(pbx.port), SECRET, source_address="127.0.0.5")
    await client.start()
    try:
        assert await client.wait_logged_in(3.0)
        assert pbx.peer_hosts() == ["127.0.0.5"]
    finally:
        await client.stop()


def _site(pbx, *overrides: str):
    return load_site_settings(None, [f"ami.port={pbx.port}", "ami.connect_timeout_s=1.0",
                                     "ami.backoff_initial_s=0.05", *overrides])


async def test_the_bridge_connects_from_theo_host(pbx, monkeypatch):
    monkeypatch.setenv("THEO_AMI_SECRET", SECRET)
    bridge = AmiBridge(_site(pbx, "theo.host=127.0.0.6"))
    try:
        health = await bridge.start()
        assert health.logged_in
        assert pbx.peer_hosts() == ["127.0.0.6"]
    finally:
        await bridge.stop()
    monkeypatch.setenv("THEO_AMI_SECRET", SECRET)
    bridge = AmiBridge(_site(pbx, "theo.host=127.0.0.6", "ami.source_address=0.0.0.0"))
    try:
        assert (await bridge.start()).logged_in
        assert pbx.peer_hosts() == ["127.0.0.1"]  # the OS's choice towards 127.0.0.1
    finally:
        await bridge.stop()


async def test_a_refused_login_fails_start_and_stops_retrying(pbx, monkeypatch):
    monkeypatch.setenv("THEO_AMI_SECRET", "not-the-secret")
    bridge = AmiBridge(_site(pbx))
    with pytest.raises(AmiAuthenticationFailed, match="refused the login"):
        await bridge.start()
    logins = sum(1 for a in pbx.received if a.get("action") == "Login")
    await asyncio.sleep(0.5)  # backoff starts at 50 ms: a running client would have retried
    assert sum(1 for a in pbx.received if a.get("action") == "Login") == logins
    assert pbx.peer_hosts() == []
