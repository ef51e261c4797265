"""What the agent says when it has nothing else ready: thinking fillers, backchannels and
emergency phrases (pre-rendered per voice at start-up). Comfort noise, the line's idle fill,
is the media plane's (`theo_ray.media.comfort_noise`)."""

from __future__ import annotations

import random



# Said when the first audio of a reply is late (GAP 3).
# Chosen by how the caller-side Whisper heard them over G.711 in the default voice: "Hum…",
# "Só um instante." and "Deixa eu ver…" came out as other words ("Vamos ver.", "So in Stunty").
THINKING_FILLERS: tuple[str, ...] = (
    "Deixa eu ver aqui.",
    "Um momento só.",
    "Um instante, por favor.",
    "Certo, um momento.",
    "Vamos ver aqui…",
)
# Said in natural pauses of a long caller turn.
BACKCHANNELS: tuple[str, ...] = ("Uhum.", "Entendi.", "Sei.", "Certo.")
# Said when something broke; the key says when.
EMERGENCY_PHRASES: dict[str, str] = {
    "technical_problem": (
        "Desculpa, tô com uma instabilidade aqui. Vou te passar pra um atendente, um instante."
    ),
    "transfer_failed": (
        "Não consegui completar a transferência agora. Pode ligar de novo daqui a pouquinho?"
    ),
    "still_there": "Você ainda tá aí?",
    "bad_line": "Desculpa, a ligação tá ruim. Pode repetir, por favor?",
    # The caller's words came through, but speech-to-text is too unsure of them to answer.
    "didnt_catch": "Desculpa, não entendi direito. Pode repetir, por favor?",
    # The caller said no to a dictated number read back to them (conversation/readback.py).
    "readback_denied": "Desculpa. Pode repetir o número bem devagar, por favor?",
    "goodbye": "Obrigado pela ligação. Tchau!",
    # A replacement CallActor took the call over (the first one died): what was being said
    # or heard at that moment may be lost, so the caller is asked to repeat.
    "resumed": "Desculpa, tive um probleminha aqui. Pode repetir o que você disse, por favor?",
    # A keypad shortcut (conversation.keypad.shortcuts, "0" by default) asked for a human.
    "keypad_transfer": "Certo, vou te passar para um atendente. Um instante, por favor.",
    # conversation.max_call_seconds reached: said once the current answer has been heard.
    "call_time_limit": "Nossa ligação chegou ao tempo máximo. Se precisar, é só ligar de novo. Tchau!",
}


class PhrasePicker:
    """Random choice that never repeats the previous pick (seeded for reproducible tests)."""

    def __init__(self, phrases: tuple[str, ...], seed: int | None = None) -> None:
        if not phrases:
            raise ValueError("PhrasePicker needs at least one phrase")
        self._phrases = phrases
        self._random = random.Random(seed)
        self._last: str | None = None

    def pick(self) -> str:
        choices = [p for p in self._phrases if p != self._last] or list(self._phrases)
        self._last = self._random.choice(choices)
        return self._last
