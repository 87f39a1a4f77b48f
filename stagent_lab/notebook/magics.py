"""``%%stagent`` launches a governed task from a cell; ``%stagent ...`` opens the other views.

The cell magic submits and returns at once (the engine runs the task on its own thread); the
cell's output is the task's live card. Mistakes in the option line print one short message and
the usage line instead of a traceback, and unknown profiles or runtimes list the valid ones.
"""

from __future__ import annotations

import sys
from typing import Any

import duckdb
from IPython.core.magic import Magics, line_cell_magic, magics_class

from stagent_lab.errors import StagentError
from stagent_lab.notebook import get_lab, use_home
from stagent_lab.notebook.handle import NotebookTaskHandle
from stagent_lab.notebook.live import hub_for
from stagent_lab.notebook.options import (
    COMMAND_USAGE,
    COMMANDS,
    LAUNCH_USAGE,
    Command,
    OptionError,
    interpolate,
    parse_command,
    parse_launch,
)

_TASK_COLUMNS = [
    "id",
    "title",
    "profile_id",
    "runtime_id",
    "status",
    "turns",
    "cost_usd",
    "created_at",
    "finished_at",
    "failure_reason",
]
_EXPECTED = (StagentError, ValueError, KeyError, TimeoutError, duckdb.Error)
MEMORY_USAGE = (
    "       %stagent memory [PROFILE] opens the memory browser; "
    "%stagent memory --table [PROFILE] lists active memories as a DataFrame"
)


def _say(message: str, usage: str | None = None) -> None:
    """A short message under the cell (stderr, so it stands out), never a traceback."""
    print(f"stagent: {message}", file=sys.stderr)
    if usage:
        print(usage, file=sys.stderr)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args and not isinstance(exc, StagentError):
        return str(exc.args[0])
    return str(exc)


@magics_class
class StagentMagics(Magics):
    @line_cell_magic
    def stagent(self, line: str, cell: str | None = None) -> Any:
        """Launch a task (``%%stagent [options]`` + prompt) or run a ``%stagent`` command.

        Run ``%stagent help`` for the full usage.
        """
        first = line.strip().split(" ", 1)[0]
        if cell is None or first in COMMANDS:
            try:
                if first == "memory":
                    command = _parse_memory(line, cell)
                else:
                    command = parse_command(line, cell)
            except OptionError as exc:
                _say(str(exc), COMMAND_USAGE)
                return None
            try:
                return self.run_command(command)
            except _EXPECTED as exc:
                _say(_error_text(exc))
                return None
        try:
            options = parse_launch(line)
        except OptionError as exc:
            _say(str(exc), LAUNCH_USAGE)
            return None
        return self.launch(options, cell)

    # ---- %%stagent ---------------------------------------------------------------------

    def launch(self, options: Any, cell: str) -> NotebookTaskHandle | None:
        ns = self.shell.user_ns if self.shell is not None else {}
        if not cell.strip():
            _say("the cell body is the prompt, and it is empty", LAUNCH_USAGE)
            return None
        prompt, missing = interpolate(cell.strip("\n"), ns)
        for name in missing:
            _say(f"note: {{{name}}} left as written (no variable named {name})")
        script = None
        if options.script is not None:
            if options.script not in ns:
                _say(f"--script {options.script}: no variable with that name in the notebook")
                return None
            script = ns[options.script]
        try:
            lab = get_lab()
            hub_for(lab)  # listening before the task exists: its card then needs no store read
            plain = lab.submit(
                prompt,
                profile=options.profile,
                runtime=options.runtime,
                project=options.project,
                max_turns=options.max_turns,
                max_budget_usd=options.budget,
                script=script,
                model=options.model,
                title=options.title,
            )
        except _EXPECTED as exc:
            _say(_error_text(exc))
            return None
        handle = NotebookTaskHandle(lab, plain.id)
        if options.name:
            ns[options.name] = handle
        if options.wait:
            handle.show()
            _wait(handle)
        return handle

    # ---- %stagent COMMAND --------------------------------------------------------------

    def run_command(self, command: Command) -> Any:
        name, args = command.name, command.args
        if name == "help":
            print(LAUNCH_USAGE)
            print(COMMAND_USAGE)
            print(MEMORY_USAGE)
            return None
        if name == "use":
            lab = use_home(args[0])
            print(f"stagent: using the workspace at {lab.home}")
            return None
        lab = get_lab()
        if name == "inbox":
            from stagent_lab.notebook.widgets.inbox import Inbox

            return Inbox.shared(lab)
        if name == "monitor":
            from stagent_lab.notebook.widgets.monitor import Monitor

            return Monitor.shared(lab)
        if name == "profiles":
            from stagent_lab.notebook.widgets.profiles import ProfilesView

            return ProfilesView(lab)
        if name == "tasks":
            df = lab.tasks(args[0] if args else None)
            return df[[c for c in _TASK_COLUMNS if c in df.columns]]
        if name == "cost":
            return _cost(lab, args)
        if name == "memory":
            profile = next((a for a in args if a != "--table"), None)
            if "--table" in args:
                return _memory(lab, profile)
            from stagent_lab.notebook.widgets.memory import MemoryBrowser

            return MemoryBrowser.shared(lab, profile)
        if name == "sql":
            return lab.sql(args[0])
        handle = NotebookTaskHandle(lab, _resolve_task(lab, args[0]))
        if name == "cancel":
            handle.cancel()
            print(f"stagent: cancelling task {handle.id}")
            return None
        if name == "resume":
            handle.resume()
        return handle  # "task" and "resume" show the card


def _wait(handle: NotebookTaskHandle) -> None:
    """Block until the task ends; short waits keep the cell interruptible (Kernel → Interrupt)."""
    try:
        while True:
            try:
                handle.wait(timeout=0.5)
                return
            except TimeoutError:
                continue
    except KeyboardInterrupt:
        _say(f"stopped waiting; task {handle.id} keeps running (%stagent cancel {handle.id})")


def _resolve_task(lab: Any, text: str) -> str:
    """A task id, or an unambiguous prefix of one (ids are long to type)."""
    rows = lab.store.query_rows(
        "SELECT id FROM tasks WHERE starts_with(id, ?) ORDER BY created_at DESC LIMIT 3", [text]
    )
    ids = [r[0] for r in rows]
    if text in ids:
        return text
    if not ids:
        raise KeyError(f"no task with id {text!r} (see %stagent tasks)")
    if len(ids) > 1:
        raise KeyError(f"{text!r} matches more than one task: {', '.join(ids)}")
    return ids[0]


def _cost(lab: Any, dims: tuple[str, ...]) -> Any:
    if hasattr(lab, "cost_by"):
        return lab.cost_by(*(dims or ("profile",)))
    if dims:
        raise ValueError("this version of stagent_lab has no cost_by; use %stagent cost")
    return lab.sql(
        "SELECT profile_id AS profile, count(DISTINCT task_id) AS tasks, count(*) AS calls, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "round(sum(cost_usd), 6) AS cost_usd FROM usage_ledger GROUP BY 1 "
        "ORDER BY cost_usd DESC NULLS LAST"
    )


def _parse_memory(line: str, cell: str | None) -> Command:
    """``memory [--table] [PROFILE]`` (the flag may come before or after the profile)."""
    if cell is not None and cell.strip():
        raise OptionError("%%stagent memory takes no cell body; use the line form %stagent memory")
    tokens = line.split()
    args = parse_command(" ".join(t for t in tokens if t != "--table")).args
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise OptionError(f"memory: unknown option {flags[0]} (the only one is --table)")
    return Command("memory", ("--table", *args) if "--table" in tokens else args)


def _memory(lab: Any, profile: str | None) -> Any:
    where, params = "WHERE status = 'active'", []
    if profile:
        lab.profiles.get(profile)  # unknown id → error listing the valid ones
        where += " AND profile_id = ?"
        params.append(profile)
    return lab.sql(
        "SELECT profile_id, category, content, confidence, access_count, tags, updated_at "
        f"FROM agent_memory {where} ORDER BY confidence DESC, updated_at DESC LIMIT 200",
        params,
    )


def register(ipython: Any) -> None:
    """Register the magics (idempotent: ``%reload_ext`` replaces them)."""
    ipython.register_magics(StagentMagics)


def unregister(ipython: Any) -> None:
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("stagent", None)
