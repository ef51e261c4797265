"""Fuzzing the AMI reader: hostile bytes from the PBX's manager port, cut anywhere.

The AMI protocol keeps a catch-all around each frame and each event (a bad frame must not
kill the connection), so "nothing escapes" alone would prove little. The property here is
stronger: nothing ever reaches those catch-alls (they log "could not be handled/used"),
every complete frame is counted as received or malformed, and an action in flight is
answered, failed or still pending — never broken.
"""

from __future__ import annotations

import asyncio
import logging

from hypothesis import example, given
from hypothesis import strategies as st
from panoramisk import actions

from theo_ray.asterisk.ami_client import AmiClient
from theo_ray.asterisk.ami_protocol import CountingAmiProtocol, TheoAmiManager
from theo_ray.asterisk.results import AmiStats
from theo_ray.asterisk.settings import AmiSettings

from tests.security.strategies import token

EOL = "\r\n"
ACTION_ID = "theo-fuzz-1"
NAMES = ["Response", "Event", "ActionID", "EventList", "Channel", "Uniqueid", "Variable", "Value",
         "Message", "Newname", "CommandID", "Result", "response", "event"]
VALUES = ["Success", "Error", "Follows", "Fail", "Goodbye", "start", "Complete", "Newchannel", "VarSet",
          "Rename", "Hangup", "Status", "StatusComplete", "Shutdown", "THEO_SESSION_ID", "__THEO_SESSION_ID",
          "PJSIP/a-1", "1.1", ACTION_ID, ""]

header_line = st.tuples(st.sampled_from(NAMES) | token, st.sampled_from([": ", ":", " : "]),
                        st.sampled_from(VALUES) | token).map("".join)
frame = st.lists(st.one_of(header_line, token), min_size=0, max_size=8).map(EOL.join)


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(frames=st.lists(frame, max_size=8), cuts=st.lists(st.integers(0, 10_000), max_size=6),
       banner=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]))
@example(frames=[f"Response: Success{EOL}ActionID: {ACTION_ID}{EOL}ActionID: {ACTION_ID}"], cuts=[], banner=True,
         encoding="utf-8")
@example(frames=[f"Event: VarSet{EOL}Variable: THEO_SESSION_ID{EOL}Value: 1.1{EOL}Uniqueid: 1.1{EOL}Channel: X{EOL}"
                 "Channel: Y"], cuts=[], banner=False, encoding="utf-8")
def test_hostile_ami_input_is_dropped_and_counted(frames, cuts, banner, encoding, caplog):
    loop = asyncio.new_event_loop()
    # panoramisk's Action() builds its future with asyncio.Future() (the current loop), as it
    # does inside Theo's running AMI loop; an earlier test may have left no current loop.
    asyncio.set_event_loop(loop)
    try:
        client = AmiClient(AmiSettings(), "not-a-secret")
        stats = AmiStats()
        lost: list[object] = []
        manager = TheoAmiManager(host="127.0.0.1", port=5038, ssl=None, stats=stats,
                                 on_event=client._on_event, on_lost=lost.append)
        manager.loop = loop
        protocol = CountingAmiProtocol(manager)
        protocol.connection_made(_Transport())
        manager.protocol = protocol
        action = actions.Action({"Action": "Status", "ActionID": ACTION_ID})
        future = protocol.send(action, as_list=None)
        text = ("Asterisk Call Manager/9.0.0" + EOL if banner else "") + "".join(f + EOL + EOL for f in frames)
        data = text.encode(encoding, "surrogateescape" if encoding == "utf-8" else "replace")
        with caplog.at_level(logging.ERROR, logger="theo_ray"):
            for chunk in _cut(data, cuts):
                protocol.data_received(chunk)
        assert not [r for r in caplog.records if "could not be" in r.getMessage()], caplog.text
        # Every complete block (ended by a blank line) is counted once: received or malformed.
        decoded = data.decode("utf-8", "ignore")
        if banner:
            decoded = decoded.partition(EOL)[2]
        blocks = [b for b in decoded.split(EOL + EOL)[:-1] if b.strip()]
        assert stats.frames_received + stats.malformed_frames == len(blocks)
        if future.done() and not future.cancelled():
            future.exception()  # resolved or failed with a typed error, never left broken
        assert client.stats().malformed_frames == 0  # the event path never needed its catch-all
    finally:
        asyncio.set_event_loop(None)
        loop.close()
