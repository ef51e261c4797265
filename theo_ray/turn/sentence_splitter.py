"""Streaming pt-BR sentence splitter: LLM text deltas in, speakable pieces out.

Written by hand because the sentence tokenizers in libraries (nltk punkt, pysbd, spaCy) work on
whole texts: they cannot say "this boundary is final" while the text is still arriving, and
they pull large dependencies into the per-call actor. The rules here are few and explicit:

- a piece ends at ``.``, ``!``, ``?``, ``…`` (and runs like ``?!`` / ``...``, plus closing quotes)
  followed by whitespace, or at a line break or ``;``;
- a ``.`` after a title (Sr., Dra., Prof.) or an initial never ends a piece; after other
  abbreviations (etc., p.ex., Ltda.), a number or an ellipsis it ends one only when the next
  word starts with a capital letter (so the splitter waits for that letter);
- a ``.`` or ``,`` between digits (``R$ 1.234,56``) never ends anything, nor does `` e `` after a
  number or a number word (``cento e vinte``);
- the first piece of a reply may end early at a clause (``,`` / `` e `` / `` mas ``) once it has
  ``first_clause_min_words`` words, so TTS starts sooner; a later piece too, once it is as long
  as everything handed out before it, so its TTS is done before those have played;
- a run-on with none of these is cut at its last comma or space before a limit: for the first
  piece ``first_piece_max_chars`` (the caller waits for its whole TTS), for a later one the
  length of everything handed out before it (at least twice the first limit), up to
  ``max_piece_chars``.

Cheap (a scan of a few hundred characters per delta): fine to call on the event loop.
"""

from __future__ import annotations

from theo_ray.turn.settings import SplitterSettings
from theo_ray.turn.spoken_digits import NUMBER_WORDS
from theo_ray.turn.spoken_form import amount_spans, spoken_growth

# Abbreviations after which "." never ends a sentence (a name follows).
TITLE_ABBREVIATIONS = frozenset(
    {"sr", "sra", "srta", "srs", "sras", "dr", "dra", "drs", "dras", "prof", "profa", "profª",
     "eng", "enga", "exmo", "exma", "sto", "sta", "gal", "cel", "cap", "ten",
     "sgt", "av", "tv", "pç", "n", "nº", "núm", "num", "tel",
     "art", "inc", "pág", "pag", "págs", "vol", "fl", "fls", "ref", "dept", "depto"}
)
# Abbreviations that may also end a sentence: "." ends a piece only before a capital letter.
INLINE_ABBREVIATIONS = frozenset(
    {"etc", "p.ex", "ex", "obs", "aprox", "máx", "mín", "max", "min", "qtd", "cia", "ltda",
     "s.a", "s/a", "jr", "kg", "km", "hr", "hrs", "h", "seg", "ter", "qua", "qui", "sex", "sáb",
     "dom", "jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"}
)
# " e " after a number word (or "reais", before the centavos) joins the parts of an amount
# ("cento e vinte", "dois mil e vinte e seis", "dez reais e cinquenta centavos"); a cut there
# would split the number across two pieces of speech.
AMOUNT_WORDS = NUMBER_WORDS | {"real", "reais"}
_TERMINATORS = ".!?…"
_CLOSERS = "\"'”’)]»"
_OPENERS = "\"'“‘([«"
_CLAUSE_WORDS = ("e", "mas")


class SentenceSplitter:
    """Cut one reply's text stream into pieces for TTS. One instance per reply (or `reset()`)."""

    def __init__(self, settings: SplitterSettings | None = None) -> None:
        self._settings = settings or SplitterSettings()
        self._buffer = ""
        self._pieces_out = 0
        self._chars_out = 0

    @property
    def pending(self) -> str:
        """Text received but not yet handed out."""
        return self._buffer

    def reset(self) -> None:
        """Start a new reply: drop pending text; the next piece may be an early clause again."""
        self._buffer = ""
        self._pieces_out = 0
        self._chars_out = 0

    def feed(self, text_delta: str) -> list[str]:
        """Add a delta; return the pieces that are now certainly complete."""
        self._buffer += text_delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End of the reply: return whatever is left (at most one piece after the rules)."""
        pieces = self._drain(final=True)
        rest = self._buffer.strip()
        self._buffer = ""
        if _speakable(rest):
            pieces.append(rest)
            self._count_out(rest)
        return pieces

    # ------------------------------------------------------------------ scanning

    def _drain(self, final: bool) -> list[str]:
        pieces: list[str] = []
        while True:
            cut = self._find_cut(self._buffer, final)
            if cut is None:
                break
            end, resume = cut
            piece = self._buffer[:end].strip()
            self._buffer = self._buffer[resume:].lstrip()
            if _speakable(piece):
                pieces.append(piece)
                self._count_out(piece)
        return pieces

    def _find_cut(self, buf: str, final: bool) -> tuple[int, int] | None:
        """(end of piece, where the rest starts), or None when no cut is certain yet."""
        clause_cuts = self._settings.first_clause_min_words > 0
        n = len(buf)
        limit = self._piece_limit()
        said = _SpokenLength(buf)
        i = 0
        # Only cuts inside the limit (and its slack) count: text arriving in one delta must
        # not make a longer piece than text arriving word by word. Limits are in characters
        # said: an amount ("R$ 89,90", said in words) counts as long as it sounds.
        while i < n and said.at(i) < limit + _CUT_SLACK:
            c = buf[i]
            if c in _TERMINATORS:
                decision, k = self._sentence_end(buf, i, final)
                if decision is None:
                    return None  # need more text to decide
                if decision:
                    return k, k
                i = k
                continue
            if c == "\n" and buf[:i].strip():
                return i, i + 1
            if c == ";" and i + 1 < n and buf[i + 1].isspace():
                return i + 1, i + 1
            # The first piece may end at a clause; a later one too once it is as long as
            # everything said before it (its TTS would not be done before those have played).
            if clause_cuts and (self._pieces_out == 0 or i >= self._chars_out):
                clause = self._clause_end(buf, i, final)
                if clause == "wait":
                    return None
                if clause is not None:
                    return clause
            i += 1
        return self._forced_cut(buf, limit, said)

    def _sentence_end(self, buf: str, i: int, final: bool) -> tuple[bool | None, int]:
        """Is the terminator run at ``i`` a sentence end? Returns (yes/no/undecided, index after)."""
        n = len(buf)
        j = i
        while j < n and buf[j] in _TERMINATORS:
            j += 1
        k = j
        while k < n and buf[k] in _CLOSERS:
            k += 1
        if k == n:
            return (True if final else None), k
        if not buf[k].isspace():
            return False, k  # "1.234", "n.º", "p.ex", "?!" inside a token
        run = buf[i:j]
        if "?" in run or "!" in run:
            return True, k
        if run == ".":
            token = _token_before(buf, i)
            lowered = token.lower()
            if lowered in TITLE_ABBREVIATIONS or (len(token) == 1 and token.isupper()):
                return False, k
            if not (lowered in INLINE_ABBREVIATIONS or token[-1:].isdigit()):
                return True, k
        # Ellipsis, inline abbreviation or number: it ends a sentence only before a capital.
        nxt = _next_visible(buf, k)
        if nxt is None:
            return (True if final else None), k
        return buf[nxt].isupper(), k

    def _clause_end(self, buf: str, i: int, final: bool) -> tuple[int, int] | str | None:
        """Early cut of the first piece at a comma or before " e " / " mas "."""
        n = len(buf)
        min_words = self._settings.first_clause_min_words
        c = buf[i]
        if c == ",":
            if len(buf[:i].split()) < min_words:
                return None
            if i + 1 >= n:
                return None if final else "wait"
            if not buf[i + 1].isspace():
                return None  # "1.234,56"
            nxt = _next_visible(buf, i + 1)
            if nxt is None:
                return None if final else "wait"
            if buf[nxt].isdigit() and buf[i - 1 : i].isdigit():
                return None  # "123, 456": a number being read out
            return i + 1, i + 1
        if c.isspace() and len(buf[:i].split()) >= min_words:
            for word in _CLAUSE_WORDS:
                end = i + 1 + len(word)
                if buf[i + 1 : end].lower() != word:
                    continue
                if end >= n:
                    return None if final else "wait"  # "e" or "ela"?
                if not buf[end].isspace():
                    continue
                before = _token_before(buf, i)
                if before[-1:].isdigit() or before.lower() in AMOUNT_WORDS:
                    return None  # "10 e 20", "cento e vinte": numbers stay whole
                return i, i + 1
        return None

    def _count_out(self, piece: str) -> None:
        self._pieces_out += 1
        self._chars_out += len(piece)

    def _piece_limit(self) -> int:
        """The first piece is short (the caller waits for its whole TTS); a later one may be as
        long as everything handed out before it, so it is synthesised (TTS faster than real
        time) while those play and the line does not go quiet between pieces; at least twice
        the first limit once that much was handed out."""
        first_limit = self._settings.first_piece_max_chars
        if first_limit <= 0:
            return self._settings.max_piece_chars
        if self._pieces_out == 0 or self._chars_out < first_limit:
            # After a short opener ("Claro.", "Olá, Carlos!") the next piece is held to the
            # first limit too: the opener plays in under a second, and a full-length second
            # piece (its tokens, then its TTS) left the line quiet for 2-3 s after it.
            return min(first_limit, self._settings.max_piece_chars)
        return min(self._settings.max_piece_chars, max(2 * first_limit, self._chars_out))

    @staticmethod
    def _forced_cut(buf: str, limit: int, said: _SpokenLength) -> tuple[int, int] | None:
        """A run-on longer than `limit` is cut at its last comma, else its last space; not
        before it runs `_CUT_SLACK` characters past the limit, so a sentence that ends just
        after the limit goes whole instead of leaving a word behind ("para o | senhor.")."""
        if said.at(len(buf)) <= limit + _CUT_SLACK:
            return None
        limit = said.outside_amounts(said.written_within(limit))
        head = buf[:limit]
        comma = head.rfind(", ")
        if comma > limit // 3:
            return comma + 1, comma + 1
        space = head.rfind(" ")
        while space > 0 and _binds_to_next(buf, space):
            space = head.rfind(" ", 0, space)
        if space > 0:
            return space, space
        after = said.amount_end_after(limit)  # a piece that starts with an amount keeps it whole
        return (after, after) if after else (limit, limit)


_CUT_SLACK = 10


class _SpokenLength:
    """Written index -> characters the voice will say up to there (amounts spelt out)."""

    def __init__(self, buf: str) -> None:
        self._growth = spoken_growth(buf) if ("$" in buf or "%" in buf) else []
        self._spans = amount_spans(buf) if self._growth else []

    def outside_amounts(self, i: int) -> int:
        """``i``, or the start of the amount it falls inside (never cut "R$ 89,9|0")."""
        return next((start for start, end in self._spans if start < i < end), i)

    def amount_end_after(self, i: int) -> int:
        """The end of an amount that starts at or before ``i`` and ends after it, else 0."""
        return next((end for start, end in self._spans if start <= i < end), 0)

    def at(self, i: int) -> int:
        return i + sum(extra for end, extra in self._growth if end <= i)

    def written_within(self, spoken: int) -> int:
        """The longest written prefix whose spoken length fits in ``spoken``."""
        i = spoken
        while i > 1 and self.at(i) > spoken:
            i -= 1
        return i


def _binds_to_next(buf: str, space: int) -> bool:
    """A space a piece must not end at: after a currency sign ("R$ | 89,90") or between two
    parts of one number ("1 | 234"). The voice is given each piece on its own, and "R$"
    alone was read as a letter ("de real, 89,90")."""
    before = _token_before(buf, space)
    after = buf[space + 1 : space + 2]
    return before.upper().endswith("R$") or (before[-1:].isdigit() and after.isdigit())


def _token_before(buf: str, i: int) -> str:
    """The word that ends right before index ``i`` (without opening quotes/parentheses)."""
    start = i
    while start > 0 and not buf[start - 1].isspace():
        start -= 1
    return buf[start:i].lstrip(_OPENERS)


def _next_visible(buf: str, k: int) -> int | None:
    """Index of the first character after ``k`` that is neither space nor an opening quote."""
    n = len(buf)
    while k < n and (buf[k].isspace() or buf[k] in _OPENERS):
        k += 1
    return k if k < n else None


def _speakable(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)
