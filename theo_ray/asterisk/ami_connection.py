"""One logged-in AMI session to the PBX, kept alive: the AmiClient's connection half.

Owns the TCP/TLS session (TheoAmiManager) and its state: connect, login, reconnect with
exponential backoff; PBX health (GAP 11): a Ping every `ping_interval_s`, unhealthy once
no answer came for `unhealthy_after_s`; three unanswered Pings in a row close the
connection, so a half-open TCP session (PBX host gone without FIN) turns into a reconnect.
Actions go through `call()`; events go to the `on_event` callback.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from panoramisk.message import Message

from theo_ray.asterisk.ami_protocol import TheoAmiManager
from theo_ray.asterisk.ami_replies import first, is_success
from theo_ray.asterisk.channel_tracker import header
from theo_ray.asterisk.errors import (
    AmiActionFailed,
    AmiAuthenticationFailed,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
)
from theo_ray.asterisk.results import AmiHealth, AmiStats
from theo_ray.asterisk.settings import AmiSettings

log = logging.getLogger("theo_ray.asterisk.ami_client")  # its logger before the split: filters keep working

PINGS_LOST_BEFORE_RECONNECT = 3


class AmiConnection:
    def __init__(
        self,
        settings: AmiSettings,
        secret: str,
        stats: AmiStats,
        on_event: Callable[[Message], None],
        clock: Callable[[], float],
        ssl_context: ssl.SSLContext | None,
        source_address: str | None = None,
    ) -> None:
        self._settings = settings
        self._source_address = source_address  # bound before connecting: the PBX's permit= sees it
        self._secret = secret
        self._stats = stats  # the client's: one AmiStats for connection and actions
        self._on_event = on_event
        self._clock = clock
        self._ssl = ssl_context
        self._manager: TheoAmiManager | None = None
        self._logged_in = False
        self._logged_in_at: float | None = None
        self._last_pong_at: float | None = None
        self._last_rtt_ms: float | None = None
        self._pings_lost = 0
        self.last_error = "not started"
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._lost: asyncio.Event | None = None
        self._login_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self.last_error = "connecting"
        self._lost = asyncio.Event()
        self._login_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name="ami-connection"),
            asyncio.create_task(self._ping_loop(), name="ami-ping"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._lost is not None:
            self._lost.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        self._logged_in = False
        self.last_error = "stopped"

    async def wait_logged_in(self, timeout_s: float) -> bool:
        """True once a logged-in session exists (waits at most `timeout_s`)."""
        if self._logged_in:
            return True
        if self._login_event is None:
            return False
        try:
            await asyncio.wait_for(self._login_event.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return self._logged_in

    # ------------------------------------------------------------------ health

    def health(self) -> AmiHealth:
        now = self._clock()
        manager = self._manager
        connected = manager is not None and manager.is_open
        pong_age = None if self._last_pong_at is None else now - self._last_pong_at
        last_alive = self._last_pong_at if self._last_pong_at is not None else self._logged_in_at
        if not connected:
            healthy, reason = False, self.last_error
        elif not self._logged_in:
            healthy, reason = False, self.last_error or "not logged in"
        elif last_alive is None or now - last_alive > self._settings.unhealthy_after_s:
            silent = 0.0 if last_alive is None else now - last_alive
            healthy, reason = False, f"no answer to Ping for {silent:.1f} s"
        else:
            healthy, reason = True, "ok"
        return AmiHealth(
            healthy=healthy,
            connected=connected,
            logged_in=self._logged_in,
            reason=reason,
            last_pong_age_s=pong_age,
            last_ping_rtt_ms=self._last_rtt_ms,
            ami_version=manager.ami_version if manager is not None else "",
            reconnects=self._stats.reconnects,
        )

    async def ping(self) -> float:
        """One AMI Ping; returns the round trip in ms."""
        started = self._clock()
        self._stats.pings_sent += 1
        response = await self.call({"Action": "Ping"}, self._settings.unhealthy_after_s)
        if not is_success(response):
            raise AmiActionFailed("Ping", header(first(response), "Message"))
        self._last_pong_at = self._clock()
        self._last_rtt_ms = (self._last_pong_at - started) * 1000.0
        self._stats.pongs += 1
        self._pings_lost = 0
        return self._last_rtt_ms

    # ------------------------------------------------------------------ actions

    async def ready(self) -> None:
        """Wait (up to `reconnect_wait_s`) for a logged-in session, else AmiNotConnected."""
        if not await self.wait_logged_in(self._settings.reconnect_wait_s):
            raise AmiNotConnected(self.last_error)

    async def call(self, fields: dict[str, str], timeout_s: float) -> Any:
        """Send one action; its answer (a Message, or a list for an event-list action)."""
        manager = self._manager
        if manager is None or not self._logged_in:
            raise AmiNotConnected(self.last_error)
        try:
            return await manager.call(fields, timeout_s)
        except asyncio.TimeoutError:
            self._stats.action_timeouts += 1
            raise AmiTimeout(fields["Action"], timeout_s) from None

    # ------------------------------------------------------------------ connection

    async def _connection_loop(self) -> None:
        settings = self._settings
        delay = settings.backoff_initial_s
        while not self._stopping:
            try:
                await self._connect_and_login()
            except AmiAuthenticationFailed as exc:
                self._stats.login_failures += 1
                self.last_error = "authentication failed"
                log.error("%s", exc)
            except (OSError, asyncio.TimeoutError, AmiError) as exc:
                self.last_error = f"cannot connect to {settings.host}: {exc or type(exc).__name__}"
                log.warning("AMI: %s", self.last_error)
            else:
                delay = settings.backoff_initial_s
                await self._lost.wait()
                if self._stopping:
                    return
            self._drop_session()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, settings.backoff_max_s)

    async def _connect_and_login(self) -> None:
        settings = self._settings
        self._lost.clear()
        port = settings.tls_port if settings.tls else settings.port
        manager = TheoAmiManager(
            host=settings.host,
            port=port,
            ssl=self._ssl,
            stats=self._stats,
            on_event=self._on_event,
            on_lost=self._on_lost,
            source_address=self._source_address,
        )
        self._manager = manager
        await manager.open(settings.connect_timeout_s)
        login = {
            "Action": "Login",
            "Username": settings.username,
            "Secret": self._secret,
            "Events": "on",
        }
        try:
            response = first(await manager.call(login, settings.connect_timeout_s))
        except asyncio.TimeoutError:
            raise AmiTimeout("Login", settings.connect_timeout_s) from None
        if not is_success(response):
            raise AmiAuthenticationFailed(settings.username, header(response, "Message"))
        self._logged_in = True
        self._logged_in_at = self._clock()
        self._last_pong_at = None
        self._pings_lost = 0
        self.last_error = ""
        self._stats.connects += 1
        self._stats.reconnects = max(0, self._stats.connects - 1)
        self._login_event.set()
        log.info("AMI: logged in to %s:%d as %s (AMI %s)", settings.host, port, settings.username, manager.ami_version)

    def _on_lost(self, exc: Exception | None) -> None:
        self._stats.connection_losses += 1
        if self._logged_in:
            self.last_error = "connection lost"
        self._logged_in = False
        self._login_event.clear()
        self._lost.set()

    def _drop_session(self) -> None:
        self._logged_in = False
        if self._login_event is not None:
            self._login_event.clear()
        if self._manager is not None:
            self._manager.close()

    def _force_reconnect(self, why: str) -> None:
        log.warning("AMI: %s; reconnecting", why)
        self.last_error = why
        self._logged_in = False
        self._login_event.clear()
        if self._manager is not None:
            self._manager.close()
        self._lost.set()

    async def _ping_loop(self) -> None:
        while not self._stopping:
            await self._login_event.wait()
            try:
                await self.ping()
            except AmiError as exc:
                self._stats.ping_failures += 1
                if isinstance(exc, AmiTimeout):
                    self._pings_lost += 1
                    if self._pings_lost >= PINGS_LOST_BEFORE_RECONNECT:
                        self._force_reconnect(f"{self._pings_lost} Pings unanswered")
                        self._pings_lost = 0
            await asyncio.sleep(self._settings.ping_interval_s)


def ssl_context_for(settings: AmiSettings) -> ssl.SSLContext | None:
    """The TLS context `settings` ask for (None: plain TCP)."""
    if not settings.tls:
        return None
    return ssl.create_default_context(cafile=settings.tls_ca_file or None)
