"""EchoGate: keeps the agent's own voice, coming back on the line, from triggering barge-in.

Hand-written, on purpose: on a SIP leg the echo is the PBX/codec path — a delayed,
attenuated copy of what we sent, with no room response — so the gate only needs that
path's delay and gain. It works on 10 ms energy envelopes, which are rate-independent
(reference at the codec rate, inbound at 16 kHz, no second resampler) and cost a few
microseconds a frame. The Python AEC bindings on the registry (speexdsp, webrtc-audio-
processing) are unmaintained since 2018/2019; a full acoustic canceller would be needed
only for a speakerphone on the agent side, which Theo does not have.

How: the envelope of the outbound reference and of the inbound signal are kept; the lag
with the highest envelope correlation (when above ``min_correlation``) gives the path and
its gain. An inbound frame whose energy the predicted echo explains (within ``margin_db``)
is echo only: the VAD gets silence instead. Caller speech over the echo is louder than
the prediction and passes, so double talk still barges in.
"""

from __future__ import annotations

import numpy as np

from theo_ray.conversation.settings import EchoGateSettings

_EPS = 1e-3


def _block_rms(pcm: np.ndarray, blocks: int) -> np.ndarray:
    x = pcm.astype(np.float32)
    usable = len(x) - len(x) % blocks
    if usable <= 0:
        return np.zeros(blocks, np.float32)
    return np.sqrt(np.mean(x[:usable].reshape(blocks, -1) ** 2, axis=1)) + _EPS


class EchoGate:
    def __init__(self, settings: EchoGateSettings | None = None, frame_ms: int = 20) -> None:
        self.settings = settings or EchoGateSettings()
        s = self.settings
        self.blocks_per_frame = max(1, frame_ms // s.block_ms)
        n = s.history_ms // s.block_ms
        self._ref = np.full(n, _EPS, np.float32)
        self._inb = np.full(n, _EPS, np.float32)
        self._max_lag = s.max_delay_ms // s.block_ms
        self.delay_ms: float | None = None
        self.gain: float = 0.0
        self.correlation: float = 0.0
        # Upper bound of the echo's gain shown by a quiet line (None: not shown yet).
        self.echo_gain_bound: float | None = None
        self.frames_gated = 0
        self.frames_passed = 0
        self._frames_since_estimate = 0
        self._inbound_blocks = 0  # real inbound blocks seen (the history starts as padding)

    def on_reference(self, pcm: np.ndarray | None) -> None:
        """What was sent in one frame slot (None/empty: nothing was sent)."""
        blocks = (
            _block_rms(pcm, self.blocks_per_frame)
            if pcm is not None and len(pcm)
            else np.full(self.blocks_per_frame, _EPS, np.float32)
        )
        self._ref = np.concatenate((self._ref[self.blocks_per_frame :], blocks))

    def _estimate(self) -> None:
        ref, inb = np.log(self._ref), np.log(self._inb)
        n = len(inb)
        best, best_lag = -1.0, 0
        window = n - self._max_lag
        if window < 20 or float(np.max(self._ref)) < 30.0:  # reference silent: nothing to learn
            return
        if self._inbound_blocks < n:
            # Part of the inbound history is still padding: its step up to the first real
            # frame would correlate with the reference's own first step (the greeting starts
            # as the call does) and "find" a zero-delay path.
            return
        target = inb[-window:] - inb[-window:].mean()
        if float(np.std(target)) < 0.05:
            # A flat inbound envelope (digital silence, steady noise) correlates with nothing;
            # normalising its rounding residue would "find" a path at random.
            return
        target_norm = float(np.sqrt(np.sum(target**2)))
        for lag in range(self._max_lag + 1):
            seg = ref[n - window - lag : n - lag]
            seg = seg - seg.mean()
            denom = float(np.sqrt(np.sum(seg**2))) * target_norm
            corr = float(np.dot(seg, target) / denom) if denom else 0.0
            if corr > best:
                best, best_lag = corr, lag
        self.correlation = best
        if best >= self.settings.min_correlation:
            lagged = self._ref[n - window - best_lag : n - best_lag]
            active = lagged > 4 * np.median(self._ref)
            if np.any(active):
                self.gain = float(np.median(self._inb[-window:][active] / lagged[active]))
                self.delay_ms = best_lag * self.settings.block_ms

    def could_be_echo(self, rms: float, lead_ms: float = 0.0) -> bool:
        """For the barge-in fast path, which sees a packet as it arrives, `lead_ms` (the jitter
        buffer's depth) ahead of the frame stream this gate follows; it must not change the
        gate's state. True when what we sent where the learned path points (shifted by the
        lead, two blocks of slack each side), at the learned gain plus the margin, could be
        this loud; before a path is learned, anything sent within the echo's reach at the
        assumed default ERL."""
        if self.delay_ms is None:
            limit = self._unlearned_echo_limit()
            return limit is not None and rms <= limit
        s = self.settings
        n = len(self._ref)
        lag = max(0, int((self.delay_ms - lead_ms) // s.block_ms))
        newest = n - lag + 2  # exclusive end; the newest reference block is n - 1
        window = self._ref[max(0, newest - 4 - self.blocks_per_frame) : min(n, newest)]
        loudest = float(np.max(window)) if len(window) else 0.0
        return loudest > 30.0 and rms <= loudest * self.gain * 10 ** (s.margin_db / 20) + 30.0

    def _unlearned_echo_limit(self) -> float | None:
        """While no path is learned: the loudest echo anything we sent within the echo's
        reach could return (the bound a quiet line proved, plus the margin, else the assumed
        default ERL); None when we sent nothing."""
        loudest = float(np.max(self._ref[-(self._max_lag + 2) :]))
        if loudest <= 30.0:
            return None
        if self.echo_gain_bound is not None:
            factor = self.echo_gain_bound * 10 ** (self.settings.margin_db / 20)
        else:
            factor = 10 ** (-self.settings.default_erl_db / 20)
        return loudest * factor + 30.0

    def _bound_from_quiet_line(self) -> None:
        """Over the echo's whole reach the line stayed at least `quiet_line_erl_db` below
        loud audio we had sent before that reach began: whatever echo it returns is at most
        that small. The bound is kept (the line does not change within a call; a real echo
        would be learned as a path). Without the shift by one reach, the start of each agent
        utterance (sent, its echo not yet back) would look like a quiet line."""
        reach = self._max_lag + 2
        earlier = self._ref[-2 * reach : -reach]
        if len(earlier) < reach or self._inbound_blocks < 2 * reach:
            return
        sent = float(np.max(earlier))
        if sent < 300.0:  # nothing loud enough went out to tell
            return
        line = float(np.max(self._inb[-reach:]))
        if line <= sent * 10 ** (-self.settings.quiet_line_erl_db / 20):
            # Every quiet stretch is a valid upper bound: keep the tightest. (The largest would
            # grow with the caller's own soft speech heard while we talked.)
            # Floored at -50 dB: a line that was silent for a moment (a hold) can come back.
            # (-40 dB measured too high: with the agent at ~10000 RMS it hid a ~190 RMS onset.)
            bound = max(line / sent, 10 ** (-50 / 20))
            self.echo_gain_bound = bound if self.echo_gain_bound is None else min(self.echo_gain_bound, bound)

    def is_echo_only(self, inbound: np.ndarray) -> bool:
        """True when this inbound frame is (only) our own voice coming back."""
        blocks = _block_rms(inbound, self.blocks_per_frame)
        self._inb = np.concatenate((self._inb[self.blocks_per_frame :], blocks))
        self._inbound_blocks += self.blocks_per_frame
        self._frames_since_estimate += 1
        if self._frames_since_estimate >= 5:  # re-estimate every 100 ms
            self._frames_since_estimate = 0
            self._estimate()
            if self.delay_ms is None:
                self._bound_from_quiet_line()
        if self.delay_ms is None:
            # Path not learned (no echo to learn from, or the agent's first seconds): the
            # echo is at most what a quiet line proved, else default_erl_db under what we
            # sent; only louder sound can be the caller.
            limit = self._unlearned_echo_limit()
            echo = limit is not None and float(np.max(blocks)) <= limit
            self.frames_gated += echo
            self.frames_passed += not echo
            return echo
        lag = int(self.delay_ms // self.settings.block_ms)
        n = len(self._ref)
        limit_factor = self.gain * 10 ** (self.settings.margin_db / 20)
        echo = True
        predicted_any = False
        # Each block against the reference block it would echo (one block of delay slack).
        for j in range(self.blocks_per_frame):
            ref_index = n - self.blocks_per_frame + j - lag
            window = self._ref[max(0, ref_index - 1) : min(n, ref_index + 2)]
            predicted = float(np.max(window)) if len(window) else 0.0
            predicted_any = predicted_any or self.gain * predicted > 30.0
            if blocks[j] > limit_factor * predicted + 30.0:
                echo = False
                break
        echo = echo and predicted_any
        if echo:
            self.frames_gated += 1
        else:
            self.frames_passed += 1
        return echo
