"""OrphanReaper: the CallSupervisor's watchdog over calls that lost one of their halves.

Every `call.reap_interval_s` it asks each gateway shard the supervisor has routed calls
through which dialogs it holds, and compares with the supervisor's call map:
- a call whose shard holds no dialog for it (the shard process died, a close was lost):
  its CallActor is ended (`on_orphan_call`);
- a dialog no call holds (its CallActor and the takeover both failed, the supervisor lost
  it): the shard hangs it up with a BYE, so the caller hears a clean end rather than
  silence until the PBX's RTP timeout.
Each side gets its grace first: a call `call.orphan_grace_s` (its dialog may still be
completing), a dialog `call.orphan_dialog_grace_s` (a new call is not in the call map
until the supervisor answered it). Each reaping is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import ray

from theo_ray.conversation.call_settings import CallSettings

log = logging.getLogger("theo.supervisor")


class OrphanReaper:
    def __init__(
        self,
        settings: CallSettings,
        calls: Callable[[], dict[str, tuple[str, float]]],  # session -> (shard name, opened at, wall)
        on_orphan_call: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self._calls = calls
        self._on_orphan_call = on_orphan_call
        self.shards: set[str] = set()  # every shard a call was routed through
        self._unheld_since: dict[str, float] = {}  # dialog session -> first seen with no call
        self.calls_reaped = 0
        self.dialogs_reaped = 0

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval_s)
            try:
                await self.reap()
            except Exception as exc:  # noqa: BLE001 - the reaper must outlive any one round
                log.warning("orphan reaper round failed: %s", exc)

    async def reap(self) -> list[str]:
        """One round; returns the sessions reaped (calls and dialogs)."""
        now = time.time()
        calls = self._calls()
        self.shards |= {shard for shard, _ in calls.values() if shard}
        reaped: list[str] = []
        for shard in sorted(self.shards):
            try:
                gateway = ray.get_actor(shard)
            except ValueError:
                continue  # not started yet (the supervisor starts first) or stopped with its plane
            try:
                held = set(await asyncio.wait_for(gateway.active_sessions.remote(), 5.0))
            except Exception as exc:  # noqa: BLE001 - an unreachable shard is asked again next round
                log.warning("orphan reaper: shard %s did not answer (%s)", shard, exc)
                continue
            for session_id, (call_shard, opened_at) in calls.items():
                if call_shard == shard and session_id not in held and now - opened_at >= self.settings.orphan_grace_s:
                    log.warning("call %s has no dialog on %s: reaped", session_id, shard)
                    self.calls_reaped += 1  # counted before the close, which can take seconds
                    await self._on_orphan_call(session_id)
                    reaped.append(session_id)
            reaped += await self._reap_dialogs(gateway, shard, held - set(calls), now)
        return reaped

    async def _reap_dialogs(self, gateway, shard: str, unheld: set[str], now: float) -> list[str]:
        for session_id in list(self._unheld_since):
            if session_id not in unheld:
                del self._unheld_since[session_id]  # its call turned up, or the dialog ended
        reaped = []
        for session_id in unheld:
            first_seen = self._unheld_since.setdefault(session_id, now)
            if now - first_seen < self.settings.orphan_dialog_grace_s:
                continue
            log.warning("dialog %s on %s has no CallActor: hung up", session_id, shard)
            try:
                await asyncio.wait_for(gateway.hangup.remote(session_id), 5.0)
            except Exception as exc:  # noqa: BLE001 - tried again next round
                log.warning("orphan reaper: hanging up %s failed (%s)", session_id, exc)
                continue
            del self._unheld_since[session_id]
            self.dialogs_reaped += 1
            reaped.append(session_id)
        return reaped
