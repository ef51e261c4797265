"""The SDP media direction (RFC 3264 a=sendrecv/sendonly/recvonly/inactive), declared once.

Media is the lowest layer that needs it (RtpSession holds and sends by it); the SIP layer's
SDP model and router messages import it from here, never the other way round.
"""

from __future__ import annotations

from typing import Literal, get_args

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
