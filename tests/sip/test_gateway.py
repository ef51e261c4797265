"""Real SIP on loopback: the gateway's SipUserAgent (this process) and pjsua2 callers (own process)."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import psutil
import pytest
import soundfile

from tests.sip.conftest import free_port
from tests.sip.raw_sip import send_and_read_final
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.user_agent import SipUserAgent

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def uri(gateway, transport: str = "udp") -> str:
    host, port = gateway.addresses[transport]
    suffix = ";transport=tcp" if transport == "tcp" else ""
    return f"sip:theo@{host}:{port}{suffix}"


async def until(predicate, timeout: float = 5.0) -> None:
    """Wait for a counter that the SIP thread updates right after its response left."""
    async def _poll():
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(_poll(), timeout)


def udp_ports_of_this_process() -> set[int]:
    return {
        c.laddr.port
        for c in psutil.Process().net_connections(kind="udp")
        if c.laddr and c.status == psutil.CONN_NONE
    }


async def test_call_reaches_the_call_socket_and_pjsua_opens_no_rtp(gateway, router, tone_wav):
    async with SipCaller(CallerSettings(codecs=["PCMU", "G722"])) as caller:
        await caller.dial(uri(gateway), headers={"X-Theo-Session": "1700000000.7"}, play_wav=tone_wav)
        answered = await caller.wait_for("answered", 10)
        await caller.wait_for("confirmed", 5)

        setup = router.setups[0]
        assert setup.session_id == "1700000000.7"
        assert (setup.caller_id, setup.caller_name) == ("caller", "Simulated Caller")
        call_socket = router.sockets[setup.session_id][0].get_extra_info("sockname")
        assert (answered.remote_host, answered.remote_port) == call_socket[:2]
        assert answered.codec == "G722" and setup.remote.codec == "G722"
        assert answered.direction == "sendrecv"

        await caller.wait_for("media_active", 5)
        await asyncio.sleep(1.0)
        counter = router.sockets[setup.session_id][1]
        assert len(counter.packets) >= 20, "caller RTP never reached the CallActor socket"
        assert counter.packets[0][0] >> 6 == 2 and counter.packets[0][1] & 0x7F == 9  # RTP v2, G.722
        assert counter.sources == {(setup.remote.host, setup.remote.port)}

        # The gateway process holds the SIP port and the test double's call socket, nothing else.
        sip_port = gateway.addresses["udp"][1]
        assert udp_ports_of_this_process() == {sip_port, call_socket[1]}

        await caller.hangup()
        await caller.wait_for("disconnected", 5)
    await router.wait(lambda: router.closed, 5)
    assert [c.reason for c in router.closed] == ["caller_bye"]
    stats = gateway.stats()
    assert (stats.invites, stats.answered, stats.byes_received, stats.active_calls) == (1, 1, 1, 0)
    assert len(stats.answer_ms) == 1 and 0 < stats.answer_ms[0] < 2000
    print(f"INVITE -> 200 OK: {stats.answer_ms[0]:.1f} ms")


async def test_pjsua_caller_records_what_the_call_socket_sends(gateway, router, tone_wav, tmp_path):
    router.echo = True
    recording = tmp_path / "heard.wav"
    async with SipCaller(CallerSettings(codecs=["PCMU"])) as caller:
        await caller.dial(uri(gateway), headers={"X-Theo-Session": "echo"},
                          play_wav=tone_wav, record_wav=str(recording))
        await caller.wait_for("media_active", 10)
        await asyncio.sleep(1.5)
        await caller.hangup()
        await caller.wait_for("disconnected", 5)
    audio, rate = soundfile.read(recording, dtype="float32")
    assert len(audio) >= rate  # at least a second recorded
    tail = audio[len(audio) // 2 :]
    assert np.sqrt(np.mean(tail**2)) > 0.05, "the caller heard silence"
    spectrum = np.abs(np.fft.rfft(tail))
    peak_hz = np.argmax(spectrum) * rate / len(tail)
    assert abs(peak_hz - 440) < 10, peak_hz


@pytest.mark.parametrize(
    "offered, expected",
    [(["PCMU"], "PCMU"), (["PCMA", "PCMU"], "PCMU"), (["PCMA"], "PCMA"), (["PCMA", "G722"], "G722")],
)
async def test_codec_choice_follows_preference(gateway, router, offered, expected):
    async with SipCaller(CallerSettings(codecs=offered, media="external")) as caller:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        with rtp:
            await caller.dial(
                uri(gateway), local_rtp_host="127.0.0.1", local_rtp_port=rtp.getsockname()[1]
            )
            answered = await caller.wait_for("answered", 10)
            assert answered.codec == expected
            assert router.setups[0].remote.codec == expected
            # External mode: the offer pointed at the parent's own socket.
            assert (router.setups[0].remote.host, router.setups[0].remote.port) == rtp.getsockname()
            await caller.hangup()
            await caller.wait_for("disconnected", 5)


async def test_session_id_falls_back_to_call_id(gateway, router):
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(uri(gateway), local_rtp_host="127.0.0.1", local_rtp_port=40000)
        await caller.wait_for("answered", 10)
        setup = router.setups[0]
        assert setup.session_id == setup.sip_call_id and setup.sip_call_id
        await caller.hangup()


async def test_tcp_transport_call(gateway, router):
    async with SipCaller(CallerSettings(transport="tcp", media="external")) as caller:
        await caller.dial(
            uri(gateway, "tcp"), headers={"X-Theo-Session": "tcp.1"},
            local_rtp_host="127.0.0.1", local_rtp_port=40010,
        )
        await caller.wait_for("confirmed", 10)
        assert await gateway.hangup("tcp.1")
        await caller.wait_for("bye_received", 5)
    await router.wait(lambda: router.closed, 5)
    assert router.closed[0].reason == "agent_hangup"


async def test_invite_from_a_host_not_allowed_gets_403(gateway, router):
    async with SipCaller(CallerSettings(host="127.0.0.2", media="external")) as caller:
        await caller.dial(uri(gateway), local_rtp_host="127.0.0.2", local_rtp_port=40020)
        ended = await caller.wait_for("disconnected", 10)
    assert ended.status == 403
    assert router.setups == []
    assert gateway.stats().rejected_403 == 1


@pytest.mark.parametrize(
    "body, status",
    [
        (SDP.replace("4000", "notaport"), 400),  # pjsip's own parser refuses it
        ("this is not SDP\r\n", 400),
        (SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 pbx.example"), 400),  # ours refuses it
    ],
)
async def test_malformed_sdp_is_refused_and_counted(gateway, router, body, status):
    line = await asyncio.to_thread(send_and_read_final, "INVITE", gateway.addresses["udp"][1], body=body)
    assert int(line.split()[1]) == status
    await until(lambda: gateway.stats().malformed_sdp == 1)
    assert gateway.stats().answered == 0
    assert router.setups == []


async def test_offer_without_a_common_codec_gets_488(gateway, router):
    gsm = SDP.replace("RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", "RTP/AVP 3")
    line = await asyncio.to_thread(send_and_read_final, "INVITE", gateway.addresses["udp"][1], body=gsm)
    assert line.split()[1] == "488"
    await until(lambda: gateway.stats().no_common_codec == 1)


async def test_options_keepalive_answered(gateway):
    line = await asyncio.to_thread(send_and_read_final, "OPTIONS", gateway.addresses["udp"][1])
    assert line.split()[1] == "200"


async def test_agent_hangup_sends_bye_and_closes(gateway, router):
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(
            uri(gateway), headers={"X-Theo-Session": "s-agent"},
            local_rtp_host="127.0.0.1", local_rtp_port=40030,
        )
        await caller.wait_for("confirmed", 10)
        assert await gateway.hangup("s-agent")
        assert not await gateway.hangup("s-agent")  # already gone
        bye = await caller.wait_for("bye_received", 5)
        ended = await caller.wait_for("disconnected", 5)
        assert ended.reason == "remote" and bye.at <= ended.at
    await router.wait(lambda: router.closed, 5)
    assert [(c.session_id, c.reason) for c in router.closed] == [("s-agent", "agent_hangup")]
    assert gateway.stats().agent_hangups == 1


async def test_cancel_while_the_router_is_opening(gateway, router):
    router.delay = 1.5  # a slow supervisor: the caller gives up first
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(
            uri(gateway), headers={"X-Theo-Session": "s-cancel"},
            local_rtp_host="127.0.0.1", local_rtp_port=40040,
        )
        ringing = await caller.wait_for("progress", 5)
        assert ringing.status == 180
        await caller.hangup()  # CANCEL
        ended = await caller.wait_for("disconnected", 5)
        assert ended.status == 487
    await router.wait(lambda: router.closed, 5)
    assert router.closed[0].reason == "cancel"
    # close_call came after open_call finished, so the test double released its socket.
    assert router.sockets == {}
    assert gateway.stats().cancels == 1


async def test_router_failure_answers_503(gateway, router):
    router.fail = True
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(
            uri(gateway), headers={"X-Theo-Session": "s-fail"},
            local_rtp_host="127.0.0.1", local_rtp_port=40050,
        )
        ended = await caller.wait_for("disconnected", 10)
    assert ended.status == 503
    await router.wait(lambda: router.closed, 5)
    assert router.closed[0].reason == "setup_failed"
    assert gateway.stats().setup_failed == 1


async def test_reinvite_hold_and_unhold_update_the_call(gateway, router):
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(
            uri(gateway), headers={"X-Theo-Session": "s-hold"},
            local_rtp_host="127.0.0.1", local_rtp_port=40060,
        )
        await caller.wait_for("confirmed", 10)
        await caller.hold()
        held = await caller.wait_for("reanswered", 5)
        assert held.direction == "recvonly"
        assert (held.remote_host, held.remote_port) == router.sockets["s-hold"][0].get_extra_info(
            "sockname"
        )[:2]
        await router.wait(lambda: len(router.updates) == 1, 5)
        assert router.updates[0][1].direction == "recvonly"

        count = len(caller.events)
        await caller.unhold()
        resumed = await caller.wait_for("reanswered", 5, after=count)
        assert resumed.direction == "sendrecv"
        await router.wait(lambda: len(router.updates) == 2, 5)
        assert router.updates[1][1].direction == "sendrecv"
        await caller.hangup()
    assert gateway.stats().media_updates == 2


async def test_duplicate_session_is_refused(gateway, router):
    async with SipCaller(CallerSettings(media="external")) as first, SipCaller(
        CallerSettings(media="external")
    ) as second:
        await first.dial(uri(gateway), headers={"X-Theo-Session": "dup"},
                         local_rtp_host="127.0.0.1", local_rtp_port=40070)
        await first.wait_for("confirmed", 10)
        await second.dial(uri(gateway), headers={"X-Theo-Session": "dup"},
                          local_rtp_host="127.0.0.1", local_rtp_port=40072)
        ended = await second.wait_for("disconnected", 10)
        assert ended.status == 486
        await first.hangup()
    assert gateway.stats().duplicate_session == 1


async def test_stop_hangs_up_live_calls(router):
    from tests.sip.conftest import free_port
    from theo_ray.sip.settings import SipSettings
    from theo_ray.sip.user_agent import SipUserAgent

    agent = SipUserAgent(SipSettings(port=free_port()), router)
    await agent.start()
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(uri(agent), headers={"X-Theo-Session": "s-stop"},
                          local_rtp_host="127.0.0.1", local_rtp_port=40080)
        await caller.wait_for("confirmed", 10)
        await agent.stop()
        await caller.wait_for("bye_received", 5)
    assert [c.reason for c in router.closed] == ["gateway_shutdown"]


async def test_concurrent_calls_get_their_own_sockets_and_leave_nothing(gateway, router):
    n = gateway.settings.max_calls
    callers = [SipCaller(CallerSettings(media="external")) for _ in range(n + 1)]
    await asyncio.gather(*(c.start() for c in callers))
    try:
        await asyncio.gather(*(
            c.dial(uri(gateway), headers={"X-Theo-Session": f"many.{i}"},
                   local_rtp_host="127.0.0.1", local_rtp_port=41000 + 2 * i)
            for i, c in enumerate(callers[:n])
        ))
        answers = await asyncio.gather(*(c.wait_for("confirmed", 15) for c in callers[:n]))
        assert len(answers) == n
        answered = [await c.wait_for("answered", 1) for c in callers[:n]]
        ports = {a.remote_port for a in answered}
        assert len(ports) == n  # one CallActor socket each
        by_session = {s.session_id: s.remote.port for s in router.setups}
        assert by_session == {f"many.{i}": 41000 + 2 * i for i in range(n)}
        assert gateway.stats().active_calls == n
        # A full shard says 503 with Retry-After (the PBX tries the next shard), not 486.
        extra = callers[n]
        await extra.dial(uri(gateway), headers={"X-Theo-Session": "many.extra"},
                         local_rtp_host="127.0.0.1", local_rtp_port=41100)
        refused = await extra.wait_for("disconnected", 10)
        assert refused.status == 503
        assert gateway.stats().rejected_full == 1
        await asyncio.gather(*(c.hangup() for c in callers[:n]))
        await router.wait(lambda: len(router.closed) == n, 10)
    finally:
        await asyncio.gather(*(c.close() for c in callers))
    assert router.sockets == {}
    assert gateway.stats().active_calls == 0 and gateway.active_sessions() == []


async def test_delayed_offer_gets_theos_offer_and_takes_the_answer_from_the_ack(gateway, router):
    """RFC 3261 section 13.2.1: an INVITE without SDP; Theo offers in the 200 OK, the ACK answers."""
    router.echo = True
    async with SipCaller(CallerSettings(media="external", codecs=["PCMA"], delayed_offer=True)) as caller:
        await caller.dial(uri(gateway), headers={"X-Theo-Session": "late.1"},
                          local_rtp_host="127.0.0.1", local_rtp_port=41300)
        await caller.wait_for("confirmed", 10)
        answered = await caller.wait_for("answered", 5)
        assert answered.codec == "PCMA"  # the caller chose from Theo's offer
        # Until the ACK the call is on hold; the ACK's answer reaches the router as an update.
        assert router.setups[0].remote.port == 0 and router.setups[0].remote.direction == "inactive"
        await router.wait(lambda: router.updates, 5)
        session, remote = router.updates[0]
        assert session == "late.1"
        assert (remote.host, remote.port, remote.codec, remote.direction) == ("127.0.0.1", 41300, "PCMA", "sendrecv")
        assert remote.payload_type == 8
        assert gateway.stats().delayed_offers == 1 and gateway.stats().answered == 1
        await caller.hangup()
        await router.wait(lambda: router.closed, 10)
    assert router.closed[0].reason == "caller_bye"


async def test_a_reinvite_without_sdp_gets_theos_offer_for_the_running_media(gateway, router):
    async with SipCaller(CallerSettings(media="external", codecs=["PCMU"])) as caller:
        await caller.dial(uri(gateway), headers={"X-Theo-Session": "reoffer.1"},
                          local_rtp_host="127.0.0.1", local_rtp_port=41400)
        await caller.wait_for("confirmed", 10)
        answered = await caller.wait_for("answered", 5)
        before = len(caller.events)
        await caller.reinvite_without_offer()
        again = await caller.wait_for("reanswered", 10, after=before)
        # Theo's offer points at the same CallActor socket, running codec first.
        assert (again.remote_host, again.remote_port) == (answered.remote_host, answered.remote_port)
        assert again.sdp.split("m=audio ", 1)[1].split()[2] == "0"  # PCMU first
        await asyncio.sleep(0.5)
        assert gateway.stats().reinvites == 1 and gateway.stats().active_calls == 1
        assert router.updates == []  # same media: nothing to tell the CallActor
        await caller.hangup()
        await router.wait(lambda: router.closed, 10)


async def test_invites_nobody_acks_do_not_hold_the_shard(router):
    """pjsua keeps a slot until the session ends (Timer H + an unanswered BYE: over a minute);
    the gateway ends an unACKed dialog through its own stack after ack_timeout_s."""
    from tests.sip.raw_sip import request

    settings = SipSettings(port=free_port(), allowed_peers=["127.0.0.1"], ack_timeout_s=1.0)
    agent = SipUserAgent(settings, router)
    await agent.start()
    try:
        port = agent.addresses["udp"][1]
        sockets = []
        for _ in range(settings.max_calls + 2):  # more than pjsua's 4 slots
            message, sock = request("INVITE", port, body=SDP)
            sock.setblocking(False)
            sock.sendto(message.encode(), ("127.0.0.1", port))
            sockets.append(sock)
            codes = []
            loop = asyncio.get_running_loop()
            while not codes or codes[-1] < 200:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
                codes.append(int(data.split(b" ", 2)[1]))
            assert codes[-1] in (200, 503), codes  # answered, or the shard was full: never 486
            await asyncio.sleep(0.8)
        await until(lambda: agent.stats().ack_timeouts >= settings.max_calls, 10)
        await router.wait(lambda: len(router.closed) == len(router.setups), 10)
        assert {c.reason for c in router.closed} == {"ack_timeout"}
        # The slots are free again: a real call is answered at once.
        final = await asyncio.get_running_loop().run_in_executor(
            None, lambda: send_and_read_final("INVITE", port, body=SDP))
        assert final.split()[1] == "200", final
    finally:
        for sock in sockets:
            sock.close()
        await agent.stop()
