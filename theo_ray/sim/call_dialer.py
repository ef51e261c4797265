"""Places a simulated call and runs a scenario on it: SIP by a pjsua2 caller, RTP by this process.

:func:`dial_and_run` starts a :class:`~theo_ray.sim.sip_caller.SipCaller` (its own process,
"external" media) that dials with an offer pointing at a caller-side RtpSession here, reads
the codec, telephone-event type and (with SRTP) the keys from the answer, starts the RTP
towards the answer's address (optionally through an :class:`ImpairedLine`), watches for the
far end hanging up, and hands the connected call to
:func:`theo_ray.sim.caller_runner.run_scenario`. :class:`CallFailed` says why a call could
not be placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from theo_ray.errors import TheoError
from theo_ray.media.codecs import find_codec
from theo_ray.media.rtp_session import RtpSession
from theo_ray.media.settings import MediaSettings
from theo_ray.media.srtp import SrtpKeys, new_key
from theo_ray.sim.caller_runner import CallerMedia, CallRunResult, RunnerSettings, render_utterances, run_scenario
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.impaired_line import ImpairedLine
from theo_ray.sim.scenario import Scenario
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sim.sip_caller_protocol import CallerEvent
from theo_ray.sip.sdes import SrtpRefused, keys_from_answer
from theo_ray.sip.sdp import SdpError, parse_offer


class CallFailed(TheoError):
    """The simulated call could not be placed (no answer, refused, media not set up)."""


async def dial_and_run(
    target_uri: str,
    scenario: Scenario,
    voice: CallerVoice,
    out_dir: str | Path,
    headers: Mapping[str, str] | None = None,
    caller_settings: CallerSettings | None = None,
    media_settings: MediaSettings | None = None,
    settings: RunnerSettings = RunnerSettings(),
    answer_timeout_s: float = 15.0,
    name: str = "",
    line: ImpairedLine | None = None,
) -> CallRunResult:
    """Call ``target_uri`` (pjsua2 caller, external media), run the scenario on our own
    RtpSession towards the answer's RTP address, hang up, and return the result. With
    ``line`` (a relay that loses, delays or echoes packets) the SDP offers the relay's port
    and the caller's RTP goes through it both ways; the recording stays the caller's.

    Raises :class:`CallFailed` when the call is refused or not answered in time.
    """
    caller_settings = caller_settings or CallerSettings(media="external", codecs=["PCMU"])
    if caller_settings.media != "external":
        caller_settings = msgspec.structs.replace(caller_settings, media="external")
    clock = time.monotonic  # the caller process stamps its events with time.monotonic() too
    rendered = await render_utterances(scenario, voice, settings.recording_rate)
    host = caller_settings.host
    session = RtpSession(media_settings, host=host, model_rate=settings.recording_rate, clock=clock)
    caller = SipCaller(caller_settings)
    ended = asyncio.Event()
    watch: asyncio.Task | None = None
    try:
        rtp_port = session.local_address[1] if line is None else (await line.open(session.local_address))[1]
        await caller.start()
        # caller_settings.srtp: offer SRTP (SDES) with a key of our own; Theo's is in the answer.
        srtp_key = new_key() if caller_settings.srtp else b""
        await caller.dial(target_uri, headers=dict(headers or {}), local_rtp_host=host, local_rtp_port=rtp_port,
                          srtp_key=srtp_key)
        answer = await _answer(caller, answer_timeout_s)
        codec, payload_type, telephone_event_pt = _media_of(answer)
        if srtp_key:
            session.set_srtp(_srtp_of(answer, srtp_key))
        remote = (answer.remote_host, answer.remote_port)
        send_to = remote if line is None else line.connect(remote, codec, payload_type)
        await session.start(codec, remote=send_to, payload_type=payload_type, telephone_event_pt=telephone_event_pt)
        index = len(caller.events)
        watch = asyncio.create_task(_watch_disconnect(caller, index, scenario.max_duration_s + 60.0, ended))
        result = await run_scenario(
            scenario, CallerMedia(session, remote, codec, ended), voice, out_dir, clock, settings, rendered, name
        )
        if not ended.is_set():
            with contextlib.suppress(RuntimeError, TimeoutError):
                await caller.hangup()
                await caller.wait_for("disconnected", timeout=5.0, after=index)
        return result
    finally:
        if watch is not None:
            watch.cancel()
        await session.stop()
        await caller.close()
        if line is not None:
            await line.close()


async def _answer(caller: SipCaller, timeout_s: float) -> CallerEvent:
    """The 200 OK's event, or CallFailed when the call ends (refused) or nothing comes in time."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while True:
        for event in caller.events[seen:]:
            if event.kind == "answered":
                if not event.remote_port:
                    raise CallFailed(f"answer without a usable audio stream: {event.reason or 'no SDP'}")
                return event
            if event.kind in ("disconnected", "error"):
                raise CallFailed(f"call not answered: {event.status} {event.reason}".strip())
        seen = len(caller.events)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallFailed(f"no answer within {timeout_s:.0f} s")
        with contextlib.suppress(TimeoutError):
            # Any new event ends the wait; the loop above then looks at it.
            await caller.wait_for("answered", timeout=min(remaining, 0.1), after=seen)


def _srtp_of(answer: CallerEvent, key: bytes) -> SrtpKeys:
    try:
        return keys_from_answer(parse_offer(answer.sdp), key)
    except (SdpError, SrtpRefused) as exc:
        raise CallFailed(f"SRTP offered, answer unusable: {exc}") from None


def _media_of(answer: CallerEvent) -> tuple[str, int, int | None]:
    """Codec registry name, payload type and telephone-event type from the answer's SDP."""
    try:
        sdp = parse_offer(answer.sdp)
    except SdpError as exc:
        raise CallFailed(f"unreadable SDP answer: {exc}") from None
    fmt = sdp.formats[0]
    info = find_codec(fmt.encoding, fmt.clock_rate)
    if info is None:
        raise CallFailed(f"answered with a codec we cannot play: {fmt.encoding}/{fmt.clock_rate}")
    event = sdp.telephone_event_for(fmt)
    return info.name, fmt.payload_type, event.payload_type if event else None


async def _watch_disconnect(caller: SipCaller, after: int, timeout_s: float, ended: asyncio.Event) -> None:
    """Set ``ended`` when the far end hangs up (BYE) or the dialog dies (e.g. session timer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(e.kind in ("bye_received", "disconnected") for e in caller.events[after:]):
            ended.set()
            return
        with contextlib.suppress(TimeoutError):
            await caller.wait_for("bye_received", timeout=0.2, after=len(caller.events))
