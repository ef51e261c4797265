"""AmiClient against the fake Asterisk 22 AMI server (a test double) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest

from theo_ray.asterisk.errors import AmiNotConnected, ChannelGone, SessionAlreadyEnded


async def wait_for(predicate, timeout_s: float, step_s: float = 0.02) -> float:
    """Poll until predicate() is true; returns the seconds it took (fails after timeout_s)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(step_s)
    return time.monotonic() - started


def redirects(pbx) -> list[dict[str, str]]:
    return [a for a in pbx.received if a.get("action") == "Redirect"]


async def test_login_then_healthy_with_pong(client, pbx):
    await wait_for(lambda: client.health().last_pong_age_s is not None, 2.0)
    health = client.health()
    assert health.healthy and health.logged_in and health.connected
    assert health.ami_version == "9.0.0"
    assert health.last_ping_rtt_ms is not None and health.last_ping_rtt_ms >= 0
    login = next(a for a in pbx.received if a["action"] == "Login")
    assert login["username"] == "theo"


async def test_bad_credentials_never_log_in_and_actions_fail_fast(make_client, pbx):
    client = await make_client(secret="wrong")
    assert not await client.wait_logged_in(0.5)
    await wait_for(lambda: client.stats().login_failures >= 2, 2.0)  # retried with backoff
    health = client.health()
    assert not health.healthy and not health.logged_in
    assert health.reason == "authentication failed"
    sid = pbx.add_inbound_call()
    with pytest.raises(AmiNotConnected, match="authentication failed"):
        await client.redirect(sid, "theo-transfer", "atendimento")
    assert redirects(pbx) == []


async def test_redirect_moves_the_caller_and_is_timed(client, pbx):
    sid = pbx.add_inbound_call()
    result = await client.redirect(sid, "theo-transfer", "atendimento")
    caller = pbx.caller_channel(sid)
    assert result.channel == caller.name
    assert (caller.context, caller.exten) == ("theo-transfer", "atendimento")
    assert result.target == "theo-transfer,atendimento,1" and not result.already_done
    assert result.message == "Redirect successful"
    assert 0 < result.duration_ms < 2000
    # the AI leg was hung up by the PBX when the bridge broke
    assert [c for c in pbx.channels.values() if c.name.startswith("PJSIP/theo-")] == []


async def test_second_redirect_is_an_already_done_no_op(client, pbx):
    sid = pbx.add_inbound_call()
    first = await client.redirect(sid, "theo-transfer", "atendimento")
    second = await client.redirect(sid, "theo-transfer", "atendimento")
    assert second.already_done and second.duration_ms == 0.0
    assert second.channel == first.channel
    assert len(redirects(pbx)) == 1


async def test_concurrent_redirects_send_one_action(client, pbx):
    sid = pbx.add_inbound_call()
    results = await asyncio.gather(*(client.redirect(sid, "theo-transfer", "atendimento") for _ in range(3)))
    assert sum(not r.already_done for r in results) == 1
    assert len(redirects(pbx)) == 1


async def test_hangup_after_transfer_is_refused_and_caller_stays(client, pbx):
    sid = pbx.add_inbound_call()
    await client.redirect(sid, "theo-transfer", "atendimento")
    with pytest.raises(SessionAlreadyEnded):
        await client.hangup(sid)
    assert pbx.caller_channel(sid).context == "theo-transfer"


async def test_hangup_ends_the_callers_channel(client, pbx):
    sid = pbx.add_inbound_call()
    name = pbx.caller_channel(sid).name
    result = await client.hangup(sid)
    assert result.action == "hangup" and result.channel == name
    assert name not in pbx.channels
    assert ("Hangup", name) in pbx.executed
    again = await client.hangup(sid)
    assert again.already_done
    assert sum(1 for a in pbx.received if a["action"] == "Hangup") == 1


async def test_redirect_of_a_gone_channel_is_a_clear_error(client, pbx):
    sid = pbx.add_inbound_call()
    pbx.hangup_channel(pbx.caller_channel(sid).name)  # the caller put the phone down
    with pytest.raises(ChannelGone) as info:
        await client.redirect(sid, "theo-transfer", "atendimento")
    assert info.value.session_id == sid
    assert sid in str(info.value)
    assert redirects(pbx) == []


async def test_renamed_channel_is_followed_by_events(client, pbx):
    sid = pbx.add_inbound_call()
    old = pbx.caller_channel(sid).name
    pbx.rename_channel(old, "PJSIP/trunk-renamed-1")
    await wait_for(lambda: client.stats().events_handled >= 4, 1.0)
    result = await client.redirect(sid, "theo-transfer", "atendimento")
    assert result.channel == "PJSIP/trunk-renamed-1"
    assert client.stats().status_full_scans == 0  # the event-fed hint was right


async def test_masqueraded_channel_without_rename_event_is_found_by_status(client, pbx):
    sid = pbx.add_inbound_call()
    old = pbx.caller_channel(sid).name
    pbx.masquerade(old, "Local/8000@theo-inbound-00000001;2")
    result = await client.redirect(sid, "theo-transfer", "atendimento")
    assert result.channel == "Local/8000@theo-inbound-00000001;2"
    assert client.stats().status_full_scans == 1
    # Status was asked for the variables that identify the caller's leg
    status = [a for a in pbx.received if a["action"] == "Status"]
    assert all(a["variables"] == "THEO_SESSION_ID,THEO_LEG" for a in status)


async def test_connection_lost_before_redirect_runs_retries_after_reconnect(client, pbx):
    sid = pbx.add_inbound_call()
    pbx.drop_on["redirect"] = "before"
    result = await client.redirect(sid, "theo-transfer", "atendimento")
    assert not result.already_done
    assert pbx.caller_channel(sid).context == "theo-transfer"
    assert len(redirects(pbx)) == 2  # the dropped one and the retry
    assert pbx.executed.count(("Redirect", result.channel)) == 1
    assert client.health().reconnects == 1


async def test_connection_lost_after_redirect_ran_is_not_redirected_twice(client, pbx):
    sid = pbx.add_inbound_call()
    pbx.drop_on["redirect"] = "after"
    result = await client.redirect(sid, "theo-transfer", "atendimento")
    assert result.message == "already at target"
    assert len(redirects(pbx)) == 1
    assert client.health().reconnects == 1


async def test_health_goes_unhealthy_after_2s_without_pong_and_recovers(client, pbx):
    await wait_for(lambda: client.health().last_pong_age_s is not None, 2.0)
    pbx.ping_delay_s = 3.5
    silent_since = time.monotonic()
    await asyncio.sleep(1.2)
    assert client.health().healthy  # 1.2 s without an answer is still fine
    await wait_for(lambda: not client.health().healthy, 3.0)
    went_unhealthy_after = time.monotonic() - silent_since
    assert 1.5 < went_unhealthy_after < 3.5
    assert "no answer to Ping" in client.health().reason
    pbx.ping_delay_s = 0.0
    await wait_for(lambda: client.health().healthy, 6.0)


async def test_unanswered_pings_force_a_reconnect(make_client, pbx):
    client = await make_client(ping_interval_s=0.1, unhealthy_after_s=0.4)
    assert await client.wait_logged_in(2.0)
    pbx.ping_delay_s = 30.0  # a hung PBX: the TCP session stays up, nothing answers
    await wait_for(lambda: client.health().reconnects >= 1, 5.0)
    pbx.ping_delay_s = 0.0
    pbx.drop_connections()  # free the handler stuck in its 30 s Ping
    await wait_for(lambda: client.health().healthy, 5.0)


async def test_pbx_restart_reconnects_with_backoff(client, pbx):
    port = pbx.port
    await pbx.stop()
    await wait_for(lambda: not client.health().connected, 2.0)
    await asyncio.sleep(0.5)  # several refused connects while the PBX is down
    await pbx.start(port)
    await wait_for(lambda: client.health().healthy and client.health().reconnects == 1, 3.0)
    sid = pbx.add_inbound_call()
    assert (await client.redirect(sid, "theo-transfer", "atendimento")).channel


async def test_malformed_frames_are_dropped_and_counted(client, pbx):
    pbx.inject_raw(b"this is not an AMI frame\r\n\r\n")
    pbx.inject_raw(b"Response: Success\r\nActionID: nobody-waits-for-this\r\n\r\n")
    pbx.inject_raw(b"\xff\xfe\x00garbage: \r\n\r\n")
    await wait_for(lambda: client.stats().malformed_frames >= 2 and client.stats().unmatched_responses >= 1, 1.0)
    sid = pbx.add_inbound_call()
    assert (await client.redirect(sid, "theo-transfer", "atendimento")).channel
    assert client.health().connected


async def test_unknown_session_is_gone(client, pbx):
    pbx.add_inbound_call()
    with pytest.raises(ChannelGone):
        await client.find_channel("1234.999")
