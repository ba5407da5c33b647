"""``relay``: each command parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from relay import commands
from relay.constants import PRODUCTS
from relay.push import CONTENT_TYPES


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
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, required=True)
    serve.set_defaults(run=lambda a: commands.serve(a.config))

    push = sub.add_parser("push", help="send a correctly signed sample push to a URL")
    push.add_argument("url")
    push.add_argument("--product", required=True, choices=PRODUCTS)
    push.add_argument("--event", required=True)
    push.add_argument("--key", required=True)
    push.add_argument("--tag", default=None)
    push.add_argument("--content-type", default="form", choices=CONTENT_TYPES)
    push.set_defaults(run=lambda a: commands.push(a.url, a.product, a.event, a.key, a.tag,
                                                  a.content_type))

    for noun, lister, replayer in (
        ("dead", commands.dead_list, commands.dead_replay),
        ("quarantine", commands.quarantine_list, commands.quarantine_replay),
    ):
        group = sub.add_parser(noun, help=f"{noun} list and replay")
        verbs = group.add_subparsers(dest=f"{noun}_command", required=True)
        listing = verbs.add_parser("list")
        listing.add_argument("--config", type=Path, required=True)
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(run=lambda a, f=lister: f(a.config, a.json))
        replay = verbs.add_parser("replay")
        replay.add_argument("--config", type=Path, required=True)
        which = replay.add_mutually_exclusive_group(required=True)
        which.add_argument("ids", nargs="*", type=int, default=[])
        which.add_argument("--all", action="store_true")
        replay.set_defaults(run=lambda a, f=replayer: f(a.config, None if a.all else a.ids))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    code: int = args.run(args)
    sys.stdout.flush()
    return code
