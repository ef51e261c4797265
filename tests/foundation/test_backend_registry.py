"""The backend registry: every registered class meets its kind's Protocol, unknown names are
refused naming the known ones. No Ray, no model loaded: classes are imported, never built."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from theo_ray.deployments.backends.protocols import PROTOCOLS
from theo_ray.backend_registry import BACKENDS, backend_class, check_backend
from theo_ray.config import TheoConfig, load_config
from theo_ray.errors import ConfigError

REGISTERED = [(kind, name) for kind, names in BACKENDS.items() for name in names]


def protocol_members(protocol: type) -> tuple[set[str], set[str]]:
    """(methods, data attributes) a Protocol declares, its own and its bases'."""
    methods, data = set(), set()
    for cls in protocol.__mro__:
        if cls.__module__ != protocol.__module__:  # typing.Protocol, Generic, object
            continue
        data |= set(getattr(cls, "__annotations__", {}))
        methods |= {n for n, v in vars(cls).items() if inspect.isfunction(v) and not n.startswith("_")}
    return methods, data


def instance_attributes(cls: type) -> set[str]:
    """Attributes a class sets on `self` in its __init__, or declares / defines at class level."""
    names = set()
    for klass in cls.__mro__[:-1]:
        names |= set(vars(klass)) | set(getattr(klass, "__annotations__", {}))
        init = vars(klass).get("__init__")
        if init is None:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        names.add(t.attr)
    return names


@pytest.mark.parametrize("kind, name", REGISTERED, ids=[f"{k}:{n}" for k, n in REGISTERED])
def test_each_registered_backend_meets_its_protocol(kind, name):
    cls = backend_class(kind, name)
    methods, data = protocol_members(PROTOCOLS[kind])
    assert methods and data  # the Protocol declares something
    for method in methods:
        assert callable(getattr(cls, method, None)), f"{cls.__name__} lacks {method}()"
        wanted = inspect.signature(getattr(PROTOCOLS[kind], method)).parameters
        assert list(inspect.signature(getattr(cls, method)).parameters) == list(wanted), f"{cls.__name__}.{method}"
    missing = data - instance_attributes(cls)
    assert not missing, f"{cls.__name__} lacks {sorted(missing)}"


def test_the_member_check_sees_a_missing_attribute():
    """The checker itself: a class without `sample_rate` fails the TTS Protocol."""

    class NoRate:
        def __init__(self, settings, cache_dir):
            self.model_path = "x"

        async def synthesize(self, sentence, voice, speed):
            yield b""

    _, data = protocol_members(PROTOCOLS["tts"])
    assert data - instance_attributes(NoRate) == {"sample_rate"}


def test_the_config_defaults_are_registered():
    config = TheoConfig()
    for kind in ("stt", "llm", "tts"):
        check_backend(kind, getattr(config, kind).backend)


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_an_unknown_backend_is_refused_at_config_load_naming_the_known_ones(tmp_path, kind):
    path = tmp_path / "theo.toml"
    path.write_text(f"[{kind}]\nbackend = 'nonesuch'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.key == f"{kind}.backend"
    assert "'nonesuch'" in str(err.value)
    for known in BACKENDS[kind]:
        assert repr(known) in str(err.value)


def test_an_unknown_backend_is_refused_before_any_import():
    with pytest.raises(ConfigError, match="known: 'espeak', 'kokoro', 'xtts'"):
        backend_class("tts", "piper")


def test_the_optional_abilities_are_where_the_deployments_look_for_them():
    """The LanguageModel warms an engine that has `warm`; the TextToSpeech checks a request's
    voice against a backend's `voices`."""
    assert list(inspect.signature(backend_class("llm", "llama_cpp").warm).parameters) == ["self", "req"]
    assert "voices" in instance_attributes(backend_class("tts", "kokoro"))
