"""The workspace service core: owns the store, the engine, profiles, runtimes and features,
and answers every request of the contract.

One ``WorkspaceService`` exists per open workspace, in the process that holds the workspace lock:
the long-lived service process (``stagent-lab serve``) or, embedded, a script or test
(``Lab(in_process=True)``). Clients never touch it directly; they call ``handle(request)``
through a transport (``LocalWorkspace`` in-process, the socket app for other processes).

Threads: ``handle`` runs on the caller's thread (a notebook cell, a request worker). Anything
that changes engine state runs on the engine thread (``Engine.call``/``post``); reads use
per-thread reader cursors after flushing the writer, so they see every event announced so far.

Features (memory, handoffs, and later workflows, schedules, budgets, channels) plug in through
:class:`Feature`: they bring migrations and settings, register request handlers with
:meth:`on`, and hook the engine through :attr:`hooks`. None of them sees ``Lab``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from stagent_lab._version import __version__
from stagent_lab.api import requests as rq
from stagent_lab.api.views import (
    DecisionView,
    InboxItemView,
    ProfileView,
    ProjectView,
    RuleView,
    RuntimeView,
    TaskView,
)
from stagent_lab.config import Settings, SettingSpec, register_settings, resolve_home
from stagent_lab.engine.clock import Clock
from stagent_lab.engine.engine import Engine, EngineHooks
from stagent_lab.engine.inbox import InboxDecision
from stagent_lab.engine.redact import Redactor
from stagent_lab.engine.states import TERMINAL
from stagent_lab.engine.task import TaskState, new_id
from stagent_lab.errors import (
    InvalidInput,
    RuntimeNotAvailableError,
    ScriptError,
    StagentError,
    TaskStateError,
)
from stagent_lab.profiles import ProfileRegistry, classify, default_profile_dirs
from stagent_lab.runtimes.catalog import RuntimeCatalog
from stagent_lab.runtimes.scripted import load_script
from stagent_lab.store import inbox as inbox_repo
from stagent_lab.store import logs as logs_repo
from stagent_lab.store import projects as projects_repo
from stagent_lab.store import rules as rules_repo
from stagent_lab.store import tasks as tasks_repo
from stagent_lab.store import views as views_repo
from stagent_lab.store.db import Store
from stagent_lab.store.migrations import MigrationSet, registered_sets
from stagent_lab.store.sql import read_only_batches, read_only_sql
from stagent_lab.tools import builtin_registry

DEFAULT_PROJECT = "default"
PROVIDER_ENV = ("ANTHROPIC_", "OPENAI_", "OLLAMA_", "CLAUDE_", "CODEX_", "STAGENT_")


class Feature(Protocol):
    """A feature plugged into the service (memory, handoffs, workflows, …)."""

    name: str
    migrations: MigrationSet | None
    settings: Sequence[SettingSpec]

    def attach(self, service: WorkspaceService) -> None:
        """Register handlers and engine hooks (before the engine starts)."""
        ...


def default_features() -> list[Feature]:
    from stagent_lab.channels.feature import ChannelsFeature
    from stagent_lab.chat.feature import ChatFeature
    from stagent_lab.handoffs.feature import HandoffsFeature
    from stagent_lab.memory.feature import MemoryFeature
    from stagent_lab.schedules.feature import SchedulesFeature
    from stagent_lab.usage.feature import BudgetsFeature
    from stagent_lab.workflows.feature import WorkflowsFeature

    return [
        MemoryFeature(),
        HandoffsFeature(),
        WorkflowsFeature(),
        SchedulesFeature(),
        BudgetsFeature(),
        ChannelsFeature(),
        ChatFeature(),
    ]


class WorkspaceService:
    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        profile_dirs: Sequence[str | os.PathLike[str]] = (),
        runtime_options: dict[str, dict[str, Any]] | None = None,
        max_concurrent: int | None = None,
        clock: Clock | None = None,
        features: Iterable[Feature] | None = None,
        automation: bool = True,
    ) -> None:
        self.home = resolve_home(home)
        self.features: list[Feature] = list(default_features() if features is None else features)
        self.automation = automation
        # True in the long-lived workspace service process (``stagent-lab serve``); features
        # that listen on the network (channel endpoints) start only there.
        self.daemon = False
        for feature in self.features:
            register_settings(feature.settings)
        sets = [s for s in registered_sets()]
        for feature in self.features:
            if feature.migrations is not None and feature.migrations not in sets:
                sets.append(feature.migrations)
        self.store = Store(self.home, migration_sets=sets)
        self._handlers: dict[type[rq.Request], Callable[[Any], Any]] = {}
        # Extra panels of the monitor (budgets, next firings, active runs, channel health):
        # name -> function returning rows (list of dicts), read on a reader thread.
        self.monitor_sections: dict[str, Callable[[], list[dict[str, Any]]]] = {}
        # Reasons to stay up with no client connected (active schedules, channel pollers,
        # delayed workflow runs): each returns a short reason, or None.
        self.keep_alive: list[Callable[[], str | None]] = []
        # The cap of a task submitted without max_budget_usd (the budgets feature sets it).
        self.default_task_budget: Callable[[], float | None] = lambda: None
        self._lock = threading.RLock()
        self._held = threading.local()  # posts held while a transport answers (holding_posts)
        self._projects: dict[str | None, tuple[str, str]] = {}
        self._project_text: dict[str, str | None] = {}
        self.closed = False
        try:
            from stagent_lab.store import settings as settings_repo

            self.settings = Settings(settings_repo.all_values(self.store.con))
            saved_dirs = [Path(p) for p in self.settings.value("profiles.dirs")]
            self.profiles = ProfileRegistry(
                default_profile_dirs(self.home, [*saved_dirs, *(Path(p) for p in profile_dirs)])
            )
            self.catalog = RuntimeCatalog(runtime_options)
            self.catalog.default_runtime = lambda: self.settings.value("runtimes.default")
            self.tools = builtin_registry()
            self.redact = Redactor(_option_keys(runtime_options))
            self._hooks = EngineHooks()
            self._clock = clock or Clock()
            self.engine = Engine(
                self.store,
                self.catalog,
                self.settings,
                self.tools,
                clock=self._clock,
                redact=self.redact,
                max_concurrent=max_concurrent,
                hooks=self._hooks,
                task_loader=self._load_task_state,
            )
            self._hooks.instructions.append(self._project_instructions)
            self._register_core()
            for feature in self.features:
                feature.attach(self)
            self.reconciled = self.engine.start()
        except BaseException:
            self.store.close()
            raise
        self.started_at = time.time()

    # ---- the feature host surface ------------------------------------------------------

    @property
    def hooks(self) -> EngineHooks:
        return self._hooks

    @property
    def clock(self) -> Clock:
        return self._clock

    def on(self, request_type: type[rq.Request]) -> Callable[[Callable[[Any], Any]], Any]:
        """Register the handler of a request type (a feature's own requests)."""

        def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
            if request_type in self._handlers:
                raise ValueError(f"request {request_type.kind!r} already has a handler")
            self._handlers[request_type] = fn
            return fn

        return register

    def on_engine(self, fn: Callable[..., Any], *args: Any, timeout: float | None = 60) -> Any:
        """Run ``fn(*args)`` on the engine thread (directly when already there)."""
        if self.engine.on_engine_thread:
            return fn(*args)
        return self.engine.call(fn, *args, timeout=timeout)

    def post(self, fn: Callable[[], Any]) -> None:
        self.engine.post(fn)

    @contextlib.contextmanager
    def holding_posts(self) -> Iterator[list[Callable[[], Any]]]:
        """While a transport answers a request on this thread, the engine work a handler
        starts without waiting for it (a submitted task's creation) is held back and handed
        over by the transport once the answer is on its way: the engine thread then does not
        compete with the answer for the interpreter. The transport must post what it holds
        (``release_posts``), also when the answer fails."""
        held: list[Callable[[], Any]] = []
        self._held.posts = held
        try:
            yield held
        finally:
            self._held.posts = None

    def release_posts(self, held: list[Callable[[], Any]]) -> None:
        for fn in held:
            self.engine.post(fn)
        held.clear()

    def _post_soon(self, fn: Callable[[], Any]) -> None:
        held = getattr(self._held, "posts", None)
        if held is not None:
            held.append(fn)
        else:
            self.engine.post(fn)

    def spawn(self, coro: Any) -> Any:
        """Run a coroutine on the engine loop (engine thread): pollers, workflow runs."""
        return self.engine.spawn(coro)

    def call_at(self, when: Any, fn: Callable[[], Any], label: str = "timer") -> Any:
        """A timer on the engine clock (engine thread); ``.cancel()`` on the result stops it.
        Driven by the injectable clock, so tests advance a FakeClock instead of sleeping."""
        return self.engine.call_at(when, fn, label)

    def call_after(self, seconds: float, fn: Callable[[], Any], label: str = "timer") -> Any:
        return self.engine.call_after(seconds, fn, label)

    def resume_task(self, task_id: str, script: Any = None) -> TaskState:
        """Resume a failed, cancelled or paused task (engine thread)."""
        return self.on_engine(self.engine.resume, task_id, script)

    def cancel_task(self, task_id: str, reason: str | None = None) -> str:
        return self.on_engine(self.engine.cancel, task_id, reason)

    def add_monitor_section(self, name: str, rows: Callable[[], list[dict[str, Any]]]) -> None:
        """A panel for the Monitor widget: ``rows()`` returns a list of JSON-ready dicts."""
        self.monitor_sections[name] = rows

    def set_pool_limit(self, pool: str, limit: Callable[[], int]) -> None:
        """Tasks submitted with ``pool=`` hold at most ``limit()`` running slots (within
        ``engine.max_concurrent``); the rest wait queued. Engine thread or before start."""
        self.engine.set_pool_limit(pool, limit)

    async def ask(self, st: TaskState, item: dict[str, Any]) -> InboxDecision:
        """From a hook: put ``item`` (``kind``, ``body`` …) in the inbox for task ``st`` and wait
        for the decision; the task is ``waiting`` meanwhile (engine thread)."""
        return await self.engine.ask(st, item)

    def task_snapshot(self, task_id: str) -> dict[str, Any] | None:
        """Where a task is, from memory (any thread), or None when not live here."""
        return self.engine.snapshot(task_id)

    def fresh(self) -> None:
        """Flush the writer, so a read sees every event announced so far."""
        if not self.engine.on_engine_thread:
            self.engine.call(self.engine.flush)
        else:
            self.engine.flush()

    def reader(self) -> Any:
        """A cursor for reads on the calling thread (the writer connection on the engine)."""
        if self.engine.on_engine_thread:
            return self.store.con
        return self.store.reader()

    def log_task(self, st: TaskState, event: str, tool_name: str | None = None, **payload: Any):
        self.engine.log(st, event, tool_name, **payload)

    def log_task_id(self, task_id: str | None, event: str, **payload: Any) -> None:
        """Log on a task running here (engine thread); silently nothing for other tasks."""
        st = self.engine.task(task_id) if task_id else None
        if st is not None:
            self.engine.log(st, event, payload.pop("tool_name", None), **payload)

    def log_subject(self, subject: str, subject_id: str, event: str, **payload: Any) -> int:
        return self.engine.log_subject(subject, subject_id, event, **payload)

    def live_task(self, task_id: str) -> TaskState | None:
        """A task's live state (engine thread only)."""
        return self.engine.task(task_id)

    def commits(self) -> int:
        """Transactions committed to the store so far: what a reader compares to know that
        what it kept is still what the store holds."""
        return self.engine.commits()

    def writer_flush(self, fn: Callable[[Any], None] | None = None) -> None:
        """Commit what is queued, then ``fn(con)`` in the same transaction (engine thread)."""
        self.engine.commit(extra=fn)

    def commit_soon(self) -> None:
        """Something waits for the next commit: make it come at the next tick (engine thread)."""
        self.engine.commit_soon()

    def writer_defer(self, fn: Callable[[Any], None], label: str, task_id: str | None) -> None:
        """Queue ``fn(con)`` in order with the task's other writes (engine thread)."""
        self.engine.defer_write(fn, label, task_id)

    def notify(self) -> None:
        """Wake threads waiting for a status or an inbox change."""
        self.engine.notify()

    def create_inbox_item(self, kind: str, **fields: Any) -> str:
        return self.engine.create_inbox_item(kind, **fields)

    def wait_inbox_item(self, item_id: str) -> Any:
        return self.engine.wait_inbox_item(item_id)

    def expire_inbox_items(self, item_ids: list[str]) -> None:
        self.engine.expire_inbox_items(item_ids)

    def start_task(self, st: TaskState) -> None:
        """Queue a prepared task (engine thread)."""
        self.engine.create_task(st)

    def pause_task(self, task_id: str, reason: str) -> str:
        return self.on_engine(self.engine.pause, task_id, reason)

    # ---- dispatch ----------------------------------------------------------------------

    def handle(self, request: rq.Request) -> Any:
        if self.closed:
            raise StagentError("this workspace is closed")
        handler = self._handlers.get(type(request))
        if handler is None:
            raise InvalidInput(f"this workspace does not handle {request.kind!r} requests")
        return handler(request)

    def subscribe(
        self, fn: Callable[[dict[str, Any]], None], since: int | None = None
    ) -> Callable[[], None]:
        return self.engine.subscribe(fn, since)

    def subscribe_at(
        self, fn: Callable[[dict[str, Any]], None], since: int | None = None
    ) -> tuple[Callable[[], None], int]:
        """Subscribe; also return the stream position at which ``fn`` went live."""
        return self.engine.subscribe_at(fn, since)

    def wait_status(
        self, task_id: str, statuses: frozenset[str], timeout: float | None
    ) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            snap = self.engine.snapshot(task_id)
            status = snap["status"] if snap else None
            if status is None:
                self.fresh()
                status = tasks_repo.status_of(self.reader(), task_id)
                if status is None:
                    raise KeyError(f"no task with id {task_id!r}")
                if status in statuses or status in TERMINAL:
                    return status
            if status in statuses:
                return status
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self.engine.wait_change(min(remaining, 1.0) if remaining is not None else 1.0)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.engine.close()
        finally:
            self.store.close()

    # ---- core handlers -----------------------------------------------------------------

    def _register_core(self) -> None:
        h = self.on
        h(rq.SubmitTask)(self.submit)
        h(rq.CancelTask)(lambda r: str(self.on_engine(self.engine.cancel, r.task_id)))
        h(rq.PauseTask)(lambda r: self.on_engine(self.engine.pause, r.task_id, r.reason))
        h(rq.ResumeTask)(self._resume)
        h(rq.GetTask)(lambda r: self.task_view(r.task_id, full=True))
        h(rq.TaskStatus)(lambda r: self.task_view(r.task_id, full=False))
        h(rq.ResolveTaskId)(lambda r: self._resolve_prefix("task", r.prefix))
        h(rq.ResolveItemId)(lambda r: self._resolve_prefix("inbox item", r.prefix))
        h(rq.ListTasks)(self._list_tasks)
        h(rq.ListLogs)(self._list_logs)
        h(rq.ListUsage)(self._list_usage)
        h(rq.Sql)(self._sql)
        h(rq.ListInbox)(self._list_inbox)
        h(rq.WaitInbox)(self._wait_inbox)
        h(rq.Decide)(self._decide)
        h(rq.AddRule)(self._add_rule)
        h(rq.RemoveRule)(lambda r: self.on_engine(self.engine.remove_rule, r.rule_id))
        h(rq.ListRules)(lambda r: self._read(rules_repo.list_arrow))
        h(rq.AddProject)(self._add_project)
        h(rq.ResolveProject)(lambda r: self._project_view(*self.resolve_project(r.project)))
        h(rq.ListProjects)(lambda r: self._read(projects_repo.list_arrow))
        h(rq.GetSettings)(lambda r: dict(self.settings))
        h(rq.SetSetting)(lambda r: self.on_engine(self.engine.set_setting, r.key, r.value))
        h(rq.ListProfiles)(lambda r: [profile_view(p) for p in self.profiles.all()])
        h(rq.GetProfile)(lambda r: profile_view(self.profiles.get(r.profile_id)))
        h(rq.ProfileErrors)(self._profile_errors)
        h(rq.AddProfileDirs)(self._add_profile_dirs)
        h(rq.Classify)(self._classify)
        h(rq.ListRuntimes)(
            lambda r: [RuntimeView(**row) for row in self.catalog.rows(refresh=r.refresh)]
        )
        h(rq.ConfigureRuntime)(self._configure_runtime)
        h(rq.RegisterRuntime)(self._register_runtime)
        h(rq.SyncEnvironment)(self._sync_environment)
        h(rq.TaskCardSnapshot)(self._card_snapshot)
        h(rq.MonitorSnapshot)(self._monitor_snapshot)
        h(rq.Ping)(lambda r: (self.fresh(), self.info())[1])
        h(rq.RecordProfileTest)(self._record_profile_test)
        h(rq.BackdateTasks)(self._backdate)

    def info(self) -> dict[str, Any]:
        writer = self.engine.writer_stats()
        return {
            "home": str(self.home),
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at if hasattr(self, "started_at") else None,
            "features": [f.name for f in self.features],
            "store_failing": writer.pop("failing"),
            "reconciled": list(getattr(self, "reconciled", ())),
            "writer": writer,
        }

    def live_work(self) -> list[str]:
        """Why the service must stay up even with no client: active tasks, features' reasons."""
        live = ("queued", "running", "waiting")
        active = [s for s in self.engine.snapshots() if s["status"] in live]
        reasons = [f"{len(active)} active task(s)"] if active else []
        for fn in self.keep_alive:
            try:
                reason = fn()
            except Exception as exc:  # a broken feature keeps the service up, visibly
                reason = f"keep-alive check failed: {exc}"
            if reason:
                reasons.append(reason)
        return reasons

    def status(self) -> dict[str, Any]:
        """``stagent-lab server status``: who, where, what is live."""
        out = self.info()
        out["live_work"] = self.live_work()
        out["uptime_s"] = round(time.time() - self.started_at, 1)
        out["idle_timeout_s"] = float(self.settings.value("service.idle_timeout_s"))
        return out

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.fresh()
        return fn(self.reader(), *args)

    # ---- submit ------------------------------------------------------------------------

    def submit(self, r: rq.SubmitTask) -> TaskView:
        """Validate everything on this thread, then hand the task to the engine (no wait)."""
        notes: list[str] = []
        prompt = r.prompt
        if not prompt.strip():
            raise InvalidInput("prompt is empty: give the task text")
        if r.profile is None:
            choice = classify(prompt, self.profiles.all())
            prof = self.profiles.get(choice.profile_id)
            top = sorted(choice.scores.items(), key=lambda kv: -kv[1])[:3]
            notes.append(
                f"routed to profile {prof.id} (scores: "
                + ", ".join(f"{k}={v:g}" for k, v in top)
                + ("" if choice.confident else "; nothing clear, so general")
                + ")"
            )
        else:
            prof = self.profiles.get(r.profile)
        runtime = r.runtime
        options: dict[str, Any] = {}
        if r.script is not None:
            if runtime not in (None, "scripted"):
                raise ScriptError(f"script= applies to the scripted runtime, not {runtime!r}")
            load_script(r.script)  # a bad script fails here, not in the run
            runtime = "scripted"
            options["script"] = r.script
        # Explicit → profile → ``runtimes.default`` → first usable; never a silent offline run:
        # with nothing usable this raises one line saying how to set a runtime up.
        with self._lock:
            rid, route_notes = self.catalog.resolve(runtime, prof)
        notes += route_notes
        project_id, working_dir = self.resolve_project(r.project)
        first_line = prompt.strip().splitlines()[0]
        st = TaskState(
            id=new_id(),
            title=r.title or (first_line[:77] + "…" if len(first_line) > 80 else first_line),
            prompt=prompt,
            profile=prof,
            runtime_id=rid,
            model=r.model or prof.model_for(rid),
            project_id=project_id,
            working_dir=working_dir,
            max_turns=r.max_turns or prof.max_turns_for(rid),
            max_budget_usd=(
                r.max_budget_usd if r.max_budget_usd is not None else self.default_task_budget()
            ),
            runtime_options=options,
            source=r.source,
            parent_task_id=r.parent_task_id,
            origin_id=r.origin_id,
            activity=r.activity,
            unattended=r.unattended,
            priority=r.priority,
            timeout_s=r.timeout_s,
            channels=list(r.channels),
            notes=notes,
        )
        if r.pool:
            st.extra["pool"] = r.pool
        view = TaskView(
            id=st.id,
            title=st.title,
            status="queued",
            profile_id=prof.id,
            runtime_id=rid,
            model=st.model,
            project_id=project_id,
            source=st.source,
            max_turns=st.max_turns,
            max_budget_usd=st.max_budget_usd,
            parent_task_id=st.parent_task_id,
            origin_id=st.origin_id,
            notes=notes,
        )
        # Everything that can fail was checked above; the engine takes it from here. Posting
        # (not waiting) keeps submit fast however busy the engine is, and the engine runs
        # posted calls in order, so a cancel or a read right after sees the task.
        if self.engine.on_engine_thread:
            self.engine.create_task(st)
        else:
            # Known as queued from now on, before the engine (or the store) has seen it: a
            # wait or a status read right after submit must not answer "no such task".
            self.engine.announce(st)
            self._post_soon(lambda: self.engine.create_task(st))
        return view

    def _resume(self, r: rq.ResumeTask) -> TaskView:
        if r.script is not None:
            load_script(r.script)
        st = self.on_engine(self.engine.resume, r.task_id, r.script)
        return TaskView(id=st.id, status=str(st.status), title=st.title)

    def _load_task_state(self, task_id: str) -> TaskState:
        row = tasks_repo.get(self.store.con, task_id)
        if row is None:
            raise TaskStateError(f"no task with id {task_id!r}")
        prof = self.profiles.get(row["profile_id"])
        seq = logs_repo.max_seq(self.store.con, task_id)
        return TaskState(
            id=task_id,
            title=row["title"],
            prompt=row["prompt"],
            profile=prof,
            runtime_id=row["runtime_id"],
            model=row["model"],
            project_id=row["project_id"],
            working_dir=row["working_directory"] or str(self.home),
            max_turns=int(row["max_turns"]) if row["max_turns"] else prof.max_turns,
            max_budget_usd=row["max_budget_usd"],
            runtime_options=json.loads(row["options"]) if row["options"] else {},
            status=row["status"],
            source=row["source"],
            parent_task_id=row["parent_task_id"],
            origin_id=row["origin_id"],
            session_id=row["session_id"],
            failure_reason=row["failure_reason"],
            resume_count=int(row["resume_count"]),
            turns=int(row["turns"]),
            cost_usd=float(row["cost_usd"]),
            seq=int(seq),
            activity=row["activity"] or "task_run",
            unattended=bool(row["unattended"]),
            channels=json.loads(row["channels"]) if row["channels"] else [],
            started_at=row.get("started_at"),
            finished_at=row.get("finished_at"),
        )

    # ---- reading tasks -----------------------------------------------------------------

    def task_view(self, task_id: str, *, full: bool) -> TaskView:
        snap = self.engine.snapshot(task_id)
        if snap is not None and not full:
            return TaskView(**snap)
        self.fresh()
        row = tasks_repo.get(self.reader(), task_id)
        if row is None:
            raise KeyError(f"no task with id {task_id!r}")
        data = {k: v for k, v in row.items() if v is not None}
        if snap is not None:  # the engine is ahead of the store by up to ~0.25 s
            for key in (
                "status",
                "turns",
                "cost_usd",
                "result",
                "failure_reason",
                "resume_count",
                "session_id",
                "pending_inbox",
            ):
                if snap.get(key) is not None:
                    data[key] = snap[key]
        return TaskView(**data)

    def _resolve_prefix(self, what: str, prefix: str) -> str:
        self.fresh()
        con = self.reader()
        ids = (
            tasks_repo.ids_with_prefix(con, prefix)
            if what == "task"
            else inbox_repo.ids_with_prefix(con, prefix)
        )
        if prefix in ids:
            return prefix
        if not ids:
            raise KeyError(f"no {what} with id {prefix!r}")
        if len(ids) > 1:
            raise KeyError(f"{prefix!r} matches several {what}s ({', '.join(ids)}); give more")
        return ids[0]

    def _list_tasks(self, r: rq.ListTasks) -> pa.Table:
        return self._read(tasks_repo.list_arrow, r.status, r.limit, r.source)

    def _list_logs(self, r: rq.ListLogs) -> pa.Table:
        return self._read(logs_repo.list_arrow, r.task_id, r.event, r.subject, r.limit)

    def _list_usage(self, r: rq.ListUsage) -> pa.Table:
        return self._read(tasks_repo.usage_arrow, r.task_id)

    def _sql(self, r: rq.Sql) -> pa.Table:
        self.fresh()
        return read_only_sql(self.reader(), r.query, r.params)

    def sql_batches(self, r: rq.Sql) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """``lab.sql`` for a client of the service: the schema and the batches, computed as
        they are read, on a cursor of their own that closes with the iterator. The first batch
        is computed here, so a query that cannot run fails before anything is sent."""
        if self.closed:
            raise StagentError("this workspace is closed")
        self.fresh()
        cur = self.store.cursor()
        try:
            reader = read_only_batches(cur, r.query, r.params)
            first = next(iter(reader), None)
        except BaseException:
            cur.close()
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                if first is not None:
                    yield first
                yield from reader
            finally:
                reader.close()
                cur.close()

        return reader.schema, batches()

    # ---- inbox and rules ---------------------------------------------------------------

    def _list_inbox(self, r: rq.ListInbox) -> list[InboxItemView]:
        self.fresh()
        rows = inbox_repo.items(self.reader(), r.status, r.task_id, r.limit, r.newest_first)
        return [item_view(row) for row in rows]

    def _wait_inbox(self, r: rq.WaitInbox) -> list[InboxItemView]:
        deadline = time.monotonic() + r.timeout
        while True:
            rows = inbox_repo.items(self.reader(), "pending", r.task_id)
            if rows:
                return [item_view(row) for row in rows]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:  # a closing service does not hold its threads
                return []
            self.engine.wait_change(min(remaining, 0.5))

    def _decide(self, r: rq.Decide) -> DecisionView:
        if r.decision == "always" and r.rule is not None:
            from stagent_lab.governance.cascade import validate_rule

            validate_rule(r.rule)
        out = self.on_engine(
            self.engine.decide,
            r.item_id,
            r.decision,
            r.message,
            r.rule,
            r.scope,
            r.decided_by or "operator",
        )
        # The engine wakes the task before it commits the decision; the caller's next read
        # must see it decided, so answer once it is committed (after the task's next step).
        self.fresh()
        return DecisionView(**out)

    def _add_rule(self, r: rq.AddRule) -> RuleView:
        rid = self.on_engine(self.engine.add_rule, r.rule, r.effect, r.scope, r.scope_id)
        return RuleView(
            id=rid, rule=r.rule.strip(), effect=r.effect, scope=r.scope, scope_id=r.scope_id
        )

    # ---- projects ----------------------------------------------------------------------

    def _project_view(self, project_id: str, working_dir: str) -> ProjectView:
        row = projects_repo.by_id(self.reader(), project_id) or {}
        return ProjectView(id=project_id, name=row.get("name", ""), working_directory=working_dir)

    def _add_project(self, r: rq.AddProject) -> ProjectView:
        pid, wd = self.on_engine(self._insert_project, r.name, r.working_directory, r.instructions)
        return ProjectView(id=pid, name=r.name, working_directory=wd)

    def _insert_project(
        self, name: str, working_directory: str, instructions: str | None
    ) -> tuple[str, str]:
        """Engine thread: check and insert together, so two clients cannot both add it."""
        wd = Path(working_directory).expanduser().resolve()
        if not wd.is_dir():
            raise FileNotFoundError(f"project folder does not exist: {wd}")
        if not name or not name.strip():
            raise InvalidInput("project name is empty")
        con = self.store.con
        if projects_repo.by_name(con, name) is not None:
            raise InvalidInput(f"a project named {name!r} already exists")
        pid = new_id()
        now = self.clock.now()
        self.engine.commit(
            extra=lambda c: projects_repo.insert(c, pid, name, str(wd), instructions, now)
        )
        return pid, str(wd)

    def resolve_project(self, project: str | os.PathLike[str] | None) -> tuple[str, str]:
        """(project id, working directory) for a name, a folder (added when new) or None."""
        key = None if project is None else os.fspath(project)
        with self._lock:
            hit = self._projects.get(key)
        if hit is not None and Path(hit[1]).is_dir():
            return hit
        resolved = self.on_engine(self._resolve_project_engine, key)
        with self._lock:
            self._projects[key] = resolved
        return resolved

    def _resolve_project_engine(self, text: str | None) -> tuple[str, str]:
        con = self.store.con
        self.engine.commit()
        if text is None:
            found = projects_repo.by_name(con, DEFAULT_PROJECT)
            if found:
                return found
            folder = self.home / "projects" / DEFAULT_PROJECT
            folder.mkdir(parents=True, exist_ok=True)
            return self._insert_project(DEFAULT_PROJECT, str(folder), None)
        found = projects_repo.by_name(con, text)
        if found:
            return found
        path = Path(text).expanduser()
        if path.is_dir():
            wd = str(path.resolve())
            pid = projects_repo.by_directory(con, wd)
            if pid:
                return pid, wd
            base = path.resolve().name or "project"
            name, n = base, 1
            while projects_repo.by_name(con, name) is not None:
                n += 1
                name = f"{base}-{n}"
            return self._insert_project(name, wd, None)
        names = projects_repo.names(con)
        raise InvalidInput(
            f"unknown project {text!r}: not a project name and not an existing folder. "
            f"Projects: {', '.join(names) or 'none yet'}. Pass a folder path to create one."
        )

    def project_id_of(self, project: str | None, *, run_default: bool = False) -> str | None:
        """A project's id from its name or id (None: the default project when ``run_default``)."""
        if project is None:
            if not run_default:
                return None
            found = projects_repo.by_name(self.reader(), DEFAULT_PROJECT)
            return found[0] if found else None
        pid = projects_repo.id_or_name(self.reader(), project)
        if pid is None:
            raise InvalidInput(f"unknown project {project!r} (give a project name or id)")
        return pid

    def _project_instructions(self, st: TaskState) -> str | None:
        if not st.project_id:
            return None
        # Projects change only through this service, so a per-id cache stays correct.
        if st.project_id not in self._project_text:
            row = projects_repo.by_id(self.store.con, st.project_id)
            text = (
                f"## Project {row['name']}\n{row['instructions']}"
                if row and row["instructions"]
                else None
            )
            self._project_text[st.project_id] = text
        return self._project_text[st.project_id]

    # ---- profiles and runtimes ---------------------------------------------------------

    def _profile_errors(self, r: rq.ProfileErrors) -> list[dict[str, Any]]:
        return [
            {"file": e.file, "line": e.line, "reason": e.reason, "profile_id": e.profile_id}
            for e in self.profiles.errors()
        ]

    def _add_profile_dirs(self, r: rq.AddProfileDirs) -> None:
        """Load these folders now and from every later start (the service may run tasks, e.g.
        scheduled ones, when no client is connected)."""
        dirs = [Path(d).expanduser().resolve() for d in r.dirs]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"profile folder does not exist: {', '.join(missing)}")
        self.profiles.add_dirs(dirs)
        saved = list(self.settings.value("profiles.dirs"))
        new = [str(d) for d in dirs if str(d) not in saved]
        if new:
            self.on_engine(self.engine.set_setting, "profiles.dirs", [*saved, *new])

    def _classify(self, r: rq.Classify) -> dict[str, Any]:
        c = classify(r.text, self.profiles.all())
        return {
            "profile_id": c.profile_id,
            "scores": c.scores,
            "reasons": c.reasons,
            "confident": c.confident,
        }

    def _configure_runtime(self, r: rq.ConfigureRuntime) -> None:
        with self._lock:
            self.catalog.configure(r.runtime_id, **r.options)
        keys = {
            f"{r.runtime_id}.{k}": str(v)
            for k, v in r.options.items()
            if isinstance(v, str) and ("key" in k.lower() or "token" in k.lower())
        }
        self.redact.add(keys)

    def _register_runtime(self, r: rq.RegisterRuntime) -> None:
        module, _, name = r.import_path.partition(":")
        if not module or not name:
            raise InvalidInput(
                f"import_path must look like 'package.module:ClassName', got {r.import_path!r}"
            )
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise RuntimeNotAvailableError(
                f"cannot import runtime {r.import_path!r} in the workspace service: {exc}"
            ) from None
        with self._lock:
            self.catalog.register(cls)

    def register_runtime_class(self, cls: type) -> None:
        """In-process only: register a runtime class object."""
        with self._lock:
            self.catalog.register(cls)

    def _sync_environment(self, r: rq.SyncEnvironment) -> list[str]:
        changed = []
        for name, value in r.variables.items():
            if not name.startswith(PROVIDER_ENV):
                raise InvalidInput(
                    f"{name} is not a provider variable (names start with "
                    f"{', '.join(PROVIDER_ENV)})"
                )
            if os.environ.get(name) != value:
                os.environ[name] = value
                changed.append(name)
        if changed:
            self.redact.refresh(force=True)
            with self._lock:
                self.catalog.invalidate()
        return changed

    # ---- notebook views ----------------------------------------------------------------

    def _card_snapshot(self, r: rq.TaskCardSnapshot) -> dict[str, Any]:
        self.fresh()
        con = self.reader()
        info = views_repo.task_info(con, r.task_id)
        if info is None:
            raise KeyError(f"no task with id {r.task_id!r}")
        snap = self.engine.snapshot(r.task_id)
        if snap is not None:
            views_repo.overlay(info, snap)
        events = logs_repo.task_tail(con, r.task_id, r.rows)
        dropped = logs_repo.count_shown_before(con, r.task_id, events[0]["seq"]) if events else 0
        tokens = tasks_repo.usage_totals(con, r.task_id)
        pending = [item_view(i).model_dump() for i in inbox_repo.items(con, "pending", r.task_id)]
        return {
            "info": info,
            "events": events,
            "dropped": dropped,
            "tokens": {"input": tokens[0], "output": tokens[1]},
            "pending": pending,
        }

    def _monitor_snapshot(self, r: rq.MonitorSnapshot) -> dict[str, Any]:
        self.fresh()
        con = self.reader()
        out = views_repo.monitor(con, r.since_local_midnight, r.recent)
        for agent in out["active"]:
            snap = self.engine.snapshot(agent["id"])
            if snap is not None:
                agent.update(status=snap["status"], turns=snap["turns"], cost_usd=snap["cost_usd"])
        out["decisions"] = [
            item_view(i).model_dump() for i in inbox_repo.items(con, "done", None, 15, True)
        ]
        out["pending"] = [item_view(i).model_dump() for i in inbox_repo.items(con, "pending")]
        out["sections"] = {}
        for name, rows in self.monitor_sections.items():
            try:
                out["sections"][name] = rows()
            except Exception as exc:  # one broken panel must not hide the others
                out["sections"][name] = [{"error": f"{type(exc).__name__}: {exc}"}]
        return out

    # ---- misc --------------------------------------------------------------------------

    def _record_profile_test(self, r: rq.RecordProfileTest) -> None:
        row = {
            "id": new_id(),
            "profile_id": r.profile_id,
            "runtime_id": r.runtime_id,
            "test_index": r.test_index,
            "task": r.task,
            "task_id": r.task_id,
            "expected_keywords": json.dumps(r.expected_keywords),
            "missing_keywords": json.dumps(r.missing_keywords),
            "passed": r.passed,
            "created_at": self.clock.now(),
        }

        def write() -> None:
            self.engine.insert_row("profile_test_runs", row)
            self.engine.commit()

        self.on_engine(write)

    def _backdate(self, r: rq.BackdateTasks) -> None:
        from stagent_lab.store.history import backdate

        def run() -> None:
            self.engine.flush()
            self.engine.commit(extra=lambda con: backdate(con, r.moves, r.time_scale))

        self.on_engine(run)


# ---- view builders ------------------------------------------------------------------------


def item_view(row: dict[str, Any]) -> InboxItemView:
    data = dict(row)
    raw = data.get("tool_input")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            data["tool_input"] = json.loads(raw)
    return InboxItemView(**data)


def profile_view(p: Any) -> ProfileView:
    policy = p.can_use_tool_policy
    return ProfileView(
        id=p.id,
        name=p.name,
        description=p.description,
        domain=p.domain,
        version=p.version,
        author=p.author,
        origin=p.origin,
        tags=list(p.tags),
        supported_runtimes=list(p.supported_runtimes),
        preferred_runtime=p.preferred_runtime,
        allowed_tools=list(p.allowed_tools),
        auto_approve=list(policy.auto_approve),
        auto_deny=list(policy.auto_deny),
        max_turns=p.max_turns,
        output_format=p.output_format,
        tests=len(p.tests),
        smoke_tests=[
            {"task": t.task, "expected_keywords": list(t.expected_keywords)} for t in p.tests
        ],
        source_dir=str(p.source_dir) if p.source_dir else None,
        skill_md=p.skill_md,
    )


def _option_keys(options: dict[str, dict[str, Any]] | None) -> dict[str, str]:
    return {
        f"{rid}.api_key": str(o["api_key"])
        for rid, o in (options or {}).items()
        if isinstance(o, dict) and o.get("api_key")
    }


__all__ = ["DEFAULT_PROJECT", "Feature", "WorkspaceService", "item_view", "profile_view"]
