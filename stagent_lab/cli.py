"""The ``stagent-lab`` command: demo, run, tasks, inbox, profiles, runtimes, logs, sql."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from stagent_lab.errors import StagentError

SAMPLE_PROJECT = Path(__file__).parent / "sample_project"
DEMO_PROMPT = (
    "Review the invoice service for security vulnerabilities (injection, authentication, "
    "secrets) and performance problems, and check the recent git history."
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=140)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args, console) or 0)
    except (StagentError, ValueError, KeyError, FileNotFoundError, TimeoutError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[bold red]error:[/] {msg}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


# Features add their own subcommands: each module has ``add_commands(subparsers)``, whose
# commands set ``func(args, console) -> int`` like the ones below.
FEATURE_CLI_MODULES: tuple[str, ...] = (
    "stagent_lab.schedules.cli",
    "stagent_lab.usage.commands",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stagent-lab", description=__doc__)
    p.add_argument("--home", help="workspace folder (default: $STAGENT_HOME or the user data dir)")
    sub = p.add_subparsers(dest="command")
    for module in FEATURE_CLI_MODULES:
        importlib.import_module(module).add_commands(sub)

    d = sub.add_parser("demo", help="review a sample project with the code-reviewer, offline")
    d.add_argument(
        "--approve",
        choices=["ask", "allow", "always", "deny"],
        default=None,
        help="how to answer approvals (default: ask at a terminal, else allow)",
    )
    d.add_argument("--runtime", help="runtime to use (default: routing picks; offline: scripted)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="run one task and stream its log")
    r.add_argument("prompt")
    r.add_argument("--profile")
    r.add_argument("--runtime")
    r.add_argument("--project", help="project name or folder")
    r.add_argument("--model")
    r.add_argument("--max-turns", type=int)
    r.add_argument("--budget", type=float, help="max budget in USD")
    r.add_argument("--script", help="YAML file with a script for the scripted runtime")
    r.add_argument("--approve", choices=["ask", "allow", "always", "deny"], default=None)
    r.add_argument("--no-wait", action="store_true", help="submit and return the task id")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("tasks", help="list tasks")
    t.add_argument("--status")
    t.add_argument("--limit", type=int, default=30)
    t.set_defaults(func=cmd_tasks)

    i = sub.add_parser("inbox", help="list or decide inbox items")
    isub = i.add_subparsers(dest="inbox_cmd")
    il = isub.add_parser("list")
    il.add_argument("--all", action="store_true")
    il.set_defaults(func=cmd_inbox_list)
    idc = isub.add_parser("decide")
    idc.add_argument("item_id")
    idc.add_argument("decision", choices=["allow", "always", "deny", "answer"])
    idc.add_argument("--message")
    idc.add_argument("--rule")
    idc.add_argument("--scope", choices=["global", "profile", "project"])
    idc.set_defaults(func=cmd_inbox_decide)
    i.set_defaults(func=cmd_inbox_list, all=False)

    pr = sub.add_parser("profiles", help="list, show or test profiles")
    psub = pr.add_subparsers(dest="profiles_cmd")
    psub.add_parser("list").set_defaults(func=cmd_profiles_list)
    ps = psub.add_parser("show")
    ps.add_argument("profile_id")
    ps.set_defaults(func=cmd_profiles_show)
    pt = psub.add_parser("test")
    pt.add_argument("profile_id")
    pt.add_argument("--runtime")
    pt.set_defaults(func=cmd_profiles_test)
    pr.set_defaults(func=cmd_profiles_list)

    sub.add_parser("runtimes", help="which runtimes are usable here").set_defaults(
        func=cmd_runtimes
    )
    lg = sub.add_parser("logs", help="print a task's log")
    lg.add_argument("task_id")
    lg.set_defaults(func=cmd_logs)
    sq = sub.add_parser("sql", help="run read-only SQL against the workspace")
    sq.add_argument("query")
    sq.set_defaults(func=cmd_sql)

    sv = sub.add_parser("serve", help="run the workspace service in the foreground")
    sv.add_argument("--tcp", help="also listen on loopback TCP, e.g. 127.0.0.1:8777 (token needed)")
    sv.add_argument(
        "--idle-timeout",
        type=float,
        help="stop after this many seconds with no client and no live work "
        "(default: the service.idle_timeout_s setting)",
    )
    sv.set_defaults(func=cmd_serve)
    srv = sub.add_parser("server", help="status or stop of the workspace service")
    ssub = srv.add_subparsers(dest="server_cmd")
    ssub.add_parser("status", help="pid, socket, version, clients, live work").set_defaults(
        func=cmd_server_status
    )
    stop = ssub.add_parser("stop", help="stop the service (refused while tasks are active)")
    stop.add_argument("--force", action="store_true", help="stop anyway: active tasks pause")
    stop.set_defaults(func=cmd_server_stop)
    srv.set_defaults(func=cmd_server_status)
    return p


def open_lab(args: argparse.Namespace):
    from stagent_lab.client.lab import Lab

    return Lab(home=args.home)


# Characters that can hide or reorder what a terminal shows: C0/C1 controls (escape sequences,
# carriage returns), bidirectional overrides and zero-width characters.
_HIDING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def visible(text: Any) -> str:
    """Agent text made safe to show a person who approves it: Rich markup is escaped (so
    ``[conceal]`` cannot hide anything and ``[/]`` cannot break the prompt) and every control,
    bidi or zero-width character is shown as an escape code instead of acting on the terminal."""
    plain = str(text)
    plain = _HIDING.sub(lambda m: f"\\u{ord(m.group(0)):04x}", plain)
    return escape(plain)


# ---- rendering ------------------------------------------------------------------------------


def df_table(df, title: str | None = None, max_rows: int = 50) -> Table:
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), overflow="fold")
    for _, row in df.head(max_rows).iterrows():
        table.add_row(*[_cell(v) for v in row.tolist()])
    return table


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0").rstrip(".") if v else "0"
    text = str(v)
    return text if len(text) <= 80 else text[:77] + "…"


def describe_event(ev: dict[str, Any]) -> Text | None:
    event = ev.get("event")
    if event == "assistant_delta":
        return None
    payload = ev.get("payload")
    data = json.loads(payload) if isinstance(payload, str) and payload[:1] == "{" else {}
    tool = ev.get("tool_name") or ""
    t = Text()
    t.append(f"[{ev['task_id'][:6]}] ", style="dim")
    if event == "status":
        t.append(f"status {data.get('from')} → {data.get('to')}", style="bold cyan")
        if data.get("reason"):
            t.append(f" ({data['reason']})", style="cyan")
    elif event == "tool_request":
        t.append(f"→ {tool} ", style="bold yellow")
        t.append(_short(json.dumps(data.get("input"), ensure_ascii=False), 120))
    elif event == "tool_decision":
        style = "green" if data.get("behavior") == "allow" else "red"
        t.append(f"  {data.get('behavior')} by {data.get('tier')}", style=style)
        if data.get("rule"):
            t.append(f" [{data['rule']}]", style="dim")
        if data.get("message") and data.get("behavior") == "deny":
            t.append(f" — {data['message']}", style=style)
    elif event == "tool_result":
        lines = (data.get("output") or "").count("\n") + 1
        style = "red" if data.get("is_error") else "dim"
        t.append(f"  ← {tool}: {lines} line(s) ", style=style)
        t.append(_short((data.get("output") or "").replace("\n", " ⏎ "), 100), style="dim")
    elif event == "assistant_text":
        t.append("assistant: ", style="bold")
        t.append(_short(data.get("text", "").replace("\n", " "), 160))
    elif event == "usage":
        cost = data.get("cost_usd")
        t.append(
            f"  usage {data.get('model')}: in {data.get('input_tokens')} out "
            f"{data.get('output_tokens')} tok"
            + (f", ${cost:.5f}" if isinstance(cost, int | float) else ""),
            style="dim",
        )
    elif event == "inbox":
        t.append(f"⏸ waiting for a human: {data.get('kind')} {tool}", style="bold magenta")
    elif event in ("error", "notice"):
        t.append(f"{event}: {data.get('message')}", style="red" if event == "error" else "blue")
    elif event == "task_started":
        t.append(
            f"started {data.get('profile')} on {data.get('runtime')} in {data.get('working_dir')}",
            style="bold",
        )
    elif event == "result":
        t.append("result ready", style="bold green")
    else:
        t.append(f"{event} {tool}")
    return t


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def follow(lab, handle, console: Console, approve: str | None) -> None:
    """Stream a task's events to the terminal and answer its approvals."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    unsubscribe = lab.subscribe(lambda ev: events.put(ev) if ev["task_id"] == handle.id else None)
    interactive = approve in (None, "ask") and sys.stdin.isatty()
    mode = approve if approve not in (None, "ask") else ("ask" if interactive else "allow")
    started = time.monotonic()
    answered: set[str] = set()
    view = handle.view()

    def status_line() -> Text:
        return Text(
            f"{view.profile_id} on {view.runtime_id} · {view.status} · turn {view.turns} · "
            f"${view.cost_usd:.5f} · {time.monotonic() - started:.1f}s",
            style="bold reverse",
        )

    def answer_pending() -> None:
        for _, item in handle.inbox().iterrows():
            if item["id"] in answered:
                continue
            answered.add(item["id"])
            if live:
                live.stop()
            decide_at_terminal(lab, item, mode, console)
            if live:
                live.start()

    live = (
        Live(status_line(), console=console, refresh_per_second=8, transient=True)
        if console.is_terminal
        else None
    )
    try:
        if live:
            live.start()
        # Replay what happened before we subscribed; events that arrived live meanwhile and
        # were already replayed are skipped by their seq.
        replayed = 0
        for _, row in lab.logs(task=handle.id).iterrows():
            replayed = int(row["seq"])
            line = describe_event({**row.to_dict(), "payload": json.dumps(row["payload"])})
            if line:
                console.print(line)
        answer_pending()
        last_view = 0.0
        while True:
            ask = False
            try:
                ev = events.get(timeout=0.1)
                if ev.get("seq") is not None and ev["seq"] <= replayed:
                    continue
                line = describe_event(ev)
                if line:
                    console.print(line)
                ask = ev.get("event") == "inbox"
            except queue.Empty:
                pass
            if time.monotonic() - last_view > 0.5 or ask:
                view = handle.view()
                last_view = time.monotonic()
            if live:
                live.update(status_line())
            if ask or view.pending_inbox:
                answer_pending()
            if view.done and events.empty():
                break
    finally:
        unsubscribe()
        if live:
            live.stop()


def decide_at_terminal(lab, item, mode: str, console: Console) -> None:
    if item["kind"] == "question":
        console.print(f"[bold magenta]question:[/] {visible(item['question'])}")
        if mode == "ask":
            answer = input("answer> ").strip() or "(no answer)"
            lab.decide(item["id"], "answer", answer)
        else:
            lab.decide(
                item["id"],
                "answer",
                "Proceed with your best judgement.",
                decided_by="cli --approve",
            )
        return
    console.print(
        f"[bold magenta]approval needed:[/] {visible(item['tool_name'])} "
        f"{visible(json.dumps(item['tool_input'], ensure_ascii=False))}\n"
        f"  suggested rule for 'always': [cyan]{visible(item['suggested_rule'])}[/]"
    )
    if mode == "ask":
        while True:
            choice = input("[a]llow once / al[w]ays / [d]eny > ").strip().lower()
            if choice in ("a", "allow"):
                lab.decide(item["id"], "allow")
                return
            if choice in ("w", "always"):
                lab.decide(item["id"], "always")
                return
            if choice in ("d", "deny"):
                msg = input("message for the agent (optional) > ").strip() or None
                lab.decide(item["id"], "deny", msg)
                return
    msg = "Denied by the demo's --approve deny." if mode == "deny" else None
    lab.decide(item["id"], mode, msg, decided_by="cli --approve")
    console.print(f"  decided: [bold]{mode}[/] (--approve)")


def print_outcome(lab, handle, console: Console) -> None:
    console.rule("[bold]Result")
    info = handle.info()
    if handle.result:
        console.print(Markdown(handle.result))
    else:
        console.print(f"[red]{info['status']}: {info['failure_reason']}[/]")
    console.rule("[bold]Outcome (from DuckDB)")
    from stagent_lab.analytics import task_report

    report = task_report(lab._reader(), handle.id)
    console.print(df_table(report["outcome"]))
    console.print(df_table(report["decisions"], title="Permission decisions"))
    console.print(df_table(report["cost"], title="Cost"))


# ---- commands -------------------------------------------------------------------------------


def prepare_sample_project(home: Path) -> Path:
    target = home / "projects" / "invoice-service"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SAMPLE_PROJECT, target, ignore=shutil.ignore_patterns("__pycache__"))
    if shutil.which("git"):
        env = {
            **os.environ,
            "GIT_AUTHOR_DATE": "2026-11-01T10:00:00",
            "GIT_COMMITTER_DATE": "2026-11-01T10:00:00",
        }
        git = [
            "git",
            "-c",
            "user.name=Demo",
            "-c",
            "user.email=demo@example.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ]
        subprocess.run([*git, "init", "-q"], cwd=target, check=True, env=env)
        subprocess.run([*git, "add", "-A"], cwd=target, check=True, env=env)
        subprocess.run(
            [*git, "commit", "-q", "-m", "Invoice service: first version"],
            cwd=target,
            check=True,
            env=env,
        )
    return target


def cmd_demo(args, console: Console) -> int:
    lab = open_lab(args)
    try:
        console.rule("[bold]stagent_lab demo")
        console.print(f"workspace: {lab.home}")
        project = prepare_sample_project(lab.home)
        console.print(f"sample project: {project}")
        handle = lab.submit(
            DEMO_PROMPT, profile="code-reviewer", project=project, runtime=args.runtime
        )
        view = handle.view()
        console.print(f"task {handle.id}: profile code-reviewer on runtime {view.runtime_id}\n")
        follow(lab, handle, console, args.approve)
        handle.wait(timeout=600)
        print_outcome(lab, handle, console)
        console.print(f'\nExplore it: stagent-lab --home {lab.home} sql "SELECT * FROM agent_logs"')
        return 0 if handle.status == "completed" else 1
    finally:
        lab.close()


def cmd_run(args, console: Console) -> int:
    lab = open_lab(args)
    try:
        script = Path(args.script).read_text() if args.script else None
        handle = lab.submit(
            args.prompt,
            profile=args.profile,
            runtime=args.runtime,
            project=args.project,
            max_turns=args.max_turns,
            max_budget_usd=args.budget,
            script=script,
            model=args.model,
        )
        if args.no_wait:
            console.print(handle.id)
            return 0
        follow(lab, handle, console, args.approve)
        handle.wait()
        print_outcome(lab, handle, console)
        return 0 if handle.status == "completed" else 1
    finally:
        lab.close()


def cmd_tasks(args, console: Console) -> int:
    with open_lab(args) as lab:
        df = lab.tasks(status=args.status)
        cols = [
            "id",
            "title",
            "profile_id",
            "runtime_id",
            "status",
            "turns",
            "cost_usd",
            "created_at",
            "failure_reason",
        ]
        console.print(df_table(df[cols].tail(args.limit), title="Tasks"))
    return 0


def cmd_inbox_list(args, console: Console) -> int:
    with open_lab(args) as lab:
        df = lab.inbox("all" if args.all else "pending")
        cols = [
            "id",
            "task_id",
            "kind",
            "tool_name",
            "tool_input",
            "question",
            "suggested_rule",
            "status",
            "decision",
            "decided_by",
        ]
        console.print(df_table(df[cols], title="Inbox"))
        if df.empty:
            console.print("nothing waiting" if not args.all else "no items")
    return 0


def cmd_inbox_decide(args, console: Console) -> int:
    with open_lab(args) as lab:
        out = lab.decide(
            args.item_id,
            args.decision,
            args.message,
            args.rule,
            scope=args.scope,
            decided_by=f"cli:{os.environ.get('USER') or 'user'}",
        )
        console.print(
            f"decided {out['item_id']}: {out['decision']}"
            + (f" (saved rule {out['rule']})" if out.get("rule") else "")
        )
    return 0


def cmd_profiles_list(args, console: Console) -> int:
    with open_lab(args) as lab:
        table = Table(title="Profiles")
        for col in (
            "id",
            "name",
            "domain",
            "preferred",
            "tools",
            "auto-approve",
            "max turns",
            "origin",
        ):
            table.add_column(col, overflow="fold")
        for p in lab.profiles.all():
            table.add_row(
                p.id,
                p.name,
                p.domain,
                p.preferred_runtime or "",
                ", ".join(p.allowed_tools),
                ", ".join(p.auto_approve),
                str(p.max_turns),
                p.origin,
            )
        console.print(table)
        for err in lab.profile_errors():
            console.print(f"[red]profile error:[/] {err}")
    return 0


def cmd_profiles_show(args, console: Console) -> int:
    with open_lab(args) as lab:
        p = lab.profiles.get(args.profile_id)
        console.print(f"[bold]{p.name}[/] ({p.id} v{p.version}, {p.origin}: {p.source_dir})")
        console.print(p.description)
        console.print(f"tags: {', '.join(p.tags)}")
        console.print(
            f"runtimes: {', '.join(p.supported_runtimes)} (preferred: {p.preferred_runtime})"
        )
        console.print(f"allowed tools: {', '.join(p.allowed_tools)}")
        console.print(f"auto-approve: {', '.join(p.auto_approve) or '-'}")
        console.print(f"auto-deny: {', '.join(p.auto_deny) or '-'}")
        console.print(f"max turns: {p.max_turns}; output format: {p.output_format}")
        for t in p.smoke_tests:
            console.print(f"smoke test: {t['task']!r} expects {', '.join(t['expected_keywords'])}")
        console.rule("SKILL.md")
        console.print(Markdown(p.skill_md))
    return 0


def cmd_profiles_test(args, console: Console) -> int:
    with open_lab(args) as lab:
        df = lab.test_profile(args.profile_id, runtime=args.runtime)
        console.print(
            df_table(
                df[["test_index", "task", "runtime_id", "status", "passed", "missing"]],
                title=f"Smoke tests: {args.profile_id}",
            )
        )
        return 0 if bool(df["passed"].all()) else 1


def cmd_runtimes(args, console: Console) -> int:
    with open_lab(args) as lab:
        df = lab.runtimes(refresh=True)
        console.print(
            df_table(
                df[
                    [
                        "runtime",
                        "provider",
                        "usable",
                        "reason",
                        "default_model",
                        "resume",
                        "approvals",
                    ]
                ],
                title="Runtimes",
            )
        )
    return 0


def cmd_logs(args, console: Console) -> int:
    with open_lab(args) as lab:
        df = lab.logs(task=args.task_id)
        if df.empty:
            raise KeyError(f"no log rows for task {args.task_id!r}")
        for _, row in df.iterrows():
            line = describe_event({**row.to_dict(), "payload": json.dumps(row["payload"])})
            if line:
                console.print(line)
    return 0


def cmd_serve(args, console: Console) -> int:
    from stagent_lab.service.server import serve

    return serve(args.home, tcp=args.tcp, idle_timeout=args.idle_timeout)


def _service_info(args):
    from stagent_lab.config import resolve_home
    from stagent_lab.service import connection as conn

    home = resolve_home(args.home)
    info = conn.read_connection(home)
    if info is None or not conn.pid_alive(info.pid):
        return home, None
    return home, info


def cmd_server_status(args, console: Console) -> int:
    import httpx

    home, info = _service_info(args)
    if info is None:
        console.print(f"no workspace service runs for {home}")
        return 1
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=info.socket)) as http:
            resp = http.get(
                "http://stagent/v1/info",
                headers={"authorization": f"Bearer {info.token}"},
                timeout=10,
            )
        data = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        console.print(f"[red]the service (pid {info.pid}) does not answer:[/] {exc}")
        return 1
    table = Table(title=f"Workspace service of {home}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = {
        "pid": str(info.pid),
        "version": data.get("version", "?"),
        "socket": info.socket,
        "tcp": info.tcp or "-",
        "uptime": f"{data.get('uptime_s', 0):.0f} s",
        "clients": ", ".join(data.get("clients") or []) or "none",
        "live work": "; ".join(data.get("live_work") or []) or "none",
        "idle timeout": f"{data.get('idle_timeout_s', 0):g} s",
        "store": "FAILING (see the log)" if data.get("store_failing") else "ok",
        "log": str(home / ".service" / "service.log"),
    }
    for key, value in rows.items():
        table.add_row(key, visible(value))
    console.print(table)
    return 0


def cmd_server_stop(args, console: Console) -> int:
    import httpx

    home, info = _service_info(args)
    if info is None:
        console.print(f"no workspace service runs for {home}")
        return 0
    with httpx.Client(transport=httpx.HTTPTransport(uds=info.socket)) as http:
        resp = http.post(
            "http://stagent/v1/shutdown",
            headers={"authorization": f"Bearer {info.token}"},
            json={"force": bool(args.force)},
            timeout=30,
        )
    data = resp.json()
    if not data.get("stopped"):
        console.print(f"[yellow]not stopped:[/] {data.get('reason')} (use --force to pause them)")
        return 1
    from stagent_lab.service import connection as conn

    deadline = time.monotonic() + 30
    while conn.pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    console.print(f"stopped the workspace service (pid {info.pid})")
    return 0


def cmd_sql(args, console: Console) -> int:
    with open_lab(args) as lab:
        console.print(df_table(lab.sql(args.query), max_rows=200))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
