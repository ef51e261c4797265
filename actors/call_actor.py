"""CallActor: one Ray actor per call, owning ALL of the call's state — its RTP socket and
media stack, its VAD/endpointer/turn model, its memory and its turn loop.

Created warm by the CallSupervisor (`prepare()`: socket bound, ONNX sessions loaded) and
handed a call with `open()`. torch is never imported here (memory per call matters):
the VAD and the turn model run on onnxruntime.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import ray

from theo_ray.actors.call_recording import finish_recording, start_recording
from theo_ray.actors.call_tracing import ReportingTurnTracer, TracedCallControl
from theo_ray.actors.supervisor_breakers import SupervisorBreakers
from theo_ray.calldata.settings import RecordingSettings
from theo_ray.conversation.call_control import (
    AmiCallControl,
    AmiWithDialplanFallback,
    CallControl,
    GatewayCallControl,
)
from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.phrase_book import PhraseBook
from theo_ray.conversation.records import CallRecord, TurnRecord
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.turn_loop import TurnLoop
from theo_ray.conversation.turn_state import StateChange, TurnState
from theo_ray.media.rtp_session import MediaStats, RtpSession
from theo_ray.media.settings import MediaSettings
from theo_ray.model_handles import ModelHandles
from theo_ray.turn.memory import ConversationMemory
from theo_ray.sip.messages import CallEnded, CallSetup, MediaAnswer, RemoteMedia
from theo_ray.telemetry.tracing import flush_spans

log = logging.getLogger("theo.call")
REBIND_ATTEMPTS, REBIND_WAIT_S = 40, 0.02  # a dead actor's RTP port, tried for up to 0.8 s


def _named_actor(name: str):
    if not name:
        return None
    try:
        return ray.get_actor(name)
    except ValueError:
        return None


async def retire_call_actor(actor, flush_timeout_s: float = 2.5) -> None:
    """Kill a closed CallActor once its spans have left: killed at once, a busy machine lost
    the call's last spans on their way to OTLP (the JSON-lines file had them). Bounded: a
    stuck exporter costs the process 2.5 s more of life, never the call anything."""
    try:
        await asyncio.wait_for(actor.flush_telemetry.remote(), flush_timeout_s)
    except Exception:  # noqa: BLE001 - a dead or stuck actor is killed all the same
        pass
    finally:
        ray.kill(actor)


def call_control_for(session_id: str, use_ami: bool, ami_bridge_name: str, gateway_name: str) -> CallControl:
    """Behind Asterisk the AmiBridge transfers and hangs up (the gateway's BYE when the AMI
    cannot: the dialplan's fallback route then takes the caller); without a PBX the gateway."""
    gateway = GatewayCallControl(_named_actor(gateway_name), session_id)
    if use_ami and ami_bridge_name:
        return AmiWithDialplanFallback(AmiCallControl(_named_actor(ami_bridge_name), session_id), gateway)
    return gateway


class CallActorSettings(msgspec.Struct, frozen=True):
    media: MediaSettings
    conversation: ConversationSettings
    rtp_host: str
    model_cache: str
    tts_rate: int = 24000
    use_ami: bool = False
    recording: RecordingSettings | None = None  # the folder resolved; None = not recorded
    # Report each turn and barge-in to the supervisor for its metrics (telemetry.metrics).
    report_metrics: bool = True


class CallInfo(msgspec.Struct, frozen=True):
    """What a restarted CallSupervisor reads back from a CallActor it adopts."""

    session_id: str  # "" for a warm actor with no call yet
    setup: CallSetup | None
    rtp_port: int
    opened_at: float  # wall clock
    memory: bytes


class CallStats(msgspec.Struct):
    session_id: str
    state: str
    media: MediaStats
    record: CallRecord | None = None
    # The reply in flight (not yet in record.turns), if any.
    current_turn: TurnRecord | None = None


class CallActor:
    def __init__(
        self,
        settings: CallActorSettings,
        handles: ModelHandles | None,
        phrases: PhraseBook | None = None,
        gateway_name: str = "",
        ami_bridge_name: str = "",
        supervisor: ray.actor.ActorHandle | None = None,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor  # takes this call's checkpoints (failover)
        self._ended = asyncio.Event()
        self._setup: CallSetup | None = None
        self._opened_at = 0.0
        self.handles = handles
        self.phrases = phrases
        # Named actors, looked up when the call needs them: warm CallActors are created
        # before the gateway exists, and a restarted gateway keeps its name.
        self.gateway_name = gateway_name
        self.ami_bridge_name = ami_bridge_name
        self.rtp: RtpSession | None = None
        self.loop: TurnLoop | None = None
        self.session_id = ""
        self._vad = None
        self._smart_turn = None
        self._echo_task: asyncio.Task | None = None
        self.record: CallRecord | None = None
        self.recorder = None  # media.call_recorder.CallRecorder while the call is recorded

    async def prepare(self) -> MediaAnswer:
        """Bind the RTP socket pair and load the per-call models: the warm part of a call."""
        echo = self.settings.conversation.mode == "echo"
        self.rtp = RtpSession(
            self.settings.media,
            host=self.settings.rtp_host,
            model_rate=16000 if echo else self.settings.tts_rate,
        )
        if not echo:
            loop = asyncio.get_running_loop()
            turn = self.settings.conversation.turn
            self._vad, self._smart_turn = await loop.run_in_executor(None, self._load_models, turn)
        host, port = self.rtp.local_address
        return MediaAnswer(host=host, port=port)

    def _load_models(self, turn):
        from pathlib import Path

        from theo_ray.turn.turn_model import SmartTurn
        from theo_ray.turn.turn_model_assets import ensure_smart_turn_model
        from theo_ray.turn.vad import SileroVad

        model = ensure_smart_turn_model(Path(self.settings.model_cache).expanduser() / "smart-turn")
        return SileroVad(turn.vad), SmartTurn(turn.turn_model, model_path=model)

    def _control(self) -> CallControl:
        return call_control_for(self.session_id, self.settings.use_ami, self.ami_bridge_name, self.gateway_name)

    async def open(self, setup: CallSetup) -> MediaAnswer:
        return await self._open(setup, memory=None)

    async def resume(self, setup: CallSetup, port: int, memory: bytes) -> MediaAnswer:
        """Take over a call whose CallActor died: bind its RTP port again (the PBX keeps
        sending there, so no re-INVITE is needed), restore its memory from the last
        checkpoint, and apologise instead of greeting."""
        if self.rtp is not None and self.rtp.local_address[1] != port:
            await self.rtp.stop()  # the warm socket: this call lives on the dead actor's port
            self.rtp = None
        echo = self.settings.conversation.mode == "echo"
        for attempt in range(REBIND_ATTEMPTS):
            if self.rtp is not None:
                break
            try:
                self.rtp = RtpSession(self.settings.media, host=self.settings.rtp_host, port=port,
                                      model_rate=16000 if echo else self.settings.tts_rate)
            except OSError as exc:
                # Ray reports the death a moment before the kernel has closed the dead
                # process's sockets: the port frees within milliseconds.
                if attempt == REBIND_ATTEMPTS - 1:
                    raise OSError(f"the dead CallActor's RTP port {port} is still taken: {exc}") from exc
                await asyncio.sleep(REBIND_WAIT_S)
        return await self._open(setup, memory=memory)

    async def _open(self, setup: CallSetup, memory: bytes | None) -> MediaAnswer:
        if self.rtp is None:
            await self.prepare()
        assert self.rtp is not None
        self.session_id = setup.session_id
        self._setup, self._opened_at = setup, time.time()
        if setup.gateway_name:
            self.gateway_name = setup.gateway_name
        remote = setup.remote
        self.rtp.set_srtp(remote.srtp)  # SDES keys from the gateway's answer, or plain RTP
        # port 0: a delayed offer, on hold until the ACK's answer arrives as update_media.
        await self.rtp.start(
            remote.codec, (remote.host, remote.port) if remote.port else None, remote.payload_type,
            remote.telephone_event_pt, remote.direction,
        )
        self.recorder = start_recording(self.rtp, self.settings.recording, setup.session_id)
        if self.settings.conversation.mode == "echo":
            self._echo_task = asyncio.create_task(self._echo())
        else:
            if self._vad is None:
                turn = self.settings.conversation.turn
                self._vad, self._smart_turn = await asyncio.get_running_loop().run_in_executor(
                    None, self._load_models, turn)
            restored = None
            if memory:
                restored = ConversationMemory.from_checkpoint(memory, self.settings.conversation.turn.memory)
            reports_to = self.supervisor if self.settings.report_metrics else None
            tracer = ReportingTurnTracer(setup.session_id, reports_to, parent=setup.trace,
                                         attributes={"caller.id": setup.caller_id})
            control = TracedCallControl(self._control(), tracer, via_ami=self.settings.use_ami and bool(self.ami_bridge_name))
            self.loop = TurnLoop(
                setup.session_id, self.rtp, ModelClient(self.handles, SupervisorBreakers(self.supervisor)), self.settings.conversation, control,
                phrases=self.phrases, smart_turn=self._smart_turn, vad=self._vad, memory=restored, tracer=tracer,
            )
            self.loop.record.caller_id = setup.caller_id
            self.loop.subscribe_states(self._checkpoint_on_change)
            await self.loop.run(resumed=memory is not None)
        host, port = self.rtp.local_address
        return MediaAnswer(host=host, port=port)

    def _checkpoint_on_change(self, change: StateChange) -> None:
        """Every turn boundary (and barge-in: back to listening) sends the memory to the
        supervisor, which hands it to a replacement if this actor dies."""
        if self.supervisor is None or self.loop is None or change.state is TurnState.ENDED:
            return
        self.supervisor.checkpoint.remote(self.session_id, self.loop.memory.encode())

    async def wait_ended(self) -> str:
        """Returns when the call ends here; raises (actor died) if this actor dies first:
        the supervisor's death notice for this call."""
        await self._ended.wait()
        return self.session_id

    async def call_info(self) -> CallInfo:
        port = self.rtp.local_address[1] if self.rtp is not None else 0
        memory = self.loop.memory.encode() if self.loop is not None else b""
        return CallInfo(self.session_id, self._setup, port, self._opened_at, memory)

    async def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    async def _echo(self) -> None:
        """Echo agent (no models): each caller frame is played straight back."""
        assert self.rtp is not None
        async for frame in self.rtp.frames():
            self.rtp.enqueue(frame.pcm, "echo")

    async def update_media(self, remote: RemoteMedia) -> None:
        assert self.rtp is not None
        self.rtp.set_srtp(remote.srtp)  # unchanged keys keep the running SRTP contexts
        if self.rtp.codec is None or remote.codec != self.rtp.codec.name:
            await self.rtp.start(remote.codec, (remote.host, remote.port), remote.payload_type,
                                 remote.telephone_event_pt, remote.direction)
        else:
            self.rtp.update_remote(remote.host, remote.port)
            self.rtp.set_direction(remote.direction)

    async def close(self, ended: CallEnded) -> CallRecord:
        """Stop sending at once (BYE), end the turn loop, release the socket."""
        record = CallRecord(session_id=self.session_id, end_reason=ended.reason)
        if self.loop is not None:
            record = await self.loop.stop(ended.reason)
            if isinstance(self.loop.tracer, ReportingTurnTracer):
                self.loop.tracer.report_unfinished(record)
        if self._echo_task is not None:
            self._echo_task.cancel()
        if self.rtp is not None:
            await self.rtp.stop()
        await finish_recording(self.recorder, self.rtp, record)
        self.record = record
        self._ended.set()
        # The supervisor kills this process next: the batched spans (the call's, its last
        # turn's) start leaving now, from a worker thread; the supervisor waits for them
        # (`flush_telemetry`, bounded) before the kill, off the close path.
        # Not awaited: a close that waited for the exporter held calls up on a busy machine
        # (tests/conversation/test_turn_loop.py failed with it awaited; passes without).
        asyncio.get_running_loop().run_in_executor(None, flush_spans, 1.0)
        return record

    async def flush_telemetry(self, timeout_s: float = 2.0) -> bool:
        """Export every batched span now (the call's last ones to OTLP as well as to the files)."""
        return await asyncio.get_running_loop().run_in_executor(None, flush_spans, timeout_s)

    async def stats(self) -> CallStats:
        assert self.rtp is not None
        return CallStats(
            session_id=self.session_id,
            state=self.loop.state if self.loop else ("echo" if self._echo_task else "idle"),
            media=self.rtp.stats(),
            record=self.loop.record if self.loop else None,
            current_turn=self.loop.current_turn() if self.loop else None,
        )

    async def checkpoint(self) -> bytes:
        """The memory as a replacement would restore it (ConversationMemory.from_checkpoint)."""
        return self.loop.memory.encode() if self.loop else b""

    async def ping(self) -> float:
        return time.monotonic()


CallActorRemote = ray.remote(num_cpus=0, max_restarts=0)(CallActor)
