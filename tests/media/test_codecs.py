"""Codec registry: G.711 bit patterns, round-trip quality, L16 byte order, G.722."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from theo_ray.media.codecs import PayloadError, codec_info, create_codec, find_codec
from tests.media.signals import best_lag, snr_db, speech_like


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop  # removed in Python 3.13; only a reference here
        except ImportError:
            return None
    return audioop


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_tables_match_the_reference_implementation(name):
    audioop = _audioop()
    if audioop is None:
        pytest.skip("audioop (reference) not available on this Python")
    every = np.arange(-32768, 32768, dtype=np.int16)
    codec = create_codec(name)
    encode = audioop.lin2ulaw if name == "PCMU" else audioop.lin2alaw
    decode = audioop.ulaw2lin if name == "PCMU" else audioop.alaw2lin
    assert codec.encode(every) == encode(every.tobytes(), 2)
    all_codes = bytes(range(256))
    assert np.array_equal(codec.decode(all_codes), np.frombuffer(decode(all_codes, 2), np.int16))


def test_g711_known_codes():
    # Silence encodes to 0xFF (mu-law) and 0xD5 (A-law) in every G.711 implementation.
    zeros = np.zeros(4, np.int16)
    assert create_codec("PCMU").encode(zeros) == b"\xff" * 4
    assert create_codec("PCMA").encode(zeros) == b"\xd5" * 4


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_round_trip_snr_on_speech(name):
    x = speech_like(8000, 2.0, top_hz=3400)
    codec = create_codec(name)
    frames = [codec.decode(codec.encode(x[i : i + 160])) for i in range(0, x.size, 160)]
    y = np.concatenate(frames)
    assert y.dtype == np.int16 and y.size == x.size
    assert snr_db(x, y) >= 30.0


@pytest.mark.parametrize("name,rate", [("L16/8000", 8000), ("L16/16000", 16000), ("L16", 16000)])
def test_l16_is_lossless_and_big_endian(name, rate):
    codec = create_codec(name)
    assert codec.sample_rate == rate == codec.clock_rate
    x = np.array([1, -2, 0x1234], dtype=np.int16)
    payload = codec.encode(x)
    assert payload == b"\x00\x01\xff\xfe\x12\x34"
    assert np.array_equal(codec.decode(payload), x)
    with pytest.raises(PayloadError):
        codec.decode(b"\x00\x01\x02")


def test_g722_clock_rate_and_frame_size():
    info = codec_info("G722")
    assert (info.payload_type, info.sample_rate, info.clock_rate) == (9, 16000, 8000)
    assert info.samples_per_frame(20) == 320 and info.timestamp_step(20) == 160
    codec = create_codec("G722")
    assert len(codec.encode(np.zeros(320, np.int16))) == 160  # 64 kbit/s


def test_g722_round_trip_quality():
    """G.722 is sub-band ADPCM: its QMF bank delays and phase-shifts the signal, so the
    waveform SNR is measured after a least-squares alignment filter (19 taps around the
    codec delay). Measured here: ~19-20 dB on the speech-like signal, 40-60 dB on tones
    below 4 kHz; the assertion leaves margin below those."""
    x = speech_like(16000, 2.0, top_hz=7000)
    enc, dec = create_codec("G722"), create_codec("G722")  # one instance per direction
    y = np.concatenate([dec.decode(enc.encode(x[i : i + 320])) for i in range(0, x.size, 320)])
    assert y.size == x.size
    lags = range(14, 33)
    start = 1000
    a = np.stack([x[start - k : x.size - k].astype(np.float64) for k in lags], axis=1)
    target = y[start:].astype(np.float64)
    h, *_ = np.linalg.lstsq(a, target, rcond=None)
    assert snr_db(target, a @ h) >= 15.0
    t = np.arange(32000) / 16000
    tone = (np.sin(2 * np.pi * 1000 * t) * 10000).astype(np.int16)
    enc, dec = create_codec("G722"), create_codec("G722")
    out = np.concatenate([dec.decode(enc.encode(tone[i : i + 320])) for i in range(0, tone.size, 320)])
    lag = best_lag(tone, out, 40)
    assert snr_db(tone[4000:-100], out[4000 + lag : tone.size - 100 + lag]) >= 30.0


def test_find_codec_by_rtpmap():
    assert find_codec("pcmu", 8000).name == "PCMU"
    assert find_codec("G722", 8000).name == "G722"
    assert find_codec("L16", 16000).name == "L16/16000"
    assert find_codec("L16", 8000).name == "L16/8000"
    assert find_codec("opus", 48000) is None


def test_dynamic_payload_type_override():
    assert create_codec("L16", payload_type=118).payload_type == 118
    assert create_codec("PCMA").payload_type == 8


def test_encode_rejects_non_int16():
    with pytest.raises(TypeError):
        create_codec("PCMU").encode(np.zeros(160, np.float32))


def test_through_codec_keeps_the_length_and_what_the_band_carries():
    from theo_ray.media.codecs import through_codec

    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    out = through_codec(tone, 16000, "PCMU")
    assert out.size == tone.size and out.dtype == np.int16
    err = out[800:-800].astype(float) - tone[800:-800]
    assert 10 * np.log10(np.mean(tone[800:-800].astype(float) ** 2) / np.mean(err**2)) > 25
    high = (8000 * np.sin(2 * np.pi * 6000 * t)).astype(np.int16)  # above G.711's 4 kHz
    assert np.sqrt(np.mean(through_codec(high, 16000, "PCMU")[800:-800].astype(float) ** 2)) < 400
