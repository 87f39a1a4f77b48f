"""``%stagent workflows …``: list, run and control workflows from a notebook cell.

    %stagent workflows                          the workflows (a DataFrame)
    %stagent workflows runs [WF] [--status S]   runs, newest first
    %stagent workflows run WF [--wait] [--input key=value …]   start a run; shows its run card
    %stagent workflows show RUN                 the run card of a run
    %stagent workflows steps RUN                its step runs (a DataFrame)
    %stagent workflows pause RUN [--stop-tasks] | resume RUN | cancel RUN
    %stagent workflows retry RUN [STEP] [--items 2,5] [--resume]
    %stagent workflows blueprints               the blueprints (a DataFrame)
    %stagent workflows from BLUEPRINT key=value … [--name N] [--project P]

Run ids may be shortened to a unique prefix. Mistakes raise ``OptionError`` with the usage line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stagent_lab.notebook.options import OptionError

USAGE = (
    "usage: %stagent workflows [runs [WF] [--status S] | run WF [--wait] [--input K=V ...] | "
    "show RUN | steps RUN | pause RUN [--stop-tasks] | resume RUN | cancel RUN | "
    "retry RUN [STEP] [--items N,M] [--resume] | blueprints | "
    "from BLUEPRINT [K=V ...] [--name N] [--project P]]"
)
LIST_COLUMNS = ["name", "pattern", "version", "status", "steps", "runs", "last_run_at", "id"]
RUN_COLUMNS = ["id", "workflow", "run_number", "status", "stop_reason", "cost_usd",
               "failed_items", "started_at", "finished_at"]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise OptionError(f"workflows: {message}\n{USAGE}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise OptionError(message or USAGE)


def _parser() -> _Parser:
    p = _Parser(prog="%stagent workflows", add_help=False)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("list")
    runs = sub.add_parser("runs")
    runs.add_argument("workflow", nargs="?")
    runs.add_argument("--status")
    run = sub.add_parser("run")
    run.add_argument("workflow")
    run.add_argument("--wait", action="store_true")
    run.add_argument("--input", action="append", default=[], metavar="KEY=VALUE")
    for name in ("show", "steps", "resume", "cancel"):
        sub.add_parser(name).add_argument("run")
    pause = sub.add_parser("pause")
    pause.add_argument("run")
    pause.add_argument("--stop-tasks", action="store_true")
    retry = sub.add_parser("retry")
    retry.add_argument("run")
    retry.add_argument("step", nargs="?")
    retry.add_argument("--items")
    retry.add_argument("--resume", action="store_true")
    sub.add_parser("blueprints")
    frm = sub.add_parser("from")
    frm.add_argument("blueprint")
    frm.add_argument("values", nargs="*", metavar="KEY=VALUE")
    frm.add_argument("--name")
    frm.add_argument("--project")
    sub.add_parser("help")
    return p


def key_values(pairs: list[str], what: str) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON (numbers, true, lists) is parsed."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"workflows: {what} are KEY=VALUE, got {pair!r}\n{USAGE}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _items(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise OptionError(f"workflows: --items takes row numbers like 2,5, got {text!r}") from None


def handle(lab: Any, args: list[str]) -> Any:
    """Run one ``%stagent workflows`` command; returns what the cell shows."""
    opts = _parser().parse_args(args or ["list"])
    command = opts.command
    wf = lab.workflows
    if command == "help":
        print(USAGE)
        return None
    if command == "list":
        df = wf.list()
        return df[[c for c in LIST_COLUMNS if c in df.columns]]
    if command == "runs":
        df = wf.runs(opts.workflow, status=opts.status)
        return df[[c for c in RUN_COLUMNS if c in df.columns]]
    if command == "blueprints":
        df = wf.blueprints()
        cols = ["id", "name", "pattern", "description", "source", "error"]
        return df[[c for c in cols if c in df.columns]]
    if command == "from":
        out = wf.from_blueprint(
            opts.blueprint, key_values(opts.values, "values"), name=opts.name, project=opts.project
        )
        skipped = f"; skipped: {', '.join(out['skipped_steps'])}" if out["skipped_steps"] else ""
        print(f"stagent: created workflow {out['name']!r} ({out['workflow_id']}){skipped}")
        return None
    if command == "run":
        run = wf.run(opts.workflow, inputs=key_values(opts.input, "inputs") or None)
        card = run.card()
        if opts.wait:
            from IPython.display import display

            display(card)
            _wait(run)
            return None
        return card
    items = _items(opts.items) if command == "retry" else None  # its mistakes first
    run = wf.run_handle(opts.run)
    if command == "show":
        return run.card()
    if command == "steps":
        return run.steps()
    if command == "pause":
        run.pause(stop_tasks=opts.stop_tasks)
    elif command == "resume":
        run.resume()
    elif command == "cancel":
        run.cancel()
    elif command == "retry":
        run.retry(step=opts.step, items=items, resume=opts.resume)
    print(f"stagent: run {run.id} is {run.status}")
    return None


def _wait(run: Any) -> None:
    """Block until the run stops; short waits keep the cell interruptible."""
    try:
        while True:
            try:
                run.wait(timeout=0.5)
                return
            except TimeoutError:
                continue
    except KeyboardInterrupt:
        print(
            f"stagent: stopped waiting; run {run.id} goes on (%stagent workflows cancel {run.id})",
            file=sys.stderr,
        )


__all__ = ["USAGE", "handle", "key_values"]
