"""Fuzzing the two loaders that read files an operator (or a scenario author) writes:
the config (TOML/YAML file, nested mapping, THEO__ environment overrides) and the caller
simulator's scenario YAML. Property: a config or scenario, or a ConfigError naming a key
and the problem — never another exception.
"""

from __future__ import annotations

import json
import logging

from hypothesis import example, given
from hypothesis import strategies as st

from theo_ray.config import TheoConfig, config_from_mapping, load_config
from theo_ray.errors import ConfigError
from theo_ray.sim.scenario import Scenario, decode_scenario

from tests.security.strategies import token

SECTIONS = ["ray", "stt", "llm", "tts", "paths", "sip", "media", "call", "conversation", "asterisk"]
KEYS = ["port", "host", "shards", "max_calls", "allowed_peers", "use_ami", "backend", "ami", "secret_file",
        "turn", "tools", "transfer_destinations", "deployment", "num_replicas", "model_timeout_s",
        "max_tokens", "window_min_s", "admission", "permit", "theo", "pbx", "dialplan", "transfer_routes",
        "timeouts", "silence", "x"]
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), token)
tree = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | token, inner, max_size=4),
    max_leaves=20,
)
config_mapping = st.dictionaries(st.sampled_from(SECTIONS) | token, tree, max_size=4)


def _config_or_error(call) -> None:
    try:
        config = call()
    except ConfigError as err:
        assert err.key and err.problem
        return
    assert isinstance(config, TheoConfig)


@given(config_mapping)
@example({"sip": {"port": 2**70}})
@example({"conversation": {"model_timeout_s": 3.0, "timeouts": 7}})
def test_config_mapping_loads_or_names_the_key(data):
    logging.getLogger("theo.config").disabled = True  # retired-key warnings, by the hundred
    _config_or_error(lambda: config_from_mapping(data))


@given(st.dictionaries(st.sampled_from(["THEO__SIP__PORT", "THEO__SIP", "THEO__SIP__ADMISSION__X", "THEO__",
                                        "THEO____", "THEO__CALL__USE_AMI", "THEO__ASTERISK__AMI__PERMIT",
                                        "THEO__LLM__DEPLOYMENT__NUM_REPLICAS"]),
                       token | st.sampled_from(["[1,2", "{a=1}", "\"x\"", "[\"10.0.0.1/32\"]", "1e400"]),
                       max_size=4))
def test_environment_overrides_load_or_name_the_key(environ):
    _config_or_error(lambda: load_config(None, environ=environ))


@given(st.binary(max_size=300), st.sampled_from([".toml", ".yaml"]))
@example(b"a = [" * 200, ".toml")
@example(b"- " * 2000, ".yaml")
@example(b"&a [*a]", ".yaml")
def test_config_file_bytes_load_or_name_the_file(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("cfg") / f"theo{suffix}"
    path.write_bytes(data)
    _config_or_error(lambda: load_config(path, environ={}))


step = st.fixed_dictionaries(
    {"action": st.sampled_from(["say", "wait", "barge_in", "dtmf", "hangup", "expect", "pause", "x"]) | token},
    optional={"text": token, "wav": token, "ms": scalar, "digits": token, "pattern": token | st.just("(a"),
              "after_ms": scalar, "timeout_ms": scalar, "parts": st.lists(token | st.dictionaries(token, scalar))},
)
scenario_doc = st.fixed_dictionaries(
    {"name": st.sampled_from(["demo", "Bad Name", ""]) | token, "steps": st.lists(step, max_size=4)},
    optional={"expect": st.dictionaries(st.sampled_from(["transfer", "agent_says", "max_silence_ms"]), tree),
              "max_duration_s": scalar, "target": scalar},
)


def _scenario_or_error(data: bytes) -> None:
    try:
        scenario = decode_scenario(data)
    except ConfigError as err:
        assert err.key and err.problem
        return
    assert isinstance(scenario, Scenario)


@given(scenario_doc)
def test_scenario_documents_load_or_name_the_key(doc):
    _scenario_or_error(json.dumps(doc).encode())  # YAML reads JSON; "\\udcff" escapes survive


@given(st.binary(max_size=300))
@example(b"[" * 5000)
@example(b"name: x\nsteps: &a [*a]")
def test_scenario_bytes_load_or_name_the_key(data):
    _scenario_or_error(data)
