"""SIP signalling edge: SDP answers, gateway <-> call-router messages and the pjsua2 user agent.

The gateway only signals; RTP belongs to each call's CallActor (see theo_ray/media).
"""
