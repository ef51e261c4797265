"""A real call recorded by its CallActor: the harness's caller (a real RtpSession) talks to a
real CallActor with the real STT/TTS deployments and the scripted LLM, with
`call_data.recording` on. The WAV is checked as a person would listen to it — two channels
at the call's rate, as long as the call, the greeting on the agent's (right) channel, the
caller's words on the left, at the distance apart the caller lived them — and found through
the call document the supervisor archived."""

from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conversation.harness import AgentCall
from theo_ray.calldata.settings import CallDataSettings, RecordingSettings

pytestmark = pytest.mark.slow

LINE = "Oi, meu nome é Maria e eu quero saber da minha fatura."
LOUD_RMS = 300.0  # as the harness's AGENT_RMS: comfort noise is ~26, speech well above 1000


def loud_windows(channel: np.ndarray, rate: int) -> np.ndarray:
    """Start times (s) of the 20 ms windows louder than LOUD_RMS."""
    win = rate // 50
    n = channel.size // win
    rms = np.sqrt(np.mean(channel[: n * win].astype(np.float64).reshape(n, win) ** 2, axis=1))
    return np.flatnonzero(rms > LOUD_RMS) * win / rate


def call_document(output_dir: Path, session_id: str) -> dict:
    lines = (output_dir / "call-data" / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    calls = [d for d in map(json.loads, lines) if d["kind"] == "call" and d["session_id"] == session_id]
    assert len(calls) == 1, lines
    return calls[0]


async def test_a_recorded_call_has_the_greeting_right_the_caller_left_and_its_path_in_the_call_document(
        theo_config, scripted_handles, tmp_path):
    call_data = CallDataSettings(recording=RecordingSettings(enabled=True))
    async with AgentCall(theo_config, scripted_handles, call_data=call_data, output_dir=str(tmp_path)) as call:
        await call.prepare_speech(LINE)
        greeting_heard = await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        speaking_at = time.monotonic()
        await call.say(LINE)
        await call.wait_reply(1)
        session_id = call.session_id
    doc = call_document(tmp_path, session_id)  # the supervisor's shutdown flushed the log

    path = Path(doc["recording_path"])
    assert path.parent == tmp_path / "recordings" and path.name.endswith(f"_{session_id}.wav")
    with wave.open(str(path), "rb") as wav:
        channels, rate, width = wav.getnchannels(), wav.getframerate(), wav.getsampwidth()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, channels)
    assert (channels, rate, width) == (2, 8000, 2)  # PCMU: the call's rate
    seconds = data.shape[0] / rate
    assert doc["recording_duration_ms"] == pytest.approx(seconds * 1000, abs=1)
    # As long as the call: from the CallActor's open to its close.
    assert seconds == pytest.approx(doc["duration_ms"] / 1000, abs=1.0), (seconds, doc["duration_ms"])

    left, right = loud_windows(data[:, 0], rate), loud_windows(data[:, 1], rate)
    assert right.size and left.size
    greeting_at = right[0]  # the greeting opens the call on the agent's channel
    assert greeting_at < 5.0
    assert not ((left >= greeting_at) & (left < greeting_at + 1.0)).any()  # the greeting is not on the left
    caller_at = left[0]  # the caller's first words
    # The two channels are one timeline: the caller started talking as long after the
    # greeting reached it as the recording shows (the caller's own clock, loopback RTP).
    assert caller_at - greeting_at == pytest.approx(speaking_at - greeting_heard, abs=0.15)
    # While the caller spoke the agent was quiet (it answers after the end of turn), and the
    # reply follows on the right.
    said = (left >= caller_at) & (left <= caller_at + 1.0)
    assert said.sum() >= 20  # ~0.4 s of its words in the first second
    assert right[right > caller_at].size and not ((right > caller_at) & (right < caller_at + 1.0)).any()
