"""faster-whisper (CTranslate2) speech-to-text backend: int8 on CPU, fp16 on GPU.

Decoding uses temperature 0 unless stt.temperature_fallback lists more: the fallback
re-decodes a segment several times when it looks unsure (measured at 6 s spikes on 2 cores).
Domain vocabulary (stt.domain_terms) reaches the decoder as hotwords or prompt text
(stt.vocabulary); a request's hint (what the agent just asked) as the text said before.

The encoder runs on a window fitted to the audio (`WindowedWhisperModel`), not on the 30 s
Whisper pads everything to: see `SpeechToTextSettings.window_min_s`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.config import SpeechToTextSettings
from theo_ray.messages import Segment, Word
from theo_ray.models.whisper_assets import resolve_whisper_model

log = logging.getLogger(__name__)


def _window_frames(features: np.ndarray, min_frames: int, margin_frames: int) -> int:
    """Frames to encode: the content plus a margin, at least `min_frames`, at most all.

    faster-whisper pads a segment's log-mel features to 3000 frames with exact zeros, which
    real audio never produces across all 80 bins (Whisper's log-mel scale puts digital silence
    at -1.5), so the last column with a non-zero value is the content's end.
    """
    columns = np.flatnonzero(np.any(features != 0.0, axis=0))
    content = int(columns[-1]) + 1 if columns.size else 0
    return min(features.shape[-1], max(min_frames, content + margin_frames))


def windowed_whisper_model(settings: SpeechToTextSettings, model_path: str):
    """A faster-whisper model whose encoder sees the audio plus a margin, not 30 s.

    faster-whisper has no option for this (its `chunk_length` still pads to 30 s), so the one
    method that hands features to CTranslate2 is overridden; CTranslate2's Whisper encoder
    accepts any window up to 30 s. `fit_window = False` on a copy gives Whisper's own window
    with the same loaded weights.
    """
    from faster_whisper import WhisperModel

    frames_per_s = 100  # Whisper's 10 ms hop
    min_frames = int(settings.window_min_s * frames_per_s)
    margin_frames = int(settings.window_margin_s * frames_per_s)

    class WindowedWhisperModel(WhisperModel):
        fit_window = settings.window_min_s < 30.0  # 30 s is Whisper's own window: nothing to fit

        def encode(self, features: np.ndarray):
            if self.fit_window and features.ndim == 2:
                features = features[:, : _window_frames(features, min_frames, margin_frames)]
            return super().encode(features)

    return WindowedWhisperModel(
        model_path,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        num_workers=settings.parallel_requests,
    )


# A run of the same n words repeated this many times in a row is a decoding loop, not
# speech: no CPF, phone or protocol has 8 equal digits in a row.
_LOOP_REPEATS = {1: 8, 2: 5, 3: 4, 4: 4}


# One letter or syllable held by the decoder: "Éééééééééé", "Githememememememem".
_LETTER_RUN = re.compile(r"(\w)\1{7,}|(\w{2,3})\2{5,}")


def _spaced(text: str) -> str:
    """Hyphenated runs as words: Whisper writes dictated digits "4-5-2-3-9-9-9-9"."""
    return re.sub(r"(?<=\w)-(?=\w)", " ", text)


def repeated_run(text: str) -> int | None:
    """Index (in `text.split()`) where a run of the same 1-4 words repeated past
    `_LOOP_REPEATS` starts repeating (after its first instance), or None."""
    tokens = ["".join(c for c in t.lower() if c.isalnum()) for t in _spaced(text).split()]
    for n, repeats in _LOOP_REPEATS.items():
        for start in range(0, len(tokens) - n * repeats + 1):
            gram = tokens[start : start + n]
            if not any(gram):
                continue
            count = 1
            while tokens[start + count * n : start + (count + 1) * n] == gram:
                count += 1
            if count >= repeats:
                return start + n
    return None


def looks_like_a_loop(text: str, audio_s: float, max_words_per_s: float) -> bool:
    """More words than anyone says in that much audio, or the same words (or letter) over and
    over: Whisper repeating itself ("o que é o que é o que é...", "9, 9, 9, 9, 9, 9, 9, 9, 9").
    Word rate, not Whisper's gzip ratio: a dictated "nove nove nove nove oito oito oito oito"
    compresses like a loop but is said at 3 words a second."""
    return (len(text.split()) > max_words_per_s * audio_s + 4 or repeated_run(text) is not None
            or _LETTER_RUN.search(text) is not None)


class FasterWhisperBackend:
    def __init__(self, settings: SpeechToTextSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.model_path = resolve_whisper_model(settings.model, cache_dir)
        self.model = windowed_whisper_model(settings, self.model_path)
        self.full_window_model = copy.copy(self.model)  # same weights, Whisper's 30 s window
        self.full_window_model.fit_window = False
        self.loops_redecoded = 0
        self.loops_cut = 0  # the full window looped too: the repeated words were cut
        self.tails_dropped = 0  # segments invented after the speech, dropped (without_invented_tail)
        self.hint_cut_short = 0  # a hinted decode stopped before the speech did: decoded again without
        # Lanes (CTranslate2 workers) decoding at once; see SpeechToTextSettings.parallel_requests.
        self._pool = concurrent.futures.ThreadPoolExecutor(settings.parallel_requests, thread_name_prefix="whisper")

    def decoder_context(self, prompt: str, hint: str) -> tuple[str | None, str | None]:
        """(initial prompt, hotwords) for a request: the request's own prompt (what the caller
        said before) after its hint (what the agent just asked), and stt.domain_terms as
        hotwords or ahead of the prompt, per stt.vocabulary."""
        terms = ", ".join(t.strip() for t in self.settings.domain_terms if t.strip())
        said_before = " ".join(p.strip() for p in (hint, prompt) if p.strip())
        if self.settings.vocabulary == "prompt" and terms:
            said_before = f"{terms}. {said_before}".strip()
        hotwords = terms if self.settings.vocabulary == "hotwords" and terms else None
        return said_before or None, hotwords

    def _decode(self, model, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool, hint: str = ""):
        s = self.settings
        initial_prompt, hotwords = self.decoder_context(prompt, hint)
        segments, _info = model.transcribe(
            audio,
            language=language or s.language,
            beam_size=s.beam_size,
            temperature=[0.0, *s.temperature_fallback] if s.temperature_fallback else 0.0,
            word_timestamps=word_timestamps,
            initial_prompt=initial_prompt,
            hotwords=hotwords,
            condition_on_previous_text=False,
            vad_filter=s.vad_trim,
            # A decoding loop stops at a length no real speech of this duration reaches,
            # instead of at Whisper's 448 tokens. 200 at most: with a 223-token prompt that
            # stays inside Whisper's 448-token context.
            max_new_tokens=min(200, int(s.max_tokens_per_s * len(audio) / 16000) + 16),
        )
        return list(segments)

    def _decode_kept(self, model, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool, hint: str):
        decoded = self._decode(model, audio, language, prompt, word_timestamps, hint)
        kept = without_invented_tail(decoded)
        self.tails_dropped += len(decoded) - len(kept)
        return kept

    def transcribe_blocking(
        self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool, hint: str = ""
    ) -> tuple[list, bool]:
        """The faster-whisper segments of `audio` (blocking: run it in an executor), and
        whether they were decoded again.

        Decoded on the fitted window; a transcript that looks like a decoding loop is decoded
        again on Whisper's full window (which loops far less), counted in `loops_redecoded`;
        if that one repeats itself too, the repetitions are cut (`loops_cut`), so no loop
        reaches the language model.
        An utterance under 30 s is one decoder pass, so collecting its segments before the
        check delays nothing; a longer one waits for all its windows (callers use the whole
        text).
        """
        segments = self._decode_kept(self.model, audio, language, prompt, word_timestamps, hint)
        if hint and speech_left_out(segments, audio):
            # Prompted with the agent's question, Whisper sometimes ends its transcript after
            # the first sentence of a long answer (measured: an 18 s complaint came back as its
            # first 4 s); the hint is worth less than the rest of what the caller said.
            self.hint_cut_short += 1
            log.warning("STT with the hint stopped at %.1f s of %.1f s: decoding again without it",
                        segments[-1].end if segments else 0.0, len(audio) / 16000)
            segments = self._decode_kept(self.model, audio, language, prompt, word_timestamps, "")
        text = " ".join(s.text for s in segments)
        if self.model.fit_window and looks_like_a_loop(text, len(audio) / 16000, self.settings.loop_words_per_s):
            self.loops_redecoded += 1
            log.warning("STT decoding loop on the fitted window (%r): decoding again on the full window", text[:80])
            segments = self._decode_kept(self.full_window_model, audio, language, prompt, word_timestamps, hint)
            text = " ".join(s.text for s in segments)
            if repeated_run(text) is not None or _LETTER_RUN.search(text):
                self.loops_cut += 1
                segments = cut_repeated_run(segments)
            return segments, True
        return segments, False

    async def transcribe(
        self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool, hint: str = ""
    ) -> AsyncIterator[Segment]:
        loop = asyncio.get_running_loop()
        segments, redecoded = await loop.run_in_executor(
            self._pool, self.transcribe_blocking, audio, language, prompt, word_timestamps, hint
        )
        for seg in segments:
            yield to_segment(seg, redecoded)


def without_invented_tail(segments: list) -> list:
    """The segments without a last one Whisper invented after the speech.

    Past the end of the speech (the fitted window's padding most of all, and the more so
    with a prompt: "O que é isso?", "Jesus Jesus Jesus" after a prompted answer) Whisper
    base writes a segment whose words have no duration: they are squeezed into the audio's
    last hundredths of a second, the first of them at a probability of a few hundredths.
    A word said in no time was not said. Needs word timestamps (calls ask for them); the
    first segment is always kept. Counted in `tails_dropped`.
    """
    kept = list(segments)
    while len(kept) > 1 and _invented(kept[-1]):
        kept.pop()
    return kept


def _invented(segment) -> bool:
    """Opened by a word the decoder did not believe (< 0.2), and either half its words said in
    no time (≤ 50 ms) or the segment itself unsure and likely silent (the tail segments
    measured: no-speech probability ~0.5, mean log-probability < -1)."""
    words = segment.words or []
    if not words or words[0].probability >= 0.2:
        return False
    instant = sum(1 for w in words if w.end - w.start <= 0.05)
    return instant * 2 >= len(words) or (segment.no_speech_prob > 0.4 and segment.avg_logprob < -0.8)


def cut_repeated_run(segments: list) -> list:
    """The faster-whisper segments up to the first instance of their repeated run, a letter
    held over and over said once."""
    segments = [dataclasses.replace(s, text=_spaced(_LETTER_RUN.sub(lambda m: m.group(1) or m.group(2), s.text)))
                for s in segments]
    cut_at = repeated_run(" ".join(s.text for s in segments))
    if cut_at is None:
        return segments
    out = []
    for seg in segments:
        tokens = seg.text.split()
        if cut_at <= 0:
            break
        if len(tokens) > cut_at:
            seg = dataclasses.replace(seg, text=" " + " ".join(tokens[:cut_at]),
                                      words=(seg.words or [])[:cut_at] or seg.words)
        out.append(seg)
        cut_at -= len(tokens)
    return out


def to_segment(seg, redecoded: bool = False) -> Segment:
    """Theo's Segment (confidence included) from a faster-whisper segment."""
    words = [
        Word(text=w.word.strip(), start=float(w.start), end=float(w.end), probability=float(w.probability))
        for w in (seg.words or [])
    ]
    return Segment(
        text=seg.text.strip(),
        start=float(seg.start),
        end=float(seg.end),
        avg_logprob=float(seg.avg_logprob),
        no_speech_prob=float(seg.no_speech_prob),
        words=words,
        min_word_probability=min((w.probability for w in words), default=None),
        temperature=float(seg.temperature or 0.0),
        redecoded=redecoded,
    )


def speech_left_out(segments: list, audio: np.ndarray, rate: int = 16000, min_speech_s: float = 0.5) -> bool:
    """True when `audio` (float32) holds at least `min_speech_s` of loud 20 ms frames after
    the last decoded segment's end (+0.3 s): the transcript stopped before the caller did.
    Loud: within 20 dB of the utterance's loudest frame, and above -45 dBFS."""
    frame = rate // 50
    n = len(audio) // frame
    if n == 0:
        return False
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    floor = max(float(rms.max()) * 0.1, 10 ** (-45 / 20))
    covered = (segments[-1].end if segments else 0.0) + 0.3
    first = int(covered * 50)
    return int((rms[first:] > floor).sum()) >= int(min_speech_s * 50)
