"""AmiTransferrer against the fake PBX, the asterisk-config CLI entry, and the AMI framing of
the fake server itself (so the double keeps speaking the documented protocol)."""

from __future__ import annotations

import argparse
import asyncio

from tests.asterisk.conftest import SECRET
from theo_ray.cli.asterisk_cmds import add_parser
from theo_ray.asterisk.settings import DialplanSettings, TransferRoute
from theo_ray.asterisk.transfer import AmiTransferrer, routes_from_settings


def transferrer(client) -> AmiTransferrer:
    dialplan = DialplanSettings(transfer_routes={"atendimento": TransferRoute(), "suporte": TransferRoute()})
    return AmiTransferrer(client, routes_from_settings(dialplan))


async def test_transfer_redirects_to_the_destination_route(client, pbx):
    sid = pbx.add_inbound_call()
    result = await transferrer(client).transfer(sid, "suporte", "cliente pediu suporte técnico")
    assert result.ok and result.destination == "suporte" and result.error_kind == ""
    assert result.reason == "cliente pediu suporte técnico"
    assert (pbx.caller_channel(sid).context, pbx.caller_channel(sid).exten) == ("theo-transfer", "suporte")
    assert result.duration_ms > 0


async def test_transfer_to_unknown_destination_sends_nothing(client, pbx):
    sid = pbx.add_inbound_call()
    result = await transferrer(client).transfer(sid, "financeiro", "x")
    assert not result.ok and result.error_kind == "unknown_destination"
    assert "atendimento" in result.error
    assert not any(a["action"] == "Redirect" for a in pbx.received)


async def test_transfer_after_caller_hung_up_reports_channel_gone(client, pbx):
    sid = pbx.add_inbound_call()
    pbx.hangup_channel(pbx.caller_channel(sid).name)
    result = await transferrer(client).transfer(sid, "atendimento", "x")
    assert not result.ok and result.error_kind == "channel_gone"


def test_cli_renders_into_out_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("THEO_AMI_SECRET", raising=False)
    parser = argparse.ArgumentParser(prog="theo")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["asterisk-config", "--out", str(tmp_path), "--set", "theo.host=10.1.1.1"])
    assert args.func(args) == 0
    out = capsys.readouterr()
    assert "manager.conf" in out.out and "THEO_AMI_SECRET" in out.err
    assert "match=10.1.1.1" in (tmp_path / "pjsip.conf").read_text()


def test_cli_bad_setting_exits_2(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="theo")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["asterisk-config", "--out", str(tmp_path), "--set", "ami.port=0"])
    assert args.func(args) == 2
    assert "ami.port" in capsys.readouterr().err
    assert not (tmp_path / "manager.conf").exists()


async def _exchange(port: int, frames: list[str], until: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for frame in frames:
        writer.write(frame.encode())
    data = b""
    while until not in data.decode():
        chunk = await asyncio.wait_for(reader.read(4096), 2.0)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data.decode()


async def test_fake_server_speaks_documented_ami_framing(pbx):
    sid = pbx.add_inbound_call()
    text = await _exchange(pbx.port, [
        f"Action: Login\r\nActionID: a1\r\nUsername: theo\r\nSecret: {SECRET}\r\n\r\n",
        "Action: Ping\r\nActionID: a2\r\n\r\n",
        "Action: Status\r\nActionID: a3\r\nVariables: THEO_SESSION_ID\r\n\r\n",
    ], until="EventList: Complete")
    assert text.startswith("Asterisk Call Manager/9.0.0\r\n")
    assert "Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n" in text
    assert "Response: Success\r\nActionID: a2\r\nPing: Pong\r\nTimestamp: " in text
    assert "Response: Success\r\nActionID: a3\r\nEventList: start\r\nMessage: Channel status will follow" in text
    assert f"Variable: THEO_SESSION_ID={sid}\r\n" in text
    assert "Event: StatusComplete\r\nActionID: a3\r\nEventList: Complete\r\nListItems: 2\r\nItems: 2\r\n\r\n" in text


async def test_fake_server_refuses_bad_login_and_closes(pbx):
    text = await _exchange(pbx.port, ["Action: Login\r\nActionID: x\r\nUsername: theo\r\nSecret: no\r\n\r\n"],
                           until="\r\n\r\n\r\n")
    assert "Response: Error\r\nActionID: x\r\nMessage: Authentication failed\r\n\r\n" in text
    assert pbx.connections == 0
