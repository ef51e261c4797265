"""Per-call MOS estimate from a simplified ITU-T G.107 E-model.

R = 93.2 - Id - Ie,eff with every other G.107 input at its default (so Ro - Is = 93.2,
A = 0). Id is the Cole & Rosenbluth (2001) fit of G.107's delay impairment for
default echo settings:  Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)  (d = mouth-to-ear ms).
Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)  (G.107 7.2, Ppl in percent).

G.722 is wideband, which G.107 does not cover: it is rated on the G.107.1 wideband
scale (Ro,wb = 129, Ie,wb = 13 for G.722 at 64 kbit/s per G.113) and mapped to the
narrowband scale with R = R_wb / 1.29 (G.107.1's transformation), so all codecs share one
MOS scale. G.113 tabulates no Bpl we could cite for G.722 with PLC; we use the G.711 value
(same class of waveform-repeat concealment) and say so here.
"""

from __future__ import annotations

import msgspec


class CodecImpairment(msgspec.Struct, frozen=True):
    ie: float  # equipment impairment (on the codec's own scale)
    bpl: float  # packet-loss robustness
    wideband: bool = False
    packetisation_ms: float = 0.0  # codec look-ahead/algorithmic delay on top of ptime


# G.113 Appendix I: G.711 with Appendix I PLC, random loss: Ie = 0, Bpl = 25.1.
CODEC_IMPAIRMENTS: dict[str, CodecImpairment] = {
    "PCMU": CodecImpairment(ie=0.0, bpl=25.1),
    "PCMA": CodecImpairment(ie=0.0, bpl=25.1),
    "L16/8000": CodecImpairment(ie=0.0, bpl=25.1),
    "L16/16000": CodecImpairment(ie=0.0, bpl=25.1, wideband=True),
    "G722": CodecImpairment(ie=13.0, bpl=25.1, wideband=True, packetisation_ms=1.5),
}

WIDEBAND_SCALE = 1.29


def delay_impairment(mouth_to_ear_ms: float) -> float:
    d = max(0.0, mouth_to_ear_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def r_factor(codec: str, mouth_to_ear_ms: float, loss_percent: float, burst_ratio: float = 1.0) -> float:
    """G.107 transmission rating R on the narrowband scale (0..100)."""
    imp = CODEC_IMPAIRMENTS.get(codec, CODEC_IMPAIRMENTS["PCMU"])
    ppl = min(max(loss_percent, 0.0), 100.0)
    burst = max(burst_ratio, 1.0)
    if imp.wideband:
        # G.722 / wideband L16 on the WB scale, then mapped to NB (L16/16000 has Ie,wb = 0).
        ie_eff = imp.ie + (129.0 - imp.ie) * ppl / (ppl / burst + imp.bpl)
        r_wb = 129.0 - delay_impairment(mouth_to_ear_ms) * WIDEBAND_SCALE - ie_eff
        r = r_wb / WIDEBAND_SCALE
    else:
        ie_eff = imp.ie + (95.0 - imp.ie) * ppl / (ppl / burst + imp.bpl)
        r = 93.2 - delay_impairment(mouth_to_ear_ms) - ie_eff
    return max(0.0, min(100.0, r))


def mos_from_r(r: float) -> float:
    """G.107 Annex B mapping of R to an estimated MOS (conversational quality)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(
    codec: str,
    network_delay_ms: float,
    jitter_buffer_ms: float,
    loss_percent: float,
    ptime_ms: float = 20.0,
    burst_ratio: float = 1.0,
) -> float:
    """MOS of one direction: mouth-to-ear delay = network + jitter buffer + packetisation."""
    imp = CODEC_IMPAIRMENTS.get(codec, CODEC_IMPAIRMENTS["PCMU"])
    delay = network_delay_ms + jitter_buffer_ms + ptime_ms + imp.packetisation_ms
    return mos_from_r(r_factor(codec, delay, loss_percent, burst_ratio))
