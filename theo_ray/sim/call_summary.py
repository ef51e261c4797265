"""Turn one simulated call into its summary: the caller-side analysis (from the recording),
the agent's words (transcribed from the recording by our STT), the span split of each turn
(from the CallActor's turn records), the caller's sentiment per turn (a separate short LLM
classification, off the call's critical path) and the outcome."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import msgspec
import numpy as np
import soxr

from theo_ray.conversation.records import CallRecord
from theo_ray.messages import ChatMessage, GenerateRequest, TranscribeRequest
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.percentiles import percentiles
from theo_ray.sim.turn_transcripts import transcribe_agent_turns
from theo_ray.sim.caller_runner import CallRunResult
from theo_ray.sim.intelligibility import Intelligibility, intelligibility
from theo_ray.sim.call_outcome import CallOutcome
from theo_ray.sim.conversation_metrics import (
    CallSummary,
    SentimentRequest,
    SentimentScore,
    caller_texts_from_scenario,
    summarise_call,
)
from theo_ray.sim.recording import CallRecording
from theo_ray.sim.report import SpanSplit
from theo_ray.sim.scenario import Scenario

# One self-contained question, not a chat: a 1.5B model classifies a quoted line reliably
# and loses the task when the conversation comes as chat turns (it answers the caller).
# What each label means is in the question itself: asked "positivo, neutro ou negativo?" the
# 1.5B called every plain request positive; with the meanings beside the labels it labelled
# a dozen test lines right (a request neutral, a thank-you positive, a complaint negative).
_SENTIMENT_PROMPT = "Você classifica falas de clientes em ligações. Responda só com uma palavra."
_SENTIMENT_QUESTION = (
    "Classifique a fala: NEUTRO (só pede ou informa algo), POSITIVO (agradece ou elogia) "
    "ou NEGATIVO (reclama ou se irrita). Resposta:"
)
_SENTIMENT_LABELS = {"positiv": ("positive", 1.0), "neutr": ("neutral", 0.0), "negativ": ("negative", -1.0)}


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


def sentiment_classifier(generate: Callable[[GenerateRequest], AsyncIterator[str]]):
    """The caller's sentiment of one turn, asked of a language model as one quoted question;
    ``generate`` streams the model's answer (a Serve handle or an in-process engine)."""

    async def classify(request: SentimentRequest) -> SentimentScore:
        context = "\n".join(
            f"{'Cliente' if line.speaker == 'caller' else 'Atendente'}: {line.text}" for line in request.context[-4:]
        )
        question = (f"Conversa até agora:\n{context}\n\n" if context else "") + (
            f'Fala do cliente: "{request.caller_text}"\n{_SENTIMENT_QUESTION}'
        )
        messages = [ChatMessage(role="system", content=_SENTIMENT_PROMPT), ChatMessage(role="user", content=question)]
        request_id = f"sentiment-{request.call_id}-{request.turn_index}"
        text = "".join([piece async for piece in generate(
            GenerateRequest(messages=messages, max_tokens=8, temperature=0.0, request_id=request_id)
        )])
        found = sorted((m.start(), stem) for stem in _SENTIMENT_LABELS for m in re.finditer(stem, text.lower()))
        if not found:
            raise ValueError(f"the model answered {text!r}, not positivo/neutro/negativo")
        label, score = _SENTIMENT_LABELS[found[0][1]]
        return SentimentScore(label=label, score=score)

    return classify


def llm_sentiment(handles: ModelHandles):
    async def generate(request: GenerateRequest) -> AsyncIterator[str]:
        async for delta in handles.llm.options(stream=True).generate.remote(request):
            yield delta.text

    return sentiment_classifier(generate)


def unavailable_sentiment(reason: str):
    """A classifier that has no model: every turn's sentiment is '?' with this reason."""

    async def classify(request: SentimentRequest) -> SentimentScore:
        raise RuntimeError(reason)

    return classify


def outcome_of(run: CallRunResult, record: CallRecord | None) -> CallOutcome:
    if record is not None and record.transferred_to:
        return CallOutcome(ended_by="transfer", transferred=True, transfer_target=record.transferred_to,
                           transfer_reason=record.transfer_reason, error=run.error)
    return run.outcome()


def with_agent_side_figures(summary: CallSummary, record: CallRecord | None, missing: str = "") -> CallSummary:
    """Add what needs Theo's own record: when each reply's own first words reached the
    caller (a filler played first counts as "first audio" only), and how intelligible the
    agent was (what it meant to say against what the caller's Whisper heard). ``missing``
    says why there is no record, when there is none."""
    if record is None:
        reason = missing or "Theo's call record is not available"
        return msgspec.structs.replace(summary, intelligibility=Intelligibility(None, 0, 0, reason))
    answered = [t for t in record.turns if t.caller_text]
    turns = []
    for t in summary.turns:
        content = t.first_audio_ms
        theo = answered[t.index - 1] if 0 < t.index <= len(answered) else None
        if content is not None and theo is not None and theo.filler_at and theo.first_rtp_at > theo.filler_at:
            # Both instants are on Theo's clock: the filler went out this long before the reply.
            content = round(content + (theo.first_rtp_at - theo.filler_at) * 1000.0, 1)
        turns.append(msgspec.structs.replace(t, first_content_audio_ms=content))
    meant = [record.greeting_text] + [
        f"{t.filler_text} {t.heard_text if t.interrupted else t.agent_text}" for t in record.turns
    ]
    return msgspec.structs.replace(
        summary,
        turns=turns,
        first_content_audio=percentiles([t.first_content_audio_ms for t in turns if t.kind != "backchannel"]),
        intelligibility=intelligibility(meant, [t.text for t in summary.agent_turns]),
    )


async def summarise_simulated_call(
    run: CallRunResult, scenario: Scenario, record: CallRecord | None, handles: ModelHandles
) -> CallSummary:
    recording = CallRecording.load(run.wav_path)
    agent_texts = await transcribe_agent_turns(recording, run.analysis, stt_transcriber(handles))
    summary = await summarise_call(
        record.session_id if record else run.scenario,
        run.analysis,
        outcome_of(run, record),
        caller_texts_from_scenario(run.analysis, scenario),
        agent_texts,
        scenario=scenario,
        classify_sentiment=llm_sentiment(handles),
        started_at_unix=run.started_at_unix,
    )
    return with_agent_side_figures(summary, record)
