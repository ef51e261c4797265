"""`theo demo`: the README's main job — everything local, one scripted phone call, a
readable transcript and per-turn latency table, and the files to dig into.

Starts Ray, the model deployments and the call plane (gateway + supervisor), places a SIP
call from the caller simulator (pjsua2 in its own process, caller media on loopback) that
plays the demo scenario, then prints what the caller heard and when, split by stage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import msgspec

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig
from theo_ray.conversation.settings import ConversationSettings

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "sim" / "scenarios" / "demo.yaml"
# What the demo company's agent knows about the caller. A 1.5B model invents what it is not
# told (prices, dates, hours): the demo grounds it the way a deployment would, through the
# persona's extra instructions (a real one would use a lookup tool), and says so.
DEMO_COMPANY = "Conecta Telecom"
# Amounts in digits: given amounts in words the 1.5B sometimes wrote them back as wrong
# numerals ("cento e dez reais" -> "R$ 100,00"); digits it copies, and the voice says them
# in words (turn/spoken_form.py).
DEMO_FACTS = (
    "Informações desta ligação: o cliente é Carlos Souza. Fatura de janeiro: R$ 89,90, "
    "vencimento em 10 de fevereiro, ainda não paga. Fatura de dezembro: R$ 79,90, já paga."
)


def demo_config(config: TheoConfig) -> TheoConfig:
    """The config with the demo company's name and facts, unless the user set their own."""
    prompt = config.conversation.turn.prompt
    if prompt.extra_instructions or prompt.path:
        return config
    prompt = msgspec.structs.replace(prompt, company_name=DEMO_COMPANY, extra_instructions=DEMO_FACTS)
    turn = msgspec.structs.replace(config.conversation.turn, prompt=prompt)
    greeting = config.conversation.greeting
    if greeting == ConversationSettings().greeting:  # the default: name the demo company
        greeting = f"Olá! Aqui é a Theo, da {DEMO_COMPANY}. Como posso te ajudar?"
    return msgspec.structs.replace(
        config, conversation=msgspec.structs.replace(config.conversation, turn=turn, greeting=greeting)
    )


async def run_call(plane, scenario_path: Path, out_dir: Path, session_id: str):
    """One call from the caller simulator to `plane` (a started CallPlane); writes the
    summary and the call record into `out_dir`; returns (run, summary, span splits)."""
    from theo_ray.sim.call_summary import span_splits, summarise_simulated_call
    from theo_ray.sim.call_dialer import dial_and_run
    from theo_ray.bench.sim_calls import caller_voice
    from theo_ray.sim.conversation_metrics import write_summary
    from theo_ray.sim.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    config = plane.config
    target = plane.uri
    say(f"calling {target} with scenario '{scenario.name}' (X-Theo-Session: {session_id}) ...")
    voice = caller_voice(config)
    run = await dial_and_run(target, scenario, voice, out_dir, headers={"X-Theo-Session": session_id})
    record = await plane.record(session_id)  # final once the supervisor closed the call
    summary = await summarise_simulated_call(run, scenario, record, plane.handles)
    spans = span_splits(record)
    write_summary(summary, out_dir / "summary.json")
    if record is not None:
        (out_dir / "call-record.json").write_bytes(msgspec.json.format(msgspec.json.encode(record), indent=2))
    return run, summary, spans


def cmd_demo(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.models.prepare import prepare_models
    from theo_ray.runtime.call_plane import CallPlane
    from theo_ray.runtime.ray_cluster import start_or_join
    from theo_ray.runtime.serve_apps import ensure_models_deployed
    from theo_ray.sim.report import render_report

    config = demo_config(config)
    out_dir = Path(args.out or Path(config.paths.output_dir) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Spans of every Theo process go here as JSON lines (the cluster inherits it when
    # `theo demo` starts it; an already running cluster keeps the folder it was started with).
    os.environ.setdefault("THEO_TRACE_DIR", str(out_dir / "traces"))
    steps: list[tuple[str, float]] = []  # (name, when it began)

    def step(name: str) -> None:
        steps.append((name, time.monotonic()))
        say(f"[bold]{len(steps)}/4 {name}[/bold]")

    step("models")
    prepare_models(config, say)
    step("Ray")
    start_or_join(config.ray, say)
    step("model deployments and call plane")
    handles = ensure_models_deployed(config, say)

    async def main():
        # One call: one gateway shard is enough (`theo up` adds the others by name later).
        plane = await CallPlane(config, handles, shards=1).start(say)
        step("the call and its analysis")
        return await run_call(plane, Path(args.scenario), out_dir, f"demo-{int(time.time())}")

    run, summary, spans = asyncio.run(main())
    ends = [began for _, began in steps[1:]] + [time.monotonic()]
    render_report(summary, spans, console)
    say("time: " + ", ".join(f"{name} {end - began:.0f} s" for (name, began), end in zip(steps, ends))
        + f"; {ends[-1] - steps[0][1]:.0f} s in all (stopping the cluster follows)")
    prompt = config.conversation.turn.prompt
    say(f"\nLLM: {config.llm.backend} {config.llm.model}; voice: Kokoro {config.tts.voice}. "
        f"The agent knows only what its prompt says (prompt.extra_instructions): {prompt.extra_instructions!r}")
    say(f"[bold]Files[/bold] in {out_dir}: {Path(run.wav_path).name} (stereo: L caller, R agent), "
        "summary.json, call-record.json, traces/ (OpenTelemetry spans as JSON lines)")
    return 0 if not run.error else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="start everything locally and place one scripted demo call")
    demo.add_argument("--scenario", default=str(DEMO_SCENARIO), help="scenario YAML (default: the demo call)")
    demo.add_argument("--out", help="output folder (default: out/demo-<time>)")
    demo.set_defaults(run=cmd_demo)
