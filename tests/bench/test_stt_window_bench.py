"""`theo bench stt-window` in process: real Whisper base, the real caller voice (Kokoro),
the audio through a G.711 round trip. Figures are printed, not asserted; this checks that
every window transcribes every phrase and that the fitted window still understands them."""

from __future__ import annotations

import pytest

from theo_ray.bench.stt_window_bench import CALLER_PHRASES, run_stt_window_bench

pytestmark = pytest.mark.slow


def test_every_window_transcribes_every_phrase(theo_config):
    phrases = CALLER_PHRASES[:4]
    report = run_stt_window_bench(theo_config, [30.0, 10.0], repeats=1, progress=lambda _m: None, phrases=phrases)
    assert [w.window_min_s for w in report.windows] == [30.0, 10.0]
    assert all(w.transcriptions == len(phrases) and len(w.hypotheses) == len(phrases) for w in report.windows)
    assert all(0.0 < s < 10.0 for s in report.audio_s)
    for w in report.windows:
        print(f"window ≥ {w.window_min_s:g} s: mean {w.ms_mean:.0f} ms, WER {w.wer:.3f}")
        assert w.wer <= 0.25, w.hypotheses
