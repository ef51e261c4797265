"""CallRouter: what the SIP gateway needs from whoever owns the calls (the CallSupervisor)."""

from __future__ import annotations

from typing import Protocol

from theo_ray.sip.messages import CallEnded, CallSetup, MediaAnswer, RemoteMedia


class CallRouter(Protocol):
    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        """Give the call a CallActor and return where its RTP socket listens.

        The 200 OK waits for this; raising (or taking longer than the gateway's
        ``answer_timeout_s``) makes the gateway answer 503. A MediaAnswer with ``refusal``
        set (the overload guard said no) is answered 503 + its ``retry_after_s``.
        """
        ...

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        """A re-INVITE changed the remote media (hold, unhold, new address or codec)."""
        ...

    async def close_call(self, ended: CallEnded) -> None:
        """The dialog is over (or never got answered): stop RTP and release the CallActor.

        Called exactly once per CallSetup, after open_call has returned or failed.
        """
        ...
