"""A session's UDP sockets: the even RTP port with RTCP on port + 1, and the asyncio
protocol that hands each datagram to a callback.

RFC 3550 puts RTCP on the next odd port; SDP without a=rtcp assumes it, so the pair is
bound together or not at all.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable

from theo_ray.media.settings import MediaSettings


def bind_even_pair(host: str, port: int, settings: MediaSettings) -> tuple[socket.socket, socket.socket]:
    """(rtp, rtcp) sockets on `port` and `port + 1`; `port` 0: a free even pair, within
    `settings.rtp_port_min/max` when set."""
    family = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][0]

    def try_pair(rtp_port: int) -> tuple[socket.socket, socket.socket] | None:
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, rtp_port))
            actual = rtp.getsockname()[1]
            if actual % 2:
                rtp.close()
                return None
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp.bind((host, actual + 1))
            except OSError:
                rtcp.close()
                rtp.close()
                return None
            return rtp, rtcp
        except OSError:
            rtp.close()
            if rtp_port:
                return None
            raise

    if port:
        if port % 2:
            raise ValueError("RTP port must be even (RTCP takes port + 1)")
        pair = try_pair(port)
        if pair is None:
            raise OSError(f"RTP/RTCP ports {port}/{port + 1} on {host} are not free")
        return pair
    for _ in range(200):
        if settings.rtp_port_min and settings.rtp_port_max:
            candidate = random.randrange(settings.rtp_port_min, settings.rtp_port_max) & ~1
        else:
            candidate = 0
        pair = try_pair(candidate)
        if pair is not None:
            return pair
    raise OSError(f"no free even RTP/RTCP port pair on {host}")


class DatagramHandler(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, tuple], None]) -> None:
        self._handler = handler

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._handler(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: nothing to do, keep going.
        return None
