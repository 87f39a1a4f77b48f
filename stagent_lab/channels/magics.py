"""``%stagent channels …`` in a notebook: the channels and their health, deliveries, a test
message, redelivery, enable / disable. Options are parsed with ``shlex`` (done by the magic)
and argparse; a mistake raises ``OptionError`` with the usage line."""

from __future__ import annotations

import argparse
from typing import Any

from stagent_lab.notebook.options import OptionError

USAGE = (
    "%stagent channels [list] | channels deliveries [--channel C] [--direction in|out] "
    "[--status S | --dead] [--limit N] | channels test NAME [--text T] | "
    "channels redeliver DELIVERY_ID | channels enable|disable NAME"
)
HEALTH = ["name", "type", "direction", "status", "status_reason", "inbound", "secrets",
          "secrets_set", "last_ok_at", "last_error"]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # never exit the kernel
        raise OptionError(f"{message}\nusage: {self.usage}")


def parser(prog: str = "channels", usage: str = USAGE) -> argparse.ArgumentParser:
    """The sub-commands, shared by the magic and the CLI."""
    p = _Parser(prog=prog, usage=usage, add_help=False)
    sub = p.add_subparsers(dest="action")
    sub.add_parser("list", add_help=False)
    d = sub.add_parser("deliveries", add_help=False)
    d.add_argument("--channel")
    d.add_argument("--direction", choices=["in", "out"])
    d.add_argument("--status")
    d.add_argument("--dead", action="store_true")
    d.add_argument("--limit", type=int, default=None)
    t = sub.add_parser("test", add_help=False)
    t.add_argument("name")
    t.add_argument("--text")
    r = sub.add_parser("redeliver", add_help=False)
    r.add_argument("delivery_id")
    for action in ("enable", "disable"):
        sub.add_parser(action, add_help=False).add_argument("name")
    for one in sub.choices.values():
        one.error = p.error  # type: ignore[method-assign]
    return p


def run(lab: Any, ns: argparse.Namespace) -> Any:
    """What a parsed command does: a DataFrame or a dict."""
    action = ns.action or "list"
    if action == "list":
        return lab.channels.list()[HEALTH]
    if action == "deliveries":
        if ns.dead and ns.status and ns.status != "dead":
            raise OptionError(f"--dead and --status {ns.status} disagree\nusage: {USAGE}")
        status = "dead" if ns.dead else ns.status
        return lab.channels.deliveries(
            channel=ns.channel, direction=ns.direction, status=status, limit=ns.limit
        )
    if action == "test":
        return lab.channels.test(ns.name, text=ns.text)
    if action == "redeliver":
        return lab.channels.redeliver(ns.delivery_id)
    if action == "enable":
        return lab.channels.enable(ns.name)
    return lab.channels.disable(ns.name)


def handle(lab: Any, args: list[str]) -> Any:
    return run(lab, parser().parse_args(args))


__all__ = ["USAGE", "handle", "parser", "run"]
