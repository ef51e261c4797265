"""UnservedMethods: 405/501 for the UDP requests pjsip drops without an answer."""

from __future__ import annotations

import asyncio

import pytest

from tests.sip.raw_sip import send_and_read_final
from theo_ray.sip.unserved_methods import unserved_reply


def rx_log(method: str, to_tag: str = "") -> str:
    message = (
        f"{method} sip:theo@127.0.0.1:5080 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKabc;rport\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKdef\r\n"
        "From: <sip:x@127.0.0.1>;tag=f1\r\n"
        f"To: <sip:theo@127.0.0.1>{to_tag}\r\n"
        "Call-ID: c1@127.0.0.1\r\n"
        f"CSeq: 7 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return (f"05:00:00.000 pjsua_core.c .RX 300 bytes Request msg {method}/cseq=7 (rdata0x1) "
            f"from UDP 127.0.0.1:40000:\n{message}\n--end msg--\n")


@pytest.mark.parametrize(
    ("method", "code"), [("REGISTER", 405), ("PUBLISH", 405), ("REFER", 405), ("MESSAGE", 405), ("FOO", 501)]
)
def test_an_out_of_dialog_request_pjsip_drops_gets_405_or_501(method, code):
    data, where = unserved_reply(rx_log(method))
    text = data.decode()
    assert text.startswith(f"SIP/2.0 {code} ") and where == ("127.0.0.1", 40000)
    assert "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKabc;received=127.0.0.1;rport=40000" in text
    assert "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKdef" in text
    assert "CSeq: 7 " + method in text and ";tag=" in text.split("To: ", 1)[1].split("\r\n", 1)[0]
    assert "Allow: INVITE" in text


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "ACK", "BYE", "CANCEL", "SUBSCRIBE"])
def test_requests_pjsip_answers_itself_are_left_to_it(method):
    assert unserved_reply(rx_log(method)) is None


def test_in_dialog_requests_are_left_to_pjsip():
    assert unserved_reply(rx_log("INFO", ";tag=t9")) is None  # pjsip answers 481 without a dialog


async def test_the_gateway_answers_register_and_unknown_methods(gateway):
    port = gateway.addresses["udp"][1]
    loop = asyncio.get_running_loop()
    register = await loop.run_in_executor(None, lambda: send_and_read_final("REGISTER", port))
    foo = await loop.run_in_executor(None, lambda: send_and_read_final("FOO", port))
    message = await loop.run_in_executor(None, lambda: send_and_read_final("MESSAGE", port))
    assert register.split()[1] == "405" and foo.split()[1] == "501"
    assert message.split()[1] == "405"  # before pjsua's own automatic 200
    assert gateway.stats().refused_methods >= 3
