"""ShardLink: the typed, framed pipe between a SipGateway actor and its pjsua shard process.

The SIP stack runs in a child process of the gateway actor (see ``shard_process``), so a
datagram that crashes pjsip costs one process the actor replaces in milliseconds, never
the actor, its name or its calls' bookkeeping. Both ends send length-prefixed msgpack
frames; either end can ask the other (``Request`` -> ``Response`` with the same id).
Hand-written because it is 100 lines over asyncio streams and msgspec, and the
alternatives (multiprocessing managers, a Ray actor per shard) either pickle untyped
objects or are the restart path that took 1.9 s.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Awaitable, Callable
from typing import Union

import msgspec

from theo_ray.sip.dialog_release import DialogRecord
from theo_ray.sip.messages import CallEnded, CallSetup, ListenAddress, MediaAnswer, RemoteMedia
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.stats import GatewayStats

_HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = 4 * 1024 * 1024


# ---- the shard asks the gateway (a CallRouter's three calls)
class OpenCall(msgspec.Struct, tag=True):
    setup: CallSetup


class UpdateCall(msgspec.Struct, tag=True):
    session_id: str
    remote: RemoteMedia


class CloseCall(msgspec.Struct, tag=True):
    ended: CallEnded


class DialogUp(msgspec.Struct, tag=True):
    """A dialog the shard confirmed: the gateway keeps it to BYE it if the shard dies."""

    dialog: DialogRecord


# ---- the gateway asks the shard
class Hangup(msgspec.Struct, tag=True):
    session_id: str


class GetStats(msgspec.Struct, tag=True):
    pass


class GetSessions(msgspec.Struct, tag=True):
    pass


class Stop(msgspec.Struct, tag=True):
    pass


Call = Union[OpenCall, UpdateCall, CloseCall, DialogUp, Hangup, GetStats, GetSessions, Stop]


class Request(msgspec.Struct, tag=True):
    id: int
    call: Call


class Response(msgspec.Struct, tag=True):
    id: int
    error: str = ""
    answer: MediaAnswer | None = None
    done: bool = False
    stats: GatewayStats | None = None
    sessions: list[str] = msgspec.field(default_factory=list)


class Start(msgspec.Struct, tag=True):
    """First frame to a standby shard: listen now."""

    settings: SipSettings
    name: str
    datagram_record: str  # file the shard keeps its last received datagram's summary in


class Ready(msgspec.Struct, tag=True):
    addresses: list[ListenAddress]
    pid: int


Frame = Union[Request, Response, Start, Ready]


class LinkClosed(ConnectionError):
    """The other end went away (process exit or pipe closed)."""


Handler = Callable[[Call], Awaitable[Response]]


class ShardLink:
    """One end of the pipe. ``serve(handler)`` answers the other end's requests until EOF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Frame)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Response]] = {}
        self._closed = False

    async def send(self, frame: Frame) -> None:
        if self._closed:
            raise LinkClosed("link closed")
        data = self._encoder.encode(frame)
        self._writer.write(_HEADER.pack(len(data)) + data)
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise LinkClosed(str(exc)) from exc

    async def receive(self) -> Frame:
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > MAX_FRAME_BYTES:
                raise LinkClosed(f"frame of {size} bytes")
            return self._decoder.decode(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise LinkClosed(str(exc)) from exc

    async def ask(self, call: Call, timeout: float | None = None) -> Response:
        request = Request(next(self._ids), call)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = future
        try:
            await self.send(request)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(request.id, None)

    async def serve(self, handler: Handler, on_frame: Callable[[Frame], None] | None = None) -> None:
        """Dispatch frames until the other end closes; requests run as tasks (concurrently)."""
        tasks: set[asyncio.Task] = set()
        try:
            while True:
                frame = await self.receive()
                if isinstance(frame, Response):
                    future = self._waiting.get(frame.id)
                    if future is not None and not future.done():
                        future.set_result(frame)
                elif isinstance(frame, Request):
                    task = asyncio.create_task(self._answer(frame, handler))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif on_frame is not None:
                    on_frame(frame)
        except LinkClosed:
            pass
        finally:
            self._closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(LinkClosed("the other end went away"))
            for task in tasks:
                task.cancel()

    async def _answer(self, request: Request, handler: Handler) -> None:
        try:
            response = await handler(request.call)
        except Exception as exc:  # noqa: BLE001 - delivered to the asking end
            response = Response(request.id, error=f"{type(exc).__name__}: {exc}"[:500])
        try:
            await self.send(msgspec.structs.replace(response, id=request.id))
        except LinkClosed:
            pass

    def close(self) -> None:
        self._closed = True
        try:
            self._writer.close()
        except RuntimeError:
            pass
