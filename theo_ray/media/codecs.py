"""Audio codecs carried in RTP: PCMU, PCMA (G.711), L16 (8 and 16 kHz) and G.722.

This module owns the byte <-> int16 PCM conversion of one RTP payload, and the
facts about each codec that SDP and RTP need (payload type, audio rate, RTP
clock rate, samples per packet).

G.711 is done with numpy lookup tables built once at import: `audioop` is
deprecated since Python 3.11 and removed in 3.13 (PEP 594), and a 64 Ki-entry
table indexed by the whole frame is faster than any per-sample code anyway.
G.722 uses the PyPI `G722` package (libg722, a bit-exact ITU-T G.722 C
implementation); G.722 is stateful (ADPCM), so every codec instance is meant
for ONE direction: create one for encoding and one for decoding.

RFC 3551 quirk: G.722 samples audio at 16 kHz but its RTP clock runs at 8 kHz,
so a 20 ms G.722 packet holds 320 samples and advances the RTP timestamp by 160.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import G722 as g722_lib
import msgspec
import numpy as np


class PayloadError(ValueError):
    """An RTP payload cannot be decoded by the negotiated codec (e.g. odd length for L16)."""


class CodecInfo(msgspec.Struct, frozen=True):
    """What SDP and RTP need to know about a codec (the `a=rtpmap` facts)."""

    name: str  # registry name, e.g. "PCMU", "L16/8000"
    encoding_name: str  # as written in a=rtpmap, e.g. "PCMU", "L16", "G722"
    payload_type: int  # static PT from RFC 3551, or the default dynamic one
    static_payload_type: bool
    sample_rate: int  # audio samples per second the codec carries
    clock_rate: int  # RTP timestamp units per second (8000 for G.722)

    def samples_per_frame(self, ptime_ms: int = 20) -> int:
        return self.sample_rate * ptime_ms // 1000

    def timestamp_step(self, ptime_ms: int = 20) -> int:
        return self.clock_rate * ptime_ms // 1000


# ---------------------------------------------------------------- G.711 tables


def _build_ulaw_tables() -> tuple[np.ndarray, np.ndarray]:
    # Classic Sun/CCITT G.711 mu-law (same bit pattern as audioop.lin2ulaw).
    bias = 0x84
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + bias) << exponent) - bias
    decode = np.where(sign != 0, -magnitude, magnitude).astype(np.int16)

    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 2  # index is the uint16 view; 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    val = np.minimum(np.abs(pcm), 8159) + (bias >> 2)
    seg_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_ends, val, side="left")
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((val >> (seg + 1)) & 0x0F))
    encode = ((uval ^ mask) & 0xFF).astype(np.uint8)
    return encode, decode


def _build_alaw_tables() -> tuple[np.ndarray, np.ndarray]:
    # Classic Sun/CCITT G.711 A-law (same bit pattern as audioop.lin2alaw).
    codes = np.arange(256, dtype=np.int32)
    a = codes ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    decode = np.where((a & 0x80) != 0, t, -t).astype(np.int16)

    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    val = np.where(pcm >= 0, pcm, -pcm - 1)
    seg_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(seg_ends, val, side="left")
    aval = np.where(seg < 2, (val >> 1) & 0x0F, (val >> np.maximum(seg, 1)) & 0x0F) | (seg << 4)
    aval = np.where(seg >= 8, 0x7F, aval)
    encode = ((aval ^ mask) & 0xFF).astype(np.uint8)
    return encode, decode


_ULAW_ENCODE, _ULAW_DECODE = _build_ulaw_tables()
_ALAW_ENCODE, _ALAW_DECODE = _build_alaw_tables()


def _as_int16(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype != np.int16:
        raise TypeError(f"codecs take int16 PCM, got {pcm.dtype}")
    return pcm


# ---------------------------------------------------------------- codecs


class Codec(ABC):
    """One direction of one codec. Subclasses set `info` and implement encode/decode."""

    info: ClassVar[CodecInfo]

    def __init__(self, payload_type: int | None = None) -> None:
        # The SDP offer may map a dynamic codec (L16) to any PT in 96..127.
        self.payload_type = self.info.payload_type if payload_type is None else payload_type

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def clock_rate(self) -> int:
        return self.info.clock_rate

    def samples_per_frame(self, ptime_ms: int = 20) -> int:
        return self.info.samples_per_frame(ptime_ms)

    def timestamp_step(self, ptime_ms: int = 20) -> int:
        return self.info.timestamp_step(ptime_ms)

    @abstractmethod
    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame of int16 PCM at `sample_rate` -> RTP payload."""

    @abstractmethod
    def decode(self, payload: bytes) -> np.ndarray:
        """RTP payload -> int16 PCM at `sample_rate`; PayloadError if malformed."""


class Pcmu(Codec):
    info = CodecInfo("PCMU", "PCMU", 0, True, 8000, 8000)

    def encode(self, pcm: np.ndarray) -> bytes:
        return _ULAW_ENCODE[_as_int16(pcm).view(np.uint16)].tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return _ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


class Pcma(Codec):
    info = CodecInfo("PCMA", "PCMA", 8, True, 8000, 8000)

    def encode(self, pcm: np.ndarray) -> bytes:
        return _ALAW_ENCODE[_as_int16(pcm).view(np.uint16)].tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return _ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


class _L16(Codec):
    # RFC 3551 section 4.5.11: 16-bit signed, network byte order.
    def encode(self, pcm: np.ndarray) -> bytes:
        return _as_int16(pcm).astype(">i2").tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        if len(payload) % 2:
            raise PayloadError("L16 payload has an odd number of bytes")
        return np.frombuffer(payload, dtype=">i2").astype(np.int16)


class L16Narrow(_L16):
    info = CodecInfo("L16/8000", "L16", 97, False, 8000, 8000)


class L16Wide(_L16):
    info = CodecInfo("L16/16000", "L16", 96, False, 16000, 16000)


class G722(Codec):
    info = CodecInfo("G722", "G722", 9, True, 16000, 8000)

    def __init__(self, payload_type: int | None = None) -> None:
        super().__init__(payload_type)
        # 64 kbit/s mode 1, the only one SIP endpoints use; state is per instance.
        self._state = g722_lib.G722(16000, 64000)

    def encode(self, pcm: np.ndarray) -> bytes:
        return self._state.encode(_as_int16(pcm))

    def decode(self, payload: bytes) -> np.ndarray:
        return np.frombuffer(self._state.decode(payload), dtype=np.int16)


CODECS: dict[str, type[Codec]] = {
    cls.info.name: cls for cls in (Pcmu, Pcma, L16Narrow, L16Wide, G722)
}
# "L16" alone means the wideband variant (the one worth negotiating).
_ALIASES = {"L16": "L16/16000", "G.722": "G722", "G711U": "PCMU", "G711A": "PCMA"}


def codec_info(name: str) -> CodecInfo:
    return CODECS[_ALIASES.get(name, name)].info


def create_codec(name: str, payload_type: int | None = None) -> Codec:
    """A fresh codec instance (one per direction) by registry name; KeyError if unknown."""
    return CODECS[_ALIASES.get(name, name)](payload_type)


def find_codec(encoding_name: str, clock_rate: int) -> CodecInfo | None:
    """The codec an SDP `a=rtpmap:<pt> <encoding_name>/<clock_rate>` line names, if supported."""
    wanted = encoding_name.upper()
    for cls in CODECS.values():
        if cls.info.encoding_name == wanted and cls.info.clock_rate == clock_rate:
            return cls.info
    return None


def through_codec(pcm: np.ndarray, rate: int, name: str, ptime_ms: int = 20) -> np.ndarray:
    """Offline: int16 `pcm` at `rate` as a line with codec `name` carries it (resampled to the
    codec's rate, encoded and decoded frame by frame, resampled back), same length."""
    from theo_ray.media.resample import resample_once

    if pcm.size == 0:
        return pcm
    coder = create_codec(name)
    x = resample_once(pcm, rate, coder.sample_rate)
    frame = coder.samples_per_frame(ptime_ms)
    x = np.concatenate((x, np.zeros((-x.size) % frame, np.int16)))
    y = np.concatenate([coder.decode(coder.encode(x[i : i + frame])) for i in range(0, x.size, frame)])
    out = resample_once(y, coder.sample_rate, rate)
    return np.concatenate((out, np.zeros(max(0, pcm.size - out.size), np.int16)))[: pcm.size]
