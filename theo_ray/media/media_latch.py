"""Media latching for one call's RtpSession (symmetric RTP, as Asterisk's strictrtp does it).

It decides who may send us media and where our RTP and RTCP go:

- RTP address. The SDP (`expect()`) names the peer's media address; we send there until
  the first valid audio packet arrives. That packet's (host, port) latches: from then on
  RTP is taken only from it, and ours goes back to it. One exception: the SDP's own
  address takes the latch back from any other port (a re-INVITE's stragglers from the old
  port, or a stray that got in first, must not lock the real stream out for the call).
  A new SDP (re-INVITE) unlatches.
- RTCP address. Taken only from the latched host at the RTP port + 1 or at the RTP port
  itself (rtcp-mux, RFC 5761), or from the SDP's RTCP address (port + 1 or a=rtcp) or
  its RTP address (mux).
  Before the latch, the latched address is the SDP's. Our reports go to the SDP's RTCP
  address (to port + 1 of a latched address that is not the SDP's), then to wherever
  accepted RTCP comes from: RTCP from any other port is refused and never moves them.
- SSRC. The first SSRC heard is the stream's. Audio of another SSRC is refused (the
  session drops and counts it) unless the stream really changed source: the stream's
  SSRC has been silent for `switch_silence` s and the newcomer has sent `switch_packets`
  packets in a row, none of the stream's in between. A PBX re-anchoring media does that;
  an injector interleaving with the live stream never can. The newcomer's last packets
  are kept, so that a switch loses none of its audio. A new SDP takes the next SSRC at once.

The per-packet checks (address, SSRC) are attribute compares inlined in RtpSession; the
methods here run only when something does not match or changes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

ACCEPT, DROP, SWITCH = 0, 1, 2


class MediaLatch:
    __slots__ = (
        "switch_silence",
        "switch_packets",
        "host",
        "port",
        "peer",
        "latched",
        "rtcp_peer",
        "sdp",
        "sdp_rtcp",
        "ssrc",
        "ssrc_heard_at",
        "_candidate",
        "_candidate_since",
        "_run",
        "_held",
    )

    def __init__(self, switch_silence_s: float, switch_packets: int, hold_packets: int) -> None:
        self.switch_silence = switch_silence_s
        self.switch_packets = max(1, switch_packets)
        self.host: str | None = None  # RTP peer: latched, else the SDP's (None: neither yet)
        self.port = 0
        self.peer: tuple[str, int] | None = None  # (host, port): where our RTP goes
        self.latched = False
        self.rtcp_peer: tuple[str, int] | None = None  # where our RTCP goes
        self.sdp: tuple[str, int] | None = None
        self.sdp_rtcp: tuple[str, int] | None = None
        self.ssrc: int | None = None  # the stream's; None: the next audio packet's
        self.ssrc_heard_at = 0.0  # arrival of the stream's latest packet
        self._candidate: int | None = None
        self._candidate_since = 0.0
        self._run = 0
        self._held: deque[tuple[Any, int, float]] = deque(maxlen=max(1, hold_packets))

    # ------------------------------------------------------------ addresses

    def expect(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        """The SDP's media address (answer or re-INVITE): unlatch, take the next SSRC."""
        self.sdp = (host, port)
        self.sdp_rtcp = (host, rtcp_port if rtcp_port is not None else port + 1)
        self.host, self.port, self.peer = host, port, self.sdp
        self.rtcp_peer = self.sdp_rtcp
        self.latched = False
        self._open_ssrc()

    def is_sdp(self, host: str, port: int) -> bool:
        """True for the SDP's own RTP address (which may take the latch back)."""
        sdp = self.sdp
        return sdp is not None and port == sdp[1] and host == sdp[0]

    def latch(self, host: str, port: int) -> None:
        """Latch RTP to (host, port), the source of a valid audio packet."""
        if self.latched:
            self._open_ssrc()  # the SDP's address took the latch back: its stream starts now
        self.host, self.port = host, port
        self.peer = (host, port)
        self.latched = True
        self.rtcp_peer = self.sdp_rtcp if self.peer == self.sdp else (host, port + 1)

    def rtcp_accepts(self, host: str, port: int) -> bool:
        """RTCP from the RTP peer's port + 1 or its RTP port (mux), latched or the SDP's."""
        if host == self.host and (port == self.port + 1 or port == self.port):
            return True
        rtcp = self.sdp_rtcp
        if rtcp is None or host != rtcp[0]:
            return False
        return port == rtcp[1] or port == self.sdp[1]  # type: ignore[index]

    def rtcp_heard(self, host: str, port: int) -> None:
        """Accepted RTCP came in on the RTCP socket: report to where it came from."""
        peer = self.rtcp_peer
        if peer is None or peer[1] != port or peer[0] != host:
            self.rtcp_peer = (host, port)

    # ------------------------------------------------------------ SSRC

    def _open_ssrc(self) -> None:
        self.ssrc = None
        self._candidate = None
        self._run = 0
        self._held.clear()

    def other_ssrc(self, ssrc: int, packet: Any, size: int, now: float) -> int:
        """An audio packet whose SSRC is not the stream's: ACCEPT (the first SSRC), DROP (held
        back, maybe for a switch) or SWITCH (it is the stream's now; `take_held()` first)."""
        if self.ssrc is None:
            self.ssrc = ssrc
            self.ssrc_heard_at = now
            return ACCEPT
        if ssrc != self._candidate or self.ssrc_heard_at >= self._candidate_since:
            # A new run: another newcomer, or the stream itself spoke since the run began.
            self._candidate = ssrc
            self._candidate_since = now
            self._run = 0
            self._held.clear()
        self._run += 1
        if self._run < self.switch_packets or now - self.ssrc_heard_at < self.switch_silence:
            self._held.append((packet, size, now))
            return DROP
        self.ssrc = ssrc
        self.ssrc_heard_at = now
        self._candidate = None
        self._run = 0
        return SWITCH

    def take_held(self) -> list[tuple[Any, int, float]]:
        """The switched-to stream's packets held back before the switch: (packet, size, arrival)."""
        held = list(self._held)
        self._held.clear()
        return held
