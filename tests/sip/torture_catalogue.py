"""SIP torture catalogue: hostile and odd SIP traffic for Theo's gateway, and its runner.

This module owns (1) ``catalogue()``: the fixed list of ``TortureCase`` flows (start lines,
headers missing / duplicated / oversized / garbled, bodies, SDP, UDP sizes, requests for
dialogs that do not exist, never-ACKed INVITEs, CANCEL races, methods Theo does not
serve, OPTIONS, stray responses, garbage and TCP framing), each with the final status
codes acceptable for its first request; (2) ``run_case`` / ``run_catalogue``: a small
raw-socket UAC that sends a case, collects every response, ends what it started and
judges the outcome; (3) ``KNOWN_FAILURES``: cases that show a real gateway bug, kept in
the catalogue and skipped by the assertions (``NOT_IN_PROCESS`` ones must not even be
sent to an in-process gateway).

How a case travels: ``{LOCAL}`` in the bytes becomes the socket's own "host:port" and
every identifier (branch, tags, Call-ID) carries the case's ``token``, which the runner
suffixes per run so that a rerun against a live gateway is a new transaction. A final
INVITE response is ACKed when it is non-2xx; a 2xx is ACKed and ended with BYE unless
``ack_2xx`` is False (never-ACKed flows: the gateway must release the call itself). Note
that pjsua keeps such a call's slot until its own 2xx retransmissions stop (~32 s, then
a BYE of its own): run ``ack_2xx=False`` cases last, at most ``max_calls`` per gateway.
An unexpected 503 (full shard) is retried after its Retry-After, as a PBX would.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Literal

import msgspec

NO_RESPONSE = 0  # in ``expect``: no final response is an acceptable outcome
LOCAL = "{LOCAL}"
PJSIP_MAX_PKT_LEN = 4000  # the wheel's compile-time receive buffer (see invite_screen)

_CUT_OPTIONS = (
    "200 OK to an OPTIONS datagram pjsip cut to its 4000-byte buffer (end of headers lost): "
    "pjsip answers a truncated request; Theo's 513 only covers INVITE. Harmless for OPTIONS"
)
# Cases that show a real gateway bug: name -> what happens. Skipped by the assertions.
KNOWN_FAILURES: dict[str, str] = {
    "start_lowercase_options": "200 OK for method 'options': RFC 3261 7.1 method names are case-sensitive; "
    "pjsip_method_init_np matches them with pj_stricmp (harmless; 'invite' gets Theo's 501)",
    "cseq_method_mismatch": "500 Server Internal Error (from pjsua, before onIncomingCall) to an INVITE "
    "with CSeq '1 OPTIONS'; RFC 4475 'mismatch01' asks 400",
    "cseq_method_mismatch_options": "200 OK to an OPTIONS with CSeq '1 INVITE'; RFC 4475 'mismatch01' asks 400",
    **{f"udp_options_{n}_bytes": _CUT_OPTIONS for n in (4000, 4001, 4096, 8000, 16000, 60000)},
    "options_require_unknown": "200 OK to OPTIONS with Require: x-torture: RFC 3261 8.2.2.3 MUST 420 "
    "(pjsua's OPTIONS handler ignores Require; INVITE gets its 420)",
    "tcp_invite_sdp_4_5kb": "no response to a 4.5 KB INVITE over TCP: pjsip's 4000-byte buffer bounds TCP "
    "too, so the PBX that follows Theo's 513 advice (RFC 3261 18.1.1: use TCP) gets silence",
}
# The subset whose bytes abort the gateway process (pjsip assertion): never send in-process.
NOT_IN_PROCESS: frozenset[str] = frozenset()


class TortureCase(msgspec.Struct, frozen=True):
    name: str
    transport: Literal["udp", "tcp"]
    messages: list[bytes]  # sent in order on one socket / connection, ``pause_s`` apart
    # Acceptable FINAL codes for the first request; NO_RESPONSE in it: silence is fine too.
    # None: anything goes (silence included) except a 2xx when expect_no_2xx.
    expect: frozenset[int] | None
    expect_no_2xx: bool = True
    category: str = ""  # "+"-joined, e.g. "body+never_acked"
    pause_s: float = 0.05
    ack_2xx: bool = True  # False: leave an answered INVITE unACKed (the gateway releases it)
    token: str = ""  # in every identifier; suffixed by the runner per run
    source: str = "127.0.0.1"  # address the runner binds
    wire_size: int | None = None  # exact bytes of messages[0] on the wire (X-Pad adjusted)
    half_close: bool = False  # TCP: shut our sending side after the last message

    @property
    def categories(self) -> list[str]:
        return self.category.split("+")


class CaseResult(msgspec.Struct):
    name: str
    codes: list[int]  # every response status received, in order
    final: int | None  # first final response to the first request
    ok: bool
    why: str
    requests: list[str] = msgspec.field(default_factory=list)  # start lines the gateway sent us
    trace: list[str] = msgspec.field(default_factory=list)  # "> sent" / "< received" summaries


# ---------------------------------------------------------------------------- building


_SDP = [
    "v=0",
    "o=torture 1 1 IN IP4 127.0.0.1",
    "s=torture",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
]
_HEAD = _SDP[:5]  # v= o= s= c= t=


def sdp(lines: Iterable[str] | None = None, *, eol: str = "\r\n", **replace: str) -> bytes:
    """An SDP body; ``replace`` swaps the first line of a key (``c="c=IN IP6 ::1"``) or,
    given "", drops every line of it (``v=""``)."""
    out = []
    for line in _SDP if lines is None else lines:
        key = line[:1]
        if key in replace:
            if replace[key]:
                out.append(replace.pop(key))
            continue
        out.append(line)
    return (eol.join(out) + eol).encode()


def raw(data: bytes) -> str:
    """Bytes (NUL, non-UTF-8) as a str that ``_Req.render`` turns back into those bytes."""
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Req:
    """A request under construction: start line, header lines, body (copy-on-change)."""

    def __init__(self, start: str, lines: list[str], body: bytes = b"") -> None:
        self.start, self.lines, self.body = start, lines, body

    @staticmethod
    def _is(line: str, name: str) -> bool:
        return line.split(":", 1)[0].strip().lower() == name.lower()

    def drop(self, name: str) -> _Req:
        return _Req(self.start, [ln for ln in self.lines if not self._is(ln, name)], self.body)

    def set(self, name: str, value: str) -> _Req:
        """Replace the header's first line (the line keeps its place)."""
        lines = list(self.lines)
        index = next(i for i, ln in enumerate(lines) if self._is(ln, name))
        lines[index] = f"{name}: {value}"
        return _Req(self.start, lines, self.body)

    def get(self, name: str) -> str:
        return next(ln for ln in self.lines if self._is(ln, name)).split(":", 1)[1].strip()

    def add(self, line: str, *, before: str = "Content-Length") -> _Req:
        """Insert a raw header line before ``before`` (end of headers if absent)."""
        lines = list(self.lines)
        index = next((i for i, ln in enumerate(lines) if self._is(ln, before)), len(lines))
        lines.insert(index, line)
        return _Req(self.start, lines, self.body)

    def dup(self, name: str, value: str | None = None) -> _Req:
        """A second line of header ``name`` right after the first (same value by default)."""
        first = next(i for i, ln in enumerate(self.lines) if self._is(ln, name))
        lines = list(self.lines)
        lines.insert(first + 1, f"{name}: {value if value is not None else self.get(name)}")
        return _Req(self.start, lines, self.body)

    def with_start(self, start: str) -> _Req:
        return _Req(start, self.lines, self.body)

    def with_body(self, body: bytes, content_type: str | None = "application/sdp") -> _Req:
        req = _Req(self.start, self.lines, body).drop("Content-Type")
        return req.add(f"Content-Type: {content_type}") if content_type else req

    def render(self, eol: str = "\r\n") -> bytes:
        lines = [ln.replace("{LEN}", str(len(self.body))) for ln in self.lines]
        return _encode(eol.join([self.start, *lines]) + eol + eol) + self.body


class _Builder:
    """Well-formed requests toward one gateway; every identifier derives from ``t``."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self.host, self.port, self.source = host, port, source
        self.target = f"sip:theo@{host}:{port}"

    def req(
        self, t: str, method: str, *, cseq: int = 1, to_tag: str = "", tcp: bool = False,
        body: bytes = b"", content_type: str = "application/sdp", uri: str = "",
    ) -> _Req:
        proto = "TCP" if tcp else "UDP"
        lines = [
            f"Via: SIP/2.0/{proto} {LOCAL};branch=z9hG4bK-{t}-{cseq}{method[:3].lower()};rport",
            "Max-Forwards: 70",
            f'From: "Torture" <sip:torture@{self.source}>;tag={t}f',
            f"To: <{self.target}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {t}@torture.invalid",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:torture@{LOCAL}" + (";transport=tcp>" if tcp else ">"),
            "User-Agent: theo-torture",
            "Content-Length: {LEN}",
        ]
        req = _Req(f"{method} {uri or self.target} SIP/2.0", lines)
        return req.with_body(body, content_type) if body else req

    def invite(self, t: str, body: bytes | None = None, **kw) -> _Req:
        return self.req(t, "INVITE", body=sdp() if body is None else body, **kw)

    def cancel_for(self, t: str, invite: _Req) -> _Req:
        """The CANCEL of ``invite``: same branch, URI, From, To, Call-ID, CSeq number."""
        number = invite.get("CSeq").split()[0]
        lines = [ln for ln in invite.lines if _Req._is(ln, "Via") or _Req._is(ln, "From")
                 or _Req._is(ln, "To") or _Req._is(ln, "Call-ID")]
        lines += ["Max-Forwards: 70", f"CSeq: {number} CANCEL", "Content-Length: 0"]
        return _Req("CANCEL" + invite.start[len("INVITE"):], lines)


def _token(name: str) -> str:
    return "tt" + hashlib.sha1(name.encode()).hexdigest()[:10]


def _case(
    name: str, category: str, expect: Iterable[int] | None,
    build: Callable[[str], list[bytes] | bytes], **options,
) -> TortureCase:
    token = _token(name)
    built = build(token)
    messages = [built] if isinstance(built, bytes) else built
    return TortureCase(
        name=name, transport=options.pop("transport", "udp"), messages=messages,
        expect=None if expect is None else frozenset(expect), category=category,
        token=token, **options,
    )


def _pad_to(req: _Req, size: int) -> bytes:
    """``req`` with an X-Pad header making it ``size`` bytes as written here (the runner
    re-fits it after its substitutions through ``TortureCase.wire_size``)."""
    base = req.add("X-Pad: ").render()
    return req.add("X-Pad: " + "a" * max(0, size - len(base))).render()


# ---------------------------------------------------------------------------- categories

_BAD = {400, NO_RESPONSE}  # unparseable: pjsip answers 400 when it can, else drops it
_ANSWER = {200}  # a well-formed INVITE Theo answers (ACKed and ended with BYE by the runner)
_TOO_BIG = {513, 400, NO_RESPONSE}  # cut by pjsip's 4000-byte buffer


def _start_line_cases(b: _Builder) -> list[TortureCase]:
    cat, target = "start_line", b.target
    inv = lambda t: b.invite(t)  # noqa: E731
    lenient = dict(expect_no_2xx=False)
    return [
        _case("start_bad_method_token", cat, _BAD | {405, 501},
              lambda t: inv(t).with_start(f"INV@ITE {target} SIP/2.0").render()),
        _case("start_method_with_slash", cat, _BAD | {405, 501},
              lambda t: inv(t).with_start(f"IN/VITE {target} SIP/2.0").render()),
        _case("start_lowercase_invite", cat, {405, 501, 400, NO_RESPONSE},
              lambda t: inv(t).with_start(f"invite {target} SIP/2.0").render()),
        _case("start_lowercase_options", cat, {405, 501, 400, NO_RESPONSE},
              lambda t: b.req(t, "OPTIONS").with_start(f"options {target} SIP/2.0").render()),
        _case("start_missing_version", cat, _BAD | {505},
              lambda t: inv(t).with_start(f"INVITE {target}").render()),
        _case("start_sip_3_0", cat, _BAD | {505},
              lambda t: inv(t).with_start(f"INVITE {target} SIP/3.0").render()),
        _case("start_sip_1_0", cat, _BAD | {505},
              lambda t: inv(t).with_start(f"INVITE {target} SIP/1.0").render()),
        _case("start_version_lowercase", cat, _ANSWER | _BAD | {505},
              lambda t: inv(t).with_start(f"INVITE {target} sip/2.0").render(), **lenient),
        _case("start_garbage_uri", cat, _BAD | {416},
              lambda t: inv(t).with_start("INVITE ::<>:: SIP/2.0").render()),
        _case("start_uri_without_scheme", cat, _BAD | {416},
              lambda t: inv(t).with_start(f"INVITE theo@{b.host}:{b.port} SIP/2.0").render()),
        _case("start_uri_http_scheme", cat, _BAD | {416},
              lambda t: inv(t).with_start(f"INVITE http://{b.host}:{b.port}/ SIP/2.0").render()),
        _case("start_tel_uri", cat, _ANSWER | {400, 404, 416, 484},
              lambda t: inv(t).with_start("INVITE tel:+5511999990000 SIP/2.0").render(), **lenient),
        _case("start_sips_uri_over_udp", cat, _ANSWER | {400, 416, 480},
              lambda t: inv(t).with_start(f"INVITE sips:theo@{b.host}:{b.port} SIP/2.0").render(),
              **lenient),
        _case("start_extra_spaces", cat, _ANSWER | _BAD,
              lambda t: inv(t).with_start(f"INVITE  {target}   SIP/2.0").render(), **lenient),
        _case("start_tabs", cat, _ANSWER | _BAD,
              lambda t: inv(t).with_start(f"INVITE\t{target}\tSIP/2.0").render(), **lenient),
        _case("start_leading_space", cat, _ANSWER | _BAD,
              lambda t: inv(t).with_start(f" INVITE {target} SIP/2.0").render(), **lenient),
        _case("start_trailing_space", cat, _ANSWER | _BAD,
              lambda t: inv(t).with_start(f"INVITE {target} SIP/2.0 ").render(), **lenient),
        _case("start_empty_method", cat, _BAD,
              lambda t: inv(t).with_start(f" {target} SIP/2.0").render()),
        _case("start_uri_2kb_param", cat, _ANSWER | _BAD | {414},
              lambda t: inv(t).with_start(f"INVITE {target};x={'a' * 2048} SIP/2.0").render(),
              **lenient),
        _case("start_uri_2kb_user", cat, _ANSWER | _BAD | {404, 414},
              lambda t: inv(t).with_start(f"INVITE sip:{'9' * 2048}@{b.host}:{b.port} SIP/2.0").render(),
              **lenient),
        _case("start_options_uri_2kb", cat, _ANSWER | _BAD | {414},
              lambda t: b.req(t, "OPTIONS").with_start(f"OPTIONS {target};x={'b' * 2048} SIP/2.0").render(),
              **lenient),
        _case("start_other_user", cat, _ANSWER | {404},
              lambda t: inv(t).with_start(f"INVITE sip:nobody@{b.host}:{b.port} SIP/2.0").render(),
              **lenient),
        _case("start_lf_only_message", cat, _ANSWER | _BAD,
              lambda t: inv(t, ).with_body(sdp(eol="\n")).render(eol="\n"), **lenient),
        _case("start_cr_only_message", cat, _BAD,
              lambda t: inv(t).with_body(sdp(eol="\r")).render(eol="\r")),
    ]


_MANDATORY = ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact"]


def _header_missing_cases(b: _Builder) -> list[TortureCase]:
    cat = "header_missing"
    # Max-Forwards: a UAS need not insist (RFC 3261 8.2); Contact is optional in OPTIONS.
    invite_expect = {name: _BAD for name in _MANDATORY} | {"Max-Forwards": _ANSWER | _BAD | {483}}
    cases = [
        _case(f"missing_{name.lower()}_invite", cat, expect,
              lambda t, n=name: b.invite(t).drop(n).render(), expect_no_2xx=name != "Max-Forwards")
        for name, expect in invite_expect.items()
    ]
    cases += [
        _case(f"missing_{name.lower()}_options", cat,
              _ANSWER | _BAD | {483} if name in ("Max-Forwards", "Contact") else _BAD,
              lambda t, n=name: b.req(t, "OPTIONS").drop(n).render(),
              expect_no_2xx=name not in ("Max-Forwards", "Contact"))
        for name in _MANDATORY
    ]
    cases += [
        _case("missing_content_length_udp", cat, _ANSWER | _BAD,
              lambda t: b.invite(t).drop("Content-Length").render(), expect_no_2xx=False),
        _case("missing_from_tag", cat, _ANSWER | _BAD,
              lambda t: b.invite(t).set("From", "<sip:torture@127.0.0.1>").render(), expect_no_2xx=False),
        _case("missing_all_headers", cat, _BAD,
              lambda t: f"INVITE {b.target} SIP/2.0\r\n\r\n".encode()),
        _case("missing_to_uri", cat, _BAD, lambda t: b.invite(t).set("To", "").render()),
        _case("missing_from_uri", cat, _BAD, lambda t: b.invite(t).set("From", f";tag={t}f").render()),
        _case("missing_call_id_value", cat, _BAD, lambda t: b.invite(t).set("Call-ID", "").render()),
        _case("missing_cseq_method", cat, _BAD, lambda t: b.invite(t).set("CSeq", "1").render()),
    ]
    return cases


def _header_duplicate_cases(b: _Builder) -> list[TortureCase]:
    cat = "header_duplicate"
    # An identical second line: malformed for singletons (RFC 3261 7.3.1) but unambiguous,
    # so answering is as fine as a 400.
    same = ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact", "Content-Length", "Content-Type"]
    cases = [
        _case(f"dup_{name.lower()}_same", cat, _ANSWER | _BAD, lambda t, n=name: b.invite(t).dup(n).render(),
              expect_no_2xx=False)
        for name in same
    ]
    # RFC 4475 torture test 'multi01': several values in single-value fields -> 400.
    other = {
        "From": lambda t: f"<sip:other@127.0.0.1>;tag={t}g",
        "To": lambda t: "<sip:other@127.0.0.1>",
        "Call-ID": lambda t: f"{t}-other@torture.invalid",
        "CSeq": lambda t: "2 INVITE",
        "Max-Forwards": lambda t: "5",
        "Content-Length": lambda t: "3",
        "Content-Type": lambda t: "text/plain",
    }
    cases += [
        _case(f"dup_{name.lower()}_conflicting", cat, _BAD | {415},
              lambda t, n=name, v=value: b.invite(t).dup(n, v(t)).render())
        for name, value in other.items()
    ]
    cases.append(_case("dup_via_second_hop", cat, _ANSWER | _BAD,
                       lambda t: b.invite(t).dup("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{t}-p")
                       .render(), expect_no_2xx=False))
    cases.append(_case("dup_compact_and_full_call_id", cat, _BAD,
                       lambda t: b.invite(t).add(f"i: {t}-compact@torture.invalid").render()))
    return cases


_OVERSIZE = {"1kb": 1000, "3_9kb": 3900, "4_5kb": 4500, "8kb": 8000}


def _oversized(req: _Req, name: str, size: int, t: str) -> bytes:
    fill = "a" * size
    values = {
        "Via": f"SIP/2.0/UDP {LOCAL};branch=z9hG4bK-{t}-1inv;rport;x={fill}",
        "From": f'"{fill}" <sip:torture@127.0.0.1>;tag={t}f',
        "To": f"<sip:theo@127.0.0.1;x={fill}>",
        "Call-ID": f"{t}{fill}@torture.invalid",
        "CSeq": f"{'1' * size} INVITE",
        "Max-Forwards": "7" * size,
        "Contact": f"<sip:torture@{LOCAL};x={fill}>",
        "Subject": fill,
    }
    if name == "Subject":
        return req.add(f"Subject: {fill}").render()
    return req.set(name, values[name]).render()


def _header_oversized_cases(b: _Builder) -> list[TortureCase]:
    cat = "header_oversized"
    cases = []
    for name in [*_MANDATORY, "Subject"]:
        for label, size in _OVERSIZE.items():
            fits = size < 3000  # the whole INVITE stays under pjsip's 4000-byte buffer
            numeric = name == "CSeq"  # RFC 3261 8.1.1.5: below 2**31 (Max-Forwards is 1*DIGIT)
            expect = _TOO_BIG if not fits else (_BAD | {483} if numeric else _ANSWER | _BAD)
            cases.append(_case(
                f"oversized_{name.lower()}_{label}", cat, expect,
                lambda t, n=name, s=size: _oversized(b.invite(t), n, s, t),
                expect_no_2xx=not fits or numeric,
            ))
    return cases


def _garbled_header_cases(b: _Builder) -> list[TortureCase]:
    cat = "header_garbled"
    inv, opt = b.invite, (lambda t: b.req(t, "OPTIONS"))
    lenient = dict(expect_no_2xx=False)
    nul, latin = raw(b"\x00"), raw(b"\xff\xfe\xc3\x28")
    return [
        _case("cseq_not_a_number", cat, _BAD, lambda t: inv(t).set("CSeq", "abc INVITE").render()),
        _case("cseq_negative", cat, _BAD, lambda t: inv(t).set("CSeq", "-1 INVITE").render()),
        _case("cseq_2_pow_32", cat, _BAD, lambda t: inv(t).set("CSeq", "4294967296 INVITE").render()),
        _case("cseq_2_pow_31", cat, _BAD, lambda t: inv(t).set("CSeq", "2147483648 INVITE").render()),
        _case("cseq_method_mismatch", cat, _BAD, lambda t: inv(t).set("CSeq", "1 OPTIONS").render()),
        _case("cseq_method_mismatch_options", cat, _BAD,
              lambda t: opt(t).set("CSeq", "1 INVITE").render()),
        _case("cseq_extra_token", cat, _BAD, lambda t: inv(t).set("CSeq", "1 INVITE extra").render()),
        _case("max_forwards_negative", cat, _BAD | {483}, lambda t: inv(t).set("Max-Forwards", "-1").render()),
        _case("max_forwards_zero_invite", cat, {483}, lambda t: inv(t).set("Max-Forwards", "0").render()),
        # RFC 3261 section 11: an OPTIONS with Max-Forwards 0 is answered by the next hop.
        _case("max_forwards_zero_options", cat, {200, 483},
              lambda t: opt(t).set("Max-Forwards", "0").render(), **lenient),
        _case("max_forwards_300", cat, _ANSWER | _BAD, lambda t: inv(t).set("Max-Forwards", "300").render(),
              **lenient),
        _case("max_forwards_text", cat, _BAD | {483}, lambda t: inv(t).set("Max-Forwards", "many").render()),
        _case("via_without_branch", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP {LOCAL};rport").render(), **lenient),
        _case("via_branch_without_cookie", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP {LOCAL};branch={t};rport").render(), **lenient),
        _case("via_ipv6_sent_by", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP [::1]:5060;branch=z9hG4bK-{t}-6;rport").render(),
              **lenient),
        _case("via_ipv6_unbracketed", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP ::1:5060;branch=z9hG4bK-{t}-6;rport").render(),
              **lenient),
        _case("via_unknown_transport", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/FOO {LOCAL};branch=z9hG4bK-{t}-f;rport").render(),
              **lenient),
        _case("via_sip_3_0", cat, _BAD | {505},
              lambda t: inv(t).set("Via", f"SIP/3.0/UDP {LOCAL};branch=z9hG4bK-{t}-3;rport").render()),
        _case("via_rport_garbage", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP {LOCAL};branch=z9hG4bK-{t}-r;rport=abc").render(),
              **lenient),
        _case("via_no_sent_by", cat, _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP ;branch=z9hG4bK-{t}-n").render()),
        _case("folded_subject", cat, _ANSWER | _BAD,
              lambda t: inv(t).add("Subject: a folded\r\n  header\r\n\tline").render(), **lenient),
        _case("folded_from", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("From", f'"Torture"\r\n <sip:torture@127.0.0.1>;tag={t}f').render(),
              **lenient),
        _case("folded_via", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Via", f"SIP/2.0/UDP {LOCAL}\r\n ;branch=z9hG4bK-{t}-1inv;rport").render(),
              **lenient),
        _case("header_without_colon", cat, _ANSWER | _BAD,
              lambda t: inv(t).add("Subject this has no colon").render(), **lenient),
        _case("header_name_with_space", cat, _ANSWER | _BAD,
              lambda t: inv(t).add("X Bad Name: v").render(), **lenient),
        _case("header_space_before_colon", cat, _ANSWER | _BAD,
              lambda t: inv(t).render().replace(b"Call-ID:", b"Call-ID   :"), **lenient),
        _case("header_names_mixed_case", cat, _ANSWER | _BAD,
              lambda t: inv(t).render().replace(b"Call-ID:", b"cAlL-iD:").replace(b"CSeq:", b"cseq:"),
              **lenient),
        _case("header_empty_value", cat, _ANSWER | _BAD, lambda t: inv(t).add("Subject:").render(), **lenient),
        _case("nul_in_subject", cat, _ANSWER | _BAD, lambda t: inv(t).add(f"Subject: a{nul}b").render(),
              **lenient),
        _case("nul_in_call_id", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Call-ID", f"{t}{nul}x@torture.invalid").render(), **lenient),
        _case("nul_in_start_line", cat, _BAD,
              lambda t: inv(t).with_start(f"INVITE {b.target}{nul} SIP/2.0").render()),
        _case("non_utf8_display_name", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("From", f'"{latin}" <sip:torture@127.0.0.1>;tag={t}f').render(), **lenient),
        _case("non_utf8_call_id", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Call-ID", f"{t}{latin}@torture.invalid").render(), **lenient),
        _case("non_utf8_header_name", cat, _ANSWER | _BAD, lambda t: inv(t).add(f"X-{latin}: v").render(),
              **lenient),
        _case("compact_forms_all", cat, _ANSWER, lambda t: _compact(inv(t)).render(), **lenient),
        _case("compact_forms_options", cat, {200}, lambda t: _compact(opt(t)).render(), **lenient),
        _case("require_unknown_extension", cat, {420}, lambda t: inv(t).add("Require: x-torture").render()),
        _case("proxy_require_unknown", cat, _ANSWER | {420},
              lambda t: inv(t).add("Proxy-Require: x-torture").render(), **lenient),
        _case("to_uri_garbage", cat, _BAD, lambda t: inv(t).set("To", "<:::>").render()),
        _case("from_uri_garbage", cat, _BAD, lambda t: inv(t).set("From", f"<:::>;tag={t}f").render()),
        _case("contact_star_in_invite", cat, _BAD, lambda t: inv(t).set("Contact", "*").render()),
        _case("contact_garbage", cat, _BAD, lambda t: inv(t).set("Contact", "<:::>").render()),
        _case("session_expires_garbage", cat, _ANSWER | _BAD | {422},
              lambda t: inv(t).add("Session-Expires: soon;refresher=uac").render(), **lenient),
        _case("session_expires_below_min_se", cat, {422},
              lambda t: inv(t).add("Supported: timer").add("Session-Expires: 10").render()),
        _case("two_hundred_small_headers", cat, _ANSWER | _BAD,
              lambda t: _many_headers(inv(t), 200).render(), **lenient),
    ]


def _compact(req: _Req) -> _Req:
    names = {"Via": "v", "From": "f", "To": "t", "Call-ID": "i", "Contact": "m",
             "Content-Type": "c", "Content-Length": "l"}
    lines = []
    for line in req.lines:
        name, sep, value = line.partition(":")
        lines.append(f"{names.get(name, name)}{sep}{value}")
    return _Req(req.start, lines, req.body)


def _many_headers(req: _Req, count: int) -> _Req:
    for i in range(count):
        req = req.add(f"X-T{i}: {i}")
    return req


def _body_cases(b: _Builder) -> list[TortureCase]:
    cat = "body"
    inv = b.invite
    lenient = dict(expect_no_2xx=False)
    multipart = (b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp()
                 + b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--\r\n")
    return [
        _case("delayed_offer_no_body", cat, _ANSWER, lambda t: b.req(t, "INVITE").render(), **lenient),
        _case("delayed_offer_no_body_ack_less", cat + "+never_acked", _ANSWER,
              lambda t: b.req(t, "INVITE").render(), ack_2xx=False, **lenient),
        _case("delayed_offer_empty_body_with_sdp_type", cat, _ANSWER,
              lambda t: b.req(t, "INVITE").add("Content-Type: application/sdp").render(), **lenient),
        _case("delayed_offer_blank_lines_body", cat, _ANSWER | _BAD,
              lambda t: inv(t, b"\r\n\r\n").render(), **lenient),
        _case("sdp_without_content_type", cat, {400}, lambda t: inv(t).drop("Content-Type").render()),
        _case("body_text_plain", cat, {415}, lambda t: inv(t).with_body(b"hello\r\n", "text/plain").render()),
        _case("body_sdp_labelled_text_plain", cat, {415}, lambda t: inv(t).with_body(sdp(), "text/plain").render()),
        _case("body_multipart_mixed", cat, {415, 400},
              lambda t: inv(t).with_body(multipart, "multipart/mixed;boundary=b1").render()),
        _case("body_application_json", cat, {415}, lambda t: inv(t).with_body(b"{}", "application/json").render()),
        _case("content_type_uppercase", cat, _ANSWER,
              lambda t: inv(t).with_body(sdp(), "APPLICATION/SDP").render(), **lenient),
        _case("content_type_with_params", cat, _ANSWER,
              lambda t: inv(t).with_body(sdp(), "application/sdp; charset=utf-8").render(), **lenient),
        _case("content_type_garbage", cat, {400, 415, NO_RESPONSE},
              lambda t: inv(t).with_body(sdp(), "/////").render()),
        _case("content_encoding_gzip_plain_body", cat, {415, 400},
              lambda t: inv(t).add("Content-Encoding: gzip").render()),
        _case("content_length_larger_than_body", cat, {400, 513, NO_RESPONSE},
              lambda t: inv(t).set("Content-Length", str(len(sdp()) + 100)).render()),
        _case("content_length_smaller_than_body", cat, _ANSWER | {400, 488},
              lambda t: inv(t).set("Content-Length", str(len(sdp()) - 40)).render(), **lenient),
        _case("content_length_cuts_mid_line", cat, {400, 488},
              lambda t: inv(t).set("Content-Length", "60").render()),
        _case("content_length_zero_with_sdp", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Content-Length", "0").render(), **lenient),
        _case("content_length_negative", cat, _BAD, lambda t: inv(t).set("Content-Length", "-5").render()),
        _case("content_length_garbage", cat, _BAD, lambda t: inv(t).set("Content-Length", "abc").render()),
        _case("content_length_huge", cat, {400, 513, NO_RESPONSE},
              lambda t: inv(t).set("Content-Length", "99999999999").render()),
        _case("content_length_plus_sign", cat, _ANSWER | _BAD,
              lambda t: inv(t).set("Content-Length", f"+{len(sdp())}").render(), **lenient),
        _case("content_disposition_render", cat, _ANSWER | {415, 400},
              lambda t: inv(t).add("Content-Disposition: render;handling=required").render(), **lenient),
    ]


def _sdp_cases(b: _Builder) -> list[TortureCase]:
    cat = "sdp"
    lenient = dict(expect_no_2xx=False)
    head = _HEAD

    def offer(name: str, body: bytes, expect: set[int], **kw) -> TortureCase:
        return _case(name, cat, expect, lambda t: b.invite(t, body).render(), **kw)

    m = lambda line, *attrs: [*head, line, *attrs]  # noqa: E731 - one media section
    many_m = [*head] + [f"m=audio {40000 + 2 * i} RTP/AVP 0" for i in range(50)]
    many_map = [*head, "m=audio 40000 RTP/AVP 0 " + " ".join(str(96 + i % 32) for i in range(32))] + [
        f"a=rtpmap:{96 + i % 32} X{i}/8000" for i in range(200)]
    many_attrs = [*_SDP] + [f"a=x{i}" for i in range(80)]  # pjmedia keeps 68 attributes
    return [
        offer("sdp_no_v_line", sdp(v=""), {400}),
        offer("sdp_v_1", sdp(v="v=1"), {400}),
        offer("sdp_no_o_line", sdp(o=""), _ANSWER | {400, 488}, **lenient),
        offer("sdp_no_s_line", sdp(s=""), _ANSWER | {400, 488}, **lenient),
        offer("sdp_no_t_line", sdp(t=""), _ANSWER | {400, 488}, **lenient),
        offer("sdp_no_c_line", sdp(c=""), {400, 488}),
        offer("sdp_c_hostname", sdp(c="c=IN IP4 pbx.example.com"), {400, 488}),
        offer("sdp_c_ipv6_loopback", sdp(c="c=IN IP6 ::1"), {488}),
        offer("sdp_c_garbage", sdp(c="c=IN IP4 999.1.1.1"), {400, 488}),
        offer("sdp_c_hold_0000", sdp(c="c=IN IP4 0.0.0.0"), _ANSWER, **lenient),
        offer("sdp_c_multicast_ttl", sdp(c="c=IN IP4 224.2.1.1/127"), _ANSWER | {400, 488}, **lenient),
        offer("sdp_video_only", sdp(m("m=video 40000 RTP/AVP 96", "a=rtpmap:96 H264/90000")), {488}),
        offer("sdp_savp_only", sdp(m("m=audio 40000 RTP/SAVP 0")), {488}),
        offer("sdp_dtls_savpf_only", sdp(m("m=audio 40000 UDP/TLS/RTP/SAVPF 0")), {488}),
        offer("sdp_unknown_codecs_only",
              sdp(m("m=audio 40000 RTP/AVP 18 96", "a=rtpmap:18 G729/8000", "a=rtpmap:96 opus/48000/2")), {488}),
        offer("sdp_telephone_event_only", sdp(m("m=audio 40000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000")),
              {400, 488}),
        offer("sdp_port_0", sdp(m("m=audio 0 RTP/AVP 0")), {488}),
        offer("sdp_port_70000", sdp(m("m=audio 70000 RTP/AVP 0")), {400, 488}),
        offer("sdp_port_negative", sdp(m("m=audio -1 RTP/AVP 0")), {400, 488}),
        offer("sdp_port_range", sdp(m("m=audio 40000/2 RTP/AVP 0")), _ANSWER | {400, 488}, **lenient),
        offer("sdp_payload_type_128", sdp(m("m=audio 40000 RTP/AVP 128")), {400, 488}),
        offer("sdp_payload_type_text", sdp(m("m=audio 40000 RTP/AVP pcmu")), {400, 488}),
        offer("sdp_m_without_formats", sdp(m("m=audio 40000 RTP/AVP")), {400, 488}),
        offer("sdp_rtpmap_no_rate", sdp(m("m=audio 40000 RTP/AVP 96", "a=rtpmap:96 PCMU")), {400, 488}),
        offer("sdp_50_m_lines", sdp(many_m), {400, 488}),
        offer("sdp_200_rtpmap_lines", sdp(many_map), _TOO_BIG | {488}),
        offer("sdp_80_unknown_attributes", sdp(many_attrs), _ANSWER | {400, 488, 513}, **lenient),
        offer("sdp_40_payload_types",
              sdp(m("m=audio 40000 RTP/AVP 0 " + " ".join(str(96 + i) for i in range(31)) + " 8 3 4 18 9 10 11 13")),
              _ANSWER | {400, 488}, **lenient),
        offer("sdp_rtpmap_huge_clock",
              sdp(m("m=audio 40000 RTP/AVP 96", "a=rtpmap:96 PCMU/99999999999")), {400, 488}),
        offer("sdp_rtpmap_clock_2_pow_32",
              sdp(m("m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/4294967296")), {400, 488}),
        offer("sdp_ptime_0", sdp(m("m=audio 40000 RTP/AVP 0", "a=ptime:0")), _ANSWER | {400, 488}, **lenient),
        offer("sdp_ptime_negative", sdp(m("m=audio 40000 RTP/AVP 0", "a=ptime:-5")), _ANSWER | {400, 488},
              **lenient),
        offer("sdp_ptime_text", sdp(m("m=audio 40000 RTP/AVP 0", "a=ptime:fast")), _ANSWER | {400, 488},
              **lenient),
        offer("sdp_duplicate_m_audio", sdp([*_SDP, "m=audio 40002 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"]), _ANSWER,
              **lenient),
        offer("sdp_video_then_audio", sdp(m("m=video 40002 RTP/AVP 96", "a=rtpmap:96 H264/90000",
                                            "m=audio 40000 RTP/AVP 0")), _ANSWER, **lenient),
        offer("sdp_3_9kb", sdp([*_SDP] + [f"a=x-pad{i}:{'p' * 60}" for i in range(55)]), _TOO_BIG),
        offer("sdp_2_5kb_fits", sdp([*_SDP] + [f"a=x-pad{i}:{'p' * 60}" for i in range(35)]),
              _ANSWER | {400, 488}, **lenient),
        offer("sdp_crlf", sdp(eol="\r\n"), _ANSWER, **lenient),
        offer("sdp_lf_only", sdp(eol="\n"), _ANSWER, **lenient),
        offer("sdp_mixed_eol", sdp().replace(b"\r\nm=", b"\nm="), _ANSWER, **lenient),
        offer("sdp_trailing_garbage", sdp() + b"this is not sdp\r\n", {400, 488}),
        offer("sdp_trailing_binary", sdp() + bytes(range(1, 40)), {400, 488}),
        offer("sdp_leading_bom", b"\xef\xbb\xbf" + sdp(), {400, 488}),
        offer("sdp_sendonly", sdp([*_SDP[:-1], "a=sendonly"]), _ANSWER, **lenient),
        offer("sdp_inactive", sdp([*_SDP[:-1], "a=inactive"]), _ANSWER, **lenient),
        offer("sdp_utf8_session_name", sdp(s="s=chamada \u00e7\u00e3o \u2603"), _ANSWER, **lenient),
        offer("sdp_only_v_line", b"v=0\r\n", {400, 488}),
        offer("sdp_binary_body", bytes(random.Random(7).randrange(256) for _ in range(300)), {400, 488}),
    ]


_UDP_SIZES = [1400, 3999, 4000, 4001, 4096, 8000, 16000, 60000]


def _size_cases(b: _Builder) -> list[TortureCase]:
    cases = []
    for size in _UDP_SIZES:
        fits = size < PJSIP_MAX_PKT_LEN
        for method in ("INVITE", "OPTIONS"):
            cases.append(_case(
                f"udp_{method.lower()}_{size}_bytes", "size", _ANSWER if fits else _TOO_BIG,
                lambda t, m=method, s=size: _pad_to(b.invite(t) if m == "INVITE" else b.req(t, m), s),
                expect_no_2xx=not fits, wire_size=size,
            ))
    return cases


def _no_dialog_cases(b: _Builder) -> list[TortureCase]:
    cat = "no_dialog"
    gone = {481, NO_RESPONSE}

    def stray(t: str, method: str, body: bytes = b"", ctype: str = "application/sdp", **kw) -> _Req:
        """An in-dialog request (To tag, CSeq 2) for a dialog that never existed."""
        return b.req(t, method, cseq=2, to_tag=f"{t}x", body=body, content_type=ctype, **kw)

    notify = lambda t: stray(t, "NOTIFY").add("Event: dialog").add("Subscription-State: active")  # noqa: E731
    return [
        _case("no_dialog_bye", cat, gone, lambda t: stray(t, "BYE").render()),
        _case("no_dialog_bye_tcp", cat + "+tcp", gone, lambda t: stray(t, "BYE", tcp=True).render(),
              transport="tcp"),
        _case("no_dialog_reinvite_sdp", cat, gone, lambda t: stray(t, "INVITE", sdp()).render()),
        _case("no_dialog_reinvite_no_sdp", cat, gone, lambda t: stray(t, "INVITE").render()),
        _case("no_dialog_update", cat, gone, lambda t: stray(t, "UPDATE", sdp()).render()),
        _case("no_dialog_update_no_sdp", cat, gone, lambda t: stray(t, "UPDATE").render()),
        _case("no_dialog_info_dtmf", cat, gone, lambda t: stray(
            t, "INFO", b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay").render()),
        _case("no_dialog_ack", cat, {NO_RESPONSE}, lambda t: stray(t, "ACK").render()),
        _case("no_dialog_ack_with_sdp", cat, {NO_RESPONSE}, lambda t: stray(t, "ACK", sdp()).render()),
        _case("no_dialog_prack", cat, gone, lambda t: stray(t, "PRACK").add("RAck: 1 1 INVITE").render()),
        _case("no_dialog_cancel", cat, gone, lambda t: b.cancel_for(t, b.invite(t)).render()),
        _case("no_dialog_notify", cat, gone | {489}, lambda t: notify(t).render()),
        _case("no_dialog_refer", cat, gone,
              lambda t: stray(t, "REFER").add("Refer-To: <sip:x@127.0.0.1>").render()),
        _case("no_dialog_message", cat, gone, lambda t: stray(t, "MESSAGE", b"hi", "text/plain").render()),
        _case("no_dialog_options", cat, gone | {200}, lambda t: stray(t, "OPTIONS").render(),
              expect_no_2xx=False),
    ]


def _never_acked_cases(b: _Builder) -> list[TortureCase]:
    cat = "never_acked"
    left = dict(expect_no_2xx=False, ack_2xx=False)
    return [
        _case("never_acked_pcmu", cat, _ANSWER,
              lambda t: b.invite(t, sdp(m="m=audio 40000 RTP/AVP 0")).render(), **left),
        _case("never_acked_g722_pcmu", cat, _ANSWER,
              lambda t: b.invite(t, sdp(m="m=audio 40000 RTP/AVP 9 0")).render(), **left),
        _case("never_acked_session_header", cat, _ANSWER,
              lambda t: b.invite(t).add(f"X-Theo-Session: {t}-s").render(), **left),
        _case("never_acked_tcp", cat + "+tcp", _ANSWER, lambda t: b.invite(t, tcp=True).render(),
              transport="tcp", **left),
    ]


def _cancel_cases(b: _Builder) -> list[TortureCase]:
    cat = "cancel_race"
    expect = {487, 200}

    def race(t: str, tcp: bool = False, twice: bool = False) -> list[bytes]:
        invite = b.invite(t, tcp=tcp)
        cancel = b.cancel_for(t, invite).render()
        return [invite.render(), cancel, cancel] if twice else [invite.render(), cancel]

    return [
        _case("cancel_immediately", cat, expect, race, pause_s=0.0, expect_no_2xx=False),
        _case("cancel_after_10ms", cat, expect, race, pause_s=0.01, expect_no_2xx=False),
        _case("cancel_after_60ms", cat, expect, race, pause_s=0.06, expect_no_2xx=False),
        _case("cancel_after_300ms", cat, expect, race, pause_s=0.3, expect_no_2xx=False),
        _case("cancel_twice", cat, expect, lambda t: race(t, twice=True), pause_s=0.0, expect_no_2xx=False),
        _case("cancel_tcp", cat + "+tcp", expect, lambda t: race(t, tcp=True), pause_s=0.0,
              transport="tcp", expect_no_2xx=False),
        _case("cancel_delayed_offer", cat, expect,
              lambda t: [b.req(t, "INVITE").render(), b.cancel_for(t, b.req(t, "INVITE")).render()],
              pause_s=0.0, expect_no_2xx=False),
        _case("cancel_wrong_branch", cat, _ANSWER,
              lambda t: [b.invite(t).render(),
                         b.cancel_for(t, b.invite(t)).render().replace(b"-1inv;", b"-9inv;")],
              pause_s=0.0, expect_no_2xx=False),
    ]


def _method_cases(b: _Builder) -> list[TortureCase]:
    cat = "method"
    refused = {405, 489, 501}

    def sub(event: str | None) -> Callable[[str], bytes]:
        def build(t: str) -> bytes:
            req = b.req(t, "SUBSCRIBE").add("Expires: 60")
            return (req.add(f"Event: {event}") if event else req).render()
        return build

    return [
        _case("subscribe_presence", cat, refused, sub("presence")),
        _case("subscribe_dialog", cat, refused, sub("dialog")),
        _case("subscribe_message_summary", cat, refused, sub("message-summary")),
        _case("subscribe_refer", cat, refused | {481, 403}, sub("refer")),
        _case("subscribe_no_event", cat, refused | {400}, sub(None)),
        _case("register", cat, {405, 501}, lambda t: b.req(t, "REGISTER", uri=f"sip:{b.host}:{b.port}")
              .add("Expires: 60").render()),
        _case("register_unregister", cat, {405, 501}, lambda t: b.req(t, "REGISTER", uri=f"sip:{b.host}:{b.port}")
              .add("Expires: 0").render()),
        _case("message_text", cat, {405},
              lambda t: b.req(t, "MESSAGE", body=b"hello", content_type="text/plain").render()),
        _case("message_no_body", cat, {405}, lambda t: b.req(t, "MESSAGE").render()),
        _case("message_binary", cat, {405},
              lambda t: b.req(t, "MESSAGE", body=bytes(range(256)), content_type="application/octet-stream")
              .render()),
        _case("publish_presence", cat, refused, lambda t: b.req(t, "PUBLISH").add("Event: presence")
              .add("Expires: 60").render()),
        _case("notify_out_of_dialog", cat, refused | {481}, lambda t: b.req(t, "NOTIFY")
              .add("Event: dialog").add("Subscription-State: active").render()),
        _case("notify_mwi_no_body", cat, refused | {481}, lambda t: b.req(t, "NOTIFY")
              .add("Event: message-summary").add("Subscription-State: active").render()),
        _case("notify_unsolicited_mwi", cat, refused | {481}, lambda t: b.req(
            t, "NOTIFY", body=b"Messages-Waiting: yes\r\n", content_type="application/simple-message-summary")
              .add("Event: message-summary").add("Subscription-State: active").render()),
        _case("refer_out_of_dialog", cat, refused | {481, 403, 603},
              lambda t: b.req(t, "REFER").add("Refer-To: <sip:x@127.0.0.1>").render()),
        _case("info_out_of_dialog", cat, refused | {481}, lambda t: b.req(t, "INFO").render()),
        _case("update_out_of_dialog", cat, refused | {481}, lambda t: b.req(t, "UPDATE", body=sdp()).render()),
        _case("prack_out_of_dialog", cat, refused | {481}, lambda t: b.req(t, "PRACK").add("RAck: 1 1 INVITE").render()),
        _case("bye_out_of_dialog_no_to_tag", cat, {481, 405, NO_RESPONSE}, lambda t: b.req(t, "BYE").render()),
        _case("unknown_method_foo", cat, {405, 501}, lambda t: b.req(t, "FOO").render()),
        _case("unknown_method_long", cat, {405, 501, 400, NO_RESPONSE}, lambda t: b.req(t, "X" * 200).render()),
        _case("unknown_method_with_sdp", cat, {405, 501}, lambda t: b.req(t, "NEGOTIATE", body=sdp()).render()),
    ]


def _options_cases(b: _Builder) -> list[TortureCase]:
    cat = "options"
    ok = dict(expect_no_2xx=False)
    opt = lambda t: b.req(t, "OPTIONS")  # noqa: E731
    return [
        _case("options_plain", cat, {200}, lambda t: opt(t).render(), **ok),
        _case("options_accept_sdp", cat, {200}, lambda t: opt(t).add("Accept: application/sdp").render(), **ok),
        _case("options_other_user", cat, {200, 404}, lambda t: b.req(t, "OPTIONS",
              uri=f"sip:nobody@{b.host}:{b.port}").render(), **ok),
        _case("options_no_user", cat, {200}, lambda t: b.req(t, "OPTIONS", uri=f"sip:{b.host}:{b.port}").render(),
              **ok),
        _case("options_tel_uri", cat, {200, 404, 416}, lambda t: b.req(t, "OPTIONS", uri="tel:+551100").render(),
              **ok),
        _case("options_with_body", cat, {200, 415}, lambda t: opt(t).with_body(b"x", "text/plain").render(), **ok),
        _case("options_require_unknown", cat, {420}, lambda t: opt(t).add("Require: x-torture").render()),
        _case("options_retransmitted", cat, {200}, lambda t: [opt(t).render()] * 3, **ok),
    ]


def _response_cases(b: _Builder) -> list[TortureCase]:
    cat = "response"

    def resp(t: str, status: str, method: str = "INVITE") -> bytes:
        lines = [f"SIP/2.0 {status}", f"Via: SIP/2.0/UDP {b.host}:{b.port};branch=z9hG4bK-{t}-r",
                 f"From: <{b.target}>;tag={t}a", f"To: <sip:torture@127.0.0.1>;tag={t}b",
                 f"Call-ID: {t}@torture.invalid", f"CSeq: 1 {method}", f"Contact: <sip:torture@{LOCAL}>",
                 "Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    silent = {NO_RESPONSE}
    return [
        _case("response_200_invite_unsolicited", cat, silent, lambda t: resp(t, "200 OK")),
        _case("response_200_bye_unsolicited", cat, silent, lambda t: resp(t, "200 OK", "BYE")),
        _case("response_100_trying", cat, silent, lambda t: resp(t, "100 Trying")),
        _case("response_180_ringing", cat, silent, lambda t: resp(t, "180 Ringing")),
        _case("response_487", cat, silent, lambda t: resp(t, "487 Request Terminated")),
        _case("response_code_999", cat, silent, lambda t: resp(t, "999 Odd")),
        _case("response_code_text", cat, silent, lambda t: resp(t, "abc Odd")),
        _case("response_sip_3_0", cat, silent, lambda t: resp(t, "200 OK").replace(b"SIP/2.0 200", b"SIP/3.0 200")),
    ]


def _garbage_cases(b: _Builder) -> list[TortureCase]:
    cat = "garbage"
    rng = random.Random(20240611)
    stun = bytes.fromhex("000100002112a442") + rng.randbytes(12)
    rtp = bytes([0x80, 0x00, 0x12, 0x34]) + (160).to_bytes(4, "big") + rng.randbytes(4) + b"\xff" * 160
    rtcp = bytes([0x80, 200, 0x00, 0x06]) + rng.randbytes(24)
    dtls = bytes([0x16, 0xFE, 0xFD]) + rng.randbytes(90)
    tls = bytes([0x16, 0x03, 0x01, 0x00, 0x50]) + rng.randbytes(80)
    blobs = {
        "random_10": rng.randbytes(10), "random_100": rng.randbytes(100),
        "random_1000": rng.randbytes(1000), "random_3000": rng.randbytes(3000),
        "random_printable": bytes(rng.choice(b"abcdefghij :;\r\n<>@") for _ in range(800)),
        "empty_datagram": b"", "crlf_keepalive": b"\r\n\r\n", "single_crlf": b"\r\n",
        "crlf_200": b"\r\n" * 200,
        "http_get": f"GET / HTTP/1.1\r\nHost: {b.host}:{b.port}\r\n\r\n".encode(),
        "http_post": b"POST /sip HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
        "stun_binding_request": stun, "rtp_packet": rtp, "rtcp_sender_report": rtcp,
        "dtls_client_hello": dtls, "tls_client_hello": tls,
        "zeros_500": b"\x00" * 500, "ff_1000": b"\xff" * 1000,
        "lone_invite_word": b"INVITE", "lone_sip_version": b"SIP/2.0\r\n\r\n",
    }
    return [_case(f"garbage_{name}", cat, None, lambda t, d=data: d) for name, data in blobs.items()]


def _tcp_cases(b: _Builder) -> list[TortureCase]:
    cat = "tcp"
    ok = dict(transport="tcp", expect_no_2xx=False)
    bad = dict(transport="tcp")
    opt = lambda t: b.req(t, "OPTIONS", tcp=True)  # noqa: E731

    def split(data: bytes, parts: int) -> list[bytes]:
        step = -(-len(data) // parts)
        return [data[i:i + step] for i in range(0, len(data), step)]

    def pipelined(t: str) -> bytes:
        second = b.req(t, "OPTIONS", tcp=True, cseq=2)
        return opt(t).render() + second.render()

    fat = lambda t, kb: _many_big_headers(opt(t), kb).render()  # noqa: E731
    return [
        _case("tcp_options", cat, {200}, lambda t: opt(t).render(), **ok),
        _case("tcp_invite", cat, _ANSWER, lambda t: b.invite(t, tcp=True).render(), **ok),
        _case("tcp_content_length_larger_then_close", cat, _BAD,
              lambda t: opt(t).set("Content-Length", "500").render(), half_close=True, **bad),
        _case("tcp_invite_body_short_then_close", cat, _BAD,
              lambda t: b.invite(t, tcp=True).render()[:-30], half_close=True, **bad),
        _case("tcp_70kb_headers", cat, _TOO_BIG | {413}, lambda t: fat(t, 70), **bad),
        _case("tcp_8kb_headers", cat, _TOO_BIG | {413, 200}, lambda t: fat(t, 8), **ok),
        _case("tcp_invite_sdp_4_5kb", cat, _ANSWER | {513},
              lambda t: b.invite(t, sdp([*_SDP] + [f"a=x-pad{i}:{'p' * 60}" for i in range(60)]), tcp=True)
              .render(), **ok),
        _case("tcp_pipelined_two_options", cat, {200}, pipelined, **ok),
        _case("tcp_split_3_writes", cat, {200}, lambda t: split(opt(t).render(), 3), pause_s=0.2, **ok),
        _case("tcp_split_invite_body_apart", cat, _ANSWER,
              lambda t: _split_at_body(b.invite(t, tcp=True).render()), pause_s=0.3, **ok),
        _case("tcp_split_start_line_bytes", cat, {200},
              lambda t: [bytes([c]) for c in opt(t).render()[:12]] + [opt(t).render()[12:]], pause_s=0.01, **ok),
        _case("tcp_missing_content_length", cat, _BAD | {200},
              lambda t: opt(t).drop("Content-Length").render(), **ok),
        _case("tcp_crlf_keepalive", cat, None, lambda t: b"\r\n\r\n", **bad),
        _case("tcp_crlfs_then_options", cat, {200}, lambda t: [b"\r\n" * 50, opt(t).render()], **ok),
        _case("tcp_garbage", cat, None, lambda t: random.Random(99).randbytes(2000), **bad),
        _case("tcp_http_get", cat, None, lambda t: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", **bad),
        _case("tcp_via_says_udp", cat, {200}, lambda t: b.req(t, "OPTIONS").render(), **ok),
        _case("tcp_garbage_then_options", cat, None, lambda t: [b"\x00\x01\x02garbage\r\n\r\n", opt(t).render()],
              **ok),
    ]


def _split_at_body(data: bytes) -> list[bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return [head + b"\r\n\r\n", body[:20], body[20:]]


def _many_big_headers(req: _Req, kilobytes: int) -> _Req:
    for i in range(kilobytes):
        req = req.add(f"X-Filler-{i}: " + "f" * 1000)
    return req


def _peer_cases(b: _Builder, allowed_source: str) -> list[TortureCase]:
    if not allowed_source.startswith("127."):
        return []  # another loopback address stands in for a stranger
    stranger = "127.0.0.2" if allowed_source != "127.0.0.2" else "127.0.0.3"
    cat = "peer"
    return [
        _case("peer_not_allowed_invite", cat, {403}, lambda t: b.invite(t).render(), source=stranger),
        _case("peer_not_allowed_options", cat, {200, 403}, lambda t: b.req(t, "OPTIONS").render(),
              source=stranger, expect_no_2xx=False),
    ]


def catalogue(host: str, port: int, *, allowed_source: str = "127.0.0.1") -> list[TortureCase]:
    """Every torture case against a gateway at host:port (names unique, deterministic)."""
    b = _Builder(host, port, allowed_source)
    makers = [
        _start_line_cases, _header_missing_cases, _header_duplicate_cases, _header_oversized_cases,
        _garbled_header_cases, _body_cases, _sdp_cases, _size_cases, _no_dialog_cases,
        _never_acked_cases, _cancel_cases, _method_cases, _options_cases, _response_cases,
        _garbage_cases, _tcp_cases,
    ]
    cases = [case for make in makers for case in make(b)]
    if allowed_source != "127.0.0.1":
        cases = [msgspec.structs.replace(c, source=allowed_source) for c in cases]
    return cases + _peer_cases(b, allowed_source)


# ---------------------------------------------------------------------------- running

_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length", "c": "content-type"}
_GRACE_S = 0.15  # listen this long after a case settled (retransmissions, stray requests)
_MAX_TRIES = 4


class _Msg(msgspec.Struct):
    """A received or sent SIP message, headers unfolded, names lower-case and expanded."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str:
        return next((v for n, v in self.headers if n == name), "")

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    @property
    def status(self) -> int | None:
        parts = self.start.split(None, 2)
        if len(parts) >= 2 and parts[0].upper() == "SIP/2.0" and parts[1].isdigit():
            return int(parts[1])
        return None

    @property
    def cseq(self) -> tuple[int, str] | None:
        parts = self.get("cseq").split()
        ok = len(parts) == 2 and parts[0].isdigit() and len(parts[0]) <= 10
        return (int(parts[0]), parts[1].upper()) if ok else None

    @property
    def method(self) -> str:
        """The request's CSeq method (what pjsip answers under), else its start-line token."""
        parts = self.get("cseq").split()
        return parts[-1].upper() if parts else self.start.split(" ", 1)[0].upper()

    @property
    def branch(self) -> str:
        vias = self.all("via")
        found = re.search(r";\s*branch=([^;,\s]+)", vias[0]) if vias else None
        return found.group(1) if found else ""

    @property
    def key(self) -> str:
        """Which transaction: the top-Via branch, else Call-ID and CSeq number (RFC 2543 style)."""
        return self.branch or f"{self.get('call-id')}|{self.get('cseq').split(' ', 1)[0]}"

    def summary(self) -> str:
        return f"{self.start[:60]} | {self.get('cseq')[:30]}"


def _parse(data: bytes) -> _Msg | None:
    text = data.decode("utf-8", "surrogateescape").lstrip("\r\n")
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines[0].strip():
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers.append((_COMPACT.get(key, key), value.strip()))
    return _Msg(lines[0], headers, _encode(body))


def _frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete messages at the front of a stream (Content-Length framing), and the rest."""
    out = []
    while True:
        buffer = buffer.lstrip(b"\r\n")  # keep-alive pongs
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return out, buffer
        match = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", buffer[:end])
        total = end + 4 + (int(match.group(1)) if match else 0)
        if len(buffer) < total:
            return out, buffer
        out.append(buffer[:total])
        buffer = buffer[total:]


def _fit(data: bytes, size: int) -> bytes:
    """Grow or shrink the X-Pad header so that ``data`` is exactly ``size`` bytes."""
    at = data.find(b"X-Pad: ")
    if at < 0:
        return data
    start = at + len(b"X-Pad: ")
    end = start + len(data[start:]) - len(data[start:].lstrip(b"a"))
    pad = max(0, (end - start) - (len(data) - size))
    return data[:start] + b"a" * pad + data[end:]


def _prepare(case: TortureCase, local: str, nonce: str) -> list[bytes]:
    token = case.token.encode()
    out = [m.replace(LOCAL.encode(), local.encode()).replace(token, token + nonce.encode())
           if token else m.replace(LOCAL.encode(), local.encode()) for m in case.messages]
    if case.wire_size is not None and out:
        out[0] = _fit(out[0], case.wire_size)
    return out


def _reply(request: _Msg, code: int, reason: str) -> bytes:
    lines = [f"SIP/2.0 {code} {reason}"] + [f"Via: {v}" for v in request.all("via")]
    lines += [f"{n}: {request.get(n.lower())}" for n in ("From", "To", "Call-ID", "CSeq")]
    return _encode("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n")


def _uri(contact: str) -> str:
    inside = re.search(r"<([^>]*)>", contact)
    return inside.group(1) if inside else contact.split(";", 1)[0].strip()


class _Exchange:
    """One attempt of a case: what came back, and the ACKs / BYEs that end what it opened.

    A response answers the first request when it carries that request's top-Via branch
    and CSeq method (pjsip echoes the *last* CSeq of a request that repeats it)."""

    def __init__(self, case: TortureCase, sent: list[bytes], local: str, target: str) -> None:
        self.case, self.local, self.target = case, local, target
        self.probe_branch = f"z9hG4bK-probe-{secrets.token_hex(6)}"
        self.probed = False  # the probe OPTIONS sent after the case was answered
        self.proceeding = False  # a 1xx answered the first request
        stream = b"".join(sent) if case.transport == "tcp" else sent[0] if sent else b""
        first = _parse(stream)
        self.first = first if first is not None and first.status is None and first.headers else None
        requests = _frames(stream)[0] if case.transport == "tcp" else sent
        parsed = [m for m in map(_parse, requests) if m is not None and m.status is None]
        self.invites = {m.key: m for m in parsed  # "invite" too: pjsip takes it for INVITE
                        if m.start.split()[0].upper() == "INVITE"}
        self.trace: list[str] = []
        self.codes: list[int] = []
        self.requests: list[str] = []
        self.final: _Msg | None = None
        self.ended: dict[str, bytes] = {}  # Call-ID -> our ACK for its 2xx
        self.byes: set[str] = set()  # Call-IDs whose BYE awaits a final response
        self.changed = asyncio.Event()
        self.transmit: Callable[[bytes], None] = lambda data: None

    def send(self, data: bytes) -> None:
        msg = _parse(data)
        self.trace.append("> " + (msg.summary() if msg else repr(data[:40])))
        self.transmit(data)

    @property
    def settled(self) -> bool:
        """Nothing more to wait for: the first request's final came, or (UDP) the probe
        was answered with no 1xx pending: pjsip handles one socket's datagrams in order, and
        an INVITE that reaches Theo gets its 100 before anything after it is read."""
        if self.byes:
            return False
        return self.final is not None or (self.probed and not self.proceeding)

    def probe(self) -> bytes:
        """An OPTIONS whose answer means the gateway has read everything sent before it."""
        lines = [f"OPTIONS {self.target} SIP/2.0", f"Via: SIP/2.0/UDP {self.local};branch={self.probe_branch};rport",
                 "Max-Forwards: 70", f"From: <sip:probe@{self.local}>;tag=p{self.probe_branch[-6:]}",
                 f"To: <{self.target}>", f"Call-ID: {self.probe_branch}@torture.invalid", "CSeq: 1 OPTIONS",
                 "Content-Length: 0"]
        return _encode("\r\n".join(lines) + "\r\n\r\n")

    def answers_first(self, response: _Msg) -> bool:
        if self.first is None:
            return True  # garbage or a response first: any final counts
        branch, method = self.first.branch, self.first.method
        return (not branch or response.branch == branch) and response.method == method

    def on_data(self, data: bytes) -> None:
        msg = _parse(data)
        if msg is not None:
            self.trace.append("< " + msg.summary())
            self._on_response(msg) if msg.status is not None else self._on_request(msg)
        self.changed.set()

    def _on_request(self, msg: _Msg) -> None:
        self.requests.append(msg.start[:120])
        method = msg.start.split(" ", 1)[0]
        if method in ("BYE", "OPTIONS"):
            self.send(_reply(msg, 200, "OK"))

    def _on_response(self, msg: _Msg) -> None:
        code = msg.status or 0
        if msg.branch == self.probe_branch:
            self.probed = code >= 200
            return
        self.codes.append(code)
        if self.final is None and self.answers_first(msg):
            self.proceeding = code < 200
            self.final = msg if code >= 200 else None
        if msg.method == "BYE" and code >= 200:
            self.byes.discard(msg.get("call-id"))
        invite = self.invites.get(msg.key)
        if invite is None or msg.method != "INVITE" or code < 200 or msg.cseq is None:
            return
        if code >= 300:
            self.send(self._ack(msg, invite))
        elif self.case.ack_2xx:
            self._end_dialog(msg, invite)

    def _ack(self, response: _Msg, invite: _Msg) -> bytes:
        """The ACK of a non-2xx final: the INVITE's branch and URI, the response's To tag."""
        assert response.cseq is not None
        uri = invite.start.split()[1] if len(invite.start.split()) > 1 else self.target
        lines = [f"ACK {uri} SIP/2.0", f"Via: {invite.all('via')[0]}", "Max-Forwards: 70",
                 f"From: {response.get('from')}", f"To: {response.get('to')}",
                 f"Call-ID: {response.get('call-id')}", f"CSeq: {response.cseq[0]} ACK", "Content-Length: 0"]
        return _encode("\r\n".join(lines) + "\r\n\r\n")

    def _end_dialog(self, ok: _Msg, invite: _Msg) -> None:
        """ACK a 2xx (with an answer when the INVITE had no offer) and hang up with BYE."""
        call_id = ok.get("call-id")
        if call_id in self.ended:
            self.send(self.ended[call_id])  # a retransmitted 2xx: ACK it again
            return
        assert ok.cseq is not None
        offered = bool(invite.body.strip()) and invite.get("content-length") != "0"
        ack = self._in_dialog(ok, "ACK", ok.cseq[0], b"" if offered else sdp())
        self.ended[call_id] = ack
        self.send(ack)
        self.send(self._in_dialog(ok, "BYE", ok.cseq[0] + 1, b""))
        self.byes.add(call_id)

    def _in_dialog(self, ok: _Msg, method: str, cseq: int, body: bytes) -> bytes:
        proto = "TCP" if self.case.transport == "tcp" else "UDP"
        branch = f"z9hG4bK-{secrets.token_hex(6)}"
        lines = [f"{method} {_uri(ok.get('contact')) or self.target} SIP/2.0",
                 f"Via: SIP/2.0/{proto} {self.local};branch={branch};rport", "Max-Forwards: 70",
                 f"From: {ok.get('from')}", f"To: {ok.get('to')}", f"Call-ID: {ok.get('call-id')}",
                 f"CSeq: {cseq} {method}"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return _encode("\r\n".join(lines) + "\r\n\r\n") + body

    async def settle(self, timeout: float, closed: asyncio.Event) -> None:
        """Until the case settled (then a short grace), the link closed, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.settled and not closed.is_set() and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(0.1, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                pass
        if self.settled:
            await asyncio.sleep(_GRACE_S)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self.deliver = deliver

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.deliver(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: nothing listens
        pass


async def _attempt(case: TortureCase, host: str, port: int, timeout: float) -> tuple[_Exchange, str]:
    """Send the case once; the exchange and a note on transport trouble ("" if none)."""
    inbox: list[bytes] = []
    deliver: Callable[[bytes], None] = inbox.append
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    nonce = "n" + secrets.token_hex(3)
    if case.transport == "udp":
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda d: deliver(d)), local_addr=(case.source, 0))
        local = "%s:%d" % transport.get_extra_info("sockname")[:2]
        send: Callable[[bytes], None] = lambda d: transport.sendto(d, (host, port))  # noqa: E731
        reader_task = None
    else:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(case.source, 0))
        local = "%s:%d" % writer.get_extra_info("sockname")[:2]
        send = writer.write
        reader_task = asyncio.create_task(_read_stream(reader, lambda d: deliver(d), closed))
    sent = _prepare(case, local, nonce)
    ex = _Exchange(case, sent, local, f"sip:theo@{host}:{port}")
    ex.transmit, deliver = send, ex.on_data
    for data in inbox:
        ex.on_data(data)
    note = ""
    try:
        for i, data in enumerate(sent):
            if i and case.pause_s:
                await asyncio.sleep(case.pause_s)
            if closed.is_set():
                note = f"connection closed by the gateway before message {i + 1}"
                break
            ex.send(data)
        if case.half_close and case.transport == "tcp":
            writer.write_eof()
        if case.transport == "udp":
            ex.send(ex.probe())
        await ex.settle(timeout, closed)
    except OSError as exc:
        note = f"transport error: {exc!r}"
    finally:
        if reader_task is None:
            transport.close()
        else:
            reader_task.cancel()
            writer.close()
    if closed.is_set() and not note:
        note = "connection closed by the gateway"
    return ex, note


async def _read_stream(reader: asyncio.StreamReader, deliver: Callable[[bytes], None],
                       closed: asyncio.Event) -> None:
    buffer = b""
    try:
        while chunk := await reader.read(65536):
            frames, buffer = _frames(buffer + chunk)
            for frame in frames:
                deliver(frame)
    except OSError:
        pass
    closed.set()


def _judge(case: TortureCase, final: int | None) -> tuple[bool, str]:
    if final is not None and 200 <= final < 300 and case.expect_no_2xx:
        return False, f"{final}: a 2xx where none is acceptable"
    if case.expect is None:
        return True, "any non-2xx outcome is acceptable"
    if final is None:
        return NO_RESPONSE in case.expect, "no final response"
    return final in case.expect, f"final {final}, acceptable {sorted(case.expect)}"


async def run_case(case: TortureCase, host: str, port: int, *, timeout: float = 3.0) -> CaseResult:
    """Send ``case`` to host:port, end what it opened, judge the first request's final."""
    notes: list[str] = []
    for attempt in range(_MAX_TRIES):
        try:
            ex, note = await _attempt(case, host, port, timeout)
        except OSError as exc:
            return CaseResult(case.name, [], None, False, f"could not open the socket: {exc!r}")
        final = ex.final.status if ex.final else None
        busy = final == 503 and case.expect is not None and 503 not in case.expect
        if busy and attempt + 1 < _MAX_TRIES:
            retry = ex.final.get("retry-after").split(";")[0].strip() if ex.final else ""
            notes.append("503 (full shard): retried")
            await asyncio.sleep(min(2.0, float(retry) if retry.isdigit() else 1.0))
            continue
        ok, why = _judge(case, final)
        notes += [why] + ([note] if note else [])
        return CaseResult(case.name, ex.codes, final, ok, "; ".join(notes), ex.requests, ex.trace)
    raise AssertionError("unreachable")


async def run_catalogue(
    cases: list[TortureCase], host: str, port: int, *,
    concurrency: int = 4, timeout: float = 3.0, deadline_s: float = 600.0,
) -> list[CaseResult]:
    """Run ``cases`` at most ``concurrency`` at a time; results in case order. A case still
    running at ``deadline_s`` is cancelled and reported not ok."""
    gate = asyncio.Semaphore(concurrency)

    async def one(case: TortureCase) -> CaseResult:
        async with gate:
            return await run_case(case, host, port, timeout=timeout)

    tasks = [asyncio.create_task(one(case)) for case in cases]
    _, pending = await asyncio.wait(tasks, timeout=deadline_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    return [
        task.result() if task.done() and not task.cancelled() and task.exception() is None
        else CaseResult(case.name, [], None, False, "not finished: catalogue deadline or runner error")
        for case, task in zip(cases, tasks)
    ]
