"""``%stagent chat``: open the chat widget (a new session, or ``--session ID`` to reopen one)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from stagent_lab.notebook.options import OptionError

USAGE = (
    "usage: %stagent chat [--profile P] [--runtime R] [--project X] [--session ID] "
    "[--script VAR] [--title T] | %stagent chat --list"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise OptionError(f"chat: {message}\n{USAGE}")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%stagent chat", add_help=False, exit_on_error=False, allow_abbrev=False)
    for flag in ("--profile", "--runtime", "--project", "--session", "--script", "--title"):
        p.add_argument(flag)
    p.add_argument("--list", action="store_true")
    return p


def _namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return {}
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


def handle(lab: Any, args: list[str]) -> Any:
    """``%stagent chat [options]`` → the chat widget (or ``--list`` → sessions as a table)."""
    try:
        opts = parser().parse_args(args)
    except argparse.ArgumentError as exc:
        raise OptionError(f"chat: {exc}\n{USAGE}") from None
    if opts.list:
        from stagent_lab.notebook.tables import table

        return table(lab.chat.sessions())
    ns = _namespace()
    script = None
    if opts.script is not None:
        if opts.script not in ns:
            raise OptionError(f"chat: --script {opts.script}: no variable with that name")
        script = ns[opts.script]
    session = lab.chat.open(
        opts.session,
        profile=opts.profile if opts.session is None else None,
        runtime=opts.runtime if opts.session is None else None,
        project=opts.project,
        title=opts.title,
    )
    if opts.session is not None and (opts.profile or opts.runtime):
        session = lab.chat.configure(session, profile=opts.profile, runtime=opts.runtime)
    from stagent_lab.notebook.widgets.chat import ChatView

    return ChatView.for_session(session.id, lab, namespace=ns, script=script)


__all__ = ["USAGE", "handle", "parser"]
