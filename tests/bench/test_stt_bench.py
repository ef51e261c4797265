"""`theo bench stt`'s subset in the suite: real Whisper (the configured default), real
rendered audio (Kokoro's pt-BR voices, Theo's G.711 line and inbound chain).

Fails when the WER on the clean Kokoro subset exceeds the committed threshold, or when a
decoding loop reaches the transcript. The threshold is what the benchmark measured on this
subset with the default setting, plus a margin for a subset this small (README,
Benchmarks); lower it when the default gets better.
"""

from __future__ import annotations

import msgspec
import pytest

from theo_ray.bench.stt_bench import SttBenchReport, run_stt_bench, select
from theo_ray.bench.stt_judge import load_corpus

pytestmark = pytest.mark.slow

# This subset (one utterance of each kind, pf_dora and pm_alex, clean G.711) measured 0.056
# with the default (beam 5): about twice that.
CLEAN_KOKORO_WER_MAX = 0.12
SUBSET_VOICES = ["pf_dora", "pm_alex"]


def test_clean_kokoro_subset_stays_under_the_committed_wer(theo_config):
    utterances = select(load_corpus(), per_kind=1)  # one utterance of every kind: 11
    report = run_stt_bench(theo_config, ["current"], SUBSET_VOICES, ["g711-clean"], utterances,
                           progress=lambda _m: None)
    msgspec.json.decode(msgspec.json.encode(report), type=SttBenchReport)  # what --json writes
    (total,) = report.totals
    assert total.utterances == len(utterances) * len(SUBSET_VOICES)
    assert all(t.text for t in report.transcripts), [t.id for t in report.transcripts if not t.text]
    assert total.loops_passed_on == 0, [t.text for t in report.transcripts if t.loop_passed_on]
    for t in report.transcripts:
        print(f"{t.voice} {t.id}: {t.text!r} errors {t.errors}/{t.reference_words} missed {t.missed} {t.ms:.0f} ms")
    print(f"WER {total.wer:.3f}, meaning lost {total.meaning_lost:.2f}, p50 {total.ms_p50:.0f} ms")
    assert total.wer <= CLEAN_KOKORO_WER_MAX
