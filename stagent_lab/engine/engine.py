"""The engine: a daemon thread with its own asyncio loop that runs every task.

It must not rely on the notebook kernel's loop (ipykernel does not advance background tasks
between cells), so it owns one. It is also the store's only writer: callers on other threads
hand it work through ``call`` (wait for the answer) or ``post`` (fire and forget).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import traceback
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagent_lab.engine.context import EngineRunContext
from stagent_lab.engine.redact import Redactor
from stagent_lab.engine.states import RESUMABLE, TERMINAL, TaskStatus, check_transition
from stagent_lab.errors import (
    InboxError,
    LimitExceeded,
    ResumeLimitError,
    RuntimeFailure,
    StagentError,
    TaskStateError,
)
from stagent_lab.governance.cascade import SavedRule, evaluate, validate_rule
from stagent_lab.governance.rules import suggest_rule
from stagent_lab.runtimes.base import (
    AssistantText,
    Notice,
    PermissionDecision,
    Result,
    SessionStarted,
    UsageReport,
)
from stagent_lab.store.writer import EventWriter
from stagent_lab.usage.pricing import price_usage

if TYPE_CHECKING:
    from stagent_lab.profiles.model import Profile
    from stagent_lab.runtimes.catalog import RuntimeCatalog
    from stagent_lab.store.db import Store

S = TaskStatus
FLUSH_INTERVAL_S = 0.1


def _persistable_options(options: dict[str, Any]) -> str:
    """Options stored with the task so a resume in another process can rebuild the run."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "script" and callable(value):
            out["script_is_callable"] = True
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return json.dumps(out)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class TaskState:
    """In-memory view of a task the engine is responsible for in this process."""

    id: str
    title: str
    prompt: str
    profile: Profile
    runtime_id: str
    model: str | None
    project_id: str | None
    working_dir: str
    max_turns: int
    max_budget_usd: float | None
    runtime_options: dict[str, Any]
    status: str = S.QUEUED
    source: str = "manual"
    parent_task_id: str | None = None
    session_id: str | None = None
    result: str | None = None
    failure_reason: str | None = None
    resume_count: int = 0
    turns: int = 0
    cost_usd: float = 0.0
    seq: int = 0
    activity: str = "task_run"
    stop_reason: str | None = None  # "cancel" | "pause" while a stop is under way
    aio_task: asyncio.Task[None] | None = None
    pending_inbox: set[str] = field(default_factory=set)
    text_buffer: list[str] = field(default_factory=list)

    @property
    def profile_id(self) -> str:
        return self.profile.id


class Engine:
    def __init__(
        self,
        store: Store,
        catalog: RuntimeCatalog,
        *,
        settings: dict[str, str],
        max_concurrent: int = 4,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.settings = dict(settings)
        self.max_concurrent = max_concurrent
        self.redact = Redactor()
        self.tasks: dict[str, TaskState] = {}
        self.rules: list[SavedRule] = []
        self.subscribers: list[Callable[[dict[str, Any]], None]] = []
        # Hooks other features plug into: extra instructions (memory), tool services
        # (Memory/Handoff tools), and task-finished callbacks (outcome memory, channels).
        self.instruction_hooks: list[Callable[[TaskState], str | None]] = []
        self.tool_service_hooks: list[Callable[[TaskState], dict[str, Any]]] = []
        self.finish_hooks: list[Callable[[TaskState], None]] = []
        # Handlers for inbox items no task is waiting on (e.g. handoff approvals).
        self.inbox_handlers: dict[str, Callable[[str, str, str | None], None]] = {}
        # Rebuilds a TaskState from the store (set by Lab; needs the profile registry).
        self.task_loader: Callable[[str], TaskState] | None = None
        self.cond = threading.Condition()
        self._waiters: dict[str, tuple[asyncio.Future[Any], str]] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._thread_main, name="stagent-engine", daemon=True
        )
        self._ready = threading.Event()
        self._sem: asyncio.Semaphore | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.writer: EventWriter | None = None
        self.closed = False
        self.reconciled: list[str] = []

    # ---- thread plumbing ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        self.reconciled = self.call(self._startup)

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._sem = asyncio.Semaphore(self.max_concurrent)
        self._ready.set()
        self.loop.run_forever()
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(
        self, fn: Callable[..., Any], *args: Any, timeout: float | None = 60, **kw: Any
    ) -> Any:
        """Run ``fn`` (sync or async) on the engine thread and return its result."""
        if self.closed:
            raise StagentError("this Lab is closed")
        if threading.current_thread() is self._thread:
            raise StagentError("Engine.call from the engine thread would deadlock")

        async def runner() -> Any:
            out = fn(*args, **kw)
            if asyncio.iscoroutine(out):
                out = await out
            return out

        fut = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        return fut.result(timeout)

    def post(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the engine thread soon, without waiting (calls keep their order)."""
        if self.closed:
            raise StagentError("this Lab is closed")

        def guarded() -> None:
            try:
                fn()
            except Exception:
                traceback.print_exc()

        self.loop.call_soon_threadsafe(guarded)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a coroutine on the loop (engine thread only)."""
        return self.loop.create_task(coro)

    # ---- startup / shutdown -------------------------------------------------------------

    async def _startup(self) -> list[str]:
        con = self.store.con
        self.writer = EventWriter(con)
        self._load_rules()
        orphans = con.execute(
            "SELECT id, status FROM tasks WHERE status IN ('queued','running','waiting')"
        ).fetchall()
        ids = [r[0] for r in orphans]
        if ids:
            seqs = dict(
                con.execute(
                    "SELECT task_id, max(seq) FROM agent_logs WHERE task_id IN "
                    f"({','.join('?' * len(ids))}) GROUP BY task_id",
                    ids,
                ).fetchall()
            )
            now = utcnow()
            for tid, status in orphans:
                self.writer.add_log(
                    self._row(
                        tid,
                        (seqs.get(tid) or 0) + 1,
                        None,
                        "status",
                        None,
                        {"from": status, "to": "failed", "reason": "engine stopped"},
                    )
                )

            def mark(c: Any) -> None:
                marks = ",".join("?" * len(ids))
                c.execute(
                    "UPDATE tasks SET status='failed', failure_reason='engine stopped', "
                    f"finished_at=? WHERE id IN ({marks})",
                    [now, *ids],
                )
                # Handoff approvals outlive the task that asked; the handoff bus expires them.
                c.execute(
                    "UPDATE inbox_items SET status='expired', decided_at=? "
                    f"WHERE status='pending' AND kind <> 'handoff' AND task_id IN ({marks})",
                    [now, *ids],
                )

            self.writer.flush(extra=mark)
        self._flusher = self.loop.create_task(self._flush_loop())
        return ids

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            if self.writer and self.writer.pending:
                try:
                    self.writer.flush()
                except Exception:  # keep flushing later; rows were put back
                    traceback.print_exc()

    def close(self, timeout: float = 10.0) -> None:
        if self.closed:
            return
        with contextlib.suppress(Exception):
            self.call(self._shutdown, timeout=timeout + 5)
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    async def _shutdown(self) -> None:
        running = [st for st in list(self.tasks.values()) if st.aio_task and not st.aio_task.done()]
        for st in running:
            st.stop_reason = "pause"
            st.aio_task.cancel()  # type: ignore[union-attr]
        if running:
            await asyncio.wait([st.aio_task for st in running], timeout=8)  # type: ignore[misc]
        if self._flusher:
            self._flusher.cancel()
        if self.writer:
            self.writer.flush()

    # ---- logging ------------------------------------------------------------------------

    def _row(
        self,
        task_id: str,
        seq: int,
        runtime_id: str | None,
        event: str,
        tool: str | None,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        assert self.writer is not None
        text = self.redact(json.dumps(payload, default=str, ensure_ascii=False))
        return {
            "id": self.writer.next_log_id(),
            "task_id": task_id,
            "seq": seq,
            "ts": utcnow(),
            "runtime_id": runtime_id,
            "event": event,
            "tool_name": tool,
            "payload": text,
        }

    def log(self, st: TaskState, event: str, tool_name: str | None = None, **payload: Any) -> None:
        """Record an event for a task (buffered; flushed within ~100 ms or with the next status)."""
        if event != "assistant_text":
            self._flush_text(st)
        self._append(st, event, tool_name, payload)

    def _append(self, st: TaskState, event: str, tool_name: str | None, payload: dict[str, Any]):
        assert self.writer is not None
        st.seq += 1
        row = self._row(st.id, st.seq, st.runtime_id, event, tool_name, payload)
        self.writer.add_log(row)
        if self.writer.should_flush():
            self.writer.flush()
        self._publish(row, st)

    def _flush_text(self, st: TaskState) -> None:
        if st.text_buffer:
            text = "".join(st.text_buffer)
            st.text_buffer.clear()
            self._append(st, "assistant_text", None, {"text": text})

    def _publish(self, row: dict[str, Any], st: TaskState) -> None:
        if not self.subscribers:
            return
        event = dict(row, profile_id=st.profile_id, status=st.status)
        for fn in list(self.subscribers):
            try:
                fn(event)
            except Exception:
                traceback.print_exc()

    def flush(self) -> None:
        if self.writer:
            self._flush_all_text()
            self.writer.flush()

    def _flush_all_text(self) -> None:
        for st in list(self.tasks.values()):
            self._flush_text(st)

    # ---- status -------------------------------------------------------------------------

    def set_status(
        self,
        st: TaskState,
        new: TaskStatus,
        *,
        reason: str | None = None,
        extra: Callable[[Any], None] | None = None,
    ) -> None:
        """The one place a task's status changes: check, log, persist together, notify."""
        old = st.status
        check_transition(old, new)
        st.status = new
        now = utcnow()
        if new in (S.FAILED, S.PAUSED):
            st.failure_reason = self.redact(reason) if reason else reason
        elif new == S.QUEUED:
            st.failure_reason = None
        self.log(st, "status", **{"from": str(old), "to": str(new), "reason": reason})
        fields: dict[str, Any] = {"status": str(new), "failure_reason": st.failure_reason}
        if new == S.RUNNING and old == S.QUEUED:
            fields["started_at"] = now
        if new in TERMINAL or new == S.PAUSED:
            fields.update(
                finished_at=now,
                result=self.redact(st.result) if st.result else None,
                turns=st.turns,
                cost_usd=st.cost_usd,
            )
        if new == S.QUEUED:
            fields.update(finished_at=None, resume_count=st.resume_count)
        fields["session_id"] = st.session_id

        def write(con: Any) -> None:
            cols = ", ".join(f"{k} = ?" for k in fields)
            con.execute(f"UPDATE tasks SET {cols} WHERE id = ?", [*fields.values(), st.id])
            if extra:
                extra(con)

        assert self.writer is not None
        if extra is None:
            # Goes out with the next batch (≤ ~100 ms), in one transaction with its log rows;
            # readers (lab.tasks(), lab.sql(), handle.info()) flush first, so they are current,
            # and close() flushes. A crash inside that window leaves the task 'running' on disk,
            # which the next open reconciles to failed (engine stopped), resumable.
            self.writer.defer(write)
        else:
            self.writer.flush(extra=write)
        with self.cond:
            self.cond.notify_all()
        if new in TERMINAL or new == S.PAUSED:
            for hook in self.finish_hooks:
                try:
                    hook(st)
                except Exception:
                    traceback.print_exc()

    # ---- submit / run -------------------------------------------------------------------

    def create_task(self, st: TaskState) -> None:
        """Insert the task row and schedule it (engine thread)."""
        self.tasks[st.id] = st
        now = utcnow()

        def insert(con: Any) -> None:
            con.execute(
                "INSERT INTO tasks (id, project_id, title, prompt, profile_id, runtime_id, model, "
                "status, result, failure_reason, session_id, resume_count, max_turns, "
                "max_budget_usd, parent_task_id, source, options, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', NULL, NULL, NULL, 0, ?, ?, ?, ?, ?, ?)",
                [
                    st.id,
                    st.project_id,
                    self.redact(st.title),
                    self.redact(st.prompt),
                    st.profile_id,
                    st.runtime_id,
                    st.model,
                    st.max_turns,
                    st.max_budget_usd,
                    st.parent_task_id,
                    st.source,
                    self.redact(_persistable_options(st.runtime_options)),
                    now,
                ],
            )

        self.writer.defer(insert)  # type: ignore[union-attr]
        self.log(st, "status", **{"from": None, "to": "queued", "reason": None})
        st.aio_task = self.spawn(self._run_task(st, resuming=False))

    def build_instructions(self, st: TaskState) -> str:
        parts = [st.profile.instructions_for(st.runtime_id).strip()]
        for hook in self.instruction_hooks:
            try:
                extra = hook(st)
            except Exception as exc:
                self.log(st, "notice", message=f"instruction hook failed: {exc}")
                continue
            if extra:
                parts.append(extra.strip())
        return "\n\n".join(p for p in parts if p)

    async def _run_task(self, st: TaskState, *, resuming: bool) -> None:
        assert self._sem is not None
        agen = None
        try:
            async with self._sem:
                self.set_status(st, S.RUNNING)
                instructions = self.build_instructions(st)
                ctx = EngineRunContext(self, st, instructions, resuming)
                runtime = self.catalog.create(st.runtime_id, st.runtime_options)
                self.log(
                    st,
                    "task_started",
                    profile=st.profile_id,
                    runtime=st.runtime_id,
                    model=st.model,
                    working_dir=st.working_dir,
                    resuming=resuming,
                    attempt=st.resume_count + 1,
                    instructions_chars=len(instructions),
                )
                result: str | None = None
                last_event = "none"
                agen = runtime.run(ctx)
                async for ev in agen:
                    last_event = type(ev).__name__
                    if isinstance(ev, Result):
                        result = ev.text
                    self._handle_event(st, ev)
                    # Let other tasks and the flush timer run: a runtime that produces events
                    # without awaiting I/O must not hold the loop until it finishes.
                    await asyncio.sleep(0)
                if st.stop_reason:  # a stop raced with the end of the stream
                    raise asyncio.CancelledError
                if result is None:
                    self._fail(
                        st,
                        f"the runtime's stream ended without a result after {ctx.turn} turn(s) "
                        f"(last event: {last_event})",
                    )
                else:
                    st.result = result
                    self.set_status(st, S.COMPLETED)
        except asyncio.CancelledError:
            self._flush_text(st)
            self._expire_pending(st)
            target = S.PAUSED if st.stop_reason == "pause" else S.CANCELLED
            reason = "engine closed" if st.stop_reason == "pause" else None
            if st.status not in TERMINAL:
                self.set_status(st, target, reason=reason)
        except LimitExceeded as exc:
            self._fail(st, str(exc))
        except RuntimeFailure as exc:
            self._fail(st, str(exc))
        except StagentError as exc:
            self._fail(st, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            self.log(st, "error", message=str(exc), traceback=traceback.format_exc(limit=8))
            self._fail(st, f"{type(exc).__name__}: {exc}")
        finally:
            st.stop_reason = None
            if agen is not None:
                with contextlib.suppress(BaseException):
                    await agen.aclose()

    def _fail(self, st: TaskState, reason: str) -> None:
        self._expire_pending(st)
        self.log(st, "error", message=reason)
        if st.status not in TERMINAL:
            self.set_status(st, S.FAILED, reason=reason)

    def _handle_event(self, st: TaskState, ev: Any) -> None:
        if isinstance(ev, AssistantText):
            if ev.delta:
                st.text_buffer.append(ev.text)
                self._publish(
                    {
                        "task_id": st.id,
                        "event": "assistant_delta",
                        "payload": ev.text,
                        "ts": utcnow(),
                        "seq": None,
                        "tool_name": None,
                        "runtime_id": st.runtime_id,
                    },
                    st,
                )
            else:
                self._flush_text(st)
                self._append(st, "assistant_text", None, {"text": ev.text})
        elif isinstance(ev, UsageReport):
            self._record_usage(st, ev)
        elif isinstance(ev, SessionStarted):
            st.session_id = ev.session_id
            self.log(st, "session", session_id=ev.session_id)
        elif isinstance(ev, Notice):
            self.log(st, "notice", message=ev.message, **ev.data)
        elif isinstance(ev, Result):
            self.log(st, "result", text=ev.text)

    def _record_usage(self, st: TaskState, rep: UsageReport) -> None:
        quote = price_usage(rep)
        now = utcnow()
        assert self.writer is not None
        self.writer.add_ledger(
            {
                "id": new_id(),
                "task_id": st.id,
                "project_id": st.project_id,
                "profile_id": st.profile_id,
                "activity": st.activity,
                "runtime_id": st.runtime_id,
                "provider": rep.provider,
                "model": rep.model,
                "input_tokens": rep.input_tokens,
                "output_tokens": rep.output_tokens,
                "cache_read_tokens": rep.cache_read_tokens,
                "cache_write_tokens": rep.cache_write_tokens,
                "reasoning_tokens": rep.reasoning_tokens,
                "cost_usd": quote.cost_usd,
                "pricing_source": quote.pricing_source,
                "estimated": rep.estimated,
                "status": quote.status,
                "started_at": now,
                "finished_at": now,
            }
        )
        st.cost_usd += quote.cost_usd or 0.0
        self.log(
            st,
            "usage",
            provider=rep.provider,
            model=rep.model,
            input_tokens=rep.input_tokens,
            output_tokens=rep.output_tokens,
            cache_read_tokens=rep.cache_read_tokens,
            cache_write_tokens=rep.cache_write_tokens,
            reasoning_tokens=rep.reasoning_tokens,
            cost_usd=quote.cost_usd,
            pricing=quote.pricing_source,
            total_cost_usd=st.cost_usd,
        )
        if st.max_budget_usd is not None and st.cost_usd > st.max_budget_usd:
            raise LimitExceeded(
                f"budget exceeded: spent ${st.cost_usd:.4f} of ${st.max_budget_usd:.4f}"
            )

    # ---- cancel / resume ----------------------------------------------------------------

    def cancel(self, task_id: str) -> str:
        st = self._live(task_id)
        if st is None or st.status in TERMINAL or st.status == S.PAUSED:
            status = st.status if st else self._db_status(task_id)
            if status == S.PAUSED and st is not None:
                self.set_status(st, S.CANCELLED)
                return S.CANCELLED
            raise TaskStateError(f"task {task_id} is {status}; only active tasks can be cancelled")
        st.stop_reason = "cancel"
        if st.aio_task and not st.aio_task.done():
            st.aio_task.cancel()
        return "cancelling"

    def resume(self, task_id: str, script: Any = None) -> None:
        st = self.tasks.get(task_id) or self._load_task(task_id)
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
        limit = int(self.settings.get("engine.max_resumes", "3"))
        if st.resume_count >= limit:
            raise ResumeLimitError(
                f"task {task_id} was already resumed {st.resume_count} times (the limit is "
                f"{limit}); submit a new task, or raise the 'engine.max_resumes' setting"
            )
        st.resume_count += 1
        st.result = None
        st.activity = "task_resume"
        self.set_status(st, S.QUEUED, reason=f"resume {st.resume_count} of {limit}")
        st.aio_task = self.spawn(self._run_task(st, resuming=True))

    def _live(self, task_id: str) -> TaskState | None:
        return self.tasks.get(task_id)

    def _db_status(self, task_id: str) -> str:
        row = self.store.con.execute("SELECT status FROM tasks WHERE id = ?", [task_id]).fetchone()
        if row is None:
            raise TaskStateError(f"no task with id {task_id!r}")
        return row[0]

    def _load_task(self, task_id: str) -> TaskState:
        """Rebuild the in-memory state of a task from an earlier process (for resume)."""
        if self.task_loader is None:
            raise TaskStateError(f"task {task_id} is not known to this engine")
        st = self.task_loader(task_id)
        self.tasks[task_id] = st
        return st

    # ---- permissions and the inbox ------------------------------------------------------

    def _load_rules(self) -> None:
        rows = self.store.con.execute(
            "SELECT id, rule, effect, scope, scope_id FROM permission_rules ORDER BY created_at"
        ).fetchall()
        self.rules = [SavedRule(*r) for r in rows]

    def evaluate_permission(
        self, st: TaskState, tool: str, tool_input: dict[str, Any]
    ) -> PermissionDecision | None:
        policy = st.profile.can_use_tool_policy
        return evaluate(
            profile_id=st.profile_id,
            allowed_tools=st.profile.allowed_tools,
            auto_approve=policy.auto_approve if policy else (),
            auto_deny=policy.auto_deny if policy else (),
            rules=self.rules,
            tool=tool,
            tool_input=tool_input,
            project_id=st.project_id,
            working_dir=Path(st.working_dir),
        )

    async def _wait_inbox(self, st: TaskState, item: dict[str, Any]) -> Any:
        fut: asyncio.Future[Any] = self.loop.create_future()
        item_id = item["id"]
        self._waiters[item_id] = (fut, st.id)
        now = utcnow()

        def insert(con: Any) -> None:
            con.execute(
                "INSERT INTO inbox_items (id, task_id, kind, tool_name, tool_input, question, "
                "suggested_rule, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    item_id,
                    st.id,
                    item["kind"],
                    item.get("tool_name"),
                    self.redact(json.dumps(item.get("tool_input")))
                    if item.get("tool_input") is not None
                    else None,
                    item.get("question"),
                    item.get("suggested_rule"),
                    now,
                ],
            )

        self.log(
            st,
            "inbox",
            tool_name=item.get("tool_name"),
            item_id=item_id,
            kind=item["kind"],
            question=item.get("question"),
            suggested_rule=item.get("suggested_rule"),
        )
        if st.status == S.RUNNING:
            self.set_status(st, S.WAITING, extra=insert)
        else:
            self.writer.flush(extra=insert)  # type: ignore[union-attr]
        # Only now, with the row committed, is the item visible as pending to other threads.
        st.pending_inbox.add(item_id)
        with self.cond:
            self.cond.notify_all()
        try:
            return await fut
        except asyncio.CancelledError:
            self._expire_pending(st)  # nobody can answer it any more
            raise
        finally:
            self._waiters.pop(item_id, None)
            st.pending_inbox.discard(item_id)
            if not st.pending_inbox and st.status == S.WAITING and not st.stop_reason:
                self.set_status(st, S.RUNNING)

    async def ask_human_permission(
        self, st: TaskState, tool: str, tool_input: dict[str, Any]
    ) -> PermissionDecision:
        try:
            suggested = suggest_rule(tool, tool_input, working_dir=st.working_dir)
        except ValueError:  # no usable main field (e.g. malformed input): suggest the tool
            suggested = tool
        item = {
            "id": new_id(),
            "kind": "permission",
            "tool_name": tool,
            "tool_input": tool_input,
            "suggested_rule": suggested,
        }
        return await self._wait_inbox(st, item)

    async def ask_human_question(self, st: TaskState, question: str) -> str:
        self.log(st, "question", question=question)
        item = {"id": new_id(), "kind": "question", "question": question}
        answer = await self._wait_inbox(st, item)
        self.log(st, "answer", answer=answer)
        return answer

    def decide(
        self,
        item_id: str,
        decision: str,
        message: str | None = None,
        rule: str | None = None,
        scope: str | None = None,
        decided_by: str = "operator",
    ) -> dict[str, Any]:
        row = self.store.con.execute(
            "SELECT id, task_id, kind, tool_name, suggested_rule, status, decision, decided_by "
            "FROM inbox_items WHERE id = ?",
            [item_id],
        ).fetchone()
        if row is None:
            raise InboxError(f"no inbox item with id {item_id!r}")
        _, task_id, kind, tool_name, suggested, status, prev, prev_by = row
        if status != "pending":
            detail = f" ({prev} by {prev_by})" if prev else ""
            raise InboxError(f"inbox item {item_id} is already {status}{detail}")
        valid = {
            "permission": {"allow", "always", "deny"},
            "question": {"answer", "deny"},
            "handoff": {"allow", "deny"},
            "budget": {"allow", "deny"},
            "notice": {"allow", "deny", "answer"},
        }.get(kind, {"allow", "deny"})
        if decision not in valid:
            raise InboxError(
                f"{decision!r} does not fit a {kind} item; use one of {', '.join(sorted(valid))}"
            )
        if decision == "answer" and not (message and message.strip()):
            raise InboxError("an 'answer' decision needs the answer text in message=")
        waiter = self._waiters.get(item_id)
        handler = self.inbox_handlers.get(kind) if waiter is None else None
        if waiter is None and handler is None:
            raise InboxError(
                f"inbox item {item_id} belongs to task {task_id}, which is not running in this "
                "process; it will be expired"
            )
        saved_rule = None
        rule_id = None
        if decision == "always":
            saved_rule = validate_rule(rule or suggested or tool_name)
            scope = scope or self.settings.get("inbox.default_always_scope", "profile")
            st = self.tasks.get(task_id)
            scope_id = None
            if scope == "profile" and st:
                scope_id = st.profile_id
            elif scope == "project" and st:
                scope_id = st.project_id
            rule_id = self.add_rule(saved_rule, "allow", scope, scope_id, created_from=item_id)
        now = utcnow()

        def update(con: Any) -> None:
            con.execute(
                "UPDATE inbox_items SET status='decided', decision=?, response=?, decided_by=?, "
                "decided_at=? WHERE id=?",
                [decision, message, decided_by, now, item_id],
            )

        self.writer.flush(extra=update)  # type: ignore[union-attr]
        if waiter is not None:
            fut = waiter[0]
            if kind == "question":
                value: Any = (
                    message
                    if decision == "answer"
                    else (f"The operator declined to answer: {message or 'no reason given'}")
                )
            elif decision == "deny":
                value = PermissionDecision("deny", "human", message or "Denied by the operator.")
            else:
                value = PermissionDecision(
                    "allow", "human", message, rule=saved_rule, always=decision == "always"
                )
            if not fut.done():
                fut.set_result(value)
        elif handler is not None:
            handler(item_id, decision, message)
        return {"item_id": item_id, "decision": decision, "rule": saved_rule, "rule_id": rule_id}

    def _expire_pending(self, st: TaskState) -> None:
        if not st.pending_inbox:
            return
        ids = list(st.pending_inbox)
        now = utcnow()

        def expire(con: Any) -> None:
            con.execute(
                f"UPDATE inbox_items SET status='expired', decided_at=? WHERE id IN "
                f"({','.join('?' * len(ids))}) AND status='pending'",
                [now, *ids],
            )

        self.writer.flush(extra=expire)  # type: ignore[union-attr]

    # ---- rules, projects, settings, transcripts ---------------------------------------

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
        self.store.con.execute(
            "INSERT INTO permission_rules VALUES (?, ?, ?, ?, ?, ?, ?)",
            [rid, rule, effect, scope, scope_id, created_from, utcnow()],
        )
        self.rules.append(SavedRule(rid, rule, effect, scope, scope_id))
        return rid

    def remove_rule(self, rule_id: str) -> None:
        n = self.store.con.execute(
            "DELETE FROM permission_rules WHERE id = ? RETURNING id", [rule_id]
        ).fetchall()
        if not n:
            raise KeyError(f"no permission rule with id {rule_id!r}")
        self.rules = [r for r in self.rules if r.id != rule_id]

    def save_transcript(self, task_id: str, data: Any) -> None:
        """Buffer the latest transcript; it is written with the next batch (≤ ~100 ms)."""
        text = self.redact(json.dumps(data, default=str, ensure_ascii=False))
        assert self.writer is not None
        self.writer.set_transcript(task_id, text, utcnow())

    def load_transcript(self, task_id: str) -> Any | None:
        pending = self.writer.pending_transcript(task_id) if self.writer else None
        if pending is not None:
            return json.loads(pending)
        row = self.store.con.execute(
            "SELECT data FROM task_transcripts WHERE task_id = ?", [task_id]
        ).fetchone()
        return json.loads(row[0]) if row else None

    def setting_float(self, key: str, default: float) -> float:
        try:
            return float(self.settings.get(key, default))
        except ValueError:
            return default

    def tool_services(self, st: TaskState) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for hook in self.tool_service_hooks:
            services.update(hook(st))
        return services
