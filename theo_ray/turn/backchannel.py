"""Is caller sound during agent speech a backchannel, noise, or a real interruption?

Barge-in pauses playout at once on VAD speech start; this classifier then says whether to
resume (backchannel "uhum"/"tá", cough, click) or abort and listen (real interruption). It uses
what is known at each moment: `early_verdict()` from VAD timing alone (long speech is an
interruption before any transcript exists), `classify()` once the STT has text.

Cheap string rules: fine on the event loop.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import msgspec

from theo_ray.turn.settings import BackchannelSettings

BACKCHANNEL_WORDS = frozenset({
    "uhum", "uhm", "hum", "hm", "hmm", "humhum", "aham", "ahã", "ahan", "ah", "é", "eh", "sei",
    "tá", "ta", "tah", "ok", "okay", "oquei", "certo", "entendi", "sim", "isso", "claro",
    "beleza", "bom", "tá bom", "ótimo", "otimo", "perfeito", "legal", "aha", "uh", "unhum",
    "ahh", "ãhã", "anham", "han", "hã", "uhu", "pois", "pode", "exato", "verdade",
    # laughter, as Whisper writes it
    "ha", "haha", "hahaha", "he", "hehe", "hi", "hihi", "rs", "rsrs", "kk", "kkk", "kkkk",
})
# Words that mean "stop/wait/no": an interruption even when short.
INTERRUPTION_WORDS = frozenset({
    "não", "nao", "espera", "espere", "peraí", "perai", "pera", "para", "pare", "calma",
    "mas", "porém", "opa", "ei", "oi", "alô", "alo", "desculpa", "como", "quê", "que", "quem",
    "errado", "atendente", "humano", "pessoa",
})
# What Whisper writes for non-speech (breath, noise, music) — treat as noise when short.
STT_NOISE_TEXTS = frozenset({
    "obrigado", "obrigada", "obrigado por assistir", "legendas pela comunidade amara.org",
    "legenda adriana zanotto", "tchau", "música", "risos", "aplausos", "tosse", "...",
})


class BackchannelVerdict(msgspec.Struct, frozen=True):
    kind: Literal["backchannel", "noise", "interruption", "undecided"]
    reason: str


class BackchannelStats(msgspec.Struct):
    backchannel: int = 0
    noise: int = 0
    interruption: int = 0


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text.lower())
    return re.findall(r"[^\W\d_]+", text)


class BackchannelDetector:
    def __init__(self, settings: BackchannelSettings | None = None) -> None:
        self.settings = settings or BackchannelSettings()
        self.stats = BackchannelStats()

    def early_verdict(self, speech_ms: float) -> BackchannelVerdict:
        """From VAD alone, while the caller is still talking: interruption once speech is longer
        than any backchannel, otherwise undecided."""
        if speech_ms > self.settings.max_backchannel_ms:
            return BackchannelVerdict(
                "interruption", f"speech {speech_ms:.0f} ms > {self.settings.max_backchannel_ms}"
            )
        return BackchannelVerdict("undecided", f"speech {speech_ms:.0f} ms so far")

    def classify(self, text: str, speech_ms: float, word_probability: float | None = None) -> BackchannelVerdict:
        """Final verdict for one burst of caller sound: its transcript, voiced duration and
        the decoder's mean word probability (None when the STT gave no word timestamps)."""
        verdict = self._classify(text, speech_ms, word_probability)
        setattr(self.stats, verdict.kind, getattr(self.stats, verdict.kind) + 1)
        return verdict

    def _classify(self, text: str, speech_ms: float, word_probability: float | None) -> BackchannelVerdict:
        s = self.settings
        words = _words(text)
        cleaned = " ".join(words)
        if speech_ms > s.max_backchannel_ms:
            return BackchannelVerdict("interruption", f"speech {speech_ms:.0f} ms is too long")
        if not words:
            if speech_ms < s.min_speech_ms:
                return BackchannelVerdict("noise", f"no words, {speech_ms:.0f} ms of sound")
            return BackchannelVerdict("noise", "no words recognised")
        if any(w in INTERRUPTION_WORDS for w in words):
            hit = next(w for w in words if w in INTERRUPTION_WORDS)
            return BackchannelVerdict("interruption", f"'{hit}' asks the agent to stop")
        if cleaned in STT_NOISE_TEXTS and speech_ms < s.max_backchannel_ms / 2:
            return BackchannelVerdict("noise", f"'{cleaned}' is what the STT writes for noise")
        if speech_ms < s.min_speech_ms:
            return BackchannelVerdict("noise", f"only {speech_ms:.0f} ms voiced")
        if len(words) <= s.max_backchannel_words and all(w in BACKCHANNEL_WORDS for w in words):
            return BackchannelVerdict("backchannel", f"'{cleaned}' acknowledges")
        if len(words) == 1 and speech_ms <= s.short_burst_ms:
            # Whisper often writes a murmured "uhum" as some short word ("onde", "um"): one
            # short word that is not a stop word is an acknowledgement, not a new turn.
            return BackchannelVerdict("backchannel", f"one short word '{cleaned}' ({speech_ms:.0f} ms)")
        if word_probability is not None and word_probability < s.min_content_word_probability:
            # Audio first: a burst this short is most often an acknowledgement, and Whisper
            # turns a murmured "aham"/"entendi" into unsure words ("Nair dos", "Entengue",
            # mean word probability 0.1-0.45 on the Kokoro voices) where real short
            # interruptions ("Qual o preço?", "Não é isso.") come out at 0.55-0.95.
            return BackchannelVerdict(
                "backchannel", f"'{cleaned}' heard unsure (p={word_probability:.2f}) in a short burst"
            )
        return BackchannelVerdict("interruption", f"'{cleaned}' is content")
