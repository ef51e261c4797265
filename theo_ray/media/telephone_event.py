"""RFC 4733 telephone-event payloads (DTMF): parse the 4-byte event block.

    0                   1                   2                   3
    |     event     |E|R| volume    |          duration             |

A packet may carry several blocks (RFC 4733 section 2.5.1.5 redundancy); the last one is
the current event. Anything that is not whole blocks, or an event code outside DTMF's
0-15 (0-9, *, #, A-D), raises `TelephoneEventError` with a counter-name reason: the
inbound path drops the packet and counts it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

BLOCK_BYTES = 4
MAX_DTMF_EVENT = 15

TelephoneEventReason = Literal["short", "bad_length", "not_dtmf"]


class TelephoneEventError(ValueError):
    def __init__(self, reason: TelephoneEventReason) -> None:
        super().__init__(reason)
        self.reason: TelephoneEventReason = reason


class TelephoneEventBlock(msgspec.Struct, frozen=True):
    event: int  # 0-9, 10 = '*', 11 = '#', 12-15 = A-D
    end: bool
    volume: int  # -dBm0, 0..63
    duration: int  # RTP timestamp units since the event began


def parse_telephone_event(payload: bytes) -> TelephoneEventBlock:
    """The current (last) event block of one telephone-event payload."""
    if len(payload) < BLOCK_BYTES:
        raise TelephoneEventError("short")
    if len(payload) % BLOCK_BYTES:
        raise TelephoneEventError("bad_length")
    block = payload[-BLOCK_BYTES:]
    if block[0] > MAX_DTMF_EVENT:
        raise TelephoneEventError("not_dtmf")
    return TelephoneEventBlock(
        event=block[0],
        end=bool(block[1] & 0x80),
        volume=block[1] & 0x3F,
        duration=int.from_bytes(block[2:4], "big"),
    )


def build_telephone_event(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    """One event block (for tests and the caller simulator)."""
    if not 0 <= event <= 255:
        raise ValueError("event code is one byte")
    return bytes([event, (0x80 if end else 0) | (volume & 0x3F)]) + (duration & 0xFFFF).to_bytes(2, "big")
