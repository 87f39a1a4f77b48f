"""Lab: the public facade over one workspace (store, profiles, runtimes, engine)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stagent_lab.config import DEFAULT_SETTINGS, is_secret_setting, resolve_home
from stagent_lab.engine.engine import Engine, TaskState, new_id, utcnow
from stagent_lab.engine.handle import TaskHandle
from stagent_lab.errors import ProfileError, ScriptError, StagentError
from stagent_lab.handoffs import HandoffBus
from stagent_lab.handoffs import attach as attach_handoffs
from stagent_lab.memory import LabMemory
from stagent_lab.memory import attach as attach_memory
from stagent_lab.profiles import Classification, ProfileRegistry, classify, default_profile_dirs
from stagent_lab.runtimes.catalog import RuntimeCatalog
from stagent_lab.runtimes.scripted import load_script
from stagent_lab.store.db import Store

DEFAULT_PROJECT = "default"


class Lab:
    """One workspace. ``Lab()`` opens (or creates) it and starts the engine thread.

    Parameters: ``home`` (workspace folder; default STAGENT_HOME or the user data dir),
    ``profile_dirs`` (extra profile folders, highest precedence), ``max_concurrent`` (tasks
    running at once; the rest queue), ``runtime_options`` ({runtime_id: {option: value}}, e.g.
    base URLs for the vendor runtimes).
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        profile_dirs: Sequence[str | os.PathLike[str]] = (),
        *,
        max_concurrent: int | None = None,
        runtime_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.home = resolve_home(home)
        self.store = Store(self.home)
        self._project_text: dict[str, str | None] = {}
        self._project_ids: dict[str | None, tuple[str, str]] = {}
        try:
            self.profiles = ProfileRegistry(
                default_profile_dirs(self.home, [Path(p) for p in profile_dirs])
            )
            self.catalog = RuntimeCatalog(runtime_options)
            settings = dict(DEFAULT_SETTINGS)
            settings.update(dict(self.store.query_rows("SELECT key, value FROM settings")))
            limit = max_concurrent or int(settings["engine.max_concurrent"])
            self.engine = Engine(self.store, self.catalog, settings=settings, max_concurrent=limit)
            # Keys handed over as runtime options are redacted like keys from the environment.
            self.engine.redact.add(
                {
                    f"{rid}.api_key": str(o["api_key"])
                    for rid, o in (runtime_options or {}).items()
                    if o.get("api_key")
                }
            )
            self.engine.task_loader = self._load_task_state
            self.engine.instruction_hooks.append(self._project_instructions)
            # Memory and handoffs hook into the engine before it starts (docs/memory.md,
            # docs/handoffs.md).
            self.memory: LabMemory = attach_memory(self)
            self.handoff_bus: HandoffBus = attach_handoffs(self)
            self.engine.start()
        except BaseException:
            self.store.close()
            raise
        self._closed = False

    # ---- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the engine (running tasks become paused, resumable) and release the workspace."""
        if self._closed:
            return
        self._closed = True
        self.engine.close()
        self.store.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Lab home={self.home} {'closed' if self._closed else 'open'}>"

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
    ) -> TaskHandle:
        """Start a task in the background and return its handle at once."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty: give the task text")
        notes: list[str] = []
        if profile is None:
            choice = self.classify(prompt)
            prof = self.profiles.get(choice.profile_id)
            top = sorted(choice.scores.items(), key=lambda kv: -kv[1])[:3]
            notes.append(
                f"routed to profile {prof.id} (scores: "
                + ", ".join(f"{k}={v:g}" for k, v in top)
                + ("" if choice.confident else "; nothing clear, so general")
                + ")"
            )
        else:
            prof = self.profiles.get(profile)
        if script is not None:
            if runtime not in (None, "scripted"):
                raise ScriptError(f"script= applies to the scripted runtime, not {runtime!r}")
            load_script(script)  # validate now, so a bad script fails at submit
            runtime = "scripted"
        rid, route_notes = self.catalog.resolve(runtime, prof)
        notes += route_notes
        if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
            raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}")
        if max_budget_usd is not None and not max_budget_usd > 0:
            raise ValueError(f"max_budget_usd must be > 0, got {max_budget_usd!r}")
        project_id, working_dir = self._resolve_project(project)
        first_line = prompt.strip().splitlines()[0]
        st = TaskState(
            id=new_id(),
            title=title or (first_line[:77] + "…" if len(first_line) > 80 else first_line),
            prompt=prompt,
            profile=prof,
            runtime_id=rid,
            model=model or prof.model_for(rid),
            project_id=project_id,
            working_dir=working_dir,
            max_turns=max_turns or prof.max_turns_for(rid),
            max_budget_usd=max_budget_usd,
            runtime_options={"script": script} if script is not None else {},
            source=source,
            parent_task_id=parent_task_id,
            activity=activity,
        )

        def create() -> None:
            self.engine.create_task(st)
            for note in notes:
                self.engine.log(st, "notice", message=note)

        # Everything that can fail was checked above, on this thread; the engine takes it from
        # here. Posting (not waiting) keeps submit() fast however busy the engine is, and the
        # engine runs posted calls in order, so a cancel() or lab.tasks() right after sees it.
        self.engine.tasks[st.id] = st
        self.engine.post(create)
        return TaskHandle(self, st.id)

    def task(self, task_id: str) -> TaskHandle:
        handle = TaskHandle(self, task_id)
        handle.info()  # raises KeyError for an unknown id
        return handle

    def run(self, prompt: str, timeout: float | None = None, **kw: Any) -> TaskHandle:
        """submit() and wait() in one call."""
        return self.submit(prompt, **kw).wait(timeout)

    # ---- profiles and routing -----------------------------------------------------------

    def classify(self, text: str) -> Classification:
        return classify(text, self.profiles.all())

    def profile_errors(self) -> list[ProfileError]:
        return self.profiles.errors()

    def runtimes(self, refresh: bool = False) -> pd.DataFrame:
        return pd.DataFrame(self.catalog.rows(refresh=refresh))

    def test_profile(
        self, profile_id: str, runtime: str | None = None, timeout: float = 300
    ) -> pd.DataFrame:
        from stagent_lab.profiles.smoke import run_smoke_tests

        return run_smoke_tests(self, profile_id, runtime=runtime, timeout=timeout)

    # ---- projects -----------------------------------------------------------------------

    def add_project(
        self, name: str, working_directory: str | os.PathLike[str], instructions: str | None = None
    ) -> str:
        wd = Path(working_directory).expanduser().resolve()
        if not wd.is_dir():
            raise FileNotFoundError(f"project folder does not exist: {wd}")
        if not name or not name.strip():
            raise ValueError("project name is empty")
        if self.store.query_rows("SELECT 1 FROM projects WHERE name = ?", [name]):
            raise ValueError(f"a project named {name!r} already exists")
        pid = new_id()
        self.engine.call(
            lambda: self.store.con.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, 'active', ?)",
                [pid, name, str(wd), instructions, utcnow()],
            )
        )
        return pid

    def projects(self) -> pd.DataFrame:
        return self.store.query_df("SELECT * FROM projects ORDER BY created_at")

    def _resolve_project(self, project: str | os.PathLike[str] | None) -> tuple[str, str]:
        # Projects are only ever added through this Lab (one process owns the workspace), so
        # a resolved name or folder can be remembered: submit() then reads nothing.
        key = None if project is None else os.fspath(project)
        hit = self._project_ids.get(key)
        if hit is not None and Path(hit[1]).is_dir():
            return hit
        resolved = self._resolve_project_uncached(project)
        self._project_ids[key] = resolved
        return resolved

    def _resolve_project_uncached(self, project: str | os.PathLike[str] | None) -> tuple[str, str]:
        if project is None:
            rows = self.store.query_rows(
                "SELECT id, working_directory FROM projects WHERE name = ?", [DEFAULT_PROJECT]
            )
            if rows:
                return rows[0][0], rows[0][1]
            folder = self.home / "projects" / DEFAULT_PROJECT
            folder.mkdir(parents=True, exist_ok=True)
            return self.add_project(DEFAULT_PROJECT, folder), str(folder.resolve())
        text = os.fspath(project)
        rows = self.store.query_rows(
            "SELECT id, working_directory FROM projects WHERE name = ?", [text]
        )
        if rows:
            return rows[0][0], rows[0][1]
        path = Path(text).expanduser()
        if path.is_dir():
            wd = str(path.resolve())
            rows = self.store.query_rows(
                "SELECT id FROM projects WHERE working_directory = ?", [wd]
            )
            if rows:
                return rows[0][0], wd
            name, n = path.resolve().name or "project", 1
            while self.store.query_rows("SELECT 1 FROM projects WHERE name = ?", [name]):
                n += 1
                name = f"{path.resolve().name}-{n}"
            return self.add_project(name, wd), wd
        names = [r[0] for r in self.store.query_rows("SELECT name FROM projects ORDER BY name")]
        raise ValueError(
            f"unknown project {text!r}: not a project name and not an existing folder. "
            f"Projects: {', '.join(names) or 'none yet'}. Pass a folder path to create one."
        )

    def _project_instructions(self, st: TaskState) -> str | None:
        if not st.project_id:
            return None
        # Projects are written only through add_project, so a per-id cache stays correct.
        if st.project_id not in self._project_text:
            rows = self.store.query_rows(
                "SELECT name, instructions FROM projects WHERE id = ?", [st.project_id]
            )
            text = f"## Project {rows[0][0]}\n{rows[0][1]}" if rows and rows[0][1] else None
            self._project_text[st.project_id] = text
        return self._project_text[st.project_id]

    def _load_task_state(self, task_id: str) -> TaskState:
        df = self.store.query_df("SELECT * FROM tasks WHERE id = ?", [task_id])
        if df.empty:
            raise KeyError(f"no task with id {task_id!r}")
        row = df.iloc[0]
        prof = self.profiles.get(row["profile_id"])
        wd = self.store.query_rows(
            "SELECT working_directory FROM projects WHERE id = ?", [row["project_id"]]
        )
        seq = self.store.query_rows(
            "SELECT coalesce(max(seq), 0) FROM agent_logs WHERE task_id = ?", [task_id]
        )[0][0]

        def opt(v: Any) -> Any:
            return None if pd.isna(v) else v

        return TaskState(
            id=task_id,
            title=row["title"],
            prompt=row["prompt"],
            profile=prof,
            runtime_id=row["runtime_id"],
            model=opt(row["model"]),
            project_id=opt(row["project_id"]),
            working_dir=wd[0][0] if wd else str(self.home),
            max_turns=int(row["max_turns"]) if opt(row["max_turns"]) else prof.max_turns,
            max_budget_usd=opt(row["max_budget_usd"]),
            runtime_options=json.loads(row["options"]) if opt(row["options"]) else {},
            status=row["status"],
            source=row["source"],
            parent_task_id=opt(row["parent_task_id"]),
            session_id=opt(row["session_id"]),
            failure_reason=opt(row["failure_reason"]),
            resume_count=int(row["resume_count"]),
            turns=int(row["turns"]),
            cost_usd=float(row["cost_usd"]),
            seq=int(seq),
        )

    # ---- governance ---------------------------------------------------------------------

    def inbox(self, status: str = "pending") -> pd.DataFrame:
        """Inbox items with their task's profile and title. status: pending|decided|expired|all."""
        where = "" if status == "all" else "WHERE i.status = ?"
        params = [] if status == "all" else [status]
        df = self.store.query_df(
            "SELECT i.id, i.task_id, t.profile_id, t.title, i.kind, i.tool_name, i.tool_input, "
            "i.question, i.suggested_rule, i.status, i.decision, i.response, i.decided_by, "
            "i.created_at, i.decided_at FROM inbox_items i LEFT JOIN tasks t ON t.id = i.task_id "
            f"{where} ORDER BY i.created_at",
            params,
        )
        df["tool_input"] = df["tool_input"].map(
            lambda v: json.loads(v) if isinstance(v, str) else v
        )
        return df

    def wait_inbox(self, timeout: float = 30, task: str | None = None) -> pd.DataFrame:
        """Block until at least one pending inbox item exists (optionally for ``task``)."""
        deadline = time.monotonic() + timeout
        engine = self.engine

        def pending() -> bool:
            return any(
                st.pending_inbox
                for st in list(engine.tasks.values())
                if task is None or st.id == task
            )

        with engine.cond:
            engine.cond.wait_for(pending, timeout)
        df = self.inbox("pending")
        if task is not None:
            df = df[df["task_id"] == task].reset_index(drop=True)
        if df.empty and time.monotonic() >= deadline:
            raise TimeoutError(f"no pending inbox item after {timeout}s")
        return df

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
        by = decided_by or os.environ.get("USER") or "operator"
        return self.engine.call(self.engine.decide, item_id, decision, message, rule, scope, by)

    def rules(self) -> pd.DataFrame:
        return self.store.query_df("SELECT * FROM permission_rules ORDER BY created_at")

    def add_rule(
        self, rule: str, effect: str = "allow", scope: str = "global", scope_id: str | None = None
    ) -> str:
        """Save a permission rule such as ``Bash(command:git log *)``; returns its id."""
        return self.engine.call(self.engine.add_rule, rule, effect, scope, scope_id)

    def remove_rule(self, rule_id: str) -> None:
        self.engine.call(self.engine.remove_rule, rule_id)

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
        project_id = working_dir = None
        if project is not None or source_task is None:
            project_id, working_dir = self._resolve_project(project)
        kw: dict[str, Any] = {}
        if script is not None:
            load_script(script)  # a bad script fails here, not in the child
            kw["script"] = script
        return self.engine.call(
            lambda: self.handoff_bus.send(
                to_profile=to_profile,
                subject=subject,
                body=body,
                from_profile=from_profile,
                source_task_id=source_task,
                require_approval=require_approval,
                project_id=project_id,
                working_dir=working_dir,
                runtime=runtime,
                **kw,
            )
        )

    def handoffs(self, status: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Handoff messages, oldest first (stale approvals are expired first).

        ``task``: only those sent by or creating that task; ``self.handoff_bus.chain(id)`` (on
        the engine thread) walks a task's chain back to its root.
        """
        self._fresh()
        return self.engine.call(self.handoff_bus.messages, status, task)

    # ---- settings -----------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        return dict(self.engine.settings)

    def set_setting(self, key: str, value: Any) -> None:
        if is_secret_setting(key):
            raise StagentError(
                f"refusing to store {key!r}: keys and tokens stay in the environment. Store the "
                f"name of the environment variable instead (e.g. '{key}_env')."
            )
        text = str(value)

        def write() -> None:
            self.store.con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, text])
            self.engine.settings[key] = text

        self.engine.call(write)

    # ---- reading the record -------------------------------------------------------------

    def _fresh(self) -> None:
        self.engine.call(self.engine.flush)

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run SQL against the workspace's DuckDB and return a DataFrame."""
        self._fresh()
        return self.store.query_df(query, params)

    def tasks(self, status: str | None = None) -> pd.DataFrame:
        self._fresh()
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return self.store.query_df(f"SELECT * FROM tasks {where} ORDER BY created_at", params)

    def logs(self, task: str | None = None, event: str | None = None) -> pd.DataFrame:
        self._fresh()
        clauses, params = [], []
        if task:
            clauses.append("task_id = ?")
            params.append(task)
        if event:
            clauses.append("event = ?")
            params.append(event)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        df = self.store.query_df(f"SELECT * FROM agent_logs {where} ORDER BY id", params)
        df["payload"] = df["payload"].map(lambda v: json.loads(v) if isinstance(v, str) else v)
        return df

    def usage(self) -> pd.DataFrame:
        self._fresh()
        return self.store.query_df("SELECT * FROM usage_ledger ORDER BY started_at")

    # ---- analytics (stagent_lab.analytics; imported on first use) -----------------------

    def cost_by(self, *dims: str, since: Any = None, until: Any = None) -> pd.DataFrame:
        """Spend and tokens per profile / runtime / model / provider / project / activity /
        task / hour / day / week / month, e.g. ``lab.cost_by("profile", "day")``."""
        from stagent_lab import analytics

        self._fresh()
        return analytics.cost_by(self.store, *dims, since=since, until=until)

    def outcomes(self, by: str | Sequence[str] | None = "profile") -> pd.DataFrame:
        """Tasks, success rate, p50/p95 duration and turns, and cost per group."""
        from stagent_lab import analytics

        self._fresh()
        return analytics.outcomes(self.store, by=by)

    def failures(self, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Failed tasks counted by reason (numbers in reasons folded to N)."""
        from stagent_lab import analytics

        self._fresh()
        return analytics.failures(self.store, by=by)

    def plot_cost(self, freq: str = "day", by: str | None = None, *, cumulative: bool = False):
        """A matplotlib Figure of spend per ``freq`` (one line per ``by`` group); shows inline."""
        from stagent_lab.analytics.plots import plot_cost_over_time

        self._fresh()
        return plot_cost_over_time(self.store, freq, by, cumulative=cumulative)

    def plot_success(self, by: str = "profile"):
        """A matplotlib Figure with each profile's success rate (completed / finished)."""
        from stagent_lab.analytics.plots import plot_success_by_profile

        self._fresh()
        return plot_success_by_profile(self.store, by=by)

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``fn(event)`` on the engine thread for every event; returns an unsubscribe."""
        self.engine.subscribers.append(fn)
        lock = threading.Lock()

        def unsubscribe() -> None:
            with lock:
                if fn in self.engine.subscribers:
                    self.engine.subscribers.remove(fn)

        return unsubscribe
