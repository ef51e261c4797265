"""Config: file formats, environment overrides, errors naming the key, section defaults."""

from __future__ import annotations

import pytest

from theo_ray.config import load_config
from theo_ray.errors import ConfigError


def test_defaults_are_the_embedded_cpu_stack():
    config = load_config(environ={})
    assert config.stt.backend == "faster-whisper" and config.stt.model == "packaged:whisper-base"
    assert config.llm.backend == "llama_cpp" and config.llm.model == "packaged:qwen2.5-coder-1.5b"
    assert config.tts.backend == "kokoro"


def test_toml_and_yaml_files(tmp_path):
    toml = tmp_path / "theo.toml"
    toml.write_text('[stt]\nbeam_size = 2\n[llm.deployment]\nnum_replicas = 3\n')
    yaml = tmp_path / "theo.yaml"
    yaml.write_text("tts:\n  backend: espeak\n  speed: 1.2\n")
    assert load_config(toml, environ={}).stt.beam_size == 2
    assert load_config(toml, environ={}).llm.deployment.num_replicas == 3
    assert load_config(yaml, environ={}).tts.backend == "espeak"


def test_environment_overrides_win(tmp_path):
    toml = tmp_path / "theo.toml"
    toml.write_text("[stt]\nbeam_size = 2\n")
    config = load_config(
        toml, environ={"THEO__STT__BEAM_SIZE": "4", "THEO__TTS__VOICE": "jf_alpha", "THEO__RAY__ADDRESS": "auto"}
    )
    assert config.stt.beam_size == 4 and config.tts.voice == "jf_alpha" and config.ray.address == "auto"


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("[stt]\nbeam_size = 'x'\n", "stt.beam_size", "Expected `int`"),
        ("[stt]\nbeam = 1\n", "stt", "unknown key `beam`"),
        ("[llm]\nbackend = 'gpt'\n", "llm.backend", "gpt"),
        ("[llm.deployment]\nnum_cpus = 'lots'\n", "llm.deployment.num_cpus", "Expected `float`"),
        ("nonsense = 1\n", "(top level)", "unknown key `nonsense`"),
        ("[sip]\nmax_calls = 32\n", "sip.max_calls", "raise sip.shards"),
        ("[conversation]\nllm_min_tokens = 200\n", "conversation.llm_min_tokens", "llm_max_tokens"),
        ("[sip]\nshards = 0\n", "sip.shards", "1..64"),
        ("[call]\nuse_ami = true\n[sip]\nshards = 2\n", "asterisk.theo", "must match sip.port=5080, sip.shards=2"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, key, words):
    path = tmp_path / "theo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.key == key and words in str(err.value)


def test_unparseable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[stt\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})


def test_a_partial_llm_deployment_table_keeps_the_llm_defaults(tmp_path):
    """Setting one key of [llm.deployment] (file or environment) leaves the others at the
    LLM's own defaults, not at the generic deployment defaults."""
    path = tmp_path / "theo.toml"
    path.write_text("[llm.deployment]\nnum_replicas = 2\n")
    for config in (load_config(path, environ={}), load_config(None, environ={"THEO__LLM__DEPLOYMENT__NUM_REPLICAS": "2"})):
        d = config.llm.deployment
        assert (d.num_replicas, d.num_cpus, d.max_ongoing_requests, d.cpu_nice) == (2, 1.0, 16, 4)
    assert load_config(None, environ={}).stt.deployment.num_cpus == 0.5


