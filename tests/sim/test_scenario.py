"""Scenario files: the shipped ones load and cover the required cases; bad files name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from theo_ray.errors import ConfigError
from theo_ray.sim.scenario import (
    BargeIn,
    Dtmf,
    Hangup,
    Say,
    Scenario,
    WaitAgent,
    decode_scenario,
    encode_scenario,
    load_scenario,
    load_scenarios,
)

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def by_name() -> dict[str, Scenario]:
    return {s.name: s for s in load_scenarios(SCENARIOS)}


def test_every_scenario_file_loads_and_round_trips() -> None:
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        scenario = load_scenario(path, resolve_wavs=False)
        assert scenario.name == path.stem
        assert decode_scenario(encode_scenario(scenario)) == scenario


def test_required_cases_are_covered() -> None:
    s = by_name()
    greeting = s["greeting_simple_question"]
    assert isinstance(greeting.steps[0], WaitAgent) and isinstance(greeting.steps[-1], Hangup)

    memory = [u.spoken_text() for u in s["invoice_follow_up_memory"].utterances()]
    assert any("fatura" in t for t in memory) and any("janeiro" in t.lower() and "fatura" not in t.lower() for t in memory)

    cpf = next(u for u in s["cpf_dictation_pauses"].utterances() if u.parts)
    pieces = cpf.pieces()
    assert len(pieces) >= 3
    assert [pause for _, pause in pieces] == [1200] * (len(pieces) - 1) + [0]

    cut = [u for u in s["interruption_mid_sentence"].utterances() if isinstance(u, BargeIn)]
    assert len(cut) == 1 and cut[0].expect_agent == "stops" and cut[0].after_ms > 0

    back = [u for u in s["backchannel_no_interrupt"].utterances() if isinstance(u, BargeIn)]
    assert len(back) == 1 and back[0].expect_agent == "continues" and back[0].text == "uhum"

    transfer = s["transfer_request"]
    assert transfer.expect.transfer is True
    assert any("atendente" in u.spoken_text() for u in transfer.utterances())


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("name: x\nsteps:\n  - action: say\n    txt: oi\n", "steps[0].txt"),
        ("name: x\nsteps:\n  - action: hangup\nexpectt: {}\n", "expectt"),
        ("name: x\nsteps:\n  - action: shout\n", "steps[0].action"),
        ("name: x\nsteps:\n  - action: wait_agent\n    until: soon\n", "steps[0].until"),
        ("name: x\nsteps:\n  - action: hangup\nexpect:\n  agent_says:\n    - pattern: oi\n      turno: 1\n",
         "expect.agent_says[0].turno"),
        ("steps:\n  - action: hangup\n", "name"),
        ("name: x\nsteps:\n  - action: dtmf\n", "steps[0].digits"),
    ],
)
def test_bad_key_error_names_the_key(yaml: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_scenario(yaml, source="bad.yaml")
    assert info.value.key == key
    assert "bad.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("yaml", "words"),
    [
        ("name: x\nsteps:\n  - action: say\n    text: oi\n    wav: a.wav\n", "exactly one of"),
        ("name: x\nsteps:\n  - action: say\n", "exactly one of"),
        ("name: x\nsteps:\n  - action: dtmf\n    digits: 12x\n", "digits"),
        ("name: x\nsteps: []\n", "steps"),
        ("name: x\nsteps:\n  - action: hangup\nexpect:\n  agent_says:\n    - pattern: '(oi'\n", "regex"),
        ("name: Bad Name\nsteps:\n  - action: hangup\n", "name"),
    ],
)
def test_invalid_values_are_config_errors(yaml: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_scenario(yaml)
    assert words in info.value.problem


def test_dictation_parts_mix_strings_and_overrides() -> None:
    scenario = decode_scenario(
        "name: d\nsteps:\n  - action: say\n    pause_ms: 900\n    parts:\n"
        "      - um dois três\n      - {text: quatro cinco, pause_after_ms: 2000}\n      - seis\n"
    )
    utt = scenario.steps[0]
    assert isinstance(utt, Say)
    assert [(p.text, pause) for p, pause in utt.pieces()] == [
        ("um dois três", 900),
        ("quatro cinco", 2000),
        ("seis", 0),
    ]
    assert utt.spoken_text() == "um dois três quatro cinco seis"
    assert [label for label, _ in scenario.labelled_utterances()] == ["step0"]


def test_wav_paths_resolve_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    path = tmp_path / "wavs.yaml"
    path.write_text(
        "name: wavs\nsteps:\n  - action: say\n    wav: audio/oi.wav\n"
        "  - action: barge_in\n    parts: [{wav: /abs/x.wav}, {text: sim}]\n  - action: dtmf\n    digits: '12#'\n"
    )
    scenario = load_scenario(path)
    assert scenario.wav_paths() == [str(tmp_path / "audio" / "oi.wav"), "/abs/x.wav"]
    assert isinstance(scenario.steps[2], Dtmf)
    assert load_scenario(path, resolve_wavs=False).wav_paths() == ["audio/oi.wav", "/abs/x.wav"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert "nope.yaml" in info.value.key
