"""Numbers read from SIP and SDP text: ASCII digits only.

`str.isdigit()` is true for characters `int()` refuses ("²", "①") and `int()` takes
digits of every script ("٣" is 3), so a header or SDP field checked with `isdigit()` and
read with `int()` could raise in the middle of a SIP callback. Every number Theo reads
from the wire goes through `ascii_int`, which says "not a number" instead.
"""

from __future__ import annotations

# Longer runs of digits are never a port, payload type, rate or delta-seconds: refusing them
# also keeps int() away from CPython's digit limit (4300) and its quadratic cost.
MAX_DIGITS = 18


def ascii_int(text: str) -> int | None:
    """The value of `text` if it is 1..MAX_DIGITS ASCII digits, else None."""
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)
