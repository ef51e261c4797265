"""ShardProcess: the gateway shard's pjsua in a child process, replaced when it dies.

Real SIP over loopback, real child processes; the router is the test double of
tests/sip/conftest.py (the supervisor side, which is not what these tests are about).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid

import psutil
import pytest

from tests.sip.conftest import free_port
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.shard_process import ShardProcess


def options_request(port: int, local_port: int) -> bytes:
    return (
        f"OPTIONS sip:theo@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:theo@127.0.0.1>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def options_status(port: int, timeout: float = 0.1) -> int | None:
    """Status code of an OPTIONS answer, None when nothing answers within ``timeout``."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.sendto(options_request(port, sock.getsockname()[1]), ("127.0.0.1", port))
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return None
    return int(data.split(b" ", 2)[1])


def shard_children() -> list[psutil.Process]:
    return [
        p for p in psutil.Process().children(recursive=True)
        if "theo_ray.sip.shard_main" in " ".join(p.cmdline())
    ]


@pytest.fixture
async def shard(router):
    process = ShardProcess(SipSettings(port=free_port(), ack_timeout_s=2.0), "shard-test", router)
    await process.start()
    yield process
    await process.stop()


async def wait_standby(shard: ShardProcess) -> None:
    for _ in range(100):
        if shard._standby is not None and shard._standby.done():
            return
        await asyncio.sleep(0.05)


async def test_a_killed_shard_process_listens_again_within_a_second_and_takes_calls(shard, router):
    port = shard.status().addresses[0].port
    assert await options_status(port) == 200
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(f"sip:theo@127.0.0.1:{port}", headers={"X-Theo-Session": "doomed"},
                          local_rtp_host="127.0.0.1", local_rtp_port=41500)
        await caller.wait_for("confirmed", 10)
        assert shard.status().active_calls == 1
        await wait_standby(shard)
        dead_pid = shard.status().pid
        os.kill(dead_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while await options_status(port, 0.05) != 200:
            assert time.monotonic() - killed_at < 1.0, "the shard did not answer OPTIONS within 1 s"
        back_after = time.monotonic() - killed_at
        print(f"\nshard answering OPTIONS again {back_after * 1000:.0f} ms after SIGKILL")
    # The dead process's call is closed at once (its CallActor must not be orphaned).
    await router.wait(lambda: router.closed, 5)
    assert [(c.session_id, c.reason) for c in router.closed] == [("doomed", "gateway_crash")]
    status = shard.status()
    assert status.state == "listening" and status.restarts == 1 and status.pid != dead_pid
    assert status.calls_lost == 1 and status.active_calls == 0
    # The last datagram the dead process received (the call's INVITE, its ACK or a probe).
    assert "exit -9; last datagram:" in status.last_crash and "bytes Request" in status.last_crash
    assert not psutil.pid_exists(dead_pid) or psutil.Process(dead_pid).status() == psutil.STATUS_ZOMBIE

    # And it takes a new call.
    async with SipCaller(CallerSettings(media="external")) as caller:
        await caller.dial(f"sip:theo@127.0.0.1:{port}", headers={"X-Theo-Session": "after"},
                          local_rtp_host="127.0.0.1", local_rtp_port=41510)
        await caller.wait_for("confirmed", 10)
        await caller.hangup()
        await router.wait(lambda: len(router.closed) == 2, 10)
    assert router.closed[1].reason == "caller_bye"
    # Counted across the processes the shard went through (the dead one's up to its last poll).
    assert (await shard.stats()).answered in (1, 2)


async def test_stop_leaves_no_shard_process(router):
    before = {p.pid for p in shard_children()}
    process = ShardProcess(SipSettings(port=free_port()), "shard-stop", router)
    await process.start()
    await wait_standby(process)
    assert len({p.pid for p in shard_children()} - before) == 2  # active + standby
    await process.stop()
    for _ in range(50):
        if not ({p.pid for p in shard_children() if p.status() != psutil.STATUS_ZOMBIE} - before):
            break
        await asyncio.sleep(0.1)
    assert not ({p.pid for p in shard_children() if p.status() != psutil.STATUS_ZOMBIE} - before)
    assert process.status().state == "stopped"


def test_stats_add_up_across_shard_processes():
    from theo_ray.sip.stats import GatewayStats, add_stats

    total = add_stats(GatewayStats(invites=3, answered=2, active_calls=1, answer_ms=[5.0]),
                      GatewayStats(invites=4, too_large=1, active_calls=2, answer_ms=[7.0]))
    assert (total.invites, total.answered, total.too_large) == (7, 2, 1)
    assert total.active_calls == 2 and total.answer_ms == [5.0, 7.0]  # live calls: the current process's


async def test_a_call_whose_open_outlasts_the_answer_timeout_is_closed_after_it_opens(router):
    """The router (the CallSupervisor) opens the call slower than sip.answer_timeout_s: the
    caller gets 503 and the shard process sends CloseCall at once, while open_call still
    runs. The close must reach the router after the open returns, or the router finds
    nothing to close and then keeps the call (its CallActor and RTP socket) for ever."""
    from tests.sip.raw_sip import send_and_read_final
    from tests.sip.test_gateway import SDP

    router.delay = 1.5
    process = ShardProcess(SipSettings(port=free_port(), answer_timeout_s=0.4, ring_before_answer=False),
                           "shard-slow-open", router)
    await process.start()
    try:
        port = process.status().addresses[0].port
        status_line = await asyncio.to_thread(send_and_read_final, "INVITE", port, body=SDP)
        assert status_line.startswith("SIP/2.0 503"), status_line
        await router.wait(lambda: router.closed, 5)
        [ended] = router.closed
        assert ended.reason == "setup_failed"
        await asyncio.sleep(router.delay)  # past the open, however the two were ordered
        assert router.sockets == {}, "the call opened after its close: its socket is held for ever"
        assert process.status().active_calls == 0
    finally:
        await process.stop()
