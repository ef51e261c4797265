import resource
import time

import numpy as np
import pytest

from theo_ray.turn.settings import VadSettings
from theo_ray.turn.vad import SileroVad, load_silero_session, silero_model_path

from .conftest import to_int16


def run_vad(vad: SileroVad, pcm: np.ndarray, frame: int = 320):
    events = []
    for start in range(0, pcm.size, frame):
        events += vad.process(pcm[start : start + frame].tobytes())
    return events


def test_model_file_found():
    path = silero_model_path()
    assert path.name == "silero_vad.onnx" and path.stat().st_size > 100_000


def test_silence_gives_no_event():
    vad = SileroVad()
    rng = np.random.default_rng(1)
    quiet_noise = to_int16(rng.standard_normal(16000 * 2).astype(np.float32) * 0.002)
    assert run_vad(vad, quiet_noise) == []
    assert not vad.speaking and vad.probability < 0.3
    assert vad.silence_ms == pytest.approx(vad.now_ms)


def test_speech_start_and_end_around_real_speech(speak):
    speech = speak("Bom dia, eu gostaria de saber o saldo da minha conta, por favor.")
    lead, tail = np.zeros(16000, np.float32), np.zeros(16000, np.float32)
    pcm = to_int16(np.concatenate([lead, speech, tail]))
    vad = SileroVad()
    events = run_vad(vad, pcm)
    starts = [e for e in events if e.kind == "speech_start"]
    ends = [e for e in events if e.kind == "speech_end"]
    assert starts and ends
    speech_start_ms, speech_end_ms = 1000.0, 1000.0 + speech.size / 16
    assert abs(starts[0].at_ms - speech_start_ms) < 200
    assert abs(ends[-1].at_ms - speech_end_ms) < 400
    assert not vad.speaking
    assert 500 < vad.silence_ms < 1200  # trailing silence measured from the last speech window
    assert vad.stats.bad_input == 0


def test_energy_speech_end_is_nearer_the_voice_end_than_the_last_speech_window(speak):
    """Silero's last speech window ends after the voice does; the 10 ms energy blocks put the
    end back where the signal really falls silent (its last sample over the threshold)."""
    speech = to_int16(speak("Eu queria saber o valor da minha fatura."))
    pcm = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(16000, np.int16)])
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 200)
    true_end_ms = (loud[-1] + 1) / 16.0
    vad = SileroVad()
    ends = []
    for start in range(0, pcm.size, 320):
        for event in vad.process(pcm[start : start + 320]):
            if event.kind == "speech_end":
                ends.append((vad.last_speech_end_ms, vad.energy_speech_end_ms(60.0, 96.0)))
    window_end, energy_end = ends[-1]
    assert energy_end <= window_end
    assert abs(energy_end - true_end_ms) <= 20.0, (energy_end, true_end_ms, window_end)
    assert vad.energy_speech_end_ms(60.0, 0.0) == window_end  # lookback 0: the window's end


def test_chunking_does_not_change_the_result(speak):
    pcm = to_int16(np.concatenate([np.zeros(8000, np.float32), speak("Alô, quem fala?"),
                                   np.zeros(8000, np.float32)]))
    by_20ms = run_vad(SileroVad(), pcm, 320)
    by_odd = run_vad(SileroVad(), pcm, 777)
    assert by_20ms == by_odd and by_20ms


def test_context_is_carried_like_the_reference_wrapper():
    """Feeding 512-sample windows with a 64-sample context must match running the same model
    on each window with the previous window's tail prepended (OnnxWrapper's scheme)."""
    session = load_silero_session()
    rng = np.random.default_rng(7)
    audio = (rng.standard_normal(512 * 6) * 0.1).astype(np.float32)
    vad = SileroVad(session=session)
    ours = [vad.window_probability(audio[i : i + 512]) for i in range(0, audio.size, 512)]
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(64, np.float32)
    reference = []
    for i in range(0, audio.size, 512):
        x = np.concatenate([context, audio[i : i + 512]])[None]
        out, state = session.run(None, {"input": x, "state": state, "sr": np.array(16000)})
        context = x[0, -64:]
        reference.append(float(out[0][0]))
    assert ours == pytest.approx(reference, abs=1e-6)


def test_bad_input_is_dropped_and_counted():
    vad = SileroVad()
    assert vad.process(b"\x00\x01\x02") == []
    assert vad.process(np.zeros((2, 2), np.int16)) == []
    assert vad.process(np.array(["a"])) == []
    assert vad.stats.bad_input == 3
    vad.process(np.zeros(1024, np.int16).tobytes())
    assert vad.stats.windows == 2


def test_hysteresis_settings_are_used(speak):
    pcm = to_int16(np.concatenate([np.zeros(8000, np.float32), speak("Sim."),
                                   np.zeros(16000, np.float32)]))
    strict = SileroVad(VadSettings(min_speech_ms=2000))
    assert run_vad(strict, pcm) == []  # "Sim." is shorter than 2 s of speech
    assert [e.kind for e in run_vad(SileroVad(), pcm)] == ["speech_start", "speech_end"]


def test_per_call_cost_is_printed(speak):
    """Not a timing test: prints the memory of one more session and the cost per window."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    vads = [SileroVad() for _ in range(4)]
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pcm = to_int16(np.tile(speak("Um dois três quatro cinco seis."), 3))
    started = time.perf_counter()
    run_vad(vads[0], pcm)
    elapsed = time.perf_counter() - started
    per_window_ms = vads[0].stats.busy_s / vads[0].stats.windows * 1000
    print(f"\nSileroVad: ~{(after - before) / 4 / 1024:.1f} MiB max-RSS per extra session, "
          f"{per_window_ms:.3f} ms model time per 32 ms window, "
          f"{elapsed / (pcm.size / 16000) * 100:.2f}% of real time overall")
    assert vads[0].stats.windows == pcm.size // 512
