"""Settings of the per-call media stack (RTP socket, jitter buffer, playout, RTCP)."""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.errors import ConfigError


class MediaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Packetisation. Every codec here sends one ptime frame per packet.
    ptime_ms: int = 20
    # While there is nothing to play, keep sending low-level comfort noise at this level
    # (dBFS) instead of going silent on the wire: the caller hears a live line, and the PBX's
    # RTP timeout (Asterisk rtp_timeout) only fires when Theo is really gone. None = send nothing.
    idle_fill_dbfs: float | None = None  # Theo's config turns it on (-65 dBFS)
    # Codecs in order of preference when answering an SDP offer (wideband first, GAP 5).
    codec_preference: list[str] = msgspec.field(default_factory=lambda: ["G722", "PCMU", "PCMA", "L16"])
    # Adaptive jitter buffer bounds.
    jitter_min_ms: float = 40.0
    jitter_max_ms: float = 200.0
    # How inbound frames reach the listener. "arrival": each frame as soon as its packet is
    # here in sequence (the jitter buffer only orders, and conceals a packet once it is the
    # buffer's target overdue) -- for VAD/STT, which do not play the audio out, so an
    # in-order packet waits 0 ms instead of the buffer's depth. "clock": one frame per 20 ms
    # tick after the adaptive depth, for a listener that plays the audio out at an even pace.
    inbound_delivery: Literal["arrival", "clock"] = "arrival"
    # Time from the last RTP packet leaving us to the caller hearing its last sample:
    # the far end's jitter buffer plus one frame. `drained()` waits this long (GAP 6).
    playout_delay_ms: float = 60.0
    # RTCP report interval (RFC 3550 randomises each interval to 0.5..1.5 of this).
    rtcp_interval_s: float = 5.0
    # Rate of the audio handed to VAD/STT (the one resampling point converts to it).
    inbound_rate: int = 16000
    # libsamplerate converter: "sinc_medium" (60 dB round trip, 6 ms start-up), "sinc_best"
    # (62 dB, 3x the CPU) or "sinc_fastest" (cheap, poor: 14 dB round trip).
    resampler: Literal["sinc_best", "sinc_medium", "sinc_fastest"] = "sinc_medium"
    # RTP port range for port=0 ("pick a free even pair"); 0/0 = let the OS choose.
    rtp_port_min: int = 0
    rtp_port_max: int = 0
    # Datagrams larger than this are dropped as "oversized" (an Ethernet MTU payload).
    max_datagram_bytes: int = 1472
    # Media latching (media_latch.py): audio of another SSRC from the latched address becomes
    # the stream only once the stream's SSRC has been silent this long and the newcomer has
    # sent this many packets in a row (a PBX re-anchoring media); otherwise it is dropped.
    ssrc_switch_silence_ms: int = 200
    ssrc_switch_packets: int = 5
    # Inbound frames kept for a slow consumer before the oldest are dropped (and counted).
    inbound_queue_frames: int = 250
    # After a stall of the event loop longer than this many frames, the send clock
    # resynchronises instead of bursting the backlog (counted in stats.clock_resyncs).
    max_catchup_frames: int = 5
    # Send-interval error samples kept for the p50/p99 in stats().
    send_error_window: int = 3000

    def __post_init__(self) -> None:
        # The per-call bounds of issue 18 item 6: a config typo must not make one call's
        # buffers unbounded. 65507 is the largest UDP payload over IPv4.
        if not 12 <= self.max_datagram_bytes <= 65507:
            raise ConfigError("media.max_datagram_bytes", "must be 12..65507 (an RTP header is 12 bytes)")
        if not 0 < self.jitter_min_ms <= self.jitter_max_ms <= 1000:
            raise ConfigError("media.jitter_max_ms", "needs 0 < jitter_min_ms <= jitter_max_ms <= 1000")
        if self.inbound_queue_frames < 1:
            raise ConfigError("media.inbound_queue_frames", "must be >= 1")
