"""panoramisk, adapted to how Theo needs AMI: `TheoAmiManager` and `CountingAmiProtocol`.

panoramisk 1.4 (2021) runs on Python 3.11 as is (its `loop=` uses are on asyncio.Task and
ensure_future, which still accept it), and it owns AMI framing, ActionID matching and
EventList collection, which we keep. Four of its behaviours do not fit a call-control
client, so these small subclasses change them:

- Reconnect: panoramisk retries every `reconnect_timeout` seconds forever, with no backoff,
  and replays unanswered actions after the next FullyBooted. Replaying a Redirect minutes
  later could move a caller who is already talking to a human. Here the connection is
  opened by `open()` only; the AMI client reconnects with exponential backoff and re-checks
  the channel (Status) before any retry.
- Lost connection: panoramisk leaves the futures of in-flight actions pending (or parks them
  for replay). Here every in-flight action fails at once with AmiConnectionLost.
- Ping: panoramisk's pinger fires Pings without waiting for the answer, so it cannot tell a
  PBX that stopped answering. The AMI client measures its own Pings instead.
- Bad input: panoramisk drops unparsable frames silently and lets its buffer grow without
  bound. Here dropped frames, oversized frames and unmatched responses are counted.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

from theo_ray.asterisk.errors import AmiConnectionLost, AmiNotConnected
from theo_ray.asterisk.results import AmiStats

log = logging.getLogger(__name__)

EOL = "\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"
# No AMI frame Theo receives comes near this; a peer sending more without a blank line is broken.
MAX_FRAME_CHARS = 256 * 1024


# Headers that say what a frame is and whom it answers: panoramisk turns a repeated header
# into a list, which its dispatch cannot hash or lower-case; such a frame is dropped.
_SINGLE_HEADERS = ("response", "event", "actionid", "commandid", "eventlist")


def _ambiguous(message: Message) -> bool:
    return any(isinstance(message.get(name), list) for name in _SINGLE_HEADERS)


class CountingAmiProtocol(AMIProtocol):
    """AMI framing with counted drops and a bounded buffer."""

    def __init__(self, manager: TheoAmiManager) -> None:
        super().__init__()
        self._manager = manager
        self._buffer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        # What panoramisk's Manager.connection_made would attach, set before any data arrives.
        self.factory = manager
        self.log = manager.log
        self.config = manager.config
        self.encoding = manager.config["encoding"]
        self._decoder = codecs.getincrementaldecoder(self.encoding)("ignore")
        self.queue = deque()
        self.responses = {}

    def data_received(self, data: bytes) -> None:
        stats = self._manager.stats
        # An incremental decoder: a character cut between two TCP segments is decoded whole
        # (decoding each segment alone dropped both halves and could join two lines into a
        # blank one, a forged frame end).
        self._buffer += self._decoder.decode(data)
        if self.version is None and self._buffer.startswith(BANNER_PREFIX):
            banner, sep, rest = self._buffer.partition(EOL)
            if not sep:
                return
            self.version = banner[len(BANNER_PREFIX):].strip()
            self._buffer = rest
        *frames, self._buffer = self._buffer.split(EOL + EOL)
        if len(self._buffer) > MAX_FRAME_CHARS:
            stats.oversized_frames += 1
            log.warning("AMI: dropped %d chars without a frame end", len(self._buffer))
            self._buffer = ""
        for frame in frames:
            frame = frame.strip()
            if not frame:
                continue
            message = Message.from_line(frame)
            if message is None or _ambiguous(message):
                stats.malformed_frames += 1
                continue
            stats.frames_received += 1
            try:
                self.handle_message(message)
            except Exception:  # one bad frame must not kill the connection
                stats.malformed_frames += 1
                log.exception("AMI: frame could not be handled: %r", frame[:200])

    def handle_message(self, message: Message) -> None:
        waiting = self.responses.get(message.id) is not None or (
            message.action_id and self.responses.get(message.action_id) is not None
        )
        if not waiting and "event" not in message:
            # A late answer to an action that already timed out, or garbage with a Response header.
            self._manager.stats.unmatched_responses += 1
            return
        super().handle_message(message)


class TheoAmiManager(Manager):
    """One AMI connection: open, send actions with a deadline, hand events to a callback."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl: Any,
        stats: AmiStats,
        on_event: Callable[[Message], None],
        on_lost: Callable[[Exception | None], None],
        source_address: str | None = None,
    ) -> None:
        super().__init__(host=host, port=port, ssl=ssl, encoding="utf8", events="on")
        # panoramisk's own connect has no local address; open() below is Theo's and binds it.
        self._local_addr = (source_address, 0) if source_address else None
        self.stats = stats
        self._on_event = on_event
        self._on_lost = on_lost
        self._inflight: dict[str, actions.Action] = {}

    @property
    def ami_version(self) -> str:
        return (self.protocol.version or "") if self.protocol is not None else ""

    @property
    def is_open(self) -> bool:
        return self.protocol is not None and not self.protocol.closed

    async def open(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        _, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: CountingAmiProtocol(self),
                self.config["host"],
                self.config["port"],
                ssl=self.config["ssl"],
                local_addr=self._local_addr,
            ),
            timeout_s,
        )
        self.protocol = protocol
        self.responses = protocol.responses
        self._connected = True

    async def call(self, fields: dict[str, str], timeout_s: float) -> Message | list[Message]:
        """Send one action and wait for its complete answer (a list for EventList actions).

        Raises AmiNotConnected, AmiConnectionLost, or asyncio.TimeoutError.
        """
        if not self.is_open:
            raise AmiNotConnected("connection closed")
        action = actions.Action(fields)
        # as_list=None lets panoramisk detect EventList answers (Status); its default False
        # would resolve the future with the first "EventList: start" response alone.
        future = self.protocol.send(action, as_list=None)
        self._inflight[action.id] = action
        self.stats.actions_sent += 1
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._inflight.pop(action.id, None)
            if self.protocol is not None:
                # A timed-out action must not keep collecting (late) answers forever.
                self.protocol.responses.pop(action.id, None)

    def dispatch(self, event: Message) -> list[str]:
        self._on_event(event)
        return []

    def connection_lost(self, exc: Exception | None) -> None:
        # Replaces panoramisk's fixed-interval reconnect and action replay (see module doc).
        self._connected = False
        self.awaiting_actions.clear()
        self._fail_inflight()
        self._on_lost(exc)

    def close(self) -> None:
        super().close()
        self._connected = False
        self.awaiting_actions.clear()
        self._fail_inflight()

    def _fail_inflight(self) -> None:
        for action in list(self._inflight.values()):
            if not action.future.done():
                action.future.set_exception(AmiConnectionLost(str(action["action"])))
        self._inflight.clear()
