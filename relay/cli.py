"""``relay``: each command parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from relay import commands


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="SUBMAIL SUBHOOK gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a config and summarise its routes")
    check.add_argument("--config", type=Path, required=True)
    check.set_defaults(run=lambda a: commands.check(a.config))

    route = sub.add_parser("route", help="explain which routes an event reaches, and why")
    route.add_argument("--config", type=Path, required=True)
    route.add_argument("--product", required=True)
    route.add_argument("--event", required=True)
    route.add_argument("--tag", default=None)
    route.set_defaults(run=lambda a: commands.route(a.config, a.product, a.event, a.tag))

    schemas = sub.add_parser("schemas", help="event schemas")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    build = schemas_sub.add_parser("build", help="generate schemas from SUBMAIL's docs")
    build.add_argument("--docs", type=Path, required=True)
    build.add_argument("--out", type=Path, required=True)
    build.set_defaults(run=lambda a: commands.schemas_build(a.docs, a.out))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.run(args)
    sys.stdout.flush()
    return code
