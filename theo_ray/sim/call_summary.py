"""Turn one simulated call into its summary: the caller-side analysis (from the recording),
the agent's words (transcribed from the recording by our STT), the span split of each turn
(from the CallActor's turn records), the caller's sentiment per turn (a separate short LLM
classification, off the call's critical path) and the outcome."""

from __future__ import annotations

import re

import numpy as np
import soxr

from theo_ray.conversation.records import CallRecord
from theo_ray.messages import ChatMessage, GenerateRequest, TranscribeRequest
from theo_ray.runtime.serve_apps import ModelHandles
from theo_ray.sim.analysis import transcribe_agent_turns
from theo_ray.sim.caller_runner import CallRunResult
from theo_ray.sim.conversation_metrics import (
    CallOutcome,
    CallSummary,
    SentimentRequest,
    SentimentScore,
    caller_texts_from_scenario,
    summarise_call,
)
from theo_ray.sim.recording import CallRecording
from theo_ray.sim.report import SpanSplit
from theo_ray.sim.scenario import Scenario

_SENTIMENT_PROMPT = (
    "Classifique o sentimento do cliente na última fala. Responda com UMA palavra: "
    "positivo, neutro ou negativo."
)


def _ms(end: float, start: float) -> float | None:
    return round((end - start) * 1000.0, 1) if end and start and end >= start else None


def span_splits(record: CallRecord | None, trace_id: str = "") -> list[SpanSplit]:
    """Per answered caller turn, where the latency went inside Theo (from its turn records)."""
    if record is None:
        return []
    out = []
    for n, turn in enumerate((t for t in record.turns if t.caller_text), start=1):
        out.append(
            SpanSplit(
                turn=n,
                endpointing_wait_ms=_ms(turn.end_of_turn_at, turn.speech_end_at),
                stt_ms=_ms(turn.stt_final_at, turn.end_of_turn_at),
                llm_first_token_ms=_ms(turn.llm_first_token_at, turn.stt_final_at),
                llm_first_sentence_ms=_ms(turn.llm_first_sentence_at, turn.stt_final_at),
                tts_first_chunk_ms=_ms(turn.tts_first_chunk_at, turn.llm_first_sentence_at),
                first_rtp_ms=_ms(turn.first_rtp_at, turn.tts_first_chunk_at),
                trace_id=trace_id or record.trace_id,
            )
        )
    return out


def stt_transcriber(handles: ModelHandles):
    async def transcribe(samples: np.ndarray, rate: int) -> str:
        audio = samples if rate == 16000 else soxr.resample(samples, rate, 16000).astype(np.int16)
        if len(audio) < 1600:
            return ""
        request = TranscribeRequest(audio=audio.astype(np.int16).tobytes())
        return " ".join([s.text async for s in handles.stt.options(stream=True).transcribe.remote(request)])

    return transcribe


def llm_sentiment(handles: ModelHandles):
    async def classify(request: SentimentRequest) -> SentimentScore:
        messages = [ChatMessage(role="system", content=_SENTIMENT_PROMPT)]
        messages += [ChatMessage(role="user" if line.speaker == "caller" else "assistant", content=line.text)
                     for line in request.context[-4:]]
        messages.append(ChatMessage(role="user", content=request.caller_text))
        text = ""
        async for delta in handles.llm.options(stream=True).generate.remote(
            GenerateRequest(messages=messages, max_tokens=4, temperature=0.0, request_id=f"sentiment-{request.call_id}")
        ):
            text += delta.text
        word = re.sub(r"[^a-zà-ú]", "", text.lower().split()[0]) if text.split() else ""
        labels = {"positivo": ("positive", 1.0), "neutro": ("neutral", 0.0), "negativo": ("negative", -1.0)}
        if word not in labels:
            raise ValueError(f"the model answered {text!r}, not positivo/neutro/negativo")
        label, score = labels[word]
        return SentimentScore(label=label, score=score)

    return classify


def outcome_of(run: CallRunResult, record: CallRecord | None) -> CallOutcome:
    if record is not None and record.transferred_to:
        return CallOutcome(ended_by="transfer", transferred=True, transfer_target=record.transferred_to,
                           transfer_reason=record.transfer_reason, error=run.error)
    return run.outcome()


async def summarise_simulated_call(
    run: CallRunResult, scenario: Scenario, record: CallRecord | None, handles: ModelHandles
) -> CallSummary:
    recording = CallRecording.load(run.wav_path)
    agent_texts = await transcribe_agent_turns(recording, run.analysis, stt_transcriber(handles))
    return await summarise_call(
        record.session_id if record else run.scenario,
        run.analysis,
        outcome_of(run, record),
        caller_texts_from_scenario(run.analysis, scenario),
        agent_texts,
        scenario=scenario,
        classify_sentiment=llm_sentiment(handles),
        started_at_unix=run.started_at_unix,
    )
