"""The three model deployments as Ray Serve applications, with options from the config.

Each model is its own application (theo-stt, theo-llm, theo-tts) so one can be redeployed
or scaled without touching the others. CallActors reach them through DeploymentHandles.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from theo_ray.config import TheoConfig
from theo_ray.messages import ChatMessage, GenerateRequest
from theo_ray.runtime.deployment_options import deployment_options
# Re-exported (`as`): ModelHandles was defined here before it moved below the conversation layer.
from theo_ray.model_handles import ModelHandles as ModelHandles

STT_APP, LLM_APP, TTS_APP = "theo-stt", "theo-llm", "theo-tts"
LLM_FALLBACK_APP = "theo-llm-fallback"  # only with `llm.fallback` configured
APPS = {"stt": (STT_APP, "SpeechToText"), "llm": (LLM_APP, "LanguageModel"), "tts": (TTS_APP, "TextToSpeech")}


def call_prompt_start(config: TheoConfig) -> GenerateRequest:
    """What every call's first request starts with (the persona, the tool schemas and the
    greeting), for the language model to prefill before it takes calls."""
    from theo_ray.turn.prompt import PromptBuilder
    from theo_ray.turn.tools import ToolRegistry

    turn = config.conversation.turn
    system = PromptBuilder(turn.prompt).build(turn.tools.transfer_destinations)
    messages = [ChatMessage(role="system", content=system)]
    if config.conversation.greeting:
        # Every call's first request has the greeting as the agent's first message: cached
        # too, the first turn prefills only what the caller said (~0.5 s less on 2 cores).
        messages.append(ChatMessage(role="assistant", content=config.conversation.greeting))
    return GenerateRequest(
        messages=[*messages, ChatMessage(role="user", content="Alô?")],
        tools=ToolRegistry(turn.tools).schemas(),
        max_tokens=1,
        request_id="warm-up",
    )


def telemetry_options(options: dict, config: TheoConfig) -> dict:
    """`options` with the tracing environment of `telemetry.*` in the replicas' runtime_env
    (JSON-lines spans under the output folder, OTLP when configured)."""
    from theo_ray.telemetry.tracing import telemetry_env_for

    env = telemetry_env_for(config.telemetry, config.paths.output_dir)
    if env:
        actor = dict(options.get("ray_actor_options") or {})
        actor["runtime_env"] = {"env_vars": {"RAY_AUTH_MODE": "token", **env}}
        options = {**options, "ray_actor_options": actor}
    return options


def build_application(kind: str, config: TheoConfig):
    cache = str(config.model_cache())
    if kind == "stt":
        from theo_ray.deployments.speech_to_text import SpeechToText

        return SpeechToText.options(**telemetry_options(deployment_options(config.stt.deployment), config)).bind(
            config.stt, cache)
    if kind in ("llm", "llm_fallback"):
        from theo_ray.deployments.language_model import LanguageModel

        llm = config.llm if kind == "llm" else config.llm.fallback
        if llm is None:
            raise ValueError("llm_fallback: no llm.fallback configured")
        if llm.server == "ray_serve_llm":
            from theo_ray.runtime.serve_llm_app import serve_llm_application

            return serve_llm_application(llm, cache, call_prompt_start(config))
        return LanguageModel.options(**telemetry_options(deployment_options(llm.deployment), config)).bind(
            llm, cache, call_prompt_start(config))
    if kind == "tts":
        from theo_ray.deployments.text_to_speech import TextToSpeech

        return TextToSpeech.options(**telemetry_options(deployment_options(config.tts.deployment), config)).bind(
            config.tts, cache)
    raise ValueError(f"unknown model kind {kind!r}")


def deploy_scripted_model(config: TheoConfig, script: str, app_name: str):
    """A LanguageModel application on the scripted test-double backend (`script`: its rule
    file): the same deployment code, deterministic replies (benchmarks, fault injection,
    tests). Returns its handle."""
    import msgspec
    from ray import serve

    scripted = msgspec.structs.replace(config, llm=msgspec.structs.replace(config.llm, backend="scripted", script=script))
    serve.run(build_application("llm", scripted), name=app_name, route_prefix=None)
    return serve.get_deployment_handle("LanguageModel", app_name=app_name)


def deploy_models(
    config: TheoConfig, kinds: tuple[str, ...] | None = None, say: Callable[[str], None] = print
) -> ModelHandles:
    """Deploy (or update) the model applications (default: all, the fallback LLM too when
    configured) and wait until each is running."""
    from ray import serve

    if kinds is None:
        kinds = ("stt", "llm", "tts") + (("llm_fallback",) if config.llm.fallback is not None else ())

    serve.start(http_options={"host": "127.0.0.1", "port": 8000}, proxy_location="Disabled")
    for kind in kinds:
        app_name = LLM_FALLBACK_APP if kind == "llm_fallback" else APPS[kind][0]
        backend = config.llm.fallback.backend if kind == "llm_fallback" and config.llm.fallback else getattr(config, kind).backend
        started = time.perf_counter()
        say(f"deploying {app_name} ({backend}) ...")
        serve.run(build_application(kind, config), name=app_name, route_prefix=None)
        say(f"  {app_name} running after {time.perf_counter() - started:.1f} s")
    return model_handles()


def model_handles(with_fallback: bool | None = None) -> ModelHandles:
    """Handles to the three applications, and to the fallback LLM when it runs
    (`with_fallback` None: when Serve lists it)."""
    from ray import serve

    if with_fallback is None:
        with_fallback = LLM_FALLBACK_APP in running_apps()
    fallback = serve.get_deployment_handle("LanguageModel", app_name=LLM_FALLBACK_APP) if with_fallback else None
    return ModelHandles(
        **{kind: serve.get_deployment_handle(deployment, app_name=app) for kind, (app, deployment) in APPS.items()},
        llm_fallback=fallback,
    )


def running_apps() -> set[str]:
    from ray import serve

    try:
        return {name for name, app in serve.status().applications.items() if str(app.status).endswith("RUNNING")}
    except Exception:  # Serve not started on this cluster yet
        return set()


def ensure_models_deployed(config: TheoConfig, say: Callable[[str], None] = print) -> ModelHandles:
    """Deploy the model applications that are not running yet; return handles to all three."""
    running = running_apps()
    missing = tuple(kind for kind, (app, _) in APPS.items() if app not in running)
    if config.llm.fallback is not None and LLM_FALLBACK_APP not in running:
        missing += ("llm_fallback",)
    if missing:
        return deploy_models(config, missing, say)
    return model_handles()
