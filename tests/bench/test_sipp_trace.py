"""read_trace: what a SIPp message trace says the attack sent and got back."""

from __future__ import annotations

from theo_ray.bench.sipp_runner import SCENARIOS, read_trace

SEP = "----------------------------------------------- 2026-12-07 21:00:00.000000\n"


def _sent(first_line: str, call_id: str, cseq: str) -> str:
    return (f"{SEP}UDP message sent (300 bytes):\n\n{first_line}\nVia: SIP/2.0/UDP 127.0.0.1:5062\n"
            f"Call-ID: {call_id}\nCSeq: {cseq}\nContent-Length: 0\n\n")


def _received(code: int, call_id: str, cseq: str, to_tag: str = "t1") -> str:
    return (f"{SEP}UDP message received [250] bytes :\n\nSIP/2.0 {code} Reason\nVia: SIP/2.0/UDP 127.0.0.1:5062\n"
            f"To: <sip:theo@127.0.0.1>;tag={to_tag}\nCall-ID: {call_id}\nCSeq: {cseq}\nContent-Length: 0\n\n")


def test_finals_are_counted_once_per_transaction_and_split_first_from_later_requests():
    trace = "".join([
        _sent("INVITE sip:theo@127.0.0.1 SIP/2.0", "a", "1 INVITE"),
        _received(100, "a", "1 INVITE"),
        _received(200, "a", "1 INVITE"),
        _received(200, "a", "1 INVITE"),  # pjsip's retransmission of the same 200
        _sent("ACK sip:theo@127.0.0.1 SIP/2.0", "a", "1 ACK"),
        _sent("BYE sip:theo@127.0.0.1 SIP/2.0", "a", "2 BYE"),
        _received(200, "a", "2 BYE"),
        _sent("INVITE sip:theo@127.0.0.1 SIP/2.0", "b", "1 INVITE"),
        _received(503, "b", "1 INVITE"),
        _sent("INVITE sip:theo@127.0.0.1 SIP/2.0", "c", "1 INVITE"),  # never answered
    ])
    result = read_trace(trace, "call.xml", "127.0.0.1")
    assert result.started == 3
    assert result.requests_sent == 5
    assert result.finals == {"200": 1, "503": 1}
    assert result.later == {"200": 1}
    assert result.unanswered == 1


def test_an_empty_trace_counts_nothing():
    result = read_trace("")
    assert (result.started, result.finals, result.unanswered) == (0, {}, 0)


def test_every_attack_scenario_is_shipped():
    from theo_ray.bench.sip_torture import attacks

    for attack in attacks().values():
        for run in attack.runs:
            assert (SCENARIOS / run.scenario).is_file(), run.scenario
