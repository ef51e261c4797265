"""AmiBridge: the Ray actor that holds Theo's AMI session to the PBX (one per cluster).

A thin wrapper: the logic (reconnect, Ping health, Status-confirmed Redirect/Hangup,
idempotency) is `theo_ray.asterisk.ami_client.AmiClient`, tested without Ray. CallActors
call `transfer()` after their playout has drained, and `hangup()` to end a call after the
goodbye (the PBX then sends the AI leg a BYE; hanging up only the AI leg would send the
caller to the human fallback route instead).

Create it with `AmiBridgeActor.options(name=AMI_BRIDGE).remote(settings)` (theo_ray.actor_names); the secret
comes from THEO_AMI_SECRET (or ami.secret_file) in the actor's environment.
"""

from __future__ import annotations

import ray

from theo_ray.asterisk.ami_client import AmiClient
from theo_ray.asterisk.redirect_span import traced_transfer
from theo_ray.asterisk.errors import AmiAuthenticationFailed
from theo_ray.asterisk.results import AmiActionResult, AmiHealth, AmiStats, ChannelInfo
from theo_ray.asterisk.settings import AsteriskSiteSettings, resolve_ami_secret
from theo_ray.asterisk.transfer import AmiTransferrer, TransferResult, routes_from_settings
from theo_ray.errors import ConfigError
from theo_ray.messages import TraceContext


class AmiBridge:
    def __init__(self, settings: AsteriskSiteSettings) -> None:
        secret = resolve_ami_secret(settings.ami)
        if secret is None:
            raise ConfigError(settings.ami.secret_env, "AMI secret not set (environment or ami.secret_file)")
        self._settings = settings
        # From theo.host (or ami.source_address): the manager.conf `permit=` Theo renders names
        # that address, and a PBX sharing an interface with Theo would otherwise see another.
        self._client = AmiClient(settings.ami, secret, source_address=settings.ami_source_address())
        self._transferrer = AmiTransferrer(self._client, routes_from_settings(settings.dialplan))
        self._started = False

    async def start(self) -> AmiHealth:
        """Connect (in the background) and wait up to connect_timeout_s for the first login.

        A login the PBX refuses (wrong secret, or its `permit=` ACL: Asterisk answers both
        "Authentication failed") raises AmiAuthenticationFailed and stops retrying, so that
        `theo up` fails loudly instead of reporting a plane that cannot transfer anyone.
        A PBX that does not answer yet is not an error here: the health says so, and the
        client keeps reconnecting with backoff."""
        if not self._started:
            self._started = True
            await self._client.start()
            await self._client.wait_logged_in(self._settings.ami.connect_timeout_s)
        health = self._client.health()
        if not health.logged_in and self._client.stats().login_failures:
            await self.stop()
            ami = self._settings.ami
            raise AmiAuthenticationFailed(
                ami.username,
                f"the PBX at {ami.host} refused the login (secret, or manager.conf permit= does not list "
                f"{self._settings.ami_source_address() or 'this host'})",
            )
        return health

    async def stop(self) -> None:
        await self._client.stop()
        self._started = False

    async def health(self) -> AmiHealth:
        return self._client.health()

    async def stats(self) -> AmiStats:
        return self._client.stats()

    async def find_channel(self, session_id: str) -> ChannelInfo:
        return await self._client.find_channel(session_id)

    async def redirect(self, session_id: str, context: str, exten: str, priority: int = 1) -> AmiActionResult:
        return await self._client.redirect(session_id, context, exten, priority)

    async def hangup(self, session_id: str, cause: int = 16) -> AmiActionResult:
        return await self._client.hangup(session_id, cause)

    async def transfer(
        self, session_id: str, destination: str, reason: str, trace: TraceContext = TraceContext()
    ) -> TransferResult:
        """Redirect the caller to `destination`; `trace` (the CallActor's transfer span) makes
        the Redirect a span of the call's trace (asterisk/redirect_span.py)."""
        return await traced_transfer(self._transferrer, session_id, destination, reason, trace)


# Restarted by Ray if its process dies; the client reconnects and re-learns channels by Status.
AmiBridgeActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(AmiBridge)
