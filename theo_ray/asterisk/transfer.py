"""The transfer step of the turn loop (GAP 6): `Transferrer.transfer()` is called once the
agent's last words have really been played out (playout drained, never a sleep), and moves
the caller to a human. `AmiTransferrer` does it with an AMI Redirect of the caller's channel
to the dialplan target of the named destination; the AI leg then receives a BYE from the PBX.

Failures come back as a `TransferResult` with `ok=False` and an `error_kind`, never as an
exception, so the turn loop can always tell the caller something.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal, Protocol

import msgspec

from theo_ray.asterisk.errors import (
    AmiError,
    AmiNotConnected,
    AmiTimeout,
    ChannelGone,
    SessionAlreadyEnded,
)
from theo_ray.asterisk.results import AmiActionResult
from theo_ray.asterisk.settings import DialplanSettings

log = logging.getLogger(__name__)

TransferErrorKind = Literal[
    "", "unknown_destination", "channel_gone", "not_connected", "timeout", "already_ended", "failed"
]


class DialplanTarget(msgspec.Struct, frozen=True):
    context: str
    exten: str
    priority: int = 1


class TransferResult(msgspec.Struct, frozen=True):
    ok: bool
    session_id: str
    destination: str
    reason: str
    channel: str = ""
    already_done: bool = False
    duration_ms: float = 0.0
    error_kind: TransferErrorKind = ""
    error: str = ""  # for logs and traces; never spoken to the caller


class Transferrer(Protocol):
    async def transfer(self, session_id: str, destination: str, reason: str) -> TransferResult: ...


class Redirector(Protocol):
    """What AmiTransferrer needs from the AMI side (AmiClient, or a wrapper of the actor)."""

    async def redirect(self, session_id: str, context: str, exten: str, priority: int = 1) -> AmiActionResult: ...


def routes_from_settings(dialplan: DialplanSettings) -> dict[str, DialplanTarget]:
    """Destination name -> dialplan target, as rendered into extensions.conf."""
    return {name: DialplanTarget(dialplan.transfer_context, name, 1) for name in dialplan.transfer_routes}


class AmiTransferrer:
    def __init__(self, redirector: Redirector, routes: Mapping[str, DialplanTarget]) -> None:
        self._redirector = redirector
        self._routes = dict(routes)

    @property
    def destinations(self) -> list[str]:
        return sorted(self._routes)

    def target(self, destination: str) -> DialplanTarget | None:
        return self._routes.get(destination)

    async def transfer(self, session_id: str, destination: str, reason: str) -> TransferResult:
        target = self._routes.get(destination)
        if target is None:
            return TransferResult(
                ok=False, session_id=session_id, destination=destination, reason=reason,
                error_kind="unknown_destination",
                error=f"unknown destination '{destination}'; known: {', '.join(self.destinations)}",
            )
        try:
            result = await self._redirector.redirect(session_id, target.context, target.exten, target.priority)
        except AmiError as exc:
            log.warning("transfer of %s to %s failed: %s", session_id, destination, exc)
            return TransferResult(
                ok=False, session_id=session_id, destination=destination, reason=reason,
                error_kind=_error_kind(exc), error=str(exc),
            )
        log.info("transferred %s to %s (%s) in %.0f ms", session_id, destination, reason, result.duration_ms)
        return TransferResult(
            ok=True, session_id=session_id, destination=destination, reason=reason,
            channel=result.channel, already_done=result.already_done, duration_ms=result.duration_ms,
        )


def _error_kind(exc: AmiError) -> TransferErrorKind:
    if isinstance(exc, ChannelGone):
        return "channel_gone"
    if isinstance(exc, AmiNotConnected):
        return "not_connected"
    if isinstance(exc, AmiTimeout):
        return "timeout"
    if isinstance(exc, SessionAlreadyEnded):
        return "already_ended"
    return "failed"
