"""``%stagent budgets`` and ``stagent-lab budgets …``: spend caps and their status.

%stagent budgets                          lab.budgets.status()
%stagent budgets disable|enable|remove|resume-paused ID
"""

from __future__ import annotations

import argparse
from typing import Any

from stagent_lab.notebook.options import OptionError

USAGE = "usage: %stagent budgets [status | disable ID | enable ID | remove ID | resume-paused ID]"
ACTIONS = {"disable": "disable", "enable": "enable", "remove": "remove"}


def handle(lab: Any, args: list[str]) -> Any:
    sub, rest = (args[0], list(args[1:])) if args else ("status", [])
    if sub == "status":
        if rest:
            raise OptionError(f"budgets status takes no arguments\n{USAGE}")
        return lab.budgets.status()
    if sub in ACTIONS or sub == "resume-paused":
        if len(rest) != 1:
            raise OptionError(f"budgets {sub} takes one budget id\n{USAGE}")
        if sub == "resume-paused":
            ids = lab.budgets.resume_paused(rest[0])
            print(f"stagent: resumed {len(ids)} task(s){': ' + ', '.join(ids) if ids else ''}")
            return None
        getattr(lab.budgets, ACTIONS[sub])(rest[0])
        print(f"stagent: budget {rest[0]} {sub}d")
        return None
    raise OptionError(f"unknown budgets command {sub!r}\n{USAGE}")


# ---- CLI -----------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    p = sub.add_parser("budgets", help="spend caps: status, set, disable, resume paused tasks")
    bsub = p.add_subparsers(dest="budgets_cmd")
    bsub.add_parser("status", help="every cap and its spend").set_defaults(func=cmd_status)
    s = bsub.add_parser("set", help="create or change a cap")
    s.add_argument("scope", choices=["workspace", "runtime", "profile", "project"])
    s.add_argument("scope_id", nargs="?")
    s.add_argument("--window", choices=["day", "month"], required=True)
    s.add_argument("--limit", type=float, required=True, help="USD per window")
    s.add_argument("--warn-ratio", type=float)
    s.add_argument("--on-exceed", choices=["block", "ask"], default="block")
    s.set_defaults(func=cmd_set)
    for name in ("disable", "enable", "remove", "resume-paused"):
        c = bsub.add_parser(name)
        c.add_argument("budget_id")
        c.set_defaults(func=cmd_action, action=name)
    p.set_defaults(func=cmd_status)


def _lab(args: argparse.Namespace) -> Any:
    from stagent_lab.cli import open_lab

    return open_lab(args)


def cmd_status(args: argparse.Namespace, console: Any) -> int:
    from stagent_lab.cli import df_table

    with _lab(args) as lab:
        console.print(df_table(lab.budgets.status(), title="Budgets"))
    return 0


def cmd_set(args: argparse.Namespace, console: Any) -> int:
    with _lab(args) as lab:
        bid = lab.budgets.set(
            args.scope,
            args.scope_id,
            window=args.window,
            limit_usd=args.limit,
            warn_ratio=args.warn_ratio,
            on_exceed=args.on_exceed,
        )
    console.print(f"budget {bid}")
    return 0


def cmd_action(args: argparse.Namespace, console: Any) -> int:
    with _lab(args) as lab:
        if args.action == "resume-paused":
            ids = lab.budgets.resume_paused(args.budget_id)
            console.print(f"resumed {len(ids)} task(s)")
            return 0
        getattr(lab.budgets, args.action)(args.budget_id)
    console.print(f"budget {args.budget_id} {args.action}d")
    return 0


__all__ = ["USAGE", "add_commands", "handle"]
