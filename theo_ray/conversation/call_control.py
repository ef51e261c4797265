"""CallControl: what the turn loop may do to the call itself — transfer it or hang up.

Behind Asterisk the AmiBridge does both (Redirect of the caller's channel; Hangup of it,
since a BYE from Theo would send the caller to the dialplan's human fallback). When the AMI
cannot act (connection down, the PBX not answering, the bridge restarting), that very BYE
is the way out: `AmiWithDialplanFallback` ends the AI leg, and the rendered dialplan hands
the caller to its fallback route (a human, music on hold meanwhile). Without a PBX (the
embedded demo dialling the gateway directly) the SipGateway hangs up, and a transfer can
only be recorded before hanging up.
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


class AmiWithDialplanFallback:
    """Behind Asterisk: the AMI first; when it fails, Theo's BYE on the AI leg, after which
    the rendered dialplan (`extensions.conf`: Dial returns with the caller still there) takes
    the caller to its fallback route. So an AMI outage never leaves a caller with an agent
    that can neither transfer nor hang up; the outcome says which way it went."""

    def __init__(self, ami: AmiCallControl, gateway: GatewayCallControl) -> None:
        self._ami = ami
        self._gateway = gateway

    async def transfer(self, destination: str, reason: str) -> ControlOutcome:
        outcome = await self._ami.transfer(destination, reason)
        if outcome.ok:
            return outcome
        return await self._leave_to_dialplan("transfer", f"transfer:{destination}", outcome)

    async def hangup(self, reason: str) -> ControlOutcome:
        outcome = await self._ami.hangup(reason)
        if outcome.ok:
            return outcome
        return await self._leave_to_dialplan("hangup", reason, outcome)

    async def _leave_to_dialplan(self, action: str, reason: str, failed: ControlOutcome) -> ControlOutcome:
        bye = await self._gateway.hangup(reason)
        if not bye.ok:
            return ControlOutcome(ok=False, action=action, detail=f"AMI: {failed.detail}; BYE: {bye.detail}")
        return ControlOutcome(
            ok=True, action=action, duration_ms=failed.duration_ms,
            detail=f"dialplan fallback: AMI failed ({failed.detail}), AI leg ended with a BYE",
        )
