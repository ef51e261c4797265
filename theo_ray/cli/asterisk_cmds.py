"""`theo asterisk-config`: render the PBX configuration for a site.

The lead registers it in the main CLI with `add_parser(subparsers)`; the handler is set as
the parser's `func` default and returns the process exit code.

    theo asterisk-config --out DIR [--settings FILE] [--set key.path=value ...]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from theo_ray.asterisk.config_render import render_asterisk_config
from theo_ray.cli.asterisk_site import load_site_settings
from theo_ray.asterisk.settings import resolve_ami_secret
from theo_ray.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "asterisk-config",
        help="render pjsip.conf, extensions.conf, manager.conf and rtp.conf for Asterisk 22",
        description=(
            "Render the Asterisk 22 configuration for Theo from asterisk/templates/. "
            "The AMI secret is taken from the environment variable named by ami.secret_env "
            "(THEO_AMI_SECRET) or ami.secret_file; without it manager.conf #includes "
            "ami.secret_include_file instead. See asterisk/README.md."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="directory to write the files into")
    parser.add_argument(
        "--settings",
        type=Path,
        help="Theo's config file (its [asterisk] section) or a site file (TOML or .json); "
        "default: the file of --config / THEO_CONFIG",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set theo.host=10.0.0.20 (repeatable; JSON values allowed)",
    )
    parser.add_argument(
        "--with-secret",
        action="store_true",
        help="write the AMI secret (from ami.secret_env / ami.secret_file) into manager.conf (mode 0640); "
        "without it manager.conf #includes ami.secret_include_file",
    )
    parser.add_argument("--templates", type=Path, help="templates directory (default: asterisk/templates)")
    # None: tell Theo's config from a site file by its tables; the main CLI sets True for
    # the file named by --config / THEO_CONFIG.
    parser.set_defaults(func=run_asterisk_config, settings_is_theo_config=None)
    return parser


def run_asterisk_config(args: argparse.Namespace) -> int:
    try:
        settings = load_site_settings(args.settings, args.overrides, theo_config=args.settings_is_theo_config)
        written = render_asterisk_config(settings, args.out, templates_dir=args.templates,
                                         include_secret=args.with_secret)
        has_secret = args.with_secret and resolve_ami_secret(settings.ami) is not None
    except (ConfigError, OSError) as exc:
        print(f"theo asterisk-config: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    for key, host in (("pbx.host", settings.pbx.host), ("theo.host", settings.theo.host)):
        if _is_loopback(host):
            print(
                f"note: {key} = {host}: the PBX's SIP transport and Theo's contact are on loopback, "
                "reachable from this machine only (set the site's addresses, asterisk/README.md §4)",
                file=sys.stderr,
            )
    if not has_secret:
        env = "$" + settings.ami.secret_env
        why = f"no AMI secret in {env}" if args.with_secret else f"the AMI secret ({env}) is not rendered"
        print(
            f"note: {why}; manager.conf includes {settings.ami.secret_include_file}, create it on the PBX "
            "(asterisk/README.md; --with-secret writes the secret into manager.conf)",
            file=sys.stderr,
        )
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"
