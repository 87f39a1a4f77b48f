"""The engine: a daemon thread with its own asyncio loop that runs every task of a workspace.

It must not rely on a notebook kernel's loop (ipykernel does not advance background tasks
between cells), so it owns one. It is also the store's only writer. Other threads hand it work
through ``call`` (wait for the answer) or ``post`` (fire and forget) and read task state through
snapshots (``snapshot``), never through its attributes.

The pieces, each with one owner:

* ``queue``   (queue.py)   slots: who may run now (engine thread)
* ``runner``  (runner.py)  one run of a task, its limits (engine thread)
* ``inbox``   (inbox.py)   items waiting for a person: create, wait, decide, expire (engine thread)
* ``book``    (status.py)  task states and status changes; snapshots for other threads (lock)
* ``events``  (events.py)  the event record and its subscribers (copy-on-write list)
* ``writer``  (store)      the batched writer (engine thread)
* ``timers``  (clock.py)   wall-time timers on the loop, driven by the injectable clock
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagent_lab._text import repair_text
from stagent_lab.engine.clock import Clock, Timers
from stagent_lab.engine.events import EventLog
from stagent_lab.engine.inbox import Inbox, InboxDecision
from stagent_lab.engine.queue import SlotQueue
from stagent_lab.engine.redact import Redactor
from stagent_lab.engine.runner import TaskRunner
from stagent_lab.engine.states import RESUMABLE, TERMINAL, TaskStatus
from stagent_lab.engine.status import STOPPED, TaskBook
from stagent_lab.engine.task import TaskState, new_id
from stagent_lab.errors import ResumeLimitError, StagentError, TaskStateError
from stagent_lab.governance.cascade import SavedRule, evaluate, validate_rule
from stagent_lab.governance.index import RuleIndex
from stagent_lab.store import inbox as inbox_repo
from stagent_lab.store import logs as logs_repo
from stagent_lab.store import rules as rules_repo
from stagent_lab.store import settings as settings_repo
from stagent_lab.store import tasks as tasks_repo
from stagent_lab.store.writer import Dropped, EventWriter

if TYPE_CHECKING:
    from stagent_lab.config import Settings
    from stagent_lab.runtimes.base import PermissionDecision
    from stagent_lab.runtimes.catalog import RuntimeCatalog
    from stagent_lab.store.db import Store
    from stagent_lab.tools.registry import ToolRegistry

log = logging.getLogger("stagent_lab.engine")
S = TaskStatus
FLUSH_INTERVAL_S = 0.1  # the flush loop's tick: redactor refresh, commits somebody waits for
# A timed commit at most this often: each commit holds the loop (a DuckDB commit of a small
# batch costs 10-20 ms here), so committing every tick cost a 40-turn run ~9 ms per turn.
COMMIT_EVERY_S = 0.25
STOPPED_KEPT = 2_000  # stopped tasks kept in memory (resume with a Python callable script)


@dataclass
class EngineHooks:
    """Where features plug in. Registered before the engine starts; read-only afterwards.

    * ``instructions(st) -> str | None`` (may be async): text appended to the system prompt.
    * ``tool_services(st) -> dict``: services handed to tools (the Memory and Handoff tools).
    * ``preflight(st)`` (may be async): runs when the task gets its slot, before any model call;
      raises ``StopTask`` to fail or pause it, or waits (e.g. on a budget item).
    * ``usage(st, ledger_row)`` (may be async): after every model call's usage is recorded.
    * ``finish(st)``: the task stopped (completed, failed, cancelled or paused).
    * ``inbox_handlers[kind](decision)``: decisions of items no task waits on.
    * ``started()``: the engine loop runs (re-arm timers, resume pollers).
    * ``stopping()``: the engine is closing (stop timers and pollers).
    """

    instructions: list[Callable[[TaskState], Any]] = field(default_factory=list)
    tool_services: list[Callable[[TaskState], dict[str, Any]]] = field(default_factory=list)
    preflight: list[Callable[[TaskState], Any]] = field(default_factory=list)
    usage: list[Callable[[TaskState, dict[str, Any]], Any]] = field(default_factory=list)
    finish: list[Callable[[TaskState], None]] = field(default_factory=list)
    inbox_handlers: dict[str, Callable[[InboxDecision], None]] = field(default_factory=dict)
    started: list[Callable[[], Any]] = field(default_factory=list)
    stopping: list[Callable[[], Any]] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        store: Store,
        catalog: RuntimeCatalog,
        settings: Settings,
        tools: ToolRegistry,
        *,
        clock: Clock | None = None,
        redact: Redactor | None = None,
        max_concurrent: int | None = None,
        hooks: EngineHooks | None = None,
        task_loader: Callable[[str], TaskState] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.tools = tools
        self.clock = clock or Clock()
        self.redact = redact or Redactor()
        self.hooks = hooks or EngineHooks()
        self._max_override = max_concurrent
        # Rebuilds a TaskState from the store (given by the service; needs the profile registry).
        self.task_loader = task_loader
        self.rules: list[SavedRule] = []
        self.rule_index = RuleIndex(())  # compiled from ``rules``; rebuilt when they change
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._thread_main, name="stagent-engine", daemon=True
        )
        self._ready = threading.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._stopped: OrderedDict[str, None] = OrderedDict()
        self.closed = False
        self.reconciled: list[str] = []
        self.queue = SlotQueue(self.max_concurrent)
        self.timers = Timers(self.loop, self.clock)
        self.timers.on_error = lambda t, exc: log.error("timer %s failed: %s", t.label, exc)
        # Created on the engine thread at start (they use the writer connection):
        self.writer: EventWriter
        self.events: EventLog
        self.book: TaskBook
        self.inbox = Inbox(self)
        self.runner = TaskRunner(self)

    @property
    def max_concurrent(self) -> int:
        if self._max_override:
            return int(self._max_override)
        return int(self.settings.value("engine.max_concurrent"))

    # ---- thread plumbing ----------------------------------------------------------------

    def start(self) -> list[str]:
        """Start the loop thread; returns the ids of the tasks reconciled as failed."""
        self._thread.start()
        self._ready.wait()
        self.reconciled = self.call(self._startup, timeout=120)
        return list(self.reconciled)

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        self.loop.run_forever()
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    @property
    def on_engine_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(
        self, fn: Callable[..., Any], *args: Any, timeout: float | None = 60, **kw: Any
    ) -> Any:
        """Run ``fn`` (sync or async) on the engine thread and return its result."""
        if self.closed:
            raise StagentError("this workspace is closed")
        if self.on_engine_thread:
            raise StagentError("Engine.call from the engine thread would deadlock")

        async def runner() -> Any:
            out = fn(*args, **kw)
            if asyncio.iscoroutine(out):
                out = await out
            return out

        fut = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise TimeoutError(
                f"the engine did not answer within {timeout:g} s ({getattr(fn, '__name__', fn)})"
            ) from None

    def post(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the engine thread soon, without waiting (calls keep their order)."""
        if self.closed:
            raise StagentError("this workspace is closed")

        def guarded() -> None:
            try:
                out = fn()
                if asyncio.iscoroutine(out):
                    self.loop.create_task(out)
            except Exception:
                traceback.print_exc()

        self.loop.call_soon_threadsafe(guarded)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a coroutine on the loop (engine thread only)."""
        return self.loop.create_task(coro)

    # ---- startup / shutdown -------------------------------------------------------------

    async def _startup(self) -> list[str]:
        con = self.store.con
        self.writer = EventWriter(
            con,
            clean=self._clean,
            on_dropped=self._dropped,
            on_warning=self._store_warning,
            reopen=self.store.reopen,
        )
        self.events = EventLog(self.writer, self.redact, self.clock)
        self.book = TaskBook(self.events, self.writer, self.redact, self.clock, self.hooks.finish)
        self.inbox.handlers.update(self.hooks.inbox_handlers)
        self.queue.set_limit(self.max_concurrent)
        self._load_rules()
        ids = self._reconcile()
        self._flusher = self.loop.create_task(self._flush_loop())
        for hook in self.hooks.started:
            try:
                out = hook()
                if asyncio.iscoroutine(out):
                    await out
            except Exception:
                traceback.print_exc()
        return ids

    def _clean(self, text: str) -> str:
        return self.redact(repair_text(text))

    def _reconcile(self) -> list[str]:
        """Tasks a stopped engine left active become failed (engine stopped), resumable."""
        con = self.store.con
        orphans = tasks_repo.orphans(con)
        ids = [r[0] for r in orphans]
        if not ids:
            return ids
        now = self.clock.now()
        for tid, status in orphans:
            self.events.subject(
                "task",
                tid,
                "status",
                **{"from": status, "to": "failed", "reason": "engine stopped"},
            )

        def mark(c: Any) -> None:
            tasks_repo.mark_orphans_failed(c, ids, now)
            # Items that outlive their task (handoff approvals) stay; their owner expires them.
            inbox_repo.expire_for_tasks(c, ids, now)

        self.writer.flush(extra=mark)
        return ids

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                self.redact.refresh()
                if self.writer.commit_due(COMMIT_EVERY_S):
                    self.writer.flush()
            except Exception:  # keep flushing later; rows were kept
                traceback.print_exc()

    def close(self, timeout: float = 10.0) -> None:
        if self.closed:
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self._shutdown, timeout=timeout + 5)
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    async def _shutdown(self) -> None:
        for hook in self.hooks.stopping:
            try:
                out = hook()
                if asyncio.iscoroutine(out):
                    await out
            except Exception:
                traceback.print_exc()
        live = [
            st for st in list(self.book.tasks.values()) if st.aio_task and not st.aio_task.done()
        ]
        for st in live:  # running and queued alike become paused (resumable)
            st.stop_reason = "pause"
            st.stop_detail = "engine closed"
            st.aio_task.cancel()  # type: ignore[union-attr]
        if live:
            await asyncio.wait([st.aio_task for st in live], timeout=8)  # type: ignore[misc]
        # Reads running in worker threads (memory retrieval) finish before the store closes.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.loop.shutdown_default_executor(), 10)
        if self._flusher:
            self._flusher.cancel()
        for st in list(self.book.tasks.values()):
            self.events.flush_text(st)
        self.writer.flush()

    # ---- writer callbacks ---------------------------------------------------------------

    def _dropped(self, dropped: Dropped) -> None:
        message = f"a {dropped.label} could not be stored and was skipped: {dropped.error}"
        log.error(message)
        st = self.book.tasks.get(dropped.task_id or "")
        if st is not None:
            self.events.task(st, "error", message=message)
        else:
            self.events.publish_ephemeral("store_error", message=message, task_id=dropped.task_id)

    def _store_warning(self, message: str) -> None:
        log.warning(message)
        self.events.publish_ephemeral("store_warning", message=message)

    # ---- logging and reading ------------------------------------------------------------

    def log(self, st: TaskState, event: str, tool_name: str | None = None, **payload: Any) -> None:
        self.events.task(st, event, tool_name, **payload)

    def flush(self) -> None:
        for st in list(self.book.tasks.values()):
            self.events.flush_text(st)
        self.writer.flush()

    def snapshot(self, task_id: str) -> dict[str, Any] | None:
        """What the engine knows of a task right now (any thread), or None."""
        book = getattr(self, "book", None)
        return book.snapshot(task_id) if book is not None else None

    def new_id(self) -> str:
        return new_id()

    def subscribe(
        self, fn: Callable[[dict[str, Any]], None], since: int | None = None
    ) -> Callable[[], None]:
        """Call ``fn(event)`` on the engine thread for every event from now on; with ``since``,
        first for every stored event after that position (no gap, no repeat)."""
        return self.subscribe_at(fn, since)[0]

    def subscribe_at(
        self, fn: Callable[[dict[str, Any]], None], since: int | None = None
    ) -> tuple[Callable[[], None], int]:
        """Like ``subscribe``; also returns the stream position at which ``fn`` went live (the
        id of the last event before it), so a client can resume from there after a break."""

        def attach() -> int:
            if since is not None:
                events = self.events.replay(since)
                if events is None:
                    self.flush()
                    events = logs_repo.since(self.store.con, since)
                for ev in events:
                    fn(ev)
            self.events.add_subscriber(fn)
            return self.writer.last_log_id

        position = attach() if self.on_engine_thread else self.call(attach)
        return (lambda: self.events.remove_subscriber(fn)), position

    # ---- the host surface: what the service uses, so no part is reached from outside -----

    def call_at(self, when: Any, fn: Callable[[], Any], label: str = "timer") -> Any:
        """A timer on the engine clock (engine thread); ``.cancel()`` on the result stops it."""
        return self.timers.at(when, fn, label)

    def call_after(self, seconds: float, fn: Callable[[], Any], label: str = "timer") -> Any:
        return self.timers.after(seconds, fn, label)

    def set_pool_limit(self, pool: str, limit: Callable[[], int]) -> None:
        self.queue.set_pool_limit(pool, limit)

    async def ask(self, st: TaskState, item: dict[str, Any]) -> InboxDecision:
        """Put ``item`` in the inbox for ``st`` and wait for the decision (engine thread)."""
        return await self.inbox.ask(st, item)

    def create_inbox_item(self, kind: str, **fields: Any) -> str:
        return self.inbox.create(kind, **fields)

    def wait_inbox_item(self, item_id: str) -> Any:
        return self.inbox.wait_item(item_id)

    def expire_inbox_items(self, item_ids: list[str]) -> None:
        self.inbox.expire(item_ids)

    def log_subject(self, subject: str, subject_id: str, event: str, **payload: Any) -> int:
        return self.events.subject(subject, subject_id, event, **payload)

    def commit(self, extra: Callable[[Any], None] | None = None) -> None:
        """Commit what the writer holds, then ``extra(con)`` in the same transaction."""
        self.writer.flush(extra=extra)

    def defer_write(self, fn: Callable[[Any], None], label: str, task_id: str | None) -> None:
        """Queue ``fn(con)`` in order with the task's other writes (engine thread)."""
        self.writer.defer(fn, label, task_id)

    def insert_row(self, table: str, row: dict[str, Any]) -> None:
        self.writer.insert(table, row)

    def commit_soon(self) -> None:
        """Somebody waits for what is queued (a remember): commit at the next tick (≤ 0.1 s)
        rather than with the next timed batch (≤ 0.25 s)."""
        self.writer.urgent = True

    def commits(self) -> int:
        """How many transactions the writer has committed (any thread may ask)."""
        return self.writer.commits

    def writer_stats(self) -> dict[str, Any]:
        w = self.writer
        return {
            "failing": w.failing_since is not None,
            "rows_written": w.rows_written,
            "batches_written": w.batches_written,
            "pending": w.pending,
            "dropped": len(w.dropped),
        }

    def notify(self) -> None:
        """Wake threads waiting for a status or an inbox change."""
        self.book.notify()

    def wait_change(self, timeout: float) -> None:
        """Block (any thread but the engine's) until a status or inbox change, or ``timeout``."""
        cond = self.book.cond
        with cond:
            cond.wait(timeout)

    def snapshots(self) -> list[dict[str, Any]]:
        book = getattr(self, "book", None)
        return book.snapshots() if book is not None else []

    def announce(self, st: TaskState) -> None:
        """Publish a submitted task as queued before the engine thread takes it (any thread),
        so a wait or a status read right after submit never answers "no such task"."""
        self.book.publish_snapshot(st)

    # ---- tasks --------------------------------------------------------------------------

    def create_task(self, st: TaskState) -> None:
        """Insert the task row and queue its run (engine thread)."""
        book = self.book
        book.tasks[st.id] = st
        row = tasks_repo.insert_row(
            {
                "id": st.id,
                "project_id": st.project_id,
                "title": st.title,
                "prompt": st.prompt,
                "profile_id": st.profile_id,
                "runtime_id": st.runtime_id,
                "model": st.model,
                "priority": st.priority,
                "max_turns": st.max_turns,
                "max_budget_usd": st.max_budget_usd,
                "parent_task_id": st.parent_task_id,
                "source": st.source,
                "options": tasks_repo.options_json(st.runtime_options),
                "created_at": self.clock.now(),
                "origin_id": st.origin_id,
                "activity": st.activity,
                "unattended": st.unattended,
                "channels": st.channels,
            }
        )
        self.writer.insert("tasks", row)
        self.events.task(st, "status", **{"from": None, "to": "queued", "reason": None})
        for note in st.notes:
            self.events.task(st, "notice", message=note)
        book.publish_snapshot(st)
        self.runner.start(st, resuming=False)

    def task_finished(self, st: TaskState) -> None:
        """A run ended: keep a bounded number of stopped tasks in memory."""
        if st.status not in STOPPED:
            return
        self._stopped[st.id] = None
        self._stopped.move_to_end(st.id)
        while len(self._stopped) > STOPPED_KEPT:
            old, _ = self._stopped.popitem(last=False)
            old_st = self.book.tasks.get(old)
            if old_st is not None and old_st.status in STOPPED:
                del self.book.tasks[old]

    async def build_instructions(self, st: TaskState) -> str:
        parts = [st.profile.instructions_for(st.runtime_id).strip()]
        for hook in self.hooks.instructions:
            try:
                extra = hook(st)
                if isinstance(extra, Awaitable):
                    extra = await extra
            except Exception as exc:
                self.events.task(st, "notice", message=f"instruction hook failed: {exc}")
                continue
            if extra:
                parts.append(extra.strip())
        return "\n\n".join(p for p in parts if p)

    def cancel(self, task_id: str, reason: str | None = None) -> str:
        st = self.book.tasks.get(task_id)
        if st is None or st.status in TERMINAL or st.status == S.PAUSED:
            status = st.status if st else self._stored_status(task_id)
            if status == S.PAUSED:
                st = st or self._load_task(task_id)
                self.book.set_status(st, S.CANCELLED, reason=reason)
                return S.CANCELLED
            raise TaskStateError(f"task {task_id} is {status}; only active tasks can be cancelled")
        st.stop_reason = "cancel"
        st.stop_detail = reason
        if st.aio_task and not st.aio_task.done():
            st.aio_task.cancel()
        return "cancelling"

    def pause(self, task_id: str, reason: str = "paused by the operator") -> str:
        """Stop an active task so it can be resumed later (status ``paused``)."""
        st = self.book.tasks.get(task_id)
        if st is None or st.status in TERMINAL or st.status == S.PAUSED:
            status = st.status if st else self._stored_status(task_id)
            raise TaskStateError(f"task {task_id} is {status}; only active tasks can be paused")
        st.stop_reason = "pause"
        st.stop_detail = reason
        if st.aio_task and not st.aio_task.done():
            st.aio_task.cancel()
        return "pausing"

    def resume(self, task_id: str, script: Any = None) -> TaskState:
        st = self.book.tasks.get(task_id) or self._load_task(task_id)
        if script is not None:
            st.runtime_options = {**st.runtime_options, "script": script}
        elif st.runtime_id == "scripted" and st.runtime_options.get("script_is_callable"):
            raise TaskStateError(
                f"task {task_id} was scripted by a Python callable, which cannot be restored in "
                "a new process; pass it again: handle.resume(script=fn)"
            )
        if st.status not in RESUMABLE:
            raise TaskStateError(
                f"task {task_id} is {st.status}; only failed, cancelled or paused tasks resume"
            )
        limit = int(self.settings.value("engine.max_resumes"))
        if st.resume_count >= limit:
            raise ResumeLimitError(
                f"task {task_id} was already resumed {st.resume_count} times (the limit is "
                f"{limit}); submit a new task, or raise the 'engine.max_resumes' setting"
            )
        st.resume_count += 1
        st.result = None
        if st.activity == "task_run":
            st.activity = "task_resume"
        self.book.set_status(st, S.QUEUED, reason=f"resume {st.resume_count} of {limit}")
        self.runner.start(st, resuming=True)
        return st

    def _stored_status(self, task_id: str) -> str:
        status = tasks_repo.status_of(self.store.con, task_id)
        if status is None:
            raise TaskStateError(f"no task with id {task_id!r}")
        return status

    def _load_task(self, task_id: str) -> TaskState:
        """Rebuild the in-memory state of a task from the store (for resume)."""
        if self.task_loader is None:
            raise TaskStateError(f"task {task_id} is not known to this engine")
        self.writer.flush()
        st = self.task_loader(task_id)
        self.book.tasks[task_id] = st
        return st

    def task(self, task_id: str) -> TaskState | None:
        """The live state of a task (engine thread only)."""
        return self.book.tasks.get(task_id)

    # ---- limits -------------------------------------------------------------------------

    def run_limit_s(self, st: TaskState) -> float:
        if st.timeout_s:
            return float(st.timeout_s)
        if st.profile.max_run_seconds:
            return float(st.profile.max_run_seconds)
        return float(self.settings.value("engine.task_timeout_s"))

    def tool_limit_s(self, st: TaskState, tool: str) -> float:
        limit = st.profile.tool_timeout_seconds or float(self.settings.value("tools.timeout_s"))
        if tool == "Bash":  # Bash has its own limit; leave it room to report it
            limit = max(limit, float(self.settings.value("tools.bash_timeout_s")) + 15.0)
        return limit

    # ---- permissions --------------------------------------------------------------------

    def _load_rules(self) -> None:
        self._set_rules([SavedRule(*r) for r in rules_repo.all_rules(self.store.con)])

    def _set_rules(self, rules: list[SavedRule]) -> None:
        self.rules = rules
        self.rule_index = RuleIndex(rules)

    def evaluate_permission(
        self, st: TaskState, tool: str, tool_input: dict[str, Any]
    ) -> PermissionDecision | None:
        policy = st.profile.can_use_tool_policy
        return evaluate(
            profile_id=st.profile_id,
            allowed_tools=st.profile.allowed_tools,
            auto_approve=policy.auto_approve if policy else (),
            auto_deny=policy.auto_deny if policy else (),
            rules=self.rule_index,
            tool=tool,
            tool_input=tool_input,
            project_id=st.project_id,
            working_dir=Path(st.working_dir),
        )

    def add_rule(
        self,
        rule: str,
        effect: str = "allow",
        scope: str = "global",
        scope_id: str | None = None,
        created_from: str | None = None,
    ) -> str:
        rule = validate_rule(rule)
        if effect not in ("allow", "deny"):
            raise ValueError(f"effect must be 'allow' or 'deny', got {effect!r}")
        if scope not in ("global", "profile", "project"):
            raise ValueError(f"scope must be global, profile or project, got {scope!r}")
        if scope != "global" and not scope_id:
            raise ValueError(f"a {scope}-scoped rule needs scope_id (the {scope} id)")
        rid = new_id()
        now = self.clock.now()
        self.writer.flush(
            extra=lambda con: rules_repo.insert(
                con, rid, rule, effect, scope, scope_id, created_from, now
            )
        )
        self._set_rules([*self.rules, SavedRule(rid, rule, effect, scope, scope_id)])
        return rid

    def remove_rule(self, rule_id: str) -> None:
        removed: list[bool] = []
        self.writer.flush(extra=lambda con: removed.append(rules_repo.delete(con, rule_id)))
        if not removed or not removed[0]:
            raise KeyError(f"no permission rule with id {rule_id!r}")
        self._set_rules([r for r in self.rules if r.id != rule_id])

    def save_always_rule(
        self, row: dict[str, Any], rule: str | None, scope: str | None
    ) -> tuple[str, str]:
        """The rule an "always" decision saves (the suggested one unless edited)."""
        saved = validate_rule(rule or row.get("suggested_rule") or row.get("tool_name") or "")
        scope = scope or str(self.settings.value("inbox.default_always_scope"))
        st = self.book.tasks.get(row.get("task_id") or "")
        scope_id = None
        if scope == "profile":
            scope_id = st.profile_id if st else row.get("profile_id")
        elif scope == "project":
            scope_id = st.project_id if st else None
        if scope != "global" and not scope_id:
            scope = "global"
        return saved, self.add_rule(saved, "allow", scope, scope_id, created_from=row["id"])

    def decide(
        self,
        item_id: str,
        decision: str,
        message: str | None = None,
        rule: str | None = None,
        scope: str | None = None,
        decided_by: str = "operator",
    ) -> dict[str, Any]:
        return self.inbox.decide(item_id, decision, message, rule, scope, decided_by)

    # ---- settings -----------------------------------------------------------------------

    def set_setting(self, key: str, value: Any) -> str:
        """Validate, store and apply a setting (engine thread). Returns the stored text."""
        _, text = self.settings.validate(key, value)
        self.writer.flush(extra=lambda con: settings_repo.put(con, key, text))
        self.settings.set(key, value)
        self.queue.set_limit(self.max_concurrent)  # pool limits may read settings too
        return text

    # ---- tool services, transcripts ----------------------------------------------------

    def tool_services(self, st: TaskState) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for hook in self.hooks.tool_services:
            services.update(hook(st))
        return services

    def save_transcript(self, task_id: str, data: Any) -> None:
        """Buffer the latest transcript; it is written with the next batch (≤ ~0.25 s)."""
        text = self.redact(json.dumps(data, default=str, ensure_ascii=False))
        self.writer.set_transcript(task_id, text, self.clock.now())

    def load_transcript(self, task_id: str) -> Any | None:
        pending = self.writer.pending_transcript(task_id)
        if pending is not None:
            return json.loads(pending)
        raw = tasks_repo.transcript(self.store.con, task_id)
        return json.loads(raw) if raw else None
