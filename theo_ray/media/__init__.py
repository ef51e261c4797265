"""Per-call media plane owned by a CallActor: codecs, RTP/RTCP, jitter buffer, PLC,
the one resampling point, the playout queue, and RtpSession that ties them together
(plus ImpairingRelay for tests and benchmarks). See rtp_session.py for the data flow."""
