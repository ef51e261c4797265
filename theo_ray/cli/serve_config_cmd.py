"""`theo serve-config`: the Serve config (YAML) of the model applications, from the typed config."""

from __future__ import annotations

import argparse
from pathlib import Path

from theo_ray.cli.console import say
from theo_ray.config import TheoConfig


def cmd_serve_config(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.runtime.serve_config import serve_config_yaml

    text = serve_config_yaml(config, args.config or "")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        say(f"wrote {args.out}: `serve deploy {args.out}` on the cluster (RAY_AUTH_MODE=token)")
    else:
        print(text, end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve-config",
        help="write a `serve deploy`-able Serve config for the model applications from the typed config",
    )
    parser.add_argument("--out", help="file to write (default: standard output)")
    parser.set_defaults(run=cmd_serve_config)
