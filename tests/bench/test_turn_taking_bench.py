"""`theo bench turn-taking` end to end on two scenarios of its corpus: real Ray, real SIP/RTP
over loopback, the real STT and TTS deployments, the benchmark's own scripted language model
(deployed and deleted by the bench), the espeak-ng caller voice, one call over the impaired
line. It checks the bench path works and reports what it must; the figures are the
benchmark's to report, not this test's to judge."""

from __future__ import annotations

import pytest

from theo_ray.bench.turn_taking_bench import SCRIPTED_LLM_APP, TurnTakingBenchSettings, run_turn_taking_bench

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def speech_models(ray_cluster, theo_config):
    """The STT and TTS deployments only (the benchmark brings its own language model)."""
    from ray import serve

    from theo_ray.runtime.serve_apps import APPS, build_application, running_apps

    serve.start(http_options={"host": "127.0.0.1", "port": 8000}, proxy_location="Disabled")
    running = running_apps()
    for kind in ("stt", "tts"):
        if APPS[kind][0] not in running:
            serve.run(build_application(kind, theo_config), name=APPS[kind][0], route_prefix=None)
    return tuple(serve.get_deployment_handle(APPS[k][1], app_name=APPS[k][0]) for k in ("stt", "tts"))


async def test_two_scenarios_through_the_bench_path(speech_models, theo_config, tmp_path):
    from theo_ray.runtime.serve_apps import running_apps

    stt, tts = speech_models
    # The dictation scenario is in the impaired subset: it is also played over the lossy line.
    settings = TurnTakingBenchSettings(voices=["espeak"], names=["dictation_cpf_four_groups", "backchannel_ta"])
    lines: list[str] = []
    report = await run_turn_taking_bench(theo_config, stt, tts, settings, tmp_path, lines.append)
    print("\n".join(lines))

    assert report.scenarios == 2 and len(report.calls) == 3, lines
    assert [(c.scenario, c.line) for c in report.calls] == [
        ("backchannel_ta", "clean"), ("dictation_cpf_four_groups", "clean"), ("dictation_cpf_four_groups", "impaired"),
    ]
    assert not report.errors, report.errors
    for call in report.calls:
        assert call.voice == "espeak" and call.session_id and call.turns, call
        assert call.silence_prompts is not None, "the CallActor's record was not matched"
        assert (tmp_path / f"{call.session_id}.wav").is_file()
    dictation = report.calls[1]
    assert dictation.category == "dictation" and dictation.expected_total == 1
    assert [t.label for t in dictation.turns] == ["cpf"]
    backchannel = report.calls[0]
    # The "tá" was said over the answer (judged) or found the agent between two sentences.
    assert len(backchannel.barges) + backchannel.not_over_agent == 1, backchannel
    names = [r.name for r in report.rows]
    assert names[:2] == ["dictation", "backchannel"] or names[:2] == ["backchannel", "dictation"]
    assert {"line: clean", "line: impaired", "voice: espeak", "overall"} <= set(names)
    overall = report.row("overall")
    assert overall.calls == 3 and overall.caller_turns >= 3 and "dead_air" in overall.targets
    assert SCRIPTED_LLM_APP not in running_apps()  # the bench cleaned up its language model
