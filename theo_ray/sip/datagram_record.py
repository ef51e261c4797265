"""DatagramRecord: the last SIP message a shard process received, kept where its death
does not take it: a small memory-mapped file the gateway actor reads after a crash.

The shard writes a one-line summary (time, transport, source, size, start line, Call-ID)
for every message pjsip logs as received, before pjsip processes it; a write is a copy
into the page cache, no syscall. After the process dies the gateway logs the summary:
the datagram that killed it (or the last one before it).
"""

from __future__ import annotations

import mmap
import os
import re
import time
from pathlib import Path
from typing import NamedTuple

SIZE = 1024
# pjsua's message log line: "RX 496 bytes Request msg INVITE/cseq=1 (rdata0x..) from UDP 1.2.3.4:5060:"
_RX = re.compile(r"RX (\d+) bytes (\S+) msg (\S+) \([^)]*\) from (\S+) ([^\s]+?):\s*$")
_CALL_ID = re.compile(r"^(?:call-id|i)\s*:\s*(\S{1,120})", re.IGNORECASE | re.MULTILINE)


class RxEntry(NamedTuple):
    """pjsip's log of one received message, read apart."""

    size: str
    kind: str  # "Request" | "Response"
    what: str  # "INVITE/cseq=1", "200/INVITE/cseq=1"
    transport: str  # "UDP", "TCP"
    source: str  # "host:port" as pjsip printed it
    message: str  # the message text


def rx_entry(log_text: str) -> RxEntry | None:
    """The parts of a pjsip "RX <n> bytes ... msg" log entry, None for any other entry."""
    first, _, rest = log_text.partition("\n")
    if "RX " not in first[:80]:
        return None
    match = _RX.search(first)
    if match is None:
        return None
    return RxEntry(*match.groups(), rest.split("\n--end msg--", 1)[0])


def summarise_rx(log_text: str) -> str | None:
    """One line for a pjsip "RX ... msg" log entry, None for any other entry."""
    entry = rx_entry(log_text)
    if entry is None:
        return None
    start_line = entry.message.lstrip().split("\n", 1)[0].strip()[:160]
    call_id = _CALL_ID.search(entry.message[:4000])
    return (
        f"{entry.transport} {entry.source} {entry.size} bytes {entry.kind} {entry.what} | {start_line!r}"
        f"{' | Call-ID ' + call_id.group(1) if call_id else ''}"
    )


class DatagramRecord:
    """Writer (the shard) and reader (the gateway) of one record file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._map: mmap.mmap | None = None

    def open_for_writing(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)

    def write(self, summary: str) -> None:
        if self._map is None:
            return
        data = f"{time.strftime('%H:%M:%S')} {summary}".encode("utf-8", "replace")[: SIZE - 1]
        self._map[: len(data)] = data
        self._map[len(data)] = 0

    def read(self) -> str:
        try:
            data = self.path.read_bytes()
        except OSError:
            return ""
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
