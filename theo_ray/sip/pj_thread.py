"""PjsuaThread: one pjsua2 Endpoint driven by one dedicated thread.

pjsua2 is not asyncio-aware and must only be entered from threads pjlib knows. Here a
single thread creates the Endpoint, polls it (``libHandleEvents``) and runs every command
submitted from other threads between polls, so all pjsua2 callbacks and calls happen on
that one thread and application state needs no locks. Callers get a
``concurrent.futures.Future`` (``asyncio.wrap_future`` brings it back to an event loop
with ``call_soon_threadsafe``). ``libHandleEvents`` releases the GIL while it waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pjsua2 as pj

T = TypeVar("T")
log = logging.getLogger(__name__)


class PjLogWriter(pj.LogWriter):
    """Sends pjsip's log lines to Python logging instead of stdout.

    ``forward_level``: entries above it are not logged (pjsip may be set more verbose than
    that so ``observer`` sees its per-message lines, e.g. for the DatagramRecord).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        forward_level: int = 6,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self._logger = logger
        self._forward_level = forward_level
        self._observer = observer

    def write(self, entry: pj.LogEntry) -> None:
        if self._observer is not None and entry.level == 4:
            self._observer(entry.msg)
        if entry.level > self._forward_level:
            return
        level = logging.WARNING if entry.level <= 2 else logging.DEBUG
        self._logger.log(level, "%s", entry.msg.rstrip())


class PjsuaThread:
    """Owns an Endpoint; ``setup(endpoint)`` runs on the thread after ``libCreate``.

    ``setup`` must call ``libInit`` (with ``uaConfig.threadCnt = 0`` and
    ``medConfig.threadCnt = 0`` so no other pjsip thread polls), create transports and
    ``libStart``. Whatever it returns is kept as ``self.context``.
    """

    def __init__(
        self,
        name: str,
        endpoint_factory: Callable[[], pj.Endpoint],
        setup: Callable[[pj.Endpoint], Any],
        *,
        poll_interval_ms: int = 5,
    ) -> None:
        self.name = name
        self._factory = endpoint_factory
        self._setup = setup
        self._poll_ms = max(1, poll_interval_ms)
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stopping = False
        self._paused_until = 0.0
        self.endpoint: pj.Endpoint | None = None
        self.context: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 15.0) -> None:
        """Start the thread and wait until the Endpoint is running (raises its error)."""
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"{self.name}: pjsua did not start within {timeout}s")
        if self._start_error is not None:
            raise self._start_error

    def stop(self, before_destroy: Callable[[], None] | None = None, timeout: float = 10.0) -> None:
        """Run ``before_destroy`` on the thread, destroy the Endpoint and join the thread."""
        if self._thread is None or not self._thread.is_alive():
            return
        done = self.submit(lambda: self._shutdown(before_destroy))
        try:
            done.result(timeout)
        finally:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    # ------------------------------------------------------------------ commands

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._thread is None or not self._thread.is_alive():
            future.set_exception(RuntimeError(f"{self.name} is not running"))
            return future
        self._commands.put((fn, future))
        return future

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the pjsua thread and await its result without blocking the loop."""
        return await asyncio.wrap_future(self.submit(fn))

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def pause(self, seconds: float) -> None:
        """Stop all SIP processing (no polling, no commands) for ``seconds``.

        Fault injection only: it makes this user agent behave like a hung peer.
        """
        self._paused_until = time.monotonic() + seconds

    def resume(self) -> None:
        self._paused_until = 0.0

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when running)."""
        return max(0.0, self._paused_until - time.monotonic())

    # ------------------------------------------------------------------ thread body

    def _main(self) -> None:
        try:
            self.endpoint = self._factory()
            _quiet_pjlib_start()
            self.endpoint.libCreate()
            self.context = self._setup(self.endpoint)
        except BaseException as exc:  # handed to start()'s caller
            self._start_error = exc
            self._started.set()
            self._destroy()
            return
        self._started.set()
        while not self._stopping:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                time.sleep(min(pause, 0.05))
                continue
            try:
                self.endpoint.libHandleEvents(self._poll_ms)
            except pj.Error as exc:
                log.warning("%s: libHandleEvents: %s", self.name, exc.info())
            self._drain_commands()
        self._destroy()
        self._drain_commands(refuse=True)

    def _drain_commands(self, refuse: bool = False) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if refuse:
                future.set_exception(RuntimeError(f"{self.name} stopped"))
                continue
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - delivered to the submitter
                future.set_exception(exc)

    def _shutdown(self, before_destroy: Callable[[], None] | None) -> None:
        if before_destroy is not None:
            before_destroy()
        self._stopping = True

    def _destroy(self) -> None:
        if self.endpoint is None:
            return
        try:
            self.endpoint.libDestroy()
        except pj.Error as exc:
            log.warning("%s: libDestroy: %s", self.name, exc.info())
        self.endpoint = None


def _quiet_pjlib_start() -> None:
    """pjlib logs its start-up (level 4-5) to stdout before EpConfig's log level applies;
    in `theo demo` those lines landed in the middle of the user's screen. pjsua2 does not
    wrap pj_log_set_level, so it is called in the extension module that exports it."""
    import ctypes

    try:
        ctypes.CDLL(pj._pjsua2.__file__).pj_log_set_level(1)
    except (OSError, AttributeError):  # another build: its start-up lines are only noise
        pass
