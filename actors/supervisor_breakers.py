"""SupervisorBreakers: a CallActor's view of the node's circuit breakers on the language
models, kept by the CallSupervisor so that every call on the node shares them (one call's
three timeouts spare the next call its wait).

Asking costs one actor call (~1 ms) per reply. A supervisor that does not answer within
`timeout_s` (crashed, restarting) must not hold a reply up: the call then uses its own
breakers, which see every outcome too.
"""

from __future__ import annotations

import asyncio
import logging

from theo_ray.conversation.model_client import LocalBreakers

log = logging.getLogger("theo.call")


class SupervisorBreakers:
    def __init__(self, supervisor, timeout_s: float = 0.25) -> None:
        self._supervisor = supervisor
        self._timeout_s = timeout_s
        self._local = LocalBreakers()

    async def allow(self, model: str) -> bool:
        if self._supervisor is not None:
            try:
                return await asyncio.wait_for(self._supervisor.breaker_allow.remote(model), self._timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: decide locally
                log.warning("breakers: the supervisor did not answer (%s); deciding for this call alone", type(exc).__name__)
        return await self._local.allow(model)

    def record(self, model: str, ok: bool | None) -> None:
        self._local.record(model, ok)
        if self._supervisor is not None:
            try:
                self._supervisor.breaker_record.remote(model, ok)  # no reply awaited
            except Exception:  # noqa: BLE001 - a gone supervisor: the local breakers have it
                pass
