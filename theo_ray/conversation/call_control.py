"""CallControl: what the turn loop may do to the call itself — transfer it or hang up.

Behind Asterisk the AmiBridge does both (Redirect of the caller's channel; Hangup of it,
since a BYE from Theo would send the caller to the dialplan's human fallback). Without a
PBX (the embedded demo dialling the gateway directly) the SipGateway hangs up, and a
transfer can only be recorded before hanging up.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from theo_ray.telemetry.tracing import inject


class ControlOutcome(msgspec.Struct, frozen=True):
    ok: bool
    action: str  # "transfer" | "hangup"
    detail: str = ""
    duration_ms: float = 0.0


class CallControl(Protocol):
    async def transfer(self, destination: str, reason: str) -> ControlOutcome: ...

    async def hangup(self, reason: str) -> ControlOutcome: ...


class GatewayCallControl:
    """No PBX in front: hang-up through the SipGateway; a transfer ends the AI leg too."""

    def __init__(self, gateway, session_id: str) -> None:
        self._gateway = gateway
        self._session_id = session_id

    async def transfer(self, destination: str, reason: str) -> ControlOutcome:
        result = await self.hangup(f"transfer:{destination}")
        return ControlOutcome(ok=result.ok, action="transfer", detail=f"no PBX: AI leg ended for {destination} ({reason})")

    async def hangup(self, reason: str) -> ControlOutcome:
        if self._gateway is None:
            return ControlOutcome(ok=False, action="hangup", detail="no gateway")
        try:
            await self._gateway.hangup.remote(self._session_id)
            return ControlOutcome(ok=True, action="hangup", detail=reason)
        except Exception as exc:  # the gateway is gone: the call is over for us anyway
            return ControlOutcome(ok=False, action="hangup", detail=f"{type(exc).__name__}: {exc}")


class AmiCallControl:
    """Behind Asterisk: transfer = AMI Redirect, hang-up = AMI Hangup of the caller's channel."""

    def __init__(self, bridge, session_id: str) -> None:
        self._bridge = bridge
        self._session_id = session_id

    async def transfer(self, destination: str, reason: str) -> ControlOutcome:
        if self._bridge is None:
            return ControlOutcome(ok=False, action="transfer", detail="no AMI bridge running")
        try:
            # The current span (the CallActor's `call.transfer`) rides in the request, so the
            # AmiBridge's Redirect span joins the call's trace.
            result = await self._bridge.transfer.remote(self._session_id, destination, reason, trace=inject())
        except Exception as exc:  # the bridge itself is down (restarting): the turn loop still gets an outcome
            return ControlOutcome(ok=False, action="transfer", detail=f"AmiBridge unavailable: {type(exc).__name__}: {exc}")
        return ControlOutcome(
            ok=result.ok, action="transfer", detail=result.error or result.channel, duration_ms=result.duration_ms
        )

    async def hangup(self, reason: str) -> ControlOutcome:
        if self._bridge is None:
            return ControlOutcome(ok=False, action="hangup", detail="no AMI bridge running")
        try:
            result = await self._bridge.hangup.remote(self._session_id)
            return ControlOutcome(ok=True, action="hangup", detail=reason, duration_ms=getattr(result, "duration_ms", 0.0))
        except Exception as exc:
            return ControlOutcome(ok=False, action="hangup", detail=f"{type(exc).__name__}: {exc}")
