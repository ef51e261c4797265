"""LineLevel: the barge-in fast path's threshold follows the line's noise floor."""

from __future__ import annotations

import numpy as np

from theo_ray.conversation.line_level import LineLevel


def test_quiet_line_lets_a_soft_onset_through_and_noisy_line_raises_the_bar():
    level = LineLevel(min_rms=100.0, rise_db=12.0)
    for _ in range(200):  # 4 s of comfort noise at -65 dBFS
        level.update(18.0)
    assert level.pause_threshold == 100.0  # the floor (18 x 4) is under the minimum
    assert 190.0 > level.pause_threshold  # the soft "Espera" onset measured over G.711

    rng = np.random.default_rng(1)
    for rms in rng.uniform(150.0, 220.0, 50 * 30):  # 30 s of street noise around -45 dBFS
        level.update(float(rms))
    assert 150.0 <= level.floor <= 220.0
    assert level.pause_threshold > 4 * 150.0  # the noise itself does not pause the agent


def test_a_speech_burst_barely_moves_the_floor():
    level = LineLevel(min_rms=100.0, rise_db=12.0)
    for _ in range(100):
        level.update(20.0)
    for _ in range(100):  # 2 s of loud speech
        level.update(5000.0)
    assert level.floor < 20.0 + 0.2 * (5000.0 - 20.0)
    level.update(15.0)
    assert level.floor == 15.0  # drops at once to a quieter packet
