"""The AMI Redirect as a span of the call's trace, recorded inside the AmiBridge actor: a
real local Ray, the fake PBX (test double) on 127.0.0.1, the actor exporting OTLP/HTTP to a
receiver on loopback (decoded with opentelemetry-proto). The test plays the CallActor: it
makes a span context current and transfers through AmiCallControl, which carries it in the
request's TraceContext."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from tests.asterisk.conftest import SECRET
from tests.observability.otlp_receiver import OtlpReceiver

ray = pytest.importorskip("ray")


async def _span(receiver: OtlpReceiver, trace_id: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


@pytest.mark.slow
async def test_the_redirect_is_a_child_of_the_calls_transfer_span(pbx, ray_cluster):
    from opentelemetry import context as otel_context

    from theo_ray.actors.ami_bridge import AmiBridgeActor
    from theo_ray.cli.asterisk_site import load_site_settings
    from theo_ray.conversation.call_control import AmiCallControl
    from theo_ray.messages import TraceContext
    from theo_ray.telemetry.tracing import extract

    settings = load_site_settings(None, [f"ami.port={pbx.port}", "ami.backoff_initial_s=0.05"])
    bridge = None
    with OtlpReceiver() as receiver:
        env = {"THEO_AMI_SECRET": SECRET, "RAY_AUTH_MODE": "token", "OTEL_BSP_SCHEDULE_DELAY": "50",
               "THEO__TELEMETRY__OTLP_ENDPOINT": receiver.endpoint}
        try:
            bridge = AmiBridgeActor.options(runtime_env={"env_vars": env}).remote(settings)
            assert (await bridge.start.remote()).logged_in

            async def transfer_in_trace(session_id: str):
                """A transfer made while the call's `call.transfer` span (here a remote
                parent) is current, as TracedCallControl makes it in the CallActor."""
                trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
                token = otel_context.attach(extract(TraceContext(traceparent=f"00-{trace_id}-{parent_id}-01")))
                try:
                    outcome = await AmiCallControl(bridge, session_id).transfer("atendimento", "pedido do cliente")
                finally:
                    otel_context.detach(token)
                return outcome, trace_id, parent_id

            sid = pbx.add_inbound_call()
            channel = pbx.caller_channel(sid).name
            outcome, trace_id, parent_id = await transfer_in_trace(sid)
            assert outcome.ok, outcome.detail
            spans = await _span(receiver, trace_id)
            assert [s.name for s in spans] == ["call.transfer.ami_redirect"], spans
            span = spans[0]
            assert span.parent_id == parent_id and span.service == "theo-ami-bridge"
            assert span.attributes["ami.channel"] == channel
            assert span.attributes["ami.context"] == pbx.caller_channel(sid).context == "theo-transfer"
            assert span.attributes["ami.exten"] == "atendimento"
            assert span.attributes["ami.result"] == "ok"
            assert 0 < span.attributes["ami.latency_ms"] <= (span.end_ns - span.start_ns) / 1e6
            assert span.attributes["theo.session_id"] == sid
            assert "transfer.reason" not in span.attributes  # privacy: transcripts are off

            # A caller who already hung up: the span says so (error status, result channel_gone).
            gone = pbx.add_inbound_call()
            pbx.hangup_channel(pbx.caller_channel(gone).name)
            outcome, trace_id, parent_id = await transfer_in_trace(gone)
            assert not outcome.ok
            spans = await _span(receiver, trace_id)
            assert len(spans) == 1 and spans[0].parent_id == parent_id, spans
            assert spans[0].attributes["ami.result"] == "channel_gone" and spans[0].attributes["ami.channel"] == ""

            # Without a trace (a transfer from the command line) the bridge records no span.
            before = len(receiver.snapshot())
            third = pbx.add_inbound_call()
            assert (await bridge.transfer.remote(third, "atendimento", "cli")).ok
            await asyncio.sleep(0.5)
            assert len(receiver.snapshot()) == before
            await bridge.stop.remote()
        finally:
            if bridge is not None:
                ray.kill(bridge)
