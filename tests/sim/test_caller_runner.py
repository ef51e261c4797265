"""The caller simulator's runner on real RTP over loopback: two RtpSessions on 127.0.0.1, the
caller running a scenario and a scripted agent (a test double of Theo) that answers after known
delays, so the recording and its analysis can be checked against what really happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import numpy as np
import pytest
import soundfile

from tests.sim.synthetic import RATE, agent_speech, noise, speech
from theo_ray.config import TextToSpeechSettings
from theo_ray.media.playout import PlayoutEvent
from theo_ray.media.rtp_session import RtpSession
from theo_ray.media.settings import MediaSettings
from theo_ray.sim.caller_runner import CallerMedia, CallRunResult, render_utterances, run_scenario
from theo_ray.sim.caller_voice import SAMPLE_RATE as VOICE_RATE
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.recording import CallRecording, RecordingSidecar, sidecar_path
from theo_ray.sim.scenario import decode_scenario

CODEC = "L16"  # 16 kHz on the wire: no resampling anywhere, so the ground truth is exact
SETTINGS = MediaSettings(rtcp_interval_s=1.0)


class ScriptedAgent:
    """Test double of Theo's agent (the real one needs models): plays a greeting, then answers
    the caller's Nth utterance ``delay_s`` after it ends with ``replies[N]``, and stops talking
    ``reaction_s`` after caller speech starts over it. Between replies it sends comfort noise at
    -60 dBFS, as Theo does. It knows the caller's utterance lengths, so "the utterance ended" is
    exact: the arrival of the packet holding its last sample (found by sequence number from the
    first voiced packet) plus that sample's offset in it. It notes when each utterance ended and
    when each reply and flush really happened, on its RTP clock, as the ground truth."""

    def __init__(
        self,
        session: RtpSession,
        greeting: np.ndarray,
        replies: list[np.ndarray],
        caller_lengths: list[int],
        delay_s: float,
        reaction_s: float = 0.2,
        greeting_after_s: float = 0.3,
    ) -> None:
        self.session = session
        self.greeting = greeting
        self.replies = replies
        self.caller_lengths = caller_lengths
        self.delay_s = delay_s
        self.reaction_s = reaction_s
        self.greeting_after_s = greeting_after_s
        self.caller_onsets: list[float] = []  # arrival of each caller utterance's first frame
        self.caller_ends: list[float] = []  # arrival of each one's last sample
        self.reply_targets: list[float] = []
        self.reply_sent: dict[str, float] = {}  # mark -> first frame sent
        self.flushed_at: list[float] = []
        self._speaking: str | None = None
        self._tasks: list[asyncio.Task] = []
        self._noise = noise(RATE * 60, -60.0, seed=3).round().astype(np.int16)
        self._noise_pos = 0

    def start(self) -> None:
        self.session.playout.add_listener(self._on_playout)
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._comfort_noise()),
            asyncio.create_task(self._say_at(time.monotonic() + self.greeting_after_s, "greeting", self.greeting)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_playout(self, event: PlayoutEvent) -> None:
        if event.kind == "mark_started" and event.mark != "noise":
            self.reply_sent.setdefault(event.mark, event.at)
        if event.kind == "mark_done" and event.mark == self._speaking:
            self._speaking = None

    async def _comfort_noise(self) -> None:
        frame = RATE // 50
        while True:
            if self._speaking is None and self.session.playout.pending_samples < 2 * frame:
                chunk = self._noise[self._noise_pos : self._noise_pos + frame]
                self._noise_pos = (self._noise_pos + frame) % (len(self._noise) - frame)
                self.session.enqueue(chunk, "noise")
            await asyncio.sleep(0.01)

    async def _say_at(self, at: float, mark: str, pcm: np.ndarray) -> None:
        await asyncio.sleep(max(0.0, at - 0.01 - time.monotonic()))
        self.session.flush()
        self._speaking = mark
        self.session.enqueue(pcm, mark, last=True)

    async def _flush_at(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        if self._speaking is not None:
            self.session.flush()
            self._speaking = None
            self.flushed_at.append(time.monotonic())

    async def _listen(self) -> None:
        frame_len = RATE // 50
        end_seq: int | None = None  # sequence of the packet holding the utterance's last sample
        last_in_frame = 0
        async for frame in self.session.frames():
            if frame.concealed:
                continue
            if end_seq is not None:
                if (frame.sequence - end_seq) & 0xFFFF >= 0x8000:
                    continue  # still inside the utterance
                self._utterance_ended(frame.received_at + last_in_frame / RATE)
                end_seq = None
                continue
            if np.abs(frame.pcm.astype(np.int32)).max() < 150:
                continue
            # The caller's utterances start on a frame boundary (L16, nothing resampled).
            length = self.caller_lengths[len(self.caller_onsets)]
            self.caller_onsets.append(frame.received_at)
            end_seq = (frame.sequence + (length - 1) // frame_len) & 0xFFFF
            last_in_frame = (length - 1) % frame_len + 1
            if self._speaking is not None:
                self._tasks.append(asyncio.create_task(self._flush_at(frame.received_at + self.reaction_s)))
            if end_seq == frame.sequence:
                self._utterance_ended(frame.received_at + last_in_frame / RATE)
                end_seq = None

    def _utterance_ended(self, end: float) -> None:
        self.caller_ends.append(end)
        i = len(self.caller_ends) - 1
        if i < len(self.replies):
            self.reply_targets.append(end + self.delay_s)
            self._tasks.append(asyncio.create_task(self._say_at(end + self.delay_s, f"reply{i}", self.replies[i])))


async def _connected_pair() -> tuple[RtpSession, RtpSession]:
    caller = RtpSession(SETTINGS, model_rate=RATE)
    agent = RtpSession(SETTINGS, model_rate=RATE)
    await caller.start(CODEC, remote=agent.local_address)
    await agent.start(CODEC, remote=caller.local_address)
    return caller, agent


def _espeak_voice(tmp_path) -> CallerVoice:
    async def synthesize(text: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        import soxr

        yield soxr.resample(speech(text), RATE, VOICE_RATE).astype(np.int16)

    return CallerVoice(tmp_path / "voice-cache", synthesize=synthesize)


async def _run(tmp_path, scenario_yaml: str, replies: list[np.ndarray], delay_s: float, greeting: np.ndarray):
    scenario = decode_scenario(scenario_yaml)
    # Exact-edged speech (espeak, trimmed) so the truth is known to the sample.
    rendered = {i: speech(step.text) for i, step in enumerate(scenario.steps) if hasattr(step, "text") and step.text}
    lengths = [len(rendered[i]) for i in sorted(rendered)]
    caller, agent_session = await _connected_pair()
    agent = ScriptedAgent(agent_session, greeting, replies, lengths, delay_s)
    agent.start()
    try:
        result = await asyncio.wait_for(
            run_scenario(scenario, CallerMedia(caller, agent_session.local_address, CODEC), _espeak_voice(tmp_path),
                         tmp_path / "out", rendered=rendered),
            timeout=scenario.max_duration_s + 10,
        )
    finally:
        await agent.stop()
        await caller.stop()
        await agent_session.stop()
    return result, agent, lengths


def _explain(result: CallRunResult, agent: ScriptedAgent) -> str:
    a = result.analysis
    return (
        f"steps={result.steps}\nagent regions={a.agent_regions}\ncaller turns={a.caller_turns}\n"
        f"double: onsets={agent.caller_onsets} sent={agent.reply_sent} targets={agent.reply_targets}\n"
        f"watcher={result.agent_audio} media={result.media}"
    )


GREETING_AND_TWO_QUESTIONS = """
name: two_questions
max_duration_s: 30
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 8000
    settle_ms: 700
  - action: say
    id: horario
    text: "Qual é o horário de atendimento?"
  - action: wait_agent
    until: ends
    settle_ms: 700
  - action: say
    id: endereco
    text: "E o endereço da loja?"
  - action: wait_agent
    until: ends
    settle_ms: 700
  - action: dtmf
    digits: "12"
  - action: hangup
    after_ms: 200
"""


async def test_first_audio_latency_is_measured_to_the_delay_the_agent_used(tmp_path):
    delay = 0.64
    greeting = agent_speech("Olá, aqui é a Theo.")
    replies = [agent_speech("Atendemos das oito às dezoito."), agent_speech("Fica na rua central.")]
    result, agent, lengths = await _run(tmp_path, GREETING_AND_TWO_QUESTIONS, replies, delay, greeting)

    assert isinstance(result, CallRunResult)
    assert result.ended_by == "caller", result.steps
    statuses = [(n.action, n.status) for n in result.steps]
    assert statuses == [
        ("wait_agent", "done"), ("say", "done"), ("wait_agent", "done"), ("say", "done"),
        ("wait_agent", "done"), ("dtmf", "unsupported"), ("hangup", "done"),
    ], _explain(result, agent)
    a = result.analysis
    assert [t.label for t in a.caller_turns] == ["horario", "endereco"]
    assert len(a.agent_turns) == 3  # greeting + two replies
    assert len(a.latencies) == 2 and len(agent.reply_sent) == 3
    for i, latency in enumerate(a.latencies):
        # Ground truth from the agent's side: when the caller's last sample arrived and when the
        # reply really went out.
        truth_ms = (agent.reply_sent[f"reply{i}"] - agent.caller_ends[i]) * 1000
        assert latency.first_audio_ms is not None
        assert abs(latency.first_audio_ms - truth_ms) <= 20, (i, latency, truth_ms)
        assert abs(latency.first_audio_ms - delay * 1000) <= 40, (i, latency)
    # Comfort noise at -60 dBFS is not agent speech: exactly the three turns, nothing between.
    assert a.agent_levels.noise_floor_dbfs < -55
    assert result.media.packets_out > 0 and result.media.drops.foreign_address == 0


BARGE_IN = """
name: barge_in
max_duration_s: 30
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 8000
    settle_ms: 700
  - action: say
    id: planos
    text: "Quais são os planos?"
  - action: barge_in
    id: corta
    after_ms: 800
    expect_agent: stops
    text: "Espera, eu quero o mais barato."
  - action: wait_agent
    until: ends
    settle_ms: 700
  - action: hangup
"""


async def test_barge_in_starts_at_the_configured_offset_into_the_agent_turn(tmp_path):
    greeting = agent_speech("Olá.")
    long_reply = agent_speech("Nós temos o plano básico de cem megas o plano família de quinhentos megas e o plano empresarial")
    replies = [long_reply, agent_speech("O mais barato custa noventa reais.")]
    result, agent, _ = await _run(tmp_path, BARGE_IN, replies, 0.5, greeting)

    assert result.ended_by == "caller", result.steps
    a = result.analysis
    barge = next(t for t in a.caller_turns if t.label == "corta")
    assert barge.kind == "barge_in"
    reply_turn = next(t for t in a.agent_turns if t.start_ms < barge.start_ms < t.end_ms)
    assert reply_turn.index == 2
    assert abs((barge.start_ms - reply_turn.start_ms) - 800) <= 40, (barge, reply_turn)
    [measure] = a.barge_ins
    assert measure.intended == "stops" and measure.agent_yielded
    # The double stopped 200 ms after it heard the caller start.
    assert measure.reaction_ms is not None and abs(measure.reaction_ms - 200) <= 40, measure
    assert len(agent.flushed_at) == 1
    # And it answered the interruption.
    assert len(a.agent_turns) == 3 and a.latencies[-1].first_audio_ms is not None


async def test_wav_events_and_result_are_written(tmp_path):
    greeting = agent_speech("Olá, aqui é a Theo.")
    replies = [agent_speech("Das oito às dezoito."), agent_speech("Na rua central.")]
    result, agent, _ = await _run(tmp_path, GREETING_AND_TWO_QUESTIONS, replies, 0.4, greeting)
    assert [n.status for n in result.steps if n.action != "dtmf"] == ["done"] * 6, _explain(result, agent)

    data, rate = soundfile.read(result.wav_path, dtype="int16", always_2d=True)
    assert rate == RATE and data.shape[1] == 2
    assert abs(len(data) - result.duration_ms * RATE / 1000) <= 2
    assert np.abs(data[:, 0]).max() > 3000 and np.abs(data[:, 1]).max() > 3000  # both sides spoke
    side = msgspec.json.decode(sidecar_path(result.wav_path).read_bytes(), type=RecordingSidecar)
    assert str(sidecar_path(result.wav_path)) == result.events_path
    kinds = [e.kind for e in side.events]
    assert kinds[0] == "call_answered" and kinds[-1] == "hangup"
    assert kinds.count("utterance_start") == 2 and kinds.count("utterance_end") == 2
    assert {e.label for e in side.events if e.kind == "utterance_start"} == {"horario", "endereco"}
    saved = msgspec.json.decode(open(result.result_path, "rb").read(), type=CallRunResult)
    assert saved.analysis == result.analysis
    # The saved recording analyses to the same figures as the live one.
    from theo_ray.sim.analysis import analyse

    assert analyse(CallRecording.load(result.wav_path)).latencies == result.analysis.latencies


async def test_wait_times_out_when_the_agent_never_speaks(tmp_path):
    scenario = decode_scenario(
        """
name: silent_agent
max_duration_s: 10
steps:
  - action: wait_agent
    until: starts
    timeout_ms: 600
  - action: barge_in
    after_ms: 100
    timeout_ms: 400
    text: "Alô?"
  - action: hangup
"""
    )
    caller, agent = await _connected_pair()
    try:
        rendered = {1: speech("Alô?")}
        started = time.monotonic()
        result = await run_scenario(scenario, CallerMedia(caller, agent.local_address, CODEC), _espeak_voice(tmp_path),
                                    tmp_path, rendered=rendered)
        elapsed = time.monotonic() - started
    finally:
        await caller.stop()
        await agent.stop()
    assert [n.status for n in result.steps] == ["timeout", "timeout", "done"]
    assert 0.9 <= elapsed < 5.0
    assert [e.kind for e in CallRecording.load(result.wav_path).events].count("wait_timeout") == 2


async def test_max_duration_ends_the_call(tmp_path):
    scenario = decode_scenario(
        """
name: too_long
max_duration_s: 0.8
steps:
  - action: silence
    ms: 5000
  - action: hangup
"""
    )
    caller, agent = await _connected_pair()
    try:
        result = await run_scenario(scenario, CallerMedia(caller, agent.local_address, CODEC), _espeak_voice(tmp_path),
                                    tmp_path, rendered={})
    finally:
        await caller.stop()
        await agent.stop()
    assert result.ended_by == "timeout"
    assert 700 <= result.duration_ms <= 3000  # well before the 5 s silence would end (slack for a busy CI box)
    assert result.steps == []  # the silence never finished


async def test_remote_hangup_ends_the_run(tmp_path):
    scenario = decode_scenario(
        """
name: remote_bye
steps:
  - action: wait_agent
    until: starts
    timeout_ms: 10000
  - action: hangup
"""
    )
    caller, agent = await _connected_pair()
    ended = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, ended.set)
    try:
        result = await run_scenario(
            scenario, CallerMedia(caller, agent.local_address, CODEC, ended), _espeak_voice(tmp_path), tmp_path,
            rendered={},
        )
    finally:
        await caller.stop()
        await agent.stop()
    assert result.ended_by == "agent"
    assert result.duration_ms < 2000
    assert "call_ended" in [e.kind for e in CallRecording.load(result.wav_path).events]


async def test_caller_voice_joins_dictation_parts_with_pauses_and_caches(tmp_path):
    voice = _espeak_voice(tmp_path)
    scenario = decode_scenario(
        """
name: cpf
steps:
  - action: say
    pause_ms: 700
    parts: ["um dois três", "quatro cinco seis"]
"""
    )
    rendered = await render_utterances(scenario, voice)
    a, b = speech("um dois três"), speech("quatro cinco seis")
    expected = len(a) + len(b) + RATE * 700 // 1000
    assert abs(len(rendered[0]) - expected) <= 2
    assert voice.stats.synthesised == 2
    # The pause is silence, at the right place.
    gap = rendered[0][len(a) + 80 : len(a) + RATE * 700 // 1000 - 80]
    assert np.abs(gap.astype(np.int32)).max() < 200
    again = await render_utterances(scenario, voice)
    assert voice.stats.synthesised == 2 and voice.stats.cache_hits == 2
    assert np.array_equal(again[0], rendered[0])
    # A corrupt cache file is re-synthesised, not fatal.
    voice.cache_path("um dois três").write_bytes(b"not a wav")
    await render_utterances(scenario, voice)
    assert voice.stats.cache_unreadable == 1 and voice.stats.synthesised == 3


async def test_caller_voice_reads_wav_utterances_at_its_rate(tmp_path):
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    path = tmp_path / "tone8k.wav"
    soundfile.write(path, np.stack([tone, tone], axis=1), 8000)
    voice = _espeak_voice(tmp_path)
    scenario = decode_scenario(f"name: w\nsteps:\n  - action: say\n    wav: {path}\n")
    pcm = await voice.render(scenario.steps[0])
    assert len(pcm) == VOICE_RATE  # one second at 24 kHz
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1


@pytest.mark.slow
async def test_kokoro_caller_voice_is_speech_in_the_caller_voice(tmp_path):
    voice = CallerVoice(tmp_path / "cache")
    scenario = decode_scenario('name: k\nsteps:\n  - action: say\n    text: "Bom dia, tudo bem?"\n')
    pcm = await voice.render(scenario.steps[0])
    assert voice.settings.voice != TextToSpeechSettings().voice
    assert 0.5 * VOICE_RATE < len(pcm) < 5 * VOICE_RATE
    level = 20 * np.log10(np.sqrt(np.mean((pcm / 32768.0) ** 2)) + 1e-12)
    assert level > -35
    assert voice.cache_path("Bom dia, tudo bem?").exists()


class ScriptedAgentRouter:
    """Test double of the CallSupervisor/CallActor pair behind the real SIP gateway: each call
    gets an RtpSession driven by a ScriptedAgent."""

    def __init__(self, greeting: np.ndarray, replies: list[np.ndarray], lengths: list[int], delay_s: float) -> None:
        self.args = (greeting, replies, lengths, delay_s)
        self.agents: list[ScriptedAgent] = []
        self.sessions: dict[str, RtpSession] = {}
        self.closed: list[str] = []

    async def open_call(self, setup):
        from theo_ray.media.codecs import find_codec
        from theo_ray.sip.messages import MediaAnswer

        session = RtpSession(SETTINGS, model_rate=RATE)
        remote = setup.remote
        codec = find_codec(remote.codec, remote.clock_rate)
        await session.start(codec.name, remote=(remote.host, remote.port), payload_type=remote.payload_type)
        agent = ScriptedAgent(session, *self.args)
        agent.start()
        self.agents.append(agent)
        self.sessions[setup.session_id] = session
        return MediaAnswer(*session.local_address)

    async def update_call(self, session_id, remote) -> None:
        return None

    async def close_call(self, ended) -> None:
        self.closed.append(ended.session_id)
        for agent in self.agents:
            await agent.stop()
        session = self.sessions.pop(ended.session_id, None)
        if session is not None:
            await session.stop()


async def test_dial_and_run_over_real_sip(tmp_path):
    from tests.sip.conftest import free_port
    from theo_ray.sim.call_dialer import dial_and_run
    from theo_ray.sim.sip_caller import CallerSettings
    from theo_ray.sip.settings import SipSettings
    from theo_ray.sip.user_agent import SipUserAgent

    scenario = decode_scenario(
        """
name: over_sip
max_duration_s: 25
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 8000
    settle_ms: 700
  - action: say
    id: pergunta
    text: "Qual é o horário?"
  - action: wait_agent
    until: ends
    settle_ms: 700
  - action: hangup
"""
    )
    voice = _espeak_voice(tmp_path)
    rendered = await render_utterances(scenario, voice)
    delay = 0.5
    router = ScriptedAgentRouter(agent_speech("Olá."), [agent_speech("Das oito às seis.")], [len(rendered[1])], delay)
    gateway = SipUserAgent(SipSettings(port=free_port(), allowed_peers=["127.0.0.1"], log_level=1), router)
    await gateway.start()
    try:
        host, port = gateway.addresses["udp"]
        result = await asyncio.wait_for(
            dial_and_run(
                f"sip:theo@{host}:{port}", scenario, voice, tmp_path / "out",
                headers={"X-Theo-Session": "sim-1"}, caller_settings=CallerSettings(media="external", codecs=["G722"]),
            ),
            timeout=60,
        )
        for _ in range(50):  # the BYE reaches the gateway
            if router.closed:
                break
            await asyncio.sleep(0.1)
    finally:
        await gateway.stop()
    assert router.closed == ["sim-1"]
    assert result.ended_by == "caller" and result.codec == "G722", result.steps
    [agent] = router.agents
    [latency] = result.analysis.latencies
    # G.722 and the session's resamplers are in the path here: a looser bound than on L16.
    truth_ms = (agent.reply_sent["reply0"] - agent.caller_ends[0]) * 1000
    assert latency.first_audio_ms is not None and abs(latency.first_audio_ms - truth_ms) <= 30, (latency, truth_ms)


async def test_caller_voice_trims_synthesis_padding_to_the_voice(tmp_path):
    clip = speech("bom dia")

    async def padded(text: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        import soxr

        yield np.zeros(VOICE_RATE * 3 // 10, np.int16)  # Kokoro-like 0.3 s lead-in
        yield soxr.resample(clip, RATE, VOICE_RATE).astype(np.int16)
        yield np.zeros(VOICE_RATE * 65 // 100, np.int16)  # and 0.65 s tail

    voice = CallerVoice(tmp_path, synthesize=padded)
    pcm = await voice.speak("bom dia")
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) >= 32768 * 10 ** (-50 / 20))
    s = voice.settings
    assert abs(loud[0] - VOICE_RATE * s.trim_lead_ms / 1000) <= 2
    assert abs((len(pcm) - 1 - loud[-1]) - VOICE_RATE * s.trim_tail_ms / 1000) <= 2
    assert abs(len(pcm) - len(clip) * VOICE_RATE / RATE - VOICE_RATE * (s.trim_lead_ms + s.trim_tail_ms) / 1000) < 0.01 * VOICE_RATE


async def test_waiting_for_the_answer_skips_agent_audio_shorter_than_min_speech(tmp_path):
    """`min_speech_ms`: a "hum…"-length agent utterance does not end the caller's wait (it
    times out here, nothing longer follows); the same wait without it ends on that audio."""
    short = agent_speech("Hum.")
    yaml = """
name: filler_only
max_duration_s: 20
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 2500
    settle_ms: 500
    min_speech_ms: {min_ms}
  - action: hangup
"""
    waited, _, _ = await _run(tmp_path / "strict", yaml.format(min_ms=1500), [], 0.3, short)
    relaxed, _, _ = await _run(tmp_path / "relaxed", yaml.format(min_ms=0), [], 0.3, short)
    assert len(short) / RATE < 1.0
    assert [s.status for s in waited.steps] == ["timeout", "done"]
    assert [s.status for s in relaxed.steps] == ["done", "done"]
