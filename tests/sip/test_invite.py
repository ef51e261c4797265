"""Reading the INVITE: headers, caller ID, source filter."""

from theo_ray.sip.invite import PeerFilter, parse_from, parse_invite, source_host

INVITE = (
    "INVITE sip:theo@127.0.0.1:5090 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\n"
    'f: "Maria da Silva" <sip:5511999990000@10.0.0.5>;tag=abc\r\n'
    "To: <sip:theo@127.0.0.1>\r\n"
    "i: 7c1f@10.0.0.5\r\n"
    "CSeq: 1 INVITE\r\n"
    "X-Theo-Session: 1700000000.42\r\n"
    "x: 1800;refresher=uac\r\n"
    "Subject: a folded\r\n"
    " header\r\n"
    "Content-Type: application/sdp\r\n"
    "\r\n"
    "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n"
)


def test_parse_invite_reads_session_caller_and_body():
    info = parse_invite(INVITE)
    assert info.session_header == "1700000000.42"
    assert info.call_id == "7c1f@10.0.0.5"
    assert (info.caller_name, info.caller_id) == ("Maria da Silva", "5511999990000")
    assert info.content_type == "application/sdp"
    assert info.body.startswith("v=0")
    assert info.session_expires == 1800


def test_missing_session_header_is_empty():
    info = parse_invite(INVITE.replace("X-Theo-Session: 1700000000.42\r\n", ""))
    assert info.session_header == ""


def test_parse_from_forms():
    assert parse_from("<sip:100@pbx>;tag=1") == ("", "100")
    assert parse_from("Joao <sip:200@pbx;user=phone>") == ("Joao", "200")
    assert parse_from("sip:300@pbx;tag=9") == ("", "300")
    assert parse_from("<tel:+5511>") == ("", "+5511")
    assert parse_from('"A \\"B\\"" <sip:1@x>') == ('A "B"', "1")
    assert parse_from("garbage") == ("", "")


def test_source_host_and_peer_filter():
    assert source_host("127.0.0.1:5060") == "127.0.0.1"
    assert source_host("[::1]:5060") == "::1"
    peers = PeerFilter(["127.0.0.1", "10.1.0.0/16"])
    assert peers.allows("127.0.0.1")
    assert peers.allows("10.1.200.3")
    assert not peers.allows("127.0.0.2")
    assert not peers.allows("not-an-ip")


def test_non_utf8_bytes_become_replacement_characters_not_surrogates():
    import msgspec

    raw = (b"INVITE sip:theo@127.0.0.1 SIP/2.0\r\nFrom: \"Jo\xff\xfeo\" <sip:10\xc3(01@127.0.0.1>;tag=1\r\n"
           b"Call-ID: abc\xff@host\r\nContent-Length: 0\r\n\r\n")
    info = parse_invite(raw.decode("utf-8", "surrogateescape"))
    msgspec.msgpack.encode(info)  # surrogates would raise UnicodeEncodeError here
    assert info.call_id == "abc\ufffd@host" and "\ufffd" in info.caller_name
