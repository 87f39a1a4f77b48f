"""The task runner: one run of one task, from a free slot to a final status.

queued ─(slot)→ running ─(pre-flight hooks: budgets)→ runtime events … → completed | failed
                                                                     ↘ paused | cancelled

Limits enforced here, for every runtime: max turns and the task budget (through the run
context), the wall-clock run limit (time spent waiting for a person excluded), and whatever the
usage hooks decide after each model call (spend caps). A stop (cancel, pause, time limit)
cancels the run's asyncio task; the runtime's ``aclose`` then tears down its subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from typing import TYPE_CHECKING, Any

from stagent_lab.engine.context import EngineRunContext
from stagent_lab.engine.states import TERMINAL, TaskStatus
from stagent_lab.errors import LimitExceeded, RuntimeFailure, StagentError
from stagent_lab.runtimes.base import AssistantText, Notice, Result, SessionStarted, UsageReport
from stagent_lab.usage.pricing import price_usage

if TYPE_CHECKING:
    from stagent_lab.engine.engine import Engine
    from stagent_lab.engine.task import TaskState

S = TaskStatus


class StopTask(Exception):
    """Raised by a hook to stop a run: ``status`` is ``paused`` or ``failed``."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TaskRunner:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(self, st: TaskState, *, resuming: bool) -> None:
        st.aio_task = self._engine.loop.create_task(self._run(st, resuming=resuming))

    # ---- one run -----------------------------------------------------------------------

    async def _run(self, st: TaskState, *, resuming: bool) -> None:
        eng = self._engine
        agen = None
        slot = False
        pool = st.extra.get("pool")
        watchdog = None
        try:
            await eng.queue.acquire(pool, st.priority)
            slot = True
            eng.redact.refresh(force=True)  # a key exported since the last check counts now
            eng.book.set_status(st, S.RUNNING)
            watchdog = RunWatchdog(eng, st)
            for hook in eng.hooks.preflight:
                out = hook(st)
                if asyncio.iscoroutine(out):
                    await out
            instructions = await eng.build_instructions(st)
            ctx = EngineRunContext(eng, st, instructions, resuming)
            runtime = eng.catalog.create(st.runtime_id, st.runtime_options)
            eng.events.task(
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
                if isinstance(ev, UsageReport):
                    await self._record_usage(st, ev)
                else:
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
                eng.book.set_status(st, S.COMPLETED)
        except asyncio.CancelledError:
            eng.events.flush_text(st)
            eng.inbox.expire_for(st)
            if st.status not in TERMINAL and st.status != S.PAUSED:
                if st.stop_reason == "pause":
                    eng.book.set_status(st, S.PAUSED, reason=st.stop_detail or "paused")
                elif st.stop_reason == "timeout":
                    self._fail(st, st.stop_detail or "run time limit reached")
                else:
                    eng.book.set_status(st, S.CANCELLED, reason=st.stop_detail)
        except StopTask as stop:
            eng.events.flush_text(st)
            eng.inbox.expire_for(st)
            if stop.status == "paused":
                eng.book.set_status(st, S.PAUSED, reason=stop.reason)
            else:
                self._fail(st, stop.reason)
        except LimitExceeded as exc:
            self._fail(st, str(exc))
        except RuntimeFailure as exc:
            self._fail(st, str(exc))
        except StagentError as exc:
            self._fail(st, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            eng.events.task(st, "error", message=str(exc), traceback=traceback.format_exc(limit=8))
            self._fail(st, f"{type(exc).__name__}: {exc}")
        finally:
            if watchdog is not None:
                watchdog.stop()
            st.stop_reason = None
            st.stop_detail = None
            if agen is not None:
                with contextlib.suppress(BaseException):
                    await agen.aclose()
            if slot:
                eng.queue.release(pool)
            eng.task_finished(st)

    def _fail(self, st: TaskState, reason: str) -> None:
        eng = self._engine
        eng.inbox.expire_for(st)
        eng.events.task(st, "error", message=reason)
        if st.status not in TERMINAL:
            if st.status == S.PAUSED:
                return
            eng.book.set_status(st, S.FAILED, reason=reason)

    def _handle_event(self, st: TaskState, ev: Any) -> None:
        events = self._engine.events
        if isinstance(ev, AssistantText):
            if ev.delta:
                events.delta(st, ev.text)
            else:
                events.flush_text(st)
                events.task(st, "assistant_text", text=ev.text)
        elif isinstance(ev, SessionStarted):
            st.session_id = ev.session_id
            events.task(st, "session", session_id=ev.session_id)
            self._engine.book.publish_snapshot(st)
        elif isinstance(ev, Notice):
            events.task(st, "notice", message=ev.message, **ev.data)
        elif isinstance(ev, Result):
            events.task(st, "result", text=ev.text)

    async def _record_usage(self, st: TaskState, rep: UsageReport) -> None:
        eng = self._engine
        quote = price_usage(rep)
        now = eng.clock.now()
        row = {
            "id": eng.new_id(),
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
        eng.writer.add_ledger(row)
        st.cost_usd += quote.cost_usd or 0.0
        eng.events.task(
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
        eng.book.publish_snapshot(st)
        for hook in eng.hooks.usage:
            out = hook(st, row)
            if asyncio.iscoroutine(out):
                await out
        if st.max_budget_usd is not None and st.cost_usd > st.max_budget_usd:
            raise LimitExceeded(
                f"budget exceeded: spent ${st.cost_usd:.4f} of ${st.max_budget_usd:.4f}"
            )


class RunWatchdog:
    """The run's wall-clock limit, counting only time the task is not waiting for a person.

    One engine-loop timer at the moment the limit would be reached; when it fires early
    (the task spent part of the time waiting) it is re-armed for the time still left.
    """

    def __init__(self, engine: Engine, st: TaskState) -> None:
        self._engine = engine
        self._st = st
        self.limit = engine.run_limit_s(st)
        self._handle: Any = None
        self._active = 0.0
        self._since = engine.clock.monotonic()
        if self.limit:
            st.extra["watchdog"] = self
            self._arm(self.limit)

    def _arm(self, delay: float) -> None:
        # On the engine clock's timers, so a fake clock in tests drives the limit too.
        self._handle = self._engine.timers.after(max(delay, 0.01), self._check, "run limit")

    def waiting_changed(self, waiting: bool) -> None:
        now = self._engine.clock.monotonic()
        if waiting and self._since is not None:
            self._active += now - self._since
            self._since = None
        elif not waiting and self._since is None:
            self._since = now

    def _check(self) -> None:
        self._handle = None
        st = self._st
        now = self._engine.clock.monotonic()
        used = self._active + (now - self._since if self._since is not None else 0.0)
        if used >= self.limit - 0.005:
            if st.aio_task and not st.aio_task.done() and not st.stop_reason:
                st.stop_reason = "timeout"
                st.stop_detail = f"run time limit ({self.limit:g} s) reached"
                st.aio_task.cancel()
            return
        self._arm(self.limit - used)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._st.extra.pop("watchdog", None)
