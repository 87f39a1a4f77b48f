"""``stagent-lab channels …``: the same sub-commands as ``%stagent channels``."""

from __future__ import annotations

import argparse
from typing import Any

CLI_USAGE = (
    "stagent-lab channels [list | deliveries [--channel C] [--direction in|out] [--status S | "
    "--dead] [--limit N] | test NAME [--text T] | redeliver DELIVERY_ID | enable|disable NAME]"
)


def add_commands(subparsers: Any) -> None:
    c = subparsers.add_parser("channels", help="Slack, Telegram and webhook channels")
    c.add_argument("words", nargs=argparse.REMAINDER, help="list (default), deliveries, test …")
    c.set_defaults(func=cmd_channels)


def cmd_channels(args: argparse.Namespace, console: Any) -> int:
    import pandas as pd

    from stagent_lab.channels.magics import parser, run
    from stagent_lab.cli import df_table, open_lab
    from stagent_lab.notebook.options import OptionError

    try:
        ns = parser(prog="stagent-lab channels", usage=CLI_USAGE).parse_args(args.words)
    except OptionError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    with open_lab(args) as lab:
        out = run(lab, ns)
    if isinstance(out, pd.DataFrame):
        console.print(df_table(out, title="Channels" if (ns.action or "list") == "list" else None))
    elif isinstance(out, dict):
        for key, value in out.items():
            console.print(f"{key}: {value}")
    return 0


__all__ = ["add_commands", "cmd_channels"]
