"""``stagent-lab schedules …``: the same commands as ``%stagent schedules``, in a terminal."""

from __future__ import annotations

import argparse
from typing import Any

from stagent_lab.schedules.magics import FIRING_COLUMNS, LIST_COLUMNS


def add_commands(sub: Any) -> None:
    p = sub.add_parser("schedules", help="list, control and preview schedules and heartbeats")
    ssub = p.add_subparsers(dest="schedules_cmd")
    ssub.add_parser("list", help="schedules with their next firing").set_defaults(func=cmd_list)
    f = ssub.add_parser("firings", help="firing history, newest first")
    f.add_argument("schedule", nargs="?")
    f.add_argument("--limit", type=int, default=50)
    f.set_defaults(func=cmd_firings)
    for name, helptext in (
        ("pause", "stop firing until resumed"),
        ("resume", "fire again (the failure streak resets)"),
        ("remove", "delete the schedule and its firing history"),
    ):
        c = ssub.add_parser(name, help=helptext)
        c.add_argument("schedule")
        c.set_defaults(func=cmd_control, action=name)
    fire = ssub.add_parser("fire", help="a firing now")
    fire.add_argument("schedule")
    fire.add_argument("--force", action="store_true", help="ignore the overlap policy")
    fire.set_defaults(func=cmd_fire)
    parse = ssub.add_parser("parse", help="preview a when text: cron, description, next 3 times")
    parse.add_argument("text", nargs="+")
    parse.add_argument("--tz")
    parse.set_defaults(func=cmd_parse)
    p.set_defaults(func=cmd_list)


def _lab(args: argparse.Namespace) -> Any:
    from stagent_lab.cli import open_lab

    return open_lab(args)


def cmd_list(args: argparse.Namespace, console: Any) -> int:
    from stagent_lab.cli import df_table

    with _lab(args) as lab:
        df = lab.schedules.list()
        console.print(df_table(df[[c for c in LIST_COLUMNS if c in df.columns]], title="Schedules"))
    return 0


def cmd_firings(args: argparse.Namespace, console: Any) -> int:
    from stagent_lab.cli import df_table

    with _lab(args) as lab:
        df = lab.schedules.firings(args.schedule, limit=args.limit)
        console.print(df_table(df[[c for c in FIRING_COLUMNS if c in df.columns]], title="Firings"))
    return 0


def cmd_control(args: argparse.Namespace, console: Any) -> int:
    with _lab(args) as lab:
        if args.action == "remove":
            lab.schedules.remove(args.schedule)
            console.print(f"schedule {args.schedule} removed")
            return 0
        view = getattr(lab.schedules, args.action)(args.schedule)
        console.print(
            f"schedule {view.name} is {view.status} (next: {view.next_fire_local or 'none'})"
        )
    return 0


def cmd_fire(args: argparse.Namespace, console: Any) -> int:
    with _lab(args) as lab:
        firing = lab.schedules.fire(args.schedule, force=args.force)
        what = firing.task_id or firing.workflow_run_id or firing.reason or ""
        console.print(f"firing #{firing.number} {firing.status} {what}".rstrip())
    return 0


def cmd_parse(args: argparse.Namespace, console: Any) -> int:
    from rich.markup import escape

    with _lab(args) as lab:
        out = lab.schedules.parse(" ".join(args.text), tz=args.tz)
    console.print(f"{out['cron']}  —  {escape(out['description'])} ({out['timezone']})")
    for t in out["next"]:
        console.print(f"  {t['local']}   ({t['utc']})")
    for warning in out["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    return 0


__all__ = ["add_commands"]
