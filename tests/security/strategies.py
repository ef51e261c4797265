"""Hypothesis strategies for text and bytes that come from the network.

Wire text is mostly ASCII with a few characters that trip naive parsers: digits that
`str.isdigit()` accepts and `int()` refuses ("²"), digits of other scripts ("٣"), float
spellings ("inf", "nan", "1e400"), separators, NULs, lone surrogates (pjsua2 hands
non-UTF-8 bytes to Python as surrogates) and long runs of digits.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

TRICKY_TOKENS = [
    "", "0", "1", "-1", "20", "20.0", "65535", "65536", "127", "128", "8000", "4294967296",
    "9" * 30, "²", "①", "٣", "１", "inf", "nan", "1e400", "1_000", " 5", "5 ", "0x10", "+3",
    "\x00", "\udcff", "\t", "/", ":", ";", "=", ",", "<", ">", "\"", "@", "[", "]", "\u2028",
]

tricky_token = st.sampled_from(TRICKY_TOKENS)
wire_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=32, max_codepoint=126),
        st.sampled_from(["\r", "\n", "\t", "\x00", "²", "٣", "\udcff", "é", "\u2028"]),
    ),
    max_size=40,
)
token = st.one_of(tricky_token, wire_text)


def _replace_field(line: str, index: int, new: str) -> str:
    """`line` with its index-th space-, colon- or slash-separated field replaced by `new`."""
    fields = re.split(r"([ :/])", line)
    values = list(range(0, len(fields), 2))
    fields[values[index % len(values)]] = new
    return "".join(fields)


def mutated_lines(valid: list[str]) -> st.SearchStrategy[list[str]]:
    """The lines of a valid message, each kept, dropped, doubled, extended or with one
    field replaced by a tricky token; sometimes a line of random text is added."""

    def mutate(line: str) -> st.SearchStrategy[list[str]]:
        return st.one_of(
            st.just([line]),
            st.just([line]),
            st.just([]),
            st.just([line, line]),
            st.tuples(st.integers(0, 30), token).map(lambda it: [_replace_field(line, it[0], it[1])]),
            token.map(lambda t: [line + t]),
            wire_text.map(lambda t: [line, t]),
        )

    return st.tuples(*[mutate(line) for line in valid]).map(lambda groups: [x for g in groups for x in g])
