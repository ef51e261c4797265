"""Secrets canary: a known AMI secret, set the way an operator sets it, must appear in no log
line (any logger, DEBUG and up), no rendered config (unless --with-secret), no `theo up` /
`theo status` text Theo prints about AMI, and no call record.

Driven without a Ray plane: the AmiBridge (plain class) logs in to the fake Asterisk AMI
server (a test double), pings, transfers a call (Status + Redirect), hangs one up, is then
refused with a wrong secret; `theo asterisk-config` renders; the status lines are built from
the bridge's health and stats; one call with a transfer runs on the turn-machine fakes.
What a full plane adds (Ray's own worker logs, trace files) is not covered here.
"""

from __future__ import annotations

import argparse
import logging

import msgspec
import pytest

from tests.asterisk.fake_ami_server import FakeAsteriskAmi
from theo_ray.actors.ami_bridge import AmiBridge
from theo_ray.asterisk.errors import AmiAuthenticationFailed
from theo_ray.cli.asterisk_cmds import add_parser
from theo_ray.cli.asterisk_site import load_site_settings

CANARY = "canary-7Qz9-AMI-secret-do-not-leak"


def _site(port: int):
    return load_site_settings(None, [f"ami.port={port}", "ami.connect_timeout_s=1.0", "ami.backoff_initial_s=0.05",
                                     "ami.ping_interval_s=0.05", "ami.unhealthy_after_s=0.5"])


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)  # every logger, panoramisk's included
    return caplog


async def test_the_ami_secret_appears_in_no_log_output_or_record(tmp_path, monkeypatch, capsys, everything_logged):
    monkeypatch.setenv("THEO_AMI_SECRET", CANARY)
    pbx = FakeAsteriskAmi(users={"theo": CANARY})
    await pbx.start()
    seen: list[str] = []
    try:
        bridge = AmiBridge(_site(pbx.port))
        health = await bridge.start()
        assert health.logged_in
        assert any(a.get("secret") == CANARY for a in pbx.received)  # it did go to the PBX
        transferred = pbx.add_inbound_call()
        outcome = await bridge.transfer(transferred, "atendimento", "pedido do cliente")
        assert outcome.ok
        await bridge.hangup(pbx.add_inbound_call())
        seen += [repr(health), repr(await bridge.health()), repr(await bridge.stats()), repr(outcome),
                 repr(bridge._settings)]
        await bridge.stop()
        # A refused login: the error and what `theo up` would print about it.
        monkeypatch.setenv("THEO_AMI_SECRET", CANARY + "-wrong")
        refused = AmiBridge(_site(pbx.port))
        with pytest.raises(AmiAuthenticationFailed) as info:
            await refused.start()
        seen += [str(info.value), repr(info.value)]
    finally:
        await pbx.stop()
    monkeypatch.setenv("THEO_AMI_SECRET", CANARY)
    # `theo asterisk-config` without --with-secret: nothing rendered holds it.
    parser = argparse.ArgumentParser(prog="theo")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["asterisk-config", "--out", str(tmp_path / "rendered"), "--set", "theo.host=10.1.1.1"])
    assert args.func(args) == 0
    seen += [p.read_text() for p in (tmp_path / "rendered").iterdir()]
    # With --with-secret it is there, and only in manager.conf (mode 0640).
    args = parser.parse_args(["asterisk-config", "--out", str(tmp_path / "asked"), "--with-secret",
                              "--set", "theo.host=10.1.1.1"])
    assert args.func(args) == 0
    assert CANARY in (tmp_path / "asked" / "manager.conf").read_text()
    assert all(CANARY not in p.read_text() for p in (tmp_path / "asked").iterdir() if p.name != "manager.conf")
    out = capsys.readouterr()
    seen += [out.out, out.err]
    logged = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in everything_logged.records]
    assert len(logged) > 5  # the AMI client did log (logins, the refusal)
    leaks = [text[:300] for text in [*seen, *logged] if CANARY in text]
    assert not leaks, leaks


def test_a_call_record_with_a_transfer_holds_no_secret(monkeypatch, everything_logged):
    """One call with a transfer on the turn-machine fakes (virtual time), the secret set."""
    from tests.conversation.test_turn_machine import RULES
    from tests.fakes.fake_call import fake_call
    from tests.fakes.scripted_caller import Line
    from tests.fakes.virtual_loop import run_virtual

    monkeypatch.setenv("THEO_AMI_SECRET", CANARY)
    result = run_virtual(lambda: fake_call([Line(2.5, "Quero falar com um atendente.", 1.4)], RULES, seconds=14))
    assert result.record.transferred_to == "atendimento"
    texts = [msgspec.json.encode(result.record).decode(), *(r.getMessage() for r in everything_logged.records)]
    assert not [t[:300] for t in texts if CANARY in t]
