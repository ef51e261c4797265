"""ChannelTracker: session id -> caller channel from AMI events (Newchannel, VarSet, Rename, Hangup)."""

from __future__ import annotations

from theo_ray.asterisk.channel_tracker import ChannelTracker


def varset(channel, uniqueid, value, variable="__THEO_SESSION_ID"):
    return {"Event": "VarSet", "Channel": channel, "Uniqueid": uniqueid, "Variable": variable, "Value": value}


def test_varset_rename_hangup():
    tracker = ChannelTracker()
    assert tracker.on_event({"Event": "Newchannel", "Channel": "PJSIP/a-1", "Uniqueid": "100.1"})
    assert tracker.channel_of("100.1") == "PJSIP/a-1"  # session id == caller uniqueid
    assert tracker.on_event(varset("PJSIP/a-1", "100.1", "100.1"))
    assert tracker.on_event({"Event": "Rename", "Channel": "PJSIP/a-1", "Newname": "PJSIP/a-1<MASQ>", "Uniqueid": "100.1"})
    assert tracker.channel_of("100.1") == "PJSIP/a-1<MASQ>"
    # a hang-up of a channel with the same name but another uniqueid is not the caller's
    tracker.on_event({"Event": "Hangup", "Channel": "PJSIP/a-1<MASQ>", "Uniqueid": "999.9"})
    assert tracker.channel_of("100.1") == "PJSIP/a-1<MASQ>"
    tracker.on_event({"Event": "Hangup", "Channel": "PJSIP/a-1<MASQ>", "Uniqueid": "100.1"})
    assert tracker.channel_of("100.1") is None and tracker.is_known_gone("100.1")


def test_inherited_copy_on_the_ai_leg_is_ignored():
    tracker = ChannelTracker()
    tracker.on_event(varset("PJSIP/trunk-1", "100.1", "100.1"))
    assert not tracker.on_event(varset("PJSIP/theo-2", "100.2", "100.1"))
    assert not tracker.on_event(varset("PJSIP/trunk-1", "100.1", "x", variable="OTHER"))
    assert tracker.channel_of("100.1") == "PJSIP/trunk-1"


def test_bounded_memory():
    tracker = ChannelTracker(max_sessions=16)
    for n in range(100):
        tracker.on_event({"Event": "Newchannel", "Channel": f"PJSIP/c-{n}", "Uniqueid": f"1.{n}"})
        tracker.on_event(varset(f"PJSIP/c-{n}", f"1.{n}", f"1.{n}"))
    assert tracker.channel_of("1.0") is None
    assert tracker.channel_of("1.99") == "PJSIP/c-99"
    assert len(tracker._sessions) == 16 and len(tracker._names) == 16 and len(tracker._by_channel) == 16
