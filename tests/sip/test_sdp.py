"""SDP offer parsing, codec choice and answer building (pure functions)."""

import pytest

from theo_ray.sip.sdp import (
    NoCommonCodec,
    SdpError,
    SdpOrigin,
    answer_direction,
    build_answer,
    choose_codec,
    parse_offer,
)

ASTERISK_OFFER = (
    "v=0\r\n"
    "o=- 1234 1234 IN IP4 10.0.0.5\r\n"
    "s=Asterisk\r\n"
    "c=IN IP4 10.0.0.5\r\n"
    "t=0 0\r\n"
    "m=audio 14000 RTP/AVP 0 8 9 101 102\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=rtpmap:102 telephone-event/16000\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:140\r\n"
    "a=sendrecv\r\n"
    "m=video 0 RTP/AVP 96\r\n"
)


def test_parse_asterisk_offer():
    offer = parse_offer(ASTERISK_OFFER)
    assert offer.connection_host == "10.0.0.5"
    assert offer.audio_port == 14000
    assert [f.encoding for f in offer.formats] == ["PCMU", "PCMA", "G722"]
    assert [e.payload_type for e in offer.telephone_events] == [101, 102]
    assert offer.direction == "sendrecv"
    assert offer.ptime == 20
    assert not offer.on_hold
    assert [s.kind for s in offer.sections] == ["audio", "video"]


def test_codec_preference_picks_wideband_then_falls_back():
    offer = parse_offer(ASTERISK_OFFER)
    assert choose_codec(offer, ["G722", "PCMU"]).encoding == "G722"
    assert choose_codec(offer, ["PCMA", "G722"]).payload_type == 8
    narrow = parse_offer(ASTERISK_OFFER.replace(" 0 8 9 101", " 0 8 101"))
    assert choose_codec(narrow, ["G722", "PCMU", "PCMA"]).encoding == "PCMU"


def test_l16_dynamic_type_and_widest_rate():
    offer = parse_offer(
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 97 98\r\n"
        "a=rtpmap:97 L16/8000\r\na=rtpmap:98 L16/16000\r\n"
    )
    chosen = choose_codec(offer, ["G722", "L16"])
    assert (chosen.payload_type, chosen.clock_rate) == (98, 16000)


def test_no_common_codec_is_typed():
    offer = parse_offer("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 3 18\r\n")
    with pytest.raises(NoCommonCodec) as err:
        choose_codec(offer, ["G722", "PCMU"])
    assert err.value.reason == "no_common_codec"
    assert isinstance(err.value, SdpError)


@pytest.mark.parametrize(
    "body, reason",
    [
        ("", "missing"),
        ("x=0\r\n", "syntax"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio notaport RTP/AVP 0\r\n", "bad_port"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n", "bad_port"),
        ("v=0\r\nc=IN IP4 pbx.example\r\nm=audio 4000 RTP/AVP 0\r\n", "bad_connection"),
        ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "bad_connection"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 96\r\n", "no_audio"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n", "no_audio"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 0\r\n", "unsupported_profile"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP zz\r\n", "syntax"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 L16\r\n", "syntax"),
        ("v=0\r\ngarbage line\r\n", "syntax"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000\r\n", "syntax"),
    ],
)
def test_malformed_offers_raise_sdp_error_with_reason(body, reason):
    with pytest.raises(SdpError) as err:
        parse_offer(body)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "direction, conn, expected",
    [
        ("sendrecv", "10.0.0.5", "sendrecv"),
        ("sendonly", "10.0.0.5", "recvonly"),
        ("inactive", "10.0.0.5", "inactive"),
        ("recvonly", "10.0.0.5", "sendonly"),
        ("sendrecv", "0.0.0.0", "recvonly"),
    ],
)
def test_answer_direction(direction, conn, expected):
    body = ASTERISK_OFFER.replace("a=sendrecv", f"a={direction}").replace(
        "c=IN IP4 10.0.0.5", f"c=IN IP4 {conn}"
    )
    assert answer_direction(parse_offer(body)) == expected


def test_build_answer_points_at_call_socket_and_mirrors_streams():
    offer = parse_offer(ASTERISK_OFFER)
    codec = choose_codec(offer, ["G722", "PCMU"])
    origin = SdpOrigin(session_id=777)
    answer = build_answer(offer, codec, "127.0.0.1", 40002, origin)
    lines = answer.split("\r\n")
    assert "m=audio 40002 RTP/AVP 9 101" in lines
    assert "c=IN IP4 127.0.0.1" in lines
    assert "a=rtpmap:9 G722/8000" in lines
    assert "a=rtpmap:101 telephone-event/8000" in lines
    assert "a=rtcp:40003" in lines
    assert "a=sendrecv" in lines
    assert "m=video 0 RTP/AVP 96" in lines
    assert lines.index("m=video 0 RTP/AVP 96") > lines.index("m=audio 40002 RTP/AVP 9 101")
    # The answer must itself be a valid offer-shaped SDP for our own parser.
    reparsed = parse_offer(answer)
    assert (reparsed.connection_host, reparsed.audio_port) == ("127.0.0.1", 40002)


def test_origin_version_moves_only_when_the_answer_changes():
    offer = parse_offer(ASTERISK_OFFER)
    codec = choose_codec(offer, ["PCMU"])
    origin = SdpOrigin(session_id=5)
    first = build_answer(offer, codec, "127.0.0.1", 40000, origin)
    same = build_answer(offer, codec, "127.0.0.1", 40000, origin)
    assert "o=theo 5 1 " in first and "o=theo 5 1 " in same
    hold = parse_offer(ASTERISK_OFFER.replace("a=sendrecv", "a=sendonly"))
    held = build_answer(hold, codec, "127.0.0.1", 40000, origin)
    assert "o=theo 5 2 " in held and "a=recvonly" in held


def test_wideband_event_type_follows_codec_clock():
    offer = parse_offer(
        "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 98 101 102\r\n"
        "a=rtpmap:98 L16/16000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=rtpmap:102 telephone-event/16000\r\n"
    )
    codec = choose_codec(offer, ["L16"])
    assert offer.telephone_event_for(codec).payload_type == 102


def test_retarget_audio_moves_connection_port_and_rtcp():
    from theo_ray.sip.sdp_retarget import retarget_audio

    pjsua_offer = (
        "v=0\r\no=- 3 2 IN IP4 127.0.0.1\r\ns=pjmedia\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 101\r\nc=IN IP4 127.0.0.1\r\na=rtcp:4001 IN IP4 127.0.0.1\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    moved = parse_offer(retarget_audio(pjsua_offer, "127.0.0.9", 50000))
    assert (moved.connection_host, moved.audio_port) == ("127.0.0.9", 50000)
    assert "a=rtcp:50001" in retarget_audio(pjsua_offer, "127.0.0.9", 50000)
