"""The pjsua shard process: ``python -m theo_ray.sip.shard_main``, started by ShardProcess.

It imports pjsua2 and waits as a standby until the gateway sends ``Start``; then it binds
the shard's SIP port, answers calls through the gateway (``LinkRouter``: the CallRouter
calls go up the pipe) and serves the gateway's requests (hang-up, stats, sessions, stop).
It exits when the gateway closes the pipe, so it never outlives its actor.

Frames use a copy of the original stdout; fd 1 is pointed at stderr because pjlib prints
a few lines to stdout before Theo's log writer is installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from theo_ray.sip.datagram_record import DatagramRecord
from theo_ray.sip.messages import CallEnded, CallSetup, ListenAddress, MediaAnswer, RemoteMedia
from theo_ray.sip.dialog_release import DialogRecord
from theo_ray.sip.shard_link import (
    Call,
    CloseCall,
    DialogUp,
    GetSessions,
    GetStats,
    Hangup,
    OpenCall,
    Ready,
    Response,
    ShardLink,
    Start,
    Stop,
    UpdateCall,
)

log = logging.getLogger("theo_ray.sip.shard")


class LinkRouter:
    """CallRouter whose calls are answered by the gateway actor on the other end."""

    def __init__(self, link: ShardLink) -> None:
        self._link = link

    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        response = await self._link.ask(OpenCall(setup))
        if response.error or response.answer is None:
            raise RuntimeError(response.error or "no media answer")
        return response.answer

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        response = await self._link.ask(UpdateCall(session_id, remote))
        if response.error:
            raise RuntimeError(response.error)

    async def close_call(self, ended: CallEnded) -> None:
        response = await self._link.ask(CloseCall(ended))
        if response.error:
            raise RuntimeError(response.error)

    async def dialog_confirmed(self, dialog: DialogRecord) -> None:
        """Only this router has it: the gateway outlives this process and can BYE the
        dialog if the process dies (an in-process gateway dies with its dialogs)."""
        await self._link.ask(DialogUp(dialog))


async def _pipe_link() -> ShardLink:
    loop = asyncio.get_running_loop()
    frame_fd = os.dup(1)
    os.dup2(2, 1)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(frame_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return ShardLink(reader, writer)


async def main() -> int:
    link = await _pipe_link()
    from theo_ray.sip.user_agent import SipUserAgent  # the standby pays pjsua2's import now

    try:
        start = await link.receive()
    except ConnectionError:
        return 0  # the gateway went away before needing this standby
    if not isinstance(start, Start):
        log.error("shard: expected Start, got %s", type(start).__name__)
        return 2
    record = DatagramRecord(start.datagram_record)
    record.open_for_writing()
    agent = SipUserAgent(start.settings, LinkRouter(link), datagram_record=record)
    await agent.start()
    stopped = asyncio.Event()

    async def handle(call: Call) -> Response:
        if isinstance(call, Hangup):
            return Response(0, done=await agent.hangup(call.session_id))
        if isinstance(call, GetStats):
            return Response(0, stats=agent.stats())
        if isinstance(call, GetSessions):
            return Response(0, sessions=agent.active_sessions())
        if isinstance(call, Stop):
            await agent.stop()
            stopped.set()
            return Response(0, done=True)
        raise ValueError(f"the shard does not serve {type(call).__name__}")

    addresses = [ListenAddress(t, h, p) for t, (h, p) in agent.addresses.items()]
    await link.send(Ready(addresses, os.getpid()))
    serving = asyncio.create_task(link.serve(handle))
    await asyncio.wait([serving, asyncio.create_task(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
    if stopped.is_set():
        await asyncio.sleep(0.1)  # let the Stop response leave
    else:
        await agent.stop()  # the gateway went away: hang up and leave
    record.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=os.environ.get("THEO_SIP_SHARD_LOG", "INFO"), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(asyncio.run(main()))
