"""Entry point of the `theo` console script."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from theo_ray.cli import bench_cmds, call_cmds, cluster_cmds, demo, models_cmds, smoke
from theo_ray.cli.console import say
from theo_ray.errors import TheoError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="theo", description="Theo: self-hosted AI phone agent on Ray")
    parser.add_argument("--config", "-c", help="config file (TOML or YAML); default $THEO_CONFIG or built-in defaults")
    parser.add_argument(
        "--keep", action="store_true",
        help="leave the local Ray cluster a command started running when it ends (`theo up` always does)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cluster_cmds.add_parsers(sub)
    models_cmds.add_parsers(sub)
    smoke.add_parsers(sub)
    demo.add_parsers(sub)
    call_cmds.add_parsers(sub)
    bsub = bench_cmds.add_parsers(sub)
    from theo_ray.cli import bench_sim_cmds

    bench_sim_cmds.add_parsers(sub, bsub)
    from theo_ray.cli.asterisk_cmds import add_parser as add_asterisk_parser

    add_asterisk_parser(sub)
    from theo_ray.cli.serve_config_cmd import add_parser as add_serve_config_parser

    add_serve_config_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "run"):
            from theo_ray.config import load_config
            from theo_ray.runtime.ray_auth import ensure_auth_token

            # Ray reads RAY_AUTH_MODE when it is imported: set it before any subcommand does.
            ensure_auth_token()

            config = load_config(args.config)
            try:
                return int(args.run(config, args) or 0)
            finally:
                # A command that had to start a cluster (demo, bench, smoke, ...) stops it
                # again: nothing it started outlives it unless asked (`--keep`, `theo up`).
                from theo_ray.runtime.ray_cluster import started_here, stop

                if started_here() and args.command != "up" and not args.keep:
                    say("stopping the local Ray cluster this command started (`theo --keep ...` leaves it)")
                    stop(config.ray, say)
        if args.command == "asterisk-config" and args.settings is None and (args.config or os.environ.get("THEO_CONFIG")):
            # One place for site values: the [asterisk] section of the Theo config file.
            args.settings = Path(args.config or os.environ["THEO_CONFIG"])
            args.settings_is_theo_config = True
        return int(args.func(args) or 0)
    except TheoError as exc:
        say(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
