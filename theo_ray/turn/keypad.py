"""KeypadBuffer: the caller's DTMF keys (RFC 4733 events) as typed entries.

Keys gather into one entry until the end key (`#`) or a pause of `entry_timeout_s`; an
entry reaches the conversation as what the caller typed (a CPF, a menu choice). A
shortcut key pressed on its own (nothing else within `shortcut_after_s`) is an action
instead: "0" → a human, by default. So "0" then a pause is the shortcut, while "0 1 2 …"
is an entry that starts with 0. Pure: the caller feeds keys and ticks it with the time.
"""

from __future__ import annotations

from typing import Literal

import msgspec

KEYS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15, in order
# What the language model is told a keypad entry was (the caller's own words, typed).
TYPED_ENTRY = "Digitei no teclado: {digits}"
KeypadAction = Literal["transfer", "hangup"]


class KeypadSettings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # A key pressed alone -> an action ("transfer": to a human; "hangup": end the call).
    shortcuts: dict[str, KeypadAction] = msgspec.field(default_factory=lambda: {"0": "transfer"})
    end_key: str = "#"
    entry_timeout_s: float = 3.0  # a pause this long ends an entry
    shortcut_after_s: float = 1.0  # a lone shortcut key acts after this long without another key
    max_digits: int = 32  # a longer entry is cut here (counted)

    def __post_init__(self) -> None:
        from theo_ray.errors import ConfigError

        bad = [k for k in [*self.shortcuts, self.end_key] if len(k) != 1 or k not in KEYS]
        if bad:
            raise ConfigError("conversation.keypad", f"not DTMF keys: {bad} (one of {KEYS})")
        if self.end_key in self.shortcuts:
            raise ConfigError("conversation.keypad.shortcuts", f"{self.end_key!r} is the end key")


class KeypadEntry(msgspec.Struct, frozen=True):
    digits: str  # without the end key
    at: float
    ended_by: Literal["end_key", "pause", "max_digits"]


class KeypadShortcut(msgspec.Struct, frozen=True):
    key: str
    action: KeypadAction
    at: float


KeypadInput = KeypadEntry | KeypadShortcut


def key_of(event_code: int) -> str:
    """The key of an RFC 4733 DTMF event code (0-15)."""
    return KEYS[event_code]


class KeypadBuffer:
    def __init__(self, settings: KeypadSettings) -> None:
        self.settings = settings
        self._keys = ""
        self._last_at = 0.0
        self.cut_entries = 0  # entries cut at max_digits

    @property
    def pending(self) -> str:
        return self._keys

    def press(self, key: str, at: float) -> KeypadInput | None:
        """A key arrived; returns an entry when it ends one."""
        if key == self.settings.end_key:
            return self._take("end_key", at) if self._keys else None
        self._keys += key
        self._last_at = at
        if len(self._keys) >= self.settings.max_digits:
            self.cut_entries += 1
            return self._take("max_digits", at)
        return None

    def tick(self, now: float) -> KeypadInput | None:
        """The time passes: a lone shortcut key acts, a paused entry ends."""
        if not self._keys:
            return None
        quiet = now - self._last_at
        action = self.settings.shortcuts.get(self._keys)
        if action is not None and quiet >= self.settings.shortcut_after_s:
            key, self._keys = self._keys, ""
            return KeypadShortcut(key, action, now)
        if quiet >= self.settings.entry_timeout_s:
            return self._take("pause", now)
        return None

    def _take(self, ended_by: Literal["end_key", "pause", "max_digits"], at: float) -> KeypadEntry:
        digits, self._keys = self._keys, ""
        return KeypadEntry(digits, at, ended_by)
