"""``relay``: each command parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relay import version
from relay.cli import commands, lists
from relay.cli import destinations as destination_commands
from relay.cli import events as event_commands
from relay.cli import messages as message_commands
from relay.constants import CONFIG_ENV
from relay.ops import events as lookup
from relay.products import PRODUCTS
from relay.sample import CONTENT_TYPES


def _config(parser: argparse.ArgumentParser) -> None:
    """``--config F``, or the file named by $RELAY_CONFIG (the Docker image sets it)."""
    default = os.environ.get(CONFIG_ENV)
    parser.add_argument("--config", type=Path, required=default is None,
                        default=Path(default) if default else None,
                        help=f"the config file (default: ${CONFIG_ENV})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="SUBMAIL SUBHOOK gateway")
    parser.add_argument("--version", action="version", version=f"relay {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a config and summarise its routes")
    _config(check)
    check.set_defaults(run=lambda a: commands.check(a.config))

    route = sub.add_parser("route", help="explain which routes an event reaches, and why")
    _config(route)
    route.add_argument("--product", required=True)
    route.add_argument("--event", required=True)
    route.add_argument("--tag", default=None)
    route.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                       help="a field of the event, for match.fields (repeatable)")
    route.set_defaults(run=lambda a: commands.route(a.config, a.product, a.event, a.tag,
                                                    a.field))

    schemas = sub.add_parser("schemas", help="event schemas")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    build = schemas_sub.add_parser("build", help="generate schemas from SUBMAIL's docs")
    build.add_argument("--docs", type=Path, required=True)
    build.add_argument("--out", type=Path, required=True)
    build.set_defaults(run=lambda a: commands.schemas_build(a.docs, a.out))
    serve = sub.add_parser("serve", help="run the gateway")
    _config(serve)
    serve.set_defaults(run=lambda a: commands.serve(a.config))

    health = sub.add_parser("health", help="exit 0 when the relay of this config answers "
                                           "/healthz (for HEALTHCHECK)")
    _config(health)
    health.set_defaults(run=lambda a: commands.health(a.config))

    _add_trying(sub)
    _add_lists(sub)
    _add_destinations(sub)
    _add_events(sub)
    return parser


def _ids(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[])
    which.add_argument("--all", action="store_true")


def _add_events(sub: Any) -> None:
    """Looking events up (SPEC 12): events list/show/replay and tail."""
    group = sub.add_parser("events", help="look events up, see what happened, replay them")
    verbs = group.add_subparsers(dest="events_command", required=True)
    listing = verbs.add_parser("list", help="events, newest first")
    _config(listing)
    listing.add_argument("--send-id", default=None, help="SUBMAIL's send_id of the message")
    listing.add_argument("--contact", default=None,
                         help="the full phone number (any usual form: +86 138 1234 5678) "
                              "or email address; found although listings show it masked")
    listing.add_argument("--product", default=None, choices=sorted(PRODUCTS))
    listing.add_argument("--event", default=None,
                         help="an event name, or SUBMAIL's other spelling of it (unkown)")
    listing.add_argument("--state", default=None,
                         help="events with a delivery in this state (pending, delivered, "
                              "dead, discarded)")
    listing.add_argument("--since", default=None, metavar="T",
                         help="ISO date-time (local unless a zone is given) or 15m, 2h ...")
    listing.add_argument("--until", default=None, metavar="T")
    listing.add_argument("--limit", type=int, default=lookup.DEFAULT_LIMIT,
                         help=f"events per page (default {lookup.DEFAULT_LIMIT}, at most 500)")
    listing.add_argument("--cursor", default=None, help="the next page, as the last one said")
    listing.add_argument("--json", action="store_true",
                         help="the page as JSON: events with their deliveries, next_cursor")
    listing.set_defaults(run=lambda a: event_commands.events_list(
        a.config, {"send_id": a.send_id, "contact": a.contact, "product": a.product,
                   "event": a.event, "state": a.state, "since": a.since, "until": a.until},
        a.limit, a.cursor, a.json))
    show = verbs.add_parser("show", help="one event, its deliveries and every attempt")
    _config(show)
    show.add_argument("key", metavar="ID|WEBHOOK_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=lambda a: event_commands.events_show(a.config, a.key, a.json))
    replay = verbs.add_parser("replay", help="deliver events again to their destinations")
    _config(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[])
    which.add_argument("--send-id", default=None)
    replay.set_defaults(run=lambda a: event_commands.events_replay(a.config, a.ids, a.send_id))

    messages = sub.add_parser("messages", help="what happened to each message (send_id)")
    message_verbs = messages.add_subparsers(dest="messages_command", required=True)
    show_message = message_verbs.add_parser("show", help="a message's states, report, operator")
    _config(show_message)
    show_message.add_argument("send_id")
    show_message.add_argument("--json", action="store_true")
    show_message.set_defaults(run=lambda a: message_commands.messages_show(
        a.config, a.send_id, a.json))
    stats = sub.add_parser("stats", help="delivered share, latency, drops by class and "
                                         "operator, per product")
    _config(stats)
    stats.add_argument("--since", default=None, metavar="T",
                       help="ISO date-time (local unless a zone is given) or 15m, 2h ...")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=lambda a: message_commands.stats_command(a.config, a.since, a.json))

    tail = sub.add_parser("tail", help="follow accepted pushes and delivery outcomes")
    _config(tail)
    tail.add_argument("--product", default=None)
    tail.add_argument("--event", default=None)
    tail.set_defaults(run=lambda a: event_commands.tail(a.config, a.product, a.event))


def _add_trying(sub: Any) -> None:
    """The commands for trying a deployment: push and sink."""
    push = sub.add_parser("push", help="send a correctly signed sample push to a URL")
    push.add_argument("url")
    push.add_argument("--product", required=True, choices=sorted(PRODUCTS))
    push.add_argument("--event", required=True)
    signing = push.add_mutually_exclusive_group(required=True)
    signing.add_argument("--key", help="the SUBHOOK key to sign with")
    signing.add_argument("--config", type=Path,
                         help="sign with the first key of the SUBHOOK at the URL's path")
    push.add_argument("--tag", default=None)
    push.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                      help="set or add a field (repeatable)")
    push.add_argument("--content-type", default="form", choices=CONTENT_TYPES)
    push.set_defaults(run=lambda a: commands.push(a.url, a.product, a.event, a.key, a.config,
                                                  a.tag, a.content_type, a.field))

    sink = sub.add_parser("sink", help="a local service that prints each forwarded event")
    sink.add_argument("--listen", default="127.0.0.1:9001", metavar="HOST:PORT")
    sink.add_argument("--secret", default=None, help="whsec_...: verify webhook-signature")
    sink.set_defaults(run=lambda a: commands.sink(a.listen, a.secret))


def _add_lists(sub: Any) -> None:
    """Dead letters and quarantine: list, replay and discard."""
    for noun, lister, replayer, discarder in (
        ("dead", lists.dead_list, lists.dead_replay, lists.dead_discard),
        ("quarantine", lists.quarantine_list, lists.quarantine_replay,
         lists.quarantine_discard),
    ):
        group = sub.add_parser(noun, help=f"{noun} list, replay and discard")
        verbs = group.add_subparsers(dest=f"{noun}_command", required=True)
        listing = verbs.add_parser("list", help="every one, with its attempts or problems")
        _config(listing)
        _filters(listing, noun)
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(run=lambda a, f=lister: f(a.config, a.json, _filter_of(a)))
        replay = verbs.add_parser("replay", help="again: dead letters to their destination, "
                                                 "held pushes through the schemas (--all with "
                                                 "filters: those the filters show)")
        _config(replay)
        _ids(replay)
        _filters(replay, noun)
        replay.set_defaults(run=lambda a, f=replayer: f(a.config, None if a.all else a.ids,
                                                       _filter_of(a)))
        discard = verbs.add_parser("discard", help="remove from the list (--all with filters: "
                                                   "those the filters show)")
        _config(discard)
        _ids(discard)
        _filters(discard, noun)
        discard.set_defaults(run=lambda a, f=discarder: f(a.config, None if a.all else a.ids,
                                                         _filter_of(a)))


def _filters(parser: argparse.ArgumentParser, noun: str) -> None:
    """The filters of a dead-letter or quarantine list (SPEC 21)."""
    if noun == "dead":
        parser.add_argument("--destination", help="dead letters of this destination")
    parser.add_argument("--product")
    parser.add_argument("--event")
    parser.add_argument("--since", help="an ISO time, or a duration back from now (2h, 15m)")


def _filter_of(args: argparse.Namespace) -> dict[str, str | None]:
    return {name: getattr(args, name, None) for name in ("destination", "product", "event",
                                                         "since")}


def _add_destinations(sub: Any) -> None:
    """Destinations: list, pause, resume, retry now (SPEC 17)."""
    group = sub.add_parser("destinations", help="see and steer destinations: state, backlog, "
                                                "pause, resume, retry now")
    verbs = group.add_subparsers(dest="destinations_command", required=True)
    listing = verbs.add_parser("list", help="each destination: URL, state, backlog, errors")
    _config(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=lambda a: destination_commands.destinations_list(a.config, a.json))
    pause = verbs.add_parser("pause", help="no attempts until resumed; events still queued")
    _config(pause)
    pause.add_argument("name")
    pause.add_argument("--reason", default=None, help="why, for the log, list and alerts")
    pause.set_defaults(run=lambda a: destination_commands.destinations_pause(
        a.config, a.name, a.reason))
    for verb, helptext, run in (
        ("resume", "lift a pause: every pending delivery due now, oldest first",
         destination_commands.destinations_resume),
        ("retry", "every pending delivery of the destination due now, oldest first",
         destination_commands.destinations_retry),
    ):
        parser = verbs.add_parser(verb, help=helptext)
        _config(parser)
        parser.add_argument("name")
        parser.set_defaults(run=lambda a, f=run: f(a.config, a.name))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (``relay events list | head``): what it read is all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
