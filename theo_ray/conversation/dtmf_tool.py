"""The agent's `send_dtmf` tool: keys pressed towards the far end (an IVR, a PBX menu) as
RFC 4733 telephone events on the call's RTP stream, once the words before them were played.

Bad input never raises: keys the schema let through but the line cannot send (the peer
negotiated no telephone-event) come back as a failed ToolResult the model is told about.
"""

from __future__ import annotations

import asyncio

from theo_ray.conversation.after_speech import ToolResult
from theo_ray.conversation.records import CallRecord
from theo_ray.media.playback_port import CallLine
from theo_ray.messages import ToolCall

# A key is 100-200 ms on the wire plus a gap: 32 keys (the schema's cap) fit well inside this.
SEND_TIMEOUT_S = 15.0


class DtmfTool:
    def __init__(self, line: CallLine, record: CallRecord) -> None:
        self._line = line
        self._record = record

    async def __call__(self, call: ToolCall) -> ToolResult:
        digits = str(call.arguments.get("digits", ""))
        try:
            await asyncio.wait_for(self._line.send_dtmf(digits), SEND_TIMEOUT_S)
        except (ValueError, asyncio.TimeoutError) as exc:
            detail = f"send_dtmf {digits!r}: {exc or 'not sent in time'}"
            self._record.errors.append(detail)
            return ToolResult(False, f"erro: as teclas não foram enviadas ({exc or 'tempo esgotado'})", detail)
        return ToolResult(True, f"ok: teclas {digits} enviadas", f"sent {digits}")
