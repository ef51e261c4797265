"""Simplified G.107 E-model: known anchor values and sane ordering."""

from __future__ import annotations

import pytest

from theo_ray.media.emodel import estimate_mos, mos_from_r, r_factor


def test_anchor_values():
    assert r_factor("PCMU", 0.0, 0.0) == pytest.approx(93.2)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.01)
    # 5% random loss on G.711 with PLC: Ie,eff = 95 * 5 / (5 + 25.1) = 15.78.
    assert r_factor("PCMU", 0.0, 5.0) == pytest.approx(93.2 - 95 * 5 / 30.1, abs=1e-6)
    assert mos_from_r(0) == 1.0 and mos_from_r(120) == 4.5


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722", "L16/16000"])
def test_more_loss_or_delay_never_improves_mos(codec):
    losses = [0, 0.5, 1, 2, 5, 10, 20]
    by_loss = [estimate_mos(codec, 20, 40, loss) for loss in losses]
    assert by_loss == sorted(by_loss, reverse=True) and by_loss[0] > by_loss[-1]
    delays = [0, 50, 150, 200, 300, 500]
    by_delay = [estimate_mos(codec, d, 40, 1.0) for d in delays]
    assert by_delay == sorted(by_delay, reverse=True) and by_delay[0] > by_delay[-1]
    assert all(1.0 <= m <= 4.5 for m in by_loss + by_delay)


def test_typical_call_qualities():
    good = estimate_mos("PCMU", 20, 40, 0.0)
    assert 4.2 <= good <= 4.45
    bad = estimate_mos("PCMU", 150, 200, 10.0)
    assert bad < 3.6
    # Wideband without loss rates at least as well as narrowband G.711 on the shared scale.
    assert estimate_mos("G722", 20, 40, 0.0) >= 4.2
