"""``%%stagent`` launches a governed task from a cell; ``%stagent ...`` opens the other views.

The cell magic submits and returns at once (the engine runs the task on its own thread); the
cell's output is the task's live card. Mistakes in the option line print one short message and
the usage line instead of a traceback, and unknown profiles or runtimes list the valid ones.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from stagent_lab.errors import StagentError
from stagent_lab.notebook import get_lab, use_home
from stagent_lab.notebook.options import (
    COMMAND_USAGE,
    COMMANDS,
    FEATURE_COMMANDS,
    LAUNCH_USAGE,
    Command,
    OptionError,
    help_text,
    interpolate,
    parse_command,
    parse_launch,
)

# `%load_ext stagent_lab` imports only this module: the client (pydantic models), DuckDB,
# pandas and the widgets load when the first magic runs (see _lazy below).
if TYPE_CHECKING:
    from stagent_lab.notebook.handle import NotebookTaskHandle

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
_EXPECTED_BASE = (StagentError, ValueError, KeyError, TimeoutError)


def _expected() -> tuple[type[BaseException], ...]:
    """The errors shown as one line; DuckDB's only once DuckDB is loaded (else none occur)."""
    duckdb = sys.modules.get("duckdb")
    return (*_EXPECTED_BASE, duckdb.Error) if duckdb is not None else _EXPECTED_BASE


def _lazy(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


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
        first = line.strip().split(" ", 1)[0]
        if cell is None or first in COMMANDS or first in FEATURE_COMMANDS:
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
            except _expected() as exc:
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
            hub = _lazy("stagent_lab.notebook.live", "hub_for")(
                lab
            )  # listening before the task exists: its card needs no store read
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
        except _expected() as exc:
            _say(_error_text(exc))
            return None
        hub.launched(plain.id)
        handle = _lazy("stagent_lab.notebook.handle", "NotebookTaskHandle")(
            lab, plain.id, plain._view
        )
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
            print(help_text())
            return None
        if name == "use":
            lab = use_home(args[0])
            print(f"stagent: using the workspace at {lab.home}")
            return None
        lab = get_lab()
        if name in FEATURE_COMMANDS:
            module, _, fn = FEATURE_COMMANDS[name].partition(":")
            return getattr(importlib.import_module(module), fn)(lab, list(args))
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
            table = _lazy("stagent_lab.notebook.tables", "table")
            return table(df[[c for c in _TASK_COLUMNS if c in df.columns]])
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
        try:
            task = lab.task(args[0])
        except KeyError as exc:
            raise KeyError(f"{_error_text(exc)} (see %stagent tasks)") from None
        handle = _lazy("stagent_lab.notebook.handle", "NotebookTaskHandle")(
            lab, task.id, task._view
        )
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


def _cost(lab: Any, dims: tuple[str, ...]) -> Any:
    table = _lazy("stagent_lab.notebook.tables", "table")
    return table(lab.cost_by(*(dims or ("profile",))))


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
    if profile:
        lab.profiles.get(profile)  # unknown id → error listing the valid ones
    df = lab.memory.list(profile)
    cols = ["profile_id", "category", "content", "confidence", "effective_confidence",
            "access_count", "tags", "updated_at"]  # fmt: skip
    df = df.sort_values(["effective_confidence", "updated_at"], ascending=False)
    return df[[c for c in cols if c in df.columns]].head(200).reset_index(drop=True)


# ``%stagent?`` shows the magic's docstring: make it the full usage with examples.
StagentMagics.stagent.__doc__ = help_text()


def register(ipython: Any) -> None:
    """Register the magics and their Tab completion (idempotent: ``%reload_ext`` replaces
    them)."""
    from stagent_lab.notebook.completion import install

    ipython.register_magics(StagentMagics)
    install(ipython)


def unregister(ipython: Any) -> None:
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("stagent", None)
