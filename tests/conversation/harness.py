"""A caller on a real RtpSession talking to a real CallActor (through the CallSupervisor),
with the real STT/TTS deployments and the scripted LLM test double (see conftest).

No SIP here (the SIP path has its own tests and the demo test): the CallSetup the
gateway would build is built directly, so these tests isolate the turn loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import msgspec
import numpy as np

from theo_ray.actors.call_supervisor import CallSupervisorRemote
from theo_ray.media.rtp_session import RtpSession
from theo_ray.messages import SynthesizeRequest
from theo_ray.runtime.serve_apps import ModelHandles
from theo_ray.sip.messages import CallEnded, CallSetup, RemoteMedia

AGENT_RMS = 300.0  # comfort noise is ~-62 dBFS (RMS ~26); speech is well above 1000
_ids = itertools.count(1)
_speech_cache: dict[str, np.ndarray] = {}


async def caller_speech(handles: ModelHandles, text: str, voice: str = "jm_kumo") -> np.ndarray:
    """int16 at 24 kHz of `text` (Kokoro pt-BR, the voice Whisper understands best)."""
    key = f"{voice}:{text}"
    if key not in _speech_cache:
        pcm = [c.pcm async for c in handles.tts.options(stream=True).synthesize.remote(
            SynthesizeRequest(text=text, voice=voice))]
        audio = np.frombuffer(b"".join(pcm), dtype="<i2")
        # Kokoro pads ~0.3 s before and ~0.65 s after the voice: trim it (keeping 30 ms) so
        # a "1.2 s pause" between dictated groups is 1.2 s of silence, not 2.1 s.
        loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 180)  # ~ -45 dBFS
        if loud.size:
            margin = 720
            audio = audio[max(0, loud[0] - margin) : loud[-1] + margin]
        _speech_cache[key] = audio.copy()
    return _speech_cache[key]


class AgentCall:
    def __init__(self, config, handles: ModelHandles, ami_bridge_name: str = "", session_id: str = "",
                 call_data=None, output_dir: str = "") -> None:
        self.config = config
        # [call_data] for the supervisor (None: records kept in memory only, nothing archived).
        self.call_data, self.output_dir = call_data, output_dir
        self.handles = handles
        self.session_id = session_id or f"test-{next(_ids)}"
        self.ami_bridge_name = ami_bridge_name
        self.rx: list[tuple[float, float]] = []  # (monotonic time, RMS) of each agent frame received
        self.echo_back: tuple[float, float] | None = None  # (delay s, gain) to loop agent audio back

    async def prepare_speech(self, *texts: str) -> None:
        """Synthesise the caller's lines before the call, so the caller's own TTS does not
        compete with the agent's for the 2 cores during the call."""
        for text in texts:
            await caller_speech(self.handles, text)

    async def __aenter__(self) -> AgentCall:
        cfg = self.config
        self.supervisor = CallSupervisorRemote.options(name=f"sup-{self.session_id}").remote(
            msgspec.structs.replace(cfg.call, warm_pool_size=1), cfg.media, cfg.conversation,
            str(cfg.model_cache()), self.handles, cfg.tts.voice, "", self.ami_bridge_name,
            call_data=self.call_data, output_dir=self.output_dir,
        )
        await self.supervisor.start.remote()
        self.caller = RtpSession(cfg.media, host="127.0.0.1", model_rate=24000)
        setup = CallSetup(
            session_id=self.session_id, sip_call_id=self.session_id, caller_id="11987654321", caller_name="",
            remote=RemoteMedia(host="127.0.0.1", port=self.caller.local_address[1], codec="PCMU",
                               payload_type=0, clock_rate=8000),
        )
        answer = await self.supervisor.open_call.remote(setup)
        await self.caller.start("PCMU", (answer.host, answer.port), 0)
        self._rx_task = asyncio.create_task(self._receive())
        return self

    async def _receive(self) -> None:
        delayed: list[tuple[float, np.ndarray]] = []
        async for frame in self.caller.frames():
            rms = float(np.sqrt(np.mean(frame.pcm.astype(np.float32) ** 2)))
            self.rx.append((time.monotonic(), rms))
            if self.echo_back is not None:
                delay, gain = self.echo_back
                delayed.append((time.monotonic() + delay, frame.pcm))
                while delayed and delayed[0][0] <= time.monotonic():
                    _, pcm = delayed.pop(0)
                    # Back to the agent at the model rate the session expects (24 kHz).
                    import soxr

                    self.caller.enqueue(soxr.resample((pcm * gain).astype(np.int16), 16000, 24000).astype(np.int16), "echo")

    async def __aexit__(self, *exc) -> None:
        await self.supervisor.close_call.remote(CallEnded(session_id=self.session_id, reason="caller_bye"))
        self._rx_task.cancel()
        await self.caller.stop()
        await self.supervisor.shutdown.remote()
        import ray

        ray.kill(self.supervisor)

    async def say(self, text: str, pause_after_ms: int = 0) -> float:
        """Speak; returns the monotonic time the last sample left (+ queue)."""
        audio = await caller_speech(self.handles, text)
        self.caller.enqueue(audio, f"caller-{time.monotonic()}", last=True)
        heard_at = await self.caller.drained(0)
        if pause_after_ms:
            await asyncio.sleep(pause_after_ms / 1000)
        return heard_at

    def agent_active_since(self, t: float) -> list[float]:
        return [at for at, rms in self.rx if at >= t and rms > AGENT_RMS]

    def longest_silence(self, start: float, end: float) -> float:
        """The longest stretch in [start, end] with no agent audio at the caller (s)."""
        times = [start, *(at for at in self.agent_active_since(start) if at <= end), end]
        return max(b - a for a, b in zip(times, times[1:]))

    async def wait_agent_start(self, after: float, timeout: float = 25.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = self.agent_active_since(after)
            if active:
                return active[0]
            await asyncio.sleep(0.02)
        raise TimeoutError("the agent did not speak")

    async def wait_agent_quiet(self, quiet_s: float = 2.5, timeout: float = 40.0) -> float:
        """Wait until the agent has been silent for quiet_s; returns when its audio ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = self.agent_active_since(time.monotonic() - 60)
            last = active[-1] if active else 0.0
            if active and time.monotonic() - last >= quiet_s:
                return last
            await asyncio.sleep(0.05)
        raise TimeoutError("the agent did not stop")

    async def ask_after_greeting(self, line: str):
        """The greeting played out, the caller says `line`; the call record once it is answered."""
        await self.prepare_speech(line)
        await self.wait_agent_start(0)
        await self.wait_agent_quiet()
        await self.say(line)
        return await self.wait_reply(1)

    async def record(self):
        return await self.supervisor.call_record.remote(self.session_id)

    async def wait_reply(self, n: int, timeout: float = 60.0):
        """Wait until the agent's n-th reply was played out (or interrupted), then for the line
        to go quiet — what a polite caller does before speaking again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = await self.record()
            done = [t for t in (record.turns if record else []) if t.drained_at or t.interrupted or t.error]
            if len(done) >= n:
                await self.wait_agent_quiet(quiet_s=0.8, timeout=max(1.0, deadline - time.monotonic()))
                return record
            await asyncio.sleep(0.1)
        raise TimeoutError(f"reply {n} not played: {await self.record()}")

    async def wait_reply_audio(self, n: int, timeout: float = 60.0) -> float:
        """Wait until the first packet of the agent's n-th reply (not a filler) was sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = await self.supervisor.call_stats.remote(self.session_id)
            turn = stats.current_turn if stats else None
            if turn is not None and turn.index >= n and turn.first_rtp_at:
                return turn.first_rtp_at
            if stats and stats.record and len([t for t in stats.record.turns if t.caller_text]) >= n:
                return stats.record.turns[n - 1].first_rtp_at
            await asyncio.sleep(0.05)
        raise TimeoutError(f"reply {n} did not start")

    async def wait_turns(self, n: int, timeout: float = 40.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = await self.record()
            if record is not None and len(record.turns) >= n:
                return record
            await asyncio.sleep(0.1)
        raise TimeoutError(f"fewer than {n} turns recorded: {await self.record()}")
