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




def test_retired_keys_still_load_with_a_warning_naming_the_replacement(tmp_path, caplog):
    """llm.max_tokens, llm.temperature and conversation.turn.comfort_noise were never read:
    a file that has them loads, each one logs its replacement, and nothing changes."""
    path = tmp_path / "theo.yaml"
    path.write_text(
        "llm:\n  max_tokens: 300\n  temperature: 0.9\n  cpu_threads: 2\n"
        "conversation:\n  turn:\n    comfort_noise:\n      level_dbfs: -50\n      color: brown\n"
    )
    with caplog.at_level("WARNING", logger="theo.config"):
        config = load_config(path, environ={})
    assert config.llm.cpu_threads == 2  # the rest of the table still applies
    defaults = load_config(None, environ={})
    assert config.conversation == defaults.conversation and config.media == defaults.media
    warnings = " | ".join(r.getMessage() for r in caplog.records)
    for old, new in [
        ("llm.max_tokens", "conversation.llm_max_tokens"),
        ("llm.temperature", "conversation.llm_temperature"),
        ("conversation.turn.comfort_noise", "media.idle_fill_dbfs"),
    ]:
        assert f"'{old}' is deprecated" in warnings and new in warnings
    assert len(caplog.records) == 3


def test_a_retired_key_set_from_the_environment_is_retired_too(caplog):
    with caplog.at_level("WARNING", logger="theo.config"):
        config = load_config(None, environ={"THEO__LLM__MAX_TOKENS": "300"})
    assert config.conversation.llm_max_tokens == 120
    assert "llm.max_tokens" in caplog.text


def test_a_renamed_key_carries_its_value_and_refuses_both_spellings():
    """The mechanism's other kind: a rename moves the value (no such key today)."""
    from theo_ray.config_retired import RetiredKey, retire_keys

    rename = [RetiredKey("call.pool_size", "call.warm_pool_size", moves=True)]
    data = {"call": {"pool_size": 5, "use_ami": False}}
    assert retire_keys(data, rename) == {"call": {"warm_pool_size": 5, "use_ami": False}}
    assert data == {"call": {"pool_size": 5, "use_ami": False}}  # the caller's mapping is untouched
    assert retire_keys({"ray": {}}, rename) == {"ray": {}}
    with pytest.raises(ConfigError) as err:
        retire_keys({"call": {"pool_size": 5, "warm_pool_size": 2}}, rename)
    assert err.value.key == "call.pool_size" and "call.warm_pool_size" in str(err.value)


def test_the_retired_keys_are_gone_and_their_replacements_exist():
    """A retired key that came back as a field would be silently dropped before validation."""
    from theo_ray.config import TheoConfig
    from theo_ray.config_retired import RETIRED_KEYS

    for entry in RETIRED_KEYS:
        node = TheoConfig()
        *parents, leaf = entry.key.split(".")
        for name in parents:
            node = getattr(node, name)
        assert leaf not in node.__struct_fields__, entry.key
        node = TheoConfig()
        *parents, leaf = entry.replacement.split(".")
        for name in parents:
            node = getattr(node, name)
        assert leaf in node.__struct_fields__, entry.replacement  # the warning names a real key
