"""CallSupervisor: the named actor that creates, hands out and ends CallActors.

It keeps a warm pool (actors prepared ahead), the session id -> actor map (plus the
caller's channel info for the AMI side), renders the PhraseBook once per voice, and ends
each call's actor when the call ends, so no actor or socket outlives its call.

Failover: each live call has a watcher blocked on its actor's `wait_ended()`; Ray fails
that call the moment the actor's process dies, so the supervisor hears of a death in
milliseconds, not on a polling period. It then hands the call to a warm actor
(`resume()`: the dead actor's RTP port bound again, the last memory checkpoint the
actor pushed at a turn boundary restored, an apology instead of the greeting). A
takeover that fails or takes over `call.failover_timeout_s` sends the caller to a human.

Its own crash: CallActors are detached and named (`CALL_ACTOR_PREFIX`), so they outlive
the supervisor; Ray restarts it (same name, same arguments), and its first method call
after the restart adopts every CallActor it finds by name — live calls back into the map
with their setup, port and memory, warm ones back into the pool. Live calls never notice:
they need the supervisor only to start and to end.

Why ~490 lines: the pool, the call map, failover, adoption, the overload check at open and
the closing calls all read or write the one call map; split apart, each would reach into
the others' state (the pieces without that state live beside it: call_archive,
orphan_reaper, supervisor_breakers, plane_metrics, overload_guard).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from pathlib import Path

import msgspec
import ray

from theo_ray.actor_names import CALL_ACTOR_PREFIX
from theo_ray.actors.call_actor import (CallActorRemote, CallActorSettings, CallInfo, call_control_for,
                                        retire_call_actor)
from theo_ray.actors.call_archive import CallArchive
from theo_ray.actors.orphan_reaper import OrphanReaper
from theo_ray.actors.plane_metrics import PlaneMetrics
from theo_ray.calldata.settings import CallDataSettings
from theo_ray.circuit_breaker import BreakerBoard, BreakerState
from theo_ray.conversation.phrase_book import PhraseBook, load_or_render_phrase_book
from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.conversation.call_settings import CallSettings
from theo_ray.conversation.overload_guard import OverloadGuard
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.errors import TheoError
from theo_ray.media.settings import MediaSettings
from theo_ray.model_handles import ModelHandles
from theo_ray.sip.messages import CallEnded, CallSetup, MediaAnswer, RemoteMedia
from theo_ray.telemetry.settings import TelemetrySettings

log = logging.getLogger("theo.supervisor")
CLOSE_WAIT_S = 10.0  # a CallActor that takes longer to close is given up on (killed)


class ActiveCall(msgspec.Struct):
    session_id: str
    caller_id: str
    opened_at: float
    setup_ms: float
    channel: str = ""  # Asterisk channel name, filled by the AMI side
    gateway_name: str = ""  # the shard holding the call's dialog
    rtp_port: int = 0  # where the PBX sends the caller's audio (a replacement binds it again)
    failovers: int = 0  # CallActors this call has outlived


class SupervisorStats(msgspec.Struct):
    active: int
    warm: int
    created: int
    opened: int
    closed: int
    open_failures: int
    phrase_book_ready: bool
    reaped: int = 0  # calls ended by the orphan reaper (no dialog held them)
    dialogs_reaped: int = 0  # dialogs hung up by the orphan reaper (no CallActor held them)
    archived: int = 0  # finished calls handed to the call-data sinks
    failovers: int = 0  # dead CallActors replaced mid-call
    adopted: int = 0  # live calls taken back after this supervisor restarted
    failover_failures: int = 0  # takeovers that failed (the caller went to a human or was hung up)
    last_failover_ms: float = 0.0  # death noticed -> replacement answering, the latest one
    breakers: list[BreakerState] = []  # the language models' breakers on this node
    overload_refusals: dict[str, int] = {}  # calls refused by call.overload, by rule (cpu, pool)
    cpu_percent: float = 0.0  # the overload guard's moving mean of this node's CPU


class CallSupervisor:
    def __init__(
        self,
        call: CallSettings,
        media: MediaSettings,
        conversation: ConversationSettings,
        model_cache: str,
        handles: ModelHandles | None,
        tts_voice: str = "",
        gateway_name: str = "",
        ami_bridge_name: str = "",
        llm_breaker: tuple[int, float] = (3, 30.0),  # llm.breaker_failures, llm.breaker_open_s
        call_data: CallDataSettings | None = None,  # None: finished calls are kept in memory only
        output_dir: str = "",
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        self.call = call
        self.media = media
        self.conversation = conversation
        self.model_cache = model_cache
        self.handles = handles
        self.tts_voice = tts_voice
        self.gateway_name = gateway_name
        self.ami_bridge_name = ami_bridge_name
        self.phrases: PhraseBook | None = None
        # The language models' breakers, shared by this node's calls (SupervisorBreakers).
        self._breakers = BreakerBoard(*llm_breaker)
        self._warm: collections.deque = collections.deque()
        self._active: dict[str, tuple[object, ActiveCall]] = {}
        self._records: collections.OrderedDict[str, CallRecord] = collections.OrderedDict()
        self._closing: dict[str, asyncio.Event] = {}  # calls between the call map and the records
        self._created = self._opened = self._closed = self._failures = 0
        self._refill: asyncio.Task | None = None
        self._reaper_task: asyncio.Task | None = None
        self.reaper = OrphanReaper(call, self._calls_by_shard, self._close_orphan)
        if gateway_name:
            self.reaper.shards.add(gateway_name)
        self.archive = CallArchive(call_data, output_dir)
        self._lock = asyncio.Lock()
        self._setups: dict[str, CallSetup] = {}
        self._checkpoints: dict[str, bytes] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._failovers = self._failover_failures = 0
        self._last_failover_ms = 0.0
        self._adopted = 0
        self._retiring: set[asyncio.Task] = set()  # closed CallActors flushing their spans, then killed
        self._shutting_down = False
        context = ray.get_runtime_context()
        self._node_id = context.get_node_id()
        self._name = context.get_actor_name() or uuid.uuid4().hex[:8]
        self.telemetry = telemetry or TelemetrySettings()
        self.metrics = PlaneMetrics(self._name, enabled=self.telemetry.records_metrics)
        self._metrics_task: asyncio.Task | None = None
        self.overload = OverloadGuard(call.overload)
        # From __init__ (async actors run it on their loop), so a restarted supervisor samples too.
        self._overload_task = asyncio.get_running_loop().create_task(self.overload.sample_cpu_forever())
        # A restart (Ray re-runs __init__): adopt the CallActors on the first call.
        self._adoption: asyncio.Task | None = None
        self._needs_adoption = context.was_current_actor_reconstructed
        if self._needs_adoption:  # at once, not at the next call: the reaper starts with it
            context.current_actor.adopt.remote()

    async def _ready(self) -> None:
        """After a restart, every public method first waits for the adoption (once)."""
        if not self._needs_adoption:
            return
        if self._adoption is None:
            self._adoption = asyncio.create_task(self._adopt())
        await asyncio.shield(self._adoption)

    async def adopt(self) -> None:
        """Adopt the CallActors of a previous life (queued by __init__ after a restart)."""
        await self._ready()

    async def _adopt(self) -> None:
        from ray.util import list_named_actors

        prefix = f"{CALL_ACTOR_PREFIX}{self._name}-"
        namespace = ray.get_runtime_context().namespace
        names = [e["name"] for e in list_named_actors(all_namespaces=True)
                 if e["namespace"] == namespace and e["name"].startswith(prefix)]
        for name in names:
            try:
                actor = ray.get_actor(name, namespace=namespace)
                info: CallInfo = await asyncio.wait_for(actor.call_info.remote(), timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - a dead or stuck actor is not adopted
                log.warning("restart: CallActor %s not adopted: %s", name, exc)
                continue
            if not info.session_id:
                self._warm.append(actor)
                continue
            setup = info.setup
            self._active[info.session_id] = (actor, ActiveCall(
                info.session_id, setup.caller_id if setup else "", info.opened_at, 0.0,
                gateway_name=setup.gateway_name if setup else "", rtp_port=info.rtp_port,
            ))
            if setup is not None:
                self._setups[info.session_id] = setup
            self._checkpoints[info.session_id] = info.memory
            self._watch(info.session_id, actor)
            self._adopted += 1
        log.warning("restarted: adopted %d live calls and %d warm CallActors", self._adopted, len(self._warm))
        self._needs_adoption = False
        await self.start()

    async def start(self) -> SupervisorStats:
        """Render the phrase book (agent mode) and fill the warm pool; returns when ready."""
        if self.conversation.mode == "agent" and self.handles is not None and self.phrases is None:
            self.phrases = await load_or_render_phrase_book(
                self.handles.tts, self.tts_voice, self.conversation.greeting, Path(self.model_cache)
            )
        await self.archive.start()
        if self._reaper_task is None:  # before the pool: filling it can take seconds on busy cores
            self._reaper_task = asyncio.create_task(self.reaper.run_forever())
        await self._fill_pool()
        if self._metrics_task is None and self.telemetry.records_metrics:
            self._metrics_task = asyncio.create_task(self.metrics.run(self.stats, self.telemetry.metrics_interval_s))
        return await self.stats()

    async def reap_orphans(self) -> list[str]:
        """One round of the orphan reaper (calls without a dialog, dialogs without a call)."""
        return await self.reaper.reap()

    def _calls_by_shard(self) -> dict[str, tuple[str, float]]:
        return {sid: (info.gateway_name, info.opened_at) for sid, (_, info) in self._active.items()}

    async def _close_orphan(self, session_id: str) -> None:
        if session_id in self._active:
            await self.close_call(CallEnded(session_id=session_id, reason="orphaned"))

    def _actor_settings(self) -> CallActorSettings:
        return CallActorSettings(
            media=self.media, conversation=self.conversation, rtp_host=self.call.rtp_host,
            model_cache=self.model_cache, tts_rate=self.phrases.sample_rate if self.phrases else 24000,
            recording=self.archive.recording,
            use_ami=self.call.use_ami, report_metrics=self.telemetry.records_metrics,
        )

    async def _new_actor(self, node_id: str = ""):
        name = f"{CALL_ACTOR_PREFIX}{self._name}-{uuid.uuid4().hex[:10]}"
        options: dict = {"name": name, "lifetime": "detached"}
        if node_id:  # media never crosses nodes: the actor binds that node's RTP address
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        actor = CallActorRemote.options(**options).remote(
            self._actor_settings(), self.handles, self.phrases, self.gateway_name, self.ami_bridge_name,
            ray.get_runtime_context().current_actor,
        )
        self._created += 1
        try:
            await actor.prepare.remote()
        except BaseException:  # cancelled (shutdown) or failed: a detached actor must not be left behind
            ray.kill(actor)
            raise
        return actor

    async def _actor_for(self, node_id: str):
        """A CallActor on the answering shard's node: a warm one when the pool is on it."""
        if self._warm and node_id in ("", self._node_id):
            return self._warm.popleft()
        return await self._new_actor(node_id or self._node_id)

    async def _fill_pool(self) -> None:
        while not self._shutting_down and len(self._warm) < self.call.warm_pool_size:
            actor = await self._new_actor(self._node_id)
            if self._shutting_down:  # detached: one made during shutdown would outlive it
                ray.kill(actor)
                return
            self._warm.append(actor)

    def _schedule_refill(self) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._fill_pool_later())

    async def _fill_pool_later(self) -> None:
        if self._warm:  # an empty pool refills at once
            await asyncio.sleep(self.call.warm_refill_delay_s)
        await self._fill_pool()

    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        await self._ready()
        started = time.monotonic()
        if setup.session_id in self._active:
            raise TheoError(f"session {setup.session_id} is already open")
        node = setup.gateway_node_id or self._node_id  # the guard sees this node's CPU and pool only
        live = sum(1 for s in self._setups.values() if (s.gateway_node_id or self._node_id) == node)
        refused = self.overload.check(live, len(self._warm) if node == self._node_id else 0,
                                      cpu_known=node == self._node_id)
        if refused is not None:  # answered, not raised: the gateway sends 503 + Retry-After
            log.warning("call %s refused: %s", setup.session_id[:80], refused.detail)
            return MediaAnswer("", 0, refusal=refused.rule, retry_after_s=refused.retry_after_s)
        actor = await self._actor_for(setup.gateway_node_id)
        self._schedule_refill()
        try:
            answer = await actor.open.remote(setup)
        except Exception:
            self._failures += 1
            ray.kill(actor)
            raise
        self._opened += 1
        self._active[setup.session_id] = (
            actor,
            ActiveCall(setup.session_id, setup.caller_id, time.time(), (time.monotonic() - started) * 1000.0,
                       gateway_name=setup.gateway_name, rtp_port=answer.port),
        )
        self._setups[setup.session_id] = setup
        self._watch(setup.session_id, actor)
        return answer

    # ------------------------------------------------------------------ failover

    async def checkpoint(self, session_id: str, memory: bytes) -> None:
        """A live call's memory at a turn boundary (pushed by its CallActor)."""
        await self._ready()
        if session_id in self._active:
            self._checkpoints[session_id] = memory

    def _watch(self, session_id: str, actor) -> None:
        self._watchers[session_id] = asyncio.create_task(self._watch_actor(session_id, actor))

    async def _watch_actor(self, session_id: str, actor) -> None:
        try:
            await actor.wait_ended.remote()
        except ray.exceptions.RayActorError:
            entry = self._active.get(session_id)
            if entry is not None and entry[0] is actor:  # died with its call still up
                await self._fail_over(session_id, actor)

    async def _fail_over(self, session_id: str, dead) -> None:
        noticed = time.monotonic()
        _, info = self._active[session_id]
        setup = msgspec.structs.replace(self._setups[session_id], gateway_name=info.gateway_name)
        log.warning("CallActor of %s died mid-call: taking over on port %d", session_id, info.rtp_port)
        replacement = None
        try:
            replacement = await self._actor_for(setup.gateway_node_id)  # the dead one's node: its RTP port
            self._schedule_refill()
            await asyncio.wait_for(
                replacement.resume.remote(setup, info.rtp_port, self._checkpoints.get(session_id, b"")),
                timeout=self.call.failover_timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - any failure here ends in the human fallback
            log.error("takeover of %s failed (%s: %s): sending the caller to a human", session_id,
                      type(exc).__name__, exc)
            self._failover_failures += 1
            if replacement is not None:
                ray.kill(replacement)
            await self._give_up(session_id, info)
            return
        if session_id not in self._active:  # the call ended (BYE) during the takeover
            ray.kill(replacement)
            return
        self._last_failover_ms = (time.monotonic() - noticed) * 1000.0
        self._failovers += 1
        info.failovers += 1
        self._active[session_id] = (replacement, info)
        self._watch(session_id, replacement)
        log.warning("call %s taken over in %.0f ms", session_id, self._last_failover_ms)

    async def _give_up(self, session_id: str, info: ActiveCall) -> None:
        """No CallActor can carry the call: a human (AMI Redirect) behind Asterisk, else the
        hang-up, so the caller is never left in silence until the PBX's timers fire."""
        control = call_control_for(session_id, self.call.use_ami, self.ami_bridge_name,
                                   info.gateway_name or self.gateway_name)
        if self.call.use_ami and self.ami_bridge_name:
            destinations = list(self.conversation.turn.tools.transfer_destinations)
            outcome = await control.transfer(destinations[0] if destinations else "atendimento",
                                             "falha técnica: call_actor_lost")
        else:
            outcome = await control.hangup("call_actor_lost")
        log.warning("call %s after a failed takeover: %s", session_id, outcome)
        await self.close_call(CallEnded(session_id=session_id, reason="call_actor_lost"))

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        await self._ready()
        entry = self._active.get(session_id)
        if entry is not None:
            await entry[0].update_media.remote(remote)

    async def close_call(self, ended: CallEnded) -> CallRecord | None:
        await self._ready()
        entry = self._active.pop(ended.session_id, None)
        self._setups.pop(ended.session_id, None)
        self._checkpoints.pop(ended.session_id, None)
        watcher = self._watchers.pop(ended.session_id, None)
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        if entry is None:
            await self._closing_done(ended.session_id)
            return self._records.get(ended.session_id)
        actor, _info = entry
        self._closed += 1  # out of the call map: closed, whatever the actor says below
        # Out of the call map, not yet in the records: whoever asks for the record meanwhile
        # waits for it (call_record) instead of being told there is none.
        self._closing[ended.session_id] = closing = asyncio.Event()
        try:
            return await self._close_actor(ended, actor)
        finally:
            self._closing.pop(ended.session_id, None)
            closing.set()

    async def _closing_done(self, session_id: str) -> None:
        closing = self._closing.get(session_id)
        if closing is not None:
            try:
                await asyncio.wait_for(closing.wait(), CLOSE_WAIT_S + 2.0)
            except asyncio.TimeoutError:
                pass

    async def _close_actor(self, ended: CallEnded, actor) -> CallRecord | None:
        record = media = None
        try:
            media = (await asyncio.wait_for(actor.stats.remote(), timeout=1.0)).media  # before close stops RTP
        except Exception:  # noqa: BLE001 - a dead actor's call is archived without its media figures
            pass
        try:
            record = await asyncio.wait_for(actor.close.remote(ended), timeout=CLOSE_WAIT_S)
        except Exception as exc:  # a crashed actor still has to go
            log.warning("closing %s failed: %s", ended.session_id, exc)
        finally:
            # No reuse across calls (a fresh actor has no leftover state): killed once its spans left.
            task = asyncio.create_task(retire_call_actor(actor))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        self.metrics.call_closed(ended.reason, record, media)
        if record is not None:
            self.archive.archive(record, media)
            self._records[ended.session_id] = record
            while len(self._records) > self.call.keep_records:
                self._records.popitem(last=False)
        return record

    async def call_actor(self, session_id: str):
        await self._ready()
        entry = self._active.get(session_id)
        return entry[0] if entry else None

    async def call_record(self, session_id: str) -> CallRecord | None:
        await self._ready()
        entry = self._active.get(session_id)
        if entry is not None:
            return (await entry[0].stats.remote()).record
        await self._closing_done(session_id)
        return self._records.get(session_id)

    async def call_stats(self, session_id: str):
        await self._ready()
        entry = self._active.get(session_id)
        return await entry[0].stats.remote() if entry is not None else None

    async def active_calls(self) -> list[ActiveCall]:
        await self._ready()
        return [info for _, info in self._active.values()]

    async def set_channel(self, session_id: str, channel: str) -> None:
        await self._ready()
        entry = self._active.get(session_id)
        if entry is not None:
            entry[1].channel = channel

    # Breakers: no `_ready()` — a reply waits on these, never on an adoption.
    async def breaker_allow(self, model: str) -> bool:
        return self._breakers.allow(model)

    async def breaker_record(self, model: str, ok: bool | None) -> None:
        self._breakers.record(model, ok)

    # Metrics from the CallActors (fire and forget; no `_ready()`: never waits on an adoption).
    async def observe_turn(self, turn: TurnRecord) -> None:
        self.metrics.turn_done(turn)

    async def observe_barge_in(self, barge: BargeInRecord) -> None:
        self.metrics.barge_in(barge)

    async def stats(self) -> SupervisorStats:
        await self._ready()
        return SupervisorStats(
            active=len(self._active), warm=len(self._warm), created=self._created, opened=self._opened,
            closed=self._closed, open_failures=self._failures, phrase_book_ready=self.phrases is not None,
            reaped=self.reaper.calls_reaped, dialogs_reaped=self.reaper.dialogs_reaped, archived=self.archive.archived, failovers=self._failovers, failover_failures=self._failover_failures,
            last_failover_ms=self._last_failover_ms, adopted=self._adopted, breakers=self._breakers.states(),
            overload_refusals=dict(self.overload.refused), cpu_percent=self.overload.cpu_percent,
        )

    async def shutdown(self) -> None:
        await self._ready()
        self._shutting_down = True
        for task in (self._reaper_task, self._refill, self._metrics_task, self._overload_task):
            if task is not None:
                task.cancel()
        for session_id in list(self._active):
            await self.close_call(CallEnded(session_id=session_id, reason="gateway_shutdown"))
        while self._warm:
            ray.kill(self._warm.popleft())
        if self._retiring:  # every closed CallActor gone before this supervisor is
            await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.archive.close()


CallSupervisorRemote = ray.remote(num_cpus=0, max_restarts=-1)(CallSupervisor)
