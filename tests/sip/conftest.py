"""Fixtures: a real SipUserAgent on 127.0.0.1 with a test router, and caller processes."""

from __future__ import annotations

import asyncio
import socket
import wave

import numpy as np
import pytest

from theo_ray.sip.messages import CallEnded, CallSetup, MediaAnswer, RemoteMedia
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.user_agent import SipUserAgent


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class _RtpCounter(asyncio.DatagramProtocol):
    def __init__(self, echo: bool) -> None:
        self.packets: list[bytes] = []
        self.sources: set[tuple[str, int]] = set()
        self.echo = echo
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.packets.append(data)
        self.sources.add(addr[:2])
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)  # symmetric RTP back to the caller


class SocketRouter:
    """Test double of the lead's CallSupervisor/CallActor pair.

    open_call binds one plain UDP socket per call on 127.0.0.1 (standing in for the
    CallActor's RTP socket) and counts what arrives; update/close calls are recorded.
    ``delay`` and ``fail`` inject a slow or failing supervisor; ``echo`` sends every
    packet back to where it came from (an echo agent without codecs).
    """

    def __init__(self) -> None:
        self.setups: list[CallSetup] = []
        self.updates: list[tuple[str, RemoteMedia]] = []
        self.closed: list[CallEnded] = []
        self.sockets: dict[str, tuple[asyncio.DatagramTransport, _RtpCounter]] = {}
        self.delay = 0.0
        self.fail = False
        self.echo = False
        self._changed = asyncio.Event()

    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        self.setups.append(setup)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("injected supervisor failure")
        loop = asyncio.get_running_loop()
        transport, counter = await loop.create_datagram_endpoint(
            lambda: _RtpCounter(self.echo), local_addr=("127.0.0.1", 0)
        )
        self.sockets[setup.session_id] = (transport, counter)
        host, port = transport.get_extra_info("sockname")[:2]
        return MediaAnswer(host, port)

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        self.updates.append((session_id, remote))
        self._changed.set()

    async def close_call(self, ended: CallEnded) -> None:
        self.closed.append(ended)
        entry = self.sockets.pop(ended.session_id, None)
        if entry is not None:
            entry[0].close()
        self._changed.set()

    def rtp_count(self, session_id: str) -> int:
        entry = self.sockets.get(session_id)
        return len(entry[1].packets) if entry else 0

    async def wait(self, predicate, timeout: float) -> None:
        async def _loop():
            while not predicate():
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.2)
                except TimeoutError:
                    pass

        await asyncio.wait_for(_loop(), timeout)


@pytest.fixture
def router() -> SocketRouter:
    return SocketRouter()


@pytest.fixture
async def gateway(router):
    settings = SipSettings(port=free_port(), allowed_peers=["127.0.0.1"], log_level=1)
    agent = SipUserAgent(settings, router)
    await agent.start()
    yield agent
    await agent.stop()


@pytest.fixture(scope="session")
def tone_wav(tmp_path_factory) -> str:
    """2 s of a 440 Hz tone, 16 kHz mono int16."""
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(32000) / 16000.0
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return str(path)
