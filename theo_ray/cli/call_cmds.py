"""`theo call TARGET --scenario FILE`: place one simulated call and print its report.

The caller (pjsua2 in its own process, our RtpSession for the media) dials TARGET — Theo's
gateway or a PBX extension — plays the scenario, records both directions, transcribes the
agent's turns with our speech-to-text (in this process, no Ray needed) and prints the
transcript, per-turn latency table and the scenario's checks. The agent's side (its record
of the call from a running Theo plane, for intelligibility and first content audio; an LLM
for the caller's sentiment) comes from `agent_side`. Everything is written to the output
folder it names at the end. Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import msgspec
import numpy as np

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig
from theo_ray.errors import ConfigError


def parse_headers(items: list[str]) -> dict[str, str]:
    """``["X-Theo-Session=abc"]`` -> ``{"X-Theo-Session": "abc"}``; ConfigError on a bad item."""
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise ConfigError("--header", f"expected NAME=VALUE, got {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def caller_settings_for(target: str, args: argparse.Namespace):
    """The simulator's settings for `theo call`: SIP over TLS when the URI asks for it (sips:
    or ;transport=tls), with --tls-ca/--tls-cert/--tls-key; SRTP (SDES) offered on --srtp."""
    from theo_ray.sim.sip_caller import CallerSettings

    tls = target.lower().startswith("sips:") or ";transport=tls" in target.lower()
    if (args.tls_ca or args.tls_cert or args.tls_key) and not tls:
        raise ConfigError("--tls-ca", "TLS options need a sips: or ;transport=tls URI")
    return CallerSettings(media="external", codecs=args.codec or ["G722", "PCMU"], host=args.bind,
                          delayed_offer=args.delayed_offer, transport="tls" if tls else "udp",
                          tls_ca_file=args.tls_ca or "", tls_cert_file=args.tls_cert or "",
                          tls_key_file=args.tls_key or "", srtp=args.srtp)


async def _call(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.cli.agent_side import AgentSide
    from theo_ray.sim.turn_transcripts import transcribe_agent_turns
    from theo_ray.sim.call_summary import outcome_of, with_agent_side_figures
    from theo_ray.sim.intelligibility import Intelligibility
    from theo_ray.sim.call_dialer import dial_and_run
    from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
    from theo_ray.sim.conversation_metrics import caller_texts_from_scenario, summarise_call, write_summary
    from theo_ray.sim.recording import CallRecording
    from theo_ray.sim.report import render_report
    from theo_ray.sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    target = args.target or scenario.target
    if not target:
        raise ConfigError("TARGET", "give a SIP URI to call (or set `target` in the scenario)")
    headers = parse_headers(args.header)
    output_root = Path(config.paths.output_dir).expanduser()
    out = Path(args.out) if args.out else output_root / "calls" / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    voice = CallerVoice(
        output_root / "cache" / "caller-voice",
        CallerVoiceSettings(voice=args.voice),
        model_cache_dir=config.paths.model_cache,
    )
    from theo_ray.sip.invite import SESSION_HEADER

    # Names the call on a Theo plane, so its record (what the agent meant) can be asked for.
    session_id = headers.setdefault(SESSION_HEADER, f"call-{out.name}")
    caller = caller_settings_for(target, args)

    say(f"calling [bold]{target}[/bold] with scenario [bold]{scenario.name}[/bold] …")
    result = await dial_and_run(target, scenario, voice, out, headers=headers, caller_settings=caller)
    for note in result.steps:
        if note.status != "done":
            say(f"  step {note.index} {note.action}: [yellow]{note.status}[/yellow] {note.detail}")

    agent_texts = []
    if not args.no_transcribe:
        from theo_ray.deployments.backends.faster_whisper_stt import FasterWhisperBackend

        say("transcribing the agent's turns …")
        stt = FasterWhisperBackend(config.stt, Path(config.paths.model_cache).expanduser())

        async def transcribe(samples: np.ndarray, rate: int) -> str:
            audio = samples.astype(np.float32) / 32768.0
            return " ".join([s.text async for s in stt.transcribe(audio, config.stt.language, "", False)])

        recording = CallRecording.load(result.wav_path)
        agent_texts = await transcribe_agent_turns(recording, result.analysis, transcribe)

    agent = AgentSide(config)
    try:
        record = await agent.record(session_id) if agent.attach() else None
        say("classifying the caller's sentiment per turn …")
        summary = await summarise_call(
            call_id=out.name,
            analysis=result.analysis,
            outcome=outcome_of(result, record),
            caller_texts=caller_texts_from_scenario(result.analysis, scenario),
            agent_texts=agent_texts,
            scenario=scenario,
            classify_sentiment=agent.sentiment(),
            started_at_unix=result.started_at_unix,
        )
    finally:
        agent.close()
    summary = with_agent_side_figures(summary, record, missing=agent.reason)
    if args.no_transcribe:
        summary = msgspec.structs.replace(
            summary, intelligibility=Intelligibility(None, 0, 0, "the agent's words were not transcribed (--no-transcribe)")
        )
    summary_path = write_summary(summary, out / f"{scenario.name}.summary.json")
    render_report(summary, console=console)
    say(f"recording, events, result and summary in [bold]{out}[/bold] ({Path(summary_path).name})")
    return 0 if summary.passed else 1


def cmd_call(config: TheoConfig, args: argparse.Namespace) -> int:
    return asyncio.run(_call(config, args))


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="place one simulated call playing a scenario and print its report")
    p.add_argument("target", nargs="?", help="SIP URI to call, e.g. sip:theo@127.0.0.1:5080 (default: the scenario's)")
    p.add_argument("--scenario", required=True, help="scenario YAML (see tests/scenarios/)")
    p.add_argument("--out", help="output folder (default: <paths.output_dir>/calls/<scenario>-<time>)")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="extra INVITE header (repeatable)")
    p.add_argument("--codec", action="append", help="codec to offer, in order (repeatable; default G722, PCMU)")
    p.add_argument("--bind", default="127.0.0.1", help="local address for the caller's SIP and RTP")
    p.add_argument("--voice", default="pm_alex", help="Kokoro voice of the caller (not the agent's)")
    p.add_argument("--no-transcribe", action="store_true", help="skip transcribing the agent's words")
    p.add_argument("--srtp", action="store_true", help="offer SRTP (RTP/SAVP, SDES keys): dial over TLS, "
                   "e.g. sip:theo@127.0.0.1:5090;transport=tls, unless Theo has sip.srtp_over_udp")
    p.add_argument("--tls-ca", metavar="FILE", help="with a TLS URI: the CA of Theo's certificate (verified when given)")
    p.add_argument("--tls-cert", metavar="FILE", help="with a TLS URI: the caller's certificate (sip.tls.verify_client)")
    p.add_argument("--tls-key", metavar="FILE", help="with a TLS URI: the key of --tls-cert (unencrypted)")
    p.add_argument("--delayed-offer", action="store_true",
                   help="send the INVITE without SDP (the callee offers, the ACK answers)")
    p.set_defaults(run=cmd_call)
