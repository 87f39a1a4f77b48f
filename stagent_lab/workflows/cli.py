"""``stagent-lab workflows …``: the same commands as ``%stagent workflows``, at a terminal.

    stagent-lab workflows [list]                  the workflows
    stagent-lab workflows create FILE             a workflow from a YAML or JSON file
    stagent-lab workflows runs [WF] [--status S]  runs, newest first
    stagent-lab workflows run WF [--input K=V …] [--approve ask|allow|deny] [--no-wait]
    stagent-lab workflows show RUN                a run and its steps
    stagent-lab workflows pause RUN [--stop-tasks] | resume RUN | cancel RUN
    stagent-lab workflows retry RUN [STEP] [--items 2,5] [--resume]
    stagent-lab workflows blueprints
    stagent-lab workflows from BLUEPRINT [K=V …] [--name N] [--project P]

``run`` follows the run until it stops, answering its checkpoints and its children's tool
approvals at the terminal (``--approve`` answers them all the same way; without a terminal the
default is ``allow``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from stagent_lab.workflows.magics import key_values


def add_commands(sub: Any) -> None:
    w = sub.add_parser("workflows", help="define, run and control workflows")
    ws = w.add_subparsers(dest="workflows_cmd")
    ws.add_parser("list", help="the workflows").set_defaults(func=cmd_list)
    c = ws.add_parser("create", help="a workflow from a YAML/JSON file (the fields of create())")
    c.add_argument("file")
    c.set_defaults(func=cmd_create)
    r = ws.add_parser("runs", help="runs, newest first")
    r.add_argument("workflow", nargs="?")
    r.add_argument("--status")
    r.add_argument("--limit", type=int, default=30)
    r.set_defaults(func=cmd_runs)
    run = ws.add_parser("run", help="start a run and follow it")
    run.add_argument("workflow")
    run.add_argument("--input", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--approve", choices=["ask", "allow", "deny"], default=None)
    run.add_argument("--no-wait", action="store_true", help="start it and print the run id")
    run.add_argument("--timeout", type=float, default=None, help="stop following after S s")
    run.set_defaults(func=cmd_run)
    show = ws.add_parser("show", help="a run and its steps")
    show.add_argument("run")
    show.set_defaults(func=cmd_show)
    for name, fn in (("resume", cmd_resume), ("cancel", cmd_cancel)):
        p = ws.add_parser(name, help=f"{name} a run")
        p.add_argument("run")
        p.set_defaults(func=fn)
    pause = ws.add_parser("pause", help="pause a run")
    pause.add_argument("run")
    pause.add_argument("--stop-tasks", action="store_true")
    pause.set_defaults(func=cmd_pause)
    retry = ws.add_parser("retry", help="rerun a failed run's failed steps or rows")
    retry.add_argument("run")
    retry.add_argument("step", nargs="?")
    retry.add_argument("--items", help="row numbers, e.g. 2,5")
    retry.add_argument("--resume", action="store_true")
    retry.set_defaults(func=cmd_retry)
    ws.add_parser("blueprints", help="the blueprints").set_defaults(func=cmd_blueprints)
    frm = ws.add_parser("from", help="create a workflow from a blueprint")
    frm.add_argument("blueprint")
    frm.add_argument("values", nargs="*", metavar="KEY=VALUE")
    frm.add_argument("--name")
    frm.add_argument("--project")
    frm.set_defaults(func=cmd_from)
    w.set_defaults(func=cmd_list)


def _open(args: argparse.Namespace) -> Any:
    from stagent_lab.cli import open_lab

    return open_lab(args)


def _table(df: Any, title: str, columns: list[str] | None = None) -> Any:
    from stagent_lab.cli import df_table

    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return df_table(df, title=title)


def cmd_list(args: argparse.Namespace, console: Any) -> int:
    with _open(args) as lab:
        cols = ["name", "pattern", "version", "status", "steps", "runs", "last_run_at", "id"]
        console.print(_table(lab.workflows.list(), "Workflows", cols))
    return 0


CREATE_FIELDS = (
    "name", "pattern", "steps", "description", "loop", "parallel", "swarm", "project",
    "runtime", "profile", "budget_usd", "channels", "concurrent_runs",
)  # fmt: skip


def read_definition(path: str) -> dict[str, Any]:
    """The fields of ``lab.workflows.create`` from a YAML (or JSON) file; errors name the file
    and line."""
    import yaml

    from stagent_lab.errors import WorkflowDefinitionError

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise WorkflowDefinitionError([(where, str(getattr(exc, "problem", exc)))]) from None
    if not isinstance(data, dict):
        raise WorkflowDefinitionError([(path, "a mapping with name, pattern and steps")])
    unknown = sorted(set(data) - set(CREATE_FIELDS))
    if unknown:
        raise WorkflowDefinitionError(
            [
                (f"{path}: {k}", f"unknown field (fields: {', '.join(CREATE_FIELDS)})")
                for k in unknown
            ]
        )
    return data


def cmd_create(args: argparse.Namespace, console: Any) -> int:
    data = read_definition(args.file)
    with _open(args) as lab:
        wf = lab.workflows.create(**data)
        console.print(f"created workflow [bold]{wf.name}[/] {wf.id} (version {wf.version})")
    return 0


def cmd_runs(args: argparse.Namespace, console: Any) -> int:
    with _open(args) as lab:
        df = lab.workflows.runs(args.workflow, status=args.status, limit=args.limit)
        cols = ["id", "workflow", "run_number", "status", "stop_reason", "cost_usd",
                "failed_items", "started_at", "finished_at"]  # fmt: skip
        console.print(_table(df, "Workflow runs", cols))
    return 0


def cmd_blueprints(args: argparse.Namespace, console: Any) -> int:
    with _open(args) as lab:
        cols = ["id", "name", "pattern", "description", "source", "error"]
        console.print(_table(lab.workflows.blueprints(), "Blueprints", cols))
    return 0


def cmd_from(args: argparse.Namespace, console: Any) -> int:
    with _open(args) as lab:
        out = lab.workflows.from_blueprint(
            args.blueprint, key_values(args.values, "values"), name=args.name,
            project=args.project,
        )  # fmt: skip
        skipped = f" (skipped: {', '.join(out['skipped_steps'])})" if out["skipped_steps"] else ""
        console.print(f"created workflow [bold]{out['name']}[/] {out['workflow_id']}{skipped}")
    return 0


def _show(lab: Any, run: Any, console: Any) -> None:
    from stagent_lab.cli import visible

    v = run.view()
    console.print(
        f"[bold]{visible(v.workflow)}[/] run #{v.run_number} ({v.id}): [bold]{v.status}[/]"
        + (f" ({v.stop_reason})" if v.stop_reason else "")
        + f" · ${v.cost_usd:.5f}"
    )
    cols = ["step_id", "iteration", "attempt", "status", "task_id", "cost_usd", "error"]
    console.print(_table(run.steps(), "Steps", cols))
    if v.failure_reason:
        console.print(f"[red]{visible(v.failure_reason)}[/]")
    if v.output:
        console.print(visible(v.output))


def cmd_show(args: argparse.Namespace, console: Any) -> int:
    with _open(args) as lab:
        _show(lab, lab.workflows.run_handle(args.run), console)
    return 0


def _control(args: argparse.Namespace, console: Any, action: str, **kw: Any) -> int:
    with _open(args) as lab:
        run = lab.workflows.run_handle(args.run)
        getattr(run, action)(**kw)
        console.print(f"run {run.id} is {run.status}")
    return 0


def cmd_pause(args: argparse.Namespace, console: Any) -> int:
    return _control(args, console, "pause", stop_tasks=args.stop_tasks)


def cmd_resume(args: argparse.Namespace, console: Any) -> int:
    return _control(args, console, "resume")


def cmd_cancel(args: argparse.Namespace, console: Any) -> int:
    return _control(args, console, "cancel")


def cmd_retry(args: argparse.Namespace, console: Any) -> int:
    from stagent_lab.workflows.magics import _items

    return _control(
        args, console, "retry", step=args.step, items=_items(args.items), resume=args.resume
    )


def cmd_run(args: argparse.Namespace, console: Any) -> int:
    with _open(args) as lab:
        run = lab.workflows.run(args.workflow, inputs=key_values(args.input, "inputs") or None)
        if args.no_wait:
            console.print(run.id)
            return 0
        follow(lab, run, console, args.approve, args.timeout)
        _show(lab, run, console)
        return 0 if run.status == "completed" else 1


def follow(lab: Any, run: Any, console: Any, approve: str | None, timeout: float | None) -> None:
    """Print the run's events and answer what waits for a person, until the run stops."""
    from stagent_lab.cli import decide_at_terminal

    interactive = approve in (None, "ask") and sys.stdin.isatty()
    mode = approve if approve not in (None, "ask") else ("ask" if interactive else "allow")
    seen: set[str] = set()
    shown = 0
    deadline = None if timeout is None else time.monotonic() + timeout

    def show_new() -> None:
        nonlocal shown
        logs = run.logs()
        for row in logs.iloc[shown:].itertuples():
            console.print(describe(row.event, row.payload))
        shown = len(logs)

    while True:
        show_new()
        tasks = set(run.tasks()["id"])
        inbox = lab.inbox()
        mine = inbox[(inbox["subject_id"] == run.id) | inbox["task_id"].isin(tasks)]
        for item in mine.to_dict("records"):
            if item["id"] in seen:
                continue
            seen.add(item["id"])
            if item["kind"] == "checkpoint":
                _checkpoint(lab, item, mode, console)
            elif item["kind"] != "notice":
                decide_at_terminal(lab, item, mode, console)
        view = run.view()
        if view.done or view.status == "paused":
            show_new()  # what happened since the last read (a quick run ends in between)
            return
        if deadline is not None and time.monotonic() > deadline:
            console.print(f"run {run.id} is still {view.status}; it goes on in the workspace")
            return
        try:
            run.wait(timeout=0.5, until=["completed", "failed", "cancelled", "paused", "waiting"])
        except TimeoutError:
            pass
        if view.status == "waiting":
            time.sleep(0.2)


def describe(event: str, data: Any) -> str:
    """One line for a run event (text from agents escaped for the terminal)."""
    from stagent_lab.cli import visible

    data = data if isinstance(data, dict) else {}
    step = visible(data.get("step_id") or "")
    where = f" #{data['iteration']}" if data.get("iteration") else ""
    if event == "workflow_started":
        return f"[bold]started[/] run #{data.get('run_number')} of {visible(data.get('workflow'))}"
    if event == "workflow_step_started":
        return f"▶ {step}{where} (attempt {data.get('attempt')}) → task {data.get('task_id')}"
    if event == "workflow_step_completed":
        return f"[green]✓ {step}{where}[/]"
    if event in ("workflow_step_failed", "workflow_step_blocked"):
        kind = "failed" if event.endswith("failed") else "blocked"
        return f"[red]✗ {step}{where} {kind}: {visible(data.get('error'))}[/]"
    if event == "workflow_step_skipped":
        return f"[dim]– {step}{where} skipped: {visible(data.get('reason'))}[/]"
    if event == "workflow_checkpoint":
        return f"[magenta]⏸ {step}{where} waits for approval (item {data.get('item_id')})[/]"
    if event == "workflow_delayed":
        return f"[blue]… {step}{where} delayed until {data.get('resume_at')} UTC[/]"
    if event == "loop_iteration":
        stop = f", stop: {data['stop_reason']}" if data.get("stop_reason") else ""
        return f"iteration {data.get('n')} done{stop}"
    if event in ("workflow_completed", "workflow_failed", "workflow_cancelled"):
        style = "green" if event == "workflow_completed" else "red"
        cost = float(data.get("cost_usd") or 0.0)
        tail = f": {visible(data.get('error'))}" if data.get("error") else ""
        return f"[bold {style}]{data.get('status')}[/] (${cost:.5f}){tail}"
    if event in ("workflow_paused", "workflow_resumed"):
        return f"[yellow]{event.removeprefix('workflow_')}: {visible(data.get('reason'))}[/]"
    return f"{event} {visible(json.dumps(data, default=str))[:200]}"


def _checkpoint(lab: Any, item: dict[str, Any], mode: str, console: Any) -> None:
    from stagent_lab.cli import visible

    console.print(f"[bold magenta]checkpoint:[/]\n{visible(item['body'])}")
    if mode == "ask":
        while True:
            choice = input("[a]llow / [d]eny > ").strip().lower()
            if choice in ("a", "allow", "d", "deny"):
                break
        message = input("note or reason (optional) > ").strip() or None
        lab.decide(item["id"], "allow" if choice.startswith("a") else "deny", message)
        return
    lab.decide(item["id"], mode, None, decided_by="cli --approve")
    console.print(f"  decided: [bold]{mode}[/] (--approve)")


__all__ = ["add_commands"]
