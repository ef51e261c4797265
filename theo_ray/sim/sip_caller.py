"""SipCaller: a SIP caller user agent (pjsua2) in its own process, driven from asyncio.

pjsua2 allows one Endpoint per process, and a test or benchmark already has one (the
gateway), so the caller lives in a child process (``python -m theo_ray.sim.sip_caller_agent``).
The parent talks to it with length-prefixed msgspec commands on the child's stdin and
gets back typed events on its stdout
(180, 200 + SDP, BYE received, disconnect) stamped with ``time.monotonic()``, which is
the same clock in both processes on Linux.

Media modes:
- ``pjsua``: pjsua's own RTP stack plays a WAV into the call and records what arrives —
  an RTP implementation independent of Theo's, to check Theo's media against.
- ``external``: pjsua keeps its media on an in-memory loop transport (no RTP socket) and
  the offer points at ``local_rtp`` given with Dial; the parent's own media engine sends
  and receives, using the answer's address from the "answered" event.

One call at a time per SipCaller; start several SipCallers for concurrent calls.
This module owns the parent-side handle; the pipe protocol is in
:mod:`theo_ray.sim.sip_caller_protocol`, the child in :mod:`theo_ray.sim.sip_caller_agent`.
"""

from __future__ import annotations

import asyncio
import sys
import time

import msgspec

from theo_ray.sim.sip_caller_protocol import (
    FRAME,
    CallerEvent,
    CallerSettings,
    Command,
    Dial,
    EventKind,
    GoSilent,
    Hangup,
    Hold,
    Message,
    OfferlessReinvite,
    Ready,
    Reply,
    Request,
    Shutdown,
    Unhold,
)


class SipCaller:
    """Parent-side handle; every method is async and never blocks the event loop."""

    def __init__(self, settings: CallerSettings | None = None) -> None:
        self.settings = settings or CallerSettings()
        self.events: list[CallerEvent] = []
        self.address: tuple[str, int] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._seq = 0
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._ready: asyncio.Future[Ready] | None = None
        self._changed = asyncio.Event()
        self._encoder = msgspec.msgpack.Encoder()

    async def start(self, timeout: float = 20.0) -> None:
        # A fresh interpreter (not multiprocessing) so the caller never re-imports the
        # parent's __main__; stdin/stdout carry the frames, stderr the caller's logs.
        self._ready = asyncio.get_running_loop().create_future()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "theo_ray.sim.sip_caller_agent",
            msgspec.json.encode(self.settings).decode(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        try:
            ready = await asyncio.wait_for(self._ready, timeout)
        except BaseException:
            await self.close()
            raise
        self.address = (ready.host, ready.port)

    async def dial(
        self,
        uri: str,
        headers: dict[str, str] | None = None,
        *,
        play_wav: str = "",
        play_loop: bool = True,
        record_wav: str = "",
        local_rtp_host: str = "",
        local_rtp_port: int = 0,
        srtp_key: bytes = b"",
    ) -> None:
        """Send the INVITE; follow with wait_for("answered") / ("disconnected")."""
        await self._command(
            Dial(uri, headers or {}, play_wav, play_loop, record_wav, local_rtp_host, local_rtp_port, srtp_key)
        )

    async def hold(self) -> None:
        await self._command(Hold())

    async def unhold(self) -> None:
        await self._command(Unhold())

    async def reinvite_without_offer(self) -> None:
        await self._command(OfferlessReinvite())

    async def go_silent(self, seconds: float) -> None:
        await self._command(GoSilent(seconds))

    async def hangup(self) -> None:
        await self._command(Hangup())

    async def wait_for(self, kind: EventKind, timeout: float = 10.0, after: int = 0) -> CallerEvent:
        """First event of ``kind`` at index >= ``after`` in ``events``; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.kind == kind:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [e.kind for e in self.events]
                raise TimeoutError(f"no {kind!r} event within {timeout}s (saw {seen})")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def close(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.returncode is None:
            try:
                await asyncio.wait_for(self._command(Shutdown(), process=process), timeout)
            except (TimeoutError, RuntimeError, OSError):
                pass
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=2.0)

    async def __aenter__(self) -> SipCaller:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def _command(
        self, command: Command, timeout: float = 10.0, process: asyncio.subprocess.Process | None = None
    ) -> None:
        process = process or self._process
        if process is None or process.stdin is None:
            raise RuntimeError("SipCaller is not started")
        self._seq += 1
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[self._seq] = future
        data = self._encoder.encode(Request(self._seq, command))
        process.stdin.write(FRAME.pack(len(data)) + data)
        await process.stdin.drain()
        reply = await asyncio.wait_for(future, timeout)
        if not reply.ok:
            raise RuntimeError(f"caller {type(command).__name__} failed: {reply.error}")

    async def _read(self) -> None:
        decoder = msgspec.msgpack.Decoder(Message)
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            while True:
                header = await stdout.readexactly(FRAME.size)
                message = decoder.decode(await stdout.readexactly(FRAME.unpack(header)[0]))
                self._on_message(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._on_closed()

    def _on_message(self, message: Message) -> None:
        if isinstance(message, Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
        elif isinstance(message, Reply):
            future = self._replies.pop(message.seq, None)
            if future is not None and not future.done():
                future.set_result(message)
        else:
            self.events.append(message)
            self._changed.set()

    def _on_closed(self) -> None:
        for future in self._replies.values():
            if not future.done():
                future.set_exception(RuntimeError("caller process exited"))
        self._replies.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError("caller process exited before it was ready"))
