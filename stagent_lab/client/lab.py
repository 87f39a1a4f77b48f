"""Lab: the public Python API over one workspace — a client of the contract, nothing more.

Every method builds a typed request (``stagent_lab.api.requests``) and hands it to the
workspace: the service in this process (``in_process=True``) or the workspace service over its
socket. Tabular answers arrive as pandas DataFrames.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stagent_lab.api import requests as rq
from stagent_lab.api.requests import ArrowTable, build
from stagent_lab.api.workspace import Workspace
from stagent_lab.client.budgets import BudgetsClient
from stagent_lab.client.handle import TaskHandle
from stagent_lab.client.schedules import SchedulesClient
from stagent_lab.client.tables import frame, parse_payloads
from stagent_lab.errors import StagentError, WorkspaceLockedError

TRANSPORT_ENV = "STAGENT_TRANSPORT"  # "service" (default) or "in-process"

_open_labs: weakref.WeakSet[Lab] = weakref.WeakSet()
_open_lock = threading.Lock()


@atexit.register
def _close_open_labs() -> None:
    """A script that forgets ``lab.close()`` still exits quietly, with everything written."""
    with _open_lock:
        labs = list(_open_labs)
    for lab in labs:
        try:
            lab.close()
        except Exception:
            pass


class Lab:
    """One workspace. ``Lab()`` opens (or creates) it.

    Parameters: ``home`` (workspace folder; default STAGENT_HOME or the user data dir),
    ``profile_dirs`` (extra profile folders, highest precedence), ``max_concurrent`` (tasks
    running at once; the rest queue), ``runtime_options`` ({runtime_id: {option: value}}, e.g.
    base URLs for the vendor runtimes), ``in_process`` (run the engine inside this process
    instead of connecting to the workspace service; default: the ``STAGENT_TRANSPORT``
    environment variable, else the service), ``clock`` (an ``engine.clock.FakeClock`` for
    tests; implies in-process).

    By default ``Lab()`` connects to the workspace's service and starts it when none runs: tasks
    then outlive this process, and any number of notebooks, scripts and the CLI share the
    workspace. With the service, ``max_concurrent`` sets the workspace's ``engine.max_concurrent``
    setting.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        profile_dirs: Sequence[str | os.PathLike[str]] = (),
        *,
        max_concurrent: int | None = None,
        runtime_options: dict[str, dict[str, Any]] | None = None,
        in_process: bool | None = None,
        clock: Any = None,
        workspace: Workspace | None = None,
    ) -> None:
        if workspace is None:
            workspace = _open_workspace(
                home,
                profile_dirs=profile_dirs,
                max_concurrent=max_concurrent,
                runtime_options=runtime_options,
                in_process=in_process,
                clock=clock,
            )
        self._ws = workspace
        self.home = Path(workspace.home)
        self._closed = False
        self._lock = threading.Lock()
        self.memory = _memory_client(self)
        self.chat = _chat_client(self)
        self.profiles = ProfilesClient(self)
        self.catalog = CatalogClient(self)
        self.workflows = _workflows_client(self)
        self.schedules = SchedulesClient(self)
        self.budgets = BudgetsClient(self)
        self.channels = _channels_client(self)
        with _open_lock:
            _open_labs.add(self)

    # ---- plumbing ----------------------------------------------------------------------

    @property
    def workspace(self) -> Workspace:
        """The transport this Lab talks through (LocalWorkspace or RemoteWorkspace)."""
        return self._ws

    @property
    def transport(self) -> str:
        return self._ws.transport

    def call(self, request: rq.Request) -> Any:
        """Send one request; tabular answers come back as DataFrames."""
        if self._closed:
            raise StagentError("this Lab is closed")
        out = self._ws.call(request)
        if type(request).result is ArrowTable:
            return frame(out)
        return out

    def _req(self, cls: type[rq.Request], **fields: Any) -> Any:
        return self.call(build(cls, **fields))

    # ---- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect. In-process: stop the engine (running and queued tasks become paused,
        resumable) and release the workspace. With the service, tasks keep running there."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with _open_lock:
            _open_labs.discard(self)
        self._ws.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"open, {self._ws.transport}"
        return f"<Lab home={self.home} {state}>"

    # ---- submitting work ----------------------------------------------------------------

    def submit(
        self,
        prompt: str,
        profile: str | None = None,
        runtime: str | None = None,
        project: str | os.PathLike[str] | None = None,
        max_turns: int | None = None,
        max_budget_usd: float | None = None,
        script: Any = None,
        *,
        model: str | None = None,
        title: str | None = None,
        source: str = "manual",
        parent_task_id: str | None = None,
        activity: str = "task_run",
        unattended: bool = False,
        timeout_s: float | None = None,
        origin_id: str | None = None,
        priority: int = 0,
    ) -> TaskHandle:
        """Start a task in the background and return its handle at once."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty: give the task text")
        view = self._req(
            rq.SubmitTask,
            prompt=prompt,
            profile=profile,
            runtime=runtime,
            project=None if project is None else os.fspath(project),
            max_turns=max_turns,
            max_budget_usd=max_budget_usd,
            script=script,
            model=model,
            title=title,
            source=source,
            parent_task_id=parent_task_id,
            activity=activity,
            unattended=unattended,
            timeout_s=timeout_s,
            origin_id=origin_id,
            priority=priority,
        )
        return TaskHandle(self, view.id, view)

    def task(self, task_id: str) -> TaskHandle:
        """The handle of an existing task (a unique id prefix is enough)."""
        full = self._req(rq.ResolveTaskId, prefix=task_id)
        view = self._req(rq.GetTask, task_id=full)
        return TaskHandle(self, full, view)

    def run(self, prompt: str, timeout: float | None = None, **kw: Any) -> TaskHandle:
        """submit() and wait() in one call."""
        return self.submit(prompt, **kw).wait(timeout)

    # ---- profiles and routing -----------------------------------------------------------

    def classify(self, text: str) -> Any:
        from stagent_lab.profiles.classifier import Classification

        out = self._req(rq.Classify, text=text)
        return Classification(out["profile_id"], out["scores"], out["reasons"], out["confident"])

    def profile_errors(self) -> list[Any]:
        from stagent_lab.errors import ProfileError

        return [
            ProfileError(e["file"], e["line"], e["reason"], e["profile_id"])
            for e in self._req(rq.ProfileErrors)
        ]

    def runtimes(self, refresh: bool = False) -> Any:
        import pandas as pd

        return pd.DataFrame([v.model_dump() for v in self._req(rq.ListRuntimes, refresh=refresh)])

    def test_profile(self, profile_id: str, runtime: str | None = None, timeout: float = 300):
        from stagent_lab.profiles.smoke import run_smoke_tests

        return run_smoke_tests(self, profile_id, runtime=runtime, timeout=timeout)

    def register_runtime(self, cls: Any) -> None:
        """Add a runtime class of your own (see docs/writing-a-runtime.md)."""
        service = getattr(self._ws, "service", None)
        if service is not None:
            service.register_runtime_class(cls)
            return
        module = getattr(cls, "__module__", "")
        if module in ("__main__", "") or "<" in getattr(cls, "__qualname__", "<"):
            raise StagentError(
                f"runtime {getattr(cls, 'id', cls)!r} is defined in this notebook or script, "
                "so the workspace service cannot import it; put it in an importable module, or "
                "use Lab(in_process=True)"
            )
        self._req(rq.RegisterRuntime, import_path=f"{module}:{cls.__qualname__}")

    def configure_runtime(self, runtime_id: str, **options: Any) -> None:
        """Options (base_url, model, api_key …) used whenever ``runtime_id`` runs; keys are kept
        in memory only."""
        self._req(rq.ConfigureRuntime, runtime_id=runtime_id, options=options)

    # ---- projects -----------------------------------------------------------------------

    def add_project(
        self, name: str, working_directory: str | os.PathLike[str], instructions: str | None = None
    ) -> str:
        view = self._req(
            rq.AddProject,
            name=name,
            working_directory=os.fspath(working_directory),
            instructions=instructions,
        )
        return view.id

    def projects(self) -> Any:
        return self._req(rq.ListProjects)

    # ---- governance ---------------------------------------------------------------------

    def inbox(self, status: str = "pending") -> Any:
        """Inbox items with their task's profile and title. status: pending|decided|expired|all."""
        return _items_frame(self._req(rq.ListInbox, status=status))

    def wait_inbox(self, timeout: float = 30, task: str | None = None) -> Any:
        """Block until at least one pending inbox item exists (optionally for ``task``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            items = self._req(rq.WaitInbox, task_id=task, timeout=min(left, 30.0))
            if items:
                return _items_frame(items)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no pending inbox item after {timeout}s")

    def decide(
        self,
        item_id: str,
        decision: str,
        message: str | None = None,
        rule: str | None = None,
        *,
        scope: str | None = None,
        decided_by: str | None = None,
    ) -> dict[str, Any]:
        """Answer an inbox item: allow | always | deny | answer. Wakes the waiting task at once."""
        out = self._req(
            rq.Decide,
            item_id=item_id,
            decision=decision,
            message=message,
            rule=rule,
            scope=scope,
            decided_by=decided_by or _operator(),
        )
        return out.model_dump()

    def rules(self) -> Any:
        return self._req(rq.ListRules)

    def add_rule(
        self, rule: str, effect: str = "allow", scope: str = "global", scope_id: str | None = None
    ) -> str:
        """Save a permission rule such as ``Bash(command:git log *)``; returns its id."""
        return self._req(rq.AddRule, rule=rule, effect=effect, scope=scope, scope_id=scope_id).id

    def remove_rule(self, rule_id: str) -> None:
        self._req(rq.RemoveRule, rule_id=rule_id)

    # ---- handoffs -----------------------------------------------------------------------

    def handoff(
        self,
        to_profile: str,
        subject: str,
        body: str,
        *,
        from_profile: str | None = None,
        source_task: str | None = None,
        require_approval: bool = False,
        project: str | os.PathLike[str] | None = None,
        runtime: str | None = None,
        script: Any = None,
    ) -> dict[str, Any]:
        """Hand work to ``to_profile`` on behalf of ``from_profile`` (or of ``source_task``).

        Validated like the agents' Handoff tool (HandoffError says why not). Returns the
        message: ``status`` is ``in_progress`` with ``target_task_id`` when the child task was
        queued, or ``pending`` with ``inbox_item_id`` when it waits for approval.
        """
        return self._req(
            rq.SendHandoff,
            to_profile=to_profile,
            subject=subject,
            body=body,
            from_profile=from_profile,
            source_task=source_task,
            require_approval=require_approval,
            project=None if project is None else os.fspath(project),
            runtime=runtime,
            script=script,
        )

    def handoffs(self, status: str | None = None, task: str | None = None) -> Any:
        """Handoff messages, oldest first (stale approvals are expired first)."""
        return self._req(rq.ListHandoffs, status=status, task_id=task)

    def handoff_chain(self, task_id: str) -> list[dict[str, Any]]:
        """The handoff messages that led to ``task_id``, root first."""
        return self._req(rq.HandoffChain, task_id=task_id)

    # ---- settings -----------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        return dict(self._req(rq.GetSettings))

    def set_setting(self, key: str, value: Any) -> None:
        """Set a typed setting; unknown keys and bad values are refused, naming what is valid."""
        self._req(rq.SetSetting, key=key, value=value)

    # ---- reading the record -------------------------------------------------------------

    def sql(self, query: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """Run read-only SQL against the workspace's DuckDB and return a DataFrame."""
        return self._req(rq.Sql, query=query, params=params)

    def tasks(self, status: str | None = None, limit: int | None = None) -> Any:
        return self._req(rq.ListTasks, status=status, limit=limit)

    def logs(self, task: str | None = None, event: str | None = None) -> Any:
        return parse_payloads(self._req(rq.ListLogs, task_id=task, event=event))

    def usage(self, task: str | None = None) -> Any:
        return self._req(rq.ListUsage, task_id=task)

    def subscribe(
        self, fn: Callable[[dict[str, Any]], None], since: int | None = None
    ) -> Callable[[], None]:
        """Call ``fn(event)`` for every event (see ``stagent_lab.api.workspace``); returns an
        unsubscribe. With ``since``, stored events after that position come first."""
        return self._ws.subscribe(fn, since)

    # ---- analytics (stagent_lab.analytics; imported on first use) -----------------------

    def _reader(self) -> Any:
        return SqlReader(self)

    def query_df(self, sql: str, params: list[Any] | None = None) -> Any:
        """Read-only SQL as a DataFrame (so a Lab is what the analytics functions read)."""
        return self.sql(sql, params)

    def cost_by(self, *dims: str, since: Any = None, until: Any = None) -> Any:
        """Spend and tokens per profile / runtime / model / provider / project / activity /
        task / hour / day / week / month, e.g. ``lab.cost_by("profile", "day")``."""
        from stagent_lab import analytics

        return analytics.cost_by(self._reader(), *dims, since=since, until=until)

    def outcomes(self, by: str | Sequence[str] | None = "profile") -> Any:
        """Tasks, success rate, p50/p95 duration and turns, and cost per group."""
        from stagent_lab import analytics

        return analytics.outcomes(self._reader(), by=by)

    def failures(self, by: str | Sequence[str] | None = None) -> Any:
        """Failed tasks counted by reason (numbers in reasons folded to N)."""
        from stagent_lab import analytics

        return analytics.failures(self._reader(), by=by)

    def plot_cost(self, freq: str = "day", by: str | None = None, *, cumulative: bool = False):
        """A matplotlib Figure of spend per ``freq`` (one line per ``by`` group); shows inline."""
        from stagent_lab.analytics.plots import plot_cost_over_time

        return plot_cost_over_time(self._reader(), freq, by, cumulative=cumulative)

    def plot_success(self, by: str = "profile"):
        """A matplotlib Figure with each profile's success rate (completed / finished)."""
        from stagent_lab.analytics.plots import plot_success_by_profile

        return plot_success_by_profile(self._reader(), by=by)


class SqlReader:
    """What the analytics helpers read through: read-only SQL over the contract."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def query_df(self, sql: str, params: list[Any] | None = None) -> Any:
        return self._lab.sql(sql, params)


class ProfilesClient:
    """``lab.profiles``: the workspace's profiles (views; edit the files to change them)."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def get(self, profile_id: str) -> Any:
        return self._lab._req(rq.GetProfile, profile_id=profile_id)

    def all(self) -> list[Any]:
        return self._lab._req(rq.ListProfiles)

    def ids(self) -> list[str]:
        return [p.id for p in self.all()]

    def errors(self) -> list[Any]:
        return self._lab.profile_errors()

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self.ids()

    def __iter__(self) -> Any:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self.all())


class CatalogClient:
    """``lab.catalog``: register or configure runtimes (kept for older code)."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def register(self, cls: Any) -> None:
        self._lab.register_runtime(cls)

    def configure(self, runtime_id: str, **options: Any) -> None:
        self._lab.configure_runtime(runtime_id, **options)

    def ids(self) -> list[str]:
        return [r.runtime for r in self._lab._req(rq.ListRuntimes)]


def _memory_client(lab: Lab) -> Any:
    from stagent_lab.client.memory import MemoryClient

    return MemoryClient(lab)


def _workflows_client(lab: Lab) -> Any:
    from stagent_lab.client.workflows import WorkflowsClient

    return WorkflowsClient(lab)


def _channels_client(lab: Lab) -> Any:
    from stagent_lab.client.channels import ChannelsClient

    return ChannelsClient(lab)


def _chat_client(lab: Lab) -> Any:
    from stagent_lab.client.chat import ChatClient

    return ChatClient(lab)


def _items_frame(items: list[Any]) -> Any:
    import pandas as pd

    cols = [
        "id", "task_id", "profile_id", "title", "kind", "tool_name", "tool_input", "question",
        "suggested_rule", "status", "decision", "response", "decided_by", "created_at",
        "decided_at", "subject", "subject_id", "body",
    ]  # fmt: skip
    df = pd.DataFrame([i.model_dump() for i in items], columns=cols)
    for col in ("created_at", "decided_at"):
        df[col] = pd.to_datetime(df[col])
    return df


def _operator() -> str:
    from stagent_lab.client.remote import client_identity

    return client_identity()


def _explain_lock(exc: WorkspaceLockedError) -> WorkspaceLockedError:
    """Say so when the holder is the workspace's own service (connect to it instead)."""
    from stagent_lab.service.connection import read_connection

    info = read_connection(Path(exc.path))
    if info is not None and exc.pid == info.pid:
        return WorkspaceLockedError(
            exc.path,
            exc.pid,
            "it is this workspace's service: connect to it with Lab() (the default) instead of "
            "Lab(in_process=True), or stop it with `stagent-lab server stop`",
        )
    return exc


def _open_workspace(
    home: Any,
    *,
    profile_dirs: Sequence[Any],
    max_concurrent: int | None,
    runtime_options: dict[str, dict[str, Any]] | None,
    in_process: bool | None,
    clock: Any,
) -> Workspace:
    if in_process is None:
        mode = os.environ.get(TRANSPORT_ENV, "service").strip().lower()
        if mode not in ("service", "in-process"):
            raise StagentError(f"{TRANSPORT_ENV} must be 'service' or 'in-process', got {mode!r}")
        in_process = mode == "in-process"
    if in_process or clock is not None:
        from stagent_lab.service.core import WorkspaceService
        from stagent_lab.service.local import LocalWorkspace

        try:
            service = WorkspaceService(
                home,
                profile_dirs=profile_dirs,
                runtime_options=runtime_options,
                max_concurrent=max_concurrent,
                clock=clock,
            )
        except WorkspaceLockedError as exc:
            raise _explain_lock(exc) from None
        return LocalWorkspace(service)
    from stagent_lab.client.remote import connect

    return connect(
        home,
        profile_dirs=profile_dirs,
        runtime_options=runtime_options,
        max_concurrent=max_concurrent,
    )
