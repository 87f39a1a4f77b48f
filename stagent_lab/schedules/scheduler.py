"""The scheduler: one engine-loop timer for the earliest firing, crash-safe firings, overlap.

Engine thread only. Each active schedule has a wake time (its next firing, or its expiry when
sooner) in a heap; one timer on the engine clock sleeps until the earliest and is re-armed
whenever that changes. Nothing polls.

A firing is made in a crash-safe order: **one transaction** inserts its ``schedule_firings``
row and advances the schedule (``next_fire_at``, counts, a final status); only then is its task
or workflow run started. A crash in between leaves a ``running`` firing with no task, which
the next start finds (by ``origin_id``) and starts, so no firing is lost or doubled. A schedule
that is past due by more than 60 s (downtime, a stalled loop) fires once for all the missed
times (``catch_up="once"``, with ``missed_count``) or records one ``skipped/missed`` firing
(``catch_up="skip"``); then its next firing is the next cron time after now.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.api.requests import REQUESTS, build
from stagent_lab.errors import ScheduleError
from stagent_lab.schedules import outcomes, submit
from stagent_lab.schedules import plans as plans_mod
from stagent_lab.schedules.model import local_day, local_text
from stagent_lab.schedules.plans import Plan
from stagent_lab.schedules.state import Ended, LiveFiring, Sched
from stagent_lab.store import schedules as repo

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService

LIVE = frozenset({"queued", "running", "waiting", "paused"})


class Scheduler:
    def __init__(self, service: WorkspaceService) -> None:
        self.service = service
        self.scheds: dict[str, Sched] = {}
        self.origins: dict[str, str] = {}  # firing id -> schedule id, while it has live work
        self.runs: dict[str, str] = {}  # workflow run id -> firing id
        self.replaced: set[str] = set()  # firings whose task a newer firing cancelled
        self._heap: list[tuple[datetime, int, str]] = []
        self._order = itertools.count()
        self._timer: Any = None
        self._timer_at: datetime | None = None
        self._unsubscribe: Any = None
        self.armed = False
        self.stopping = False  # the engine is closing: start nothing (a reopen recovers it)

    # ---- lifecycle (engine thread) -------------------------------------------------------

    def start(self) -> None:
        """Load the schedules; with automation, reconcile open firings and arm the timer."""
        con = self.service.reader()
        numbers = repo.max_numbers(con)
        for row in repo.all_schedules(con):
            s = Sched.from_row(row)
            s.number = numbers.get(s.id, 0)
            self.scheds[s.id] = s
        if not self.service.automation:
            return
        self._unsubscribe = self.service.subscribe(self._on_event)
        outcomes.reconcile(self)
        self.armed = True
        for s in self.scheds.values():
            self._push(s)

    def stop(self) -> None:
        self.armed = False
        self.stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---- the timer -----------------------------------------------------------------------

    def _push(self, s: Sched) -> None:
        when = s.wake_time()
        s.wake = when
        if when is not None and self.armed:
            heapq.heappush(self._heap, (when, next(self._order), s.id))
            if len(self._heap) > 2 * len(self.scheds) + 64:
                self._compact()
        self._arm()

    def _stale(self, entry: tuple[datetime, int, str]) -> bool:
        s = self.scheds.get(entry[2])
        return s is None or s.wake != entry[0]

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if not self._stale(e)]
        heapq.heapify(self._heap)

    def _arm(self) -> None:
        if not self.armed:
            return
        heap = self._heap
        while heap and self._stale(heap[0]):
            heapq.heappop(heap)
        if not heap:
            if self._timer is not None:
                self._timer.cancel()
                self._timer, self._timer_at = None, None
            return
        first = heap[0][0]
        if self._timer is not None and self._timer_at == first:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = first
        self._timer = self.service.call_at(first, self._tick, "schedules")

    def next_wake(self) -> datetime | None:
        """When the timer fires next (for tests and the bench)."""
        return self._timer_at

    def _tick(self) -> None:
        self._timer, self._timer_at = None, None
        now = self.service.clock.now()
        due: list[Sched] = []
        seen: set[str] = set()
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if self._stale(entry) or entry[2] in seen:
                continue
            seen.add(entry[2])
            s = self.scheds[entry[2]]
            s.wake = None
            due.append(s)
        plans = [p for p in (plans_mod.due(self, s, now) for s in due) if p is not None]
        self._commit(plans)
        for s in due:
            self._push(s)
        self._arm()

    # ---- committing and starting ---------------------------------------------------------

    def _commit(self, plans: list[Plan]) -> None:
        """One transaction for every firing row and schedule change, then the starts."""
        if not plans:
            return
        now = self.service.clock.now()
        writes = []
        for plan in plans:
            if plan.fields:
                plan.sched.row.update(plan.fields)
            fields = self.scrub(dict(plan.fields, updated_at=now))
            writes.append((plan.sched.id, fields, self.scrub(plan.firing)))

        def write(con: Any) -> None:
            for sid, fields, firing in writes:
                if firing is not None:
                    repo.insert_firing(con, firing)
                repo.update_schedule(con, sid, fields)

        self.service.writer_flush(write)
        for plan in plans:
            for lf in plan.cancel:
                self._replace(plan.sched, lf)
            if plan.start is not None:
                self.start_firing(plan.sched, plan.start)
            for fn in plan.after:
                fn()
            if plan.fields.get("status") in ("completed", "expired"):
                self._push(plan.sched)

    def _replace(self, s: Sched, lf: LiveFiring) -> None:
        self.replaced.add(lf.id)
        if lf.task_id:
            try:
                self.service.cancel_task(lf.task_id, f"replaced by a newer firing of {s.name}")
            except Exception:  # it ended meanwhile: nothing to replace
                self.replaced.discard(lf.id)

    def start_firing(self, s: Sched, lf: LiveFiring) -> None:
        """Start a firing's task (or workflow run); a failure to start fails the firing."""
        if self.stopping:
            return  # its row stays running without a task: the next open starts it
        now = self.service.clock.now()
        s.live[lf.id] = lf
        self.origins[lf.id] = s.id
        try:
            if s.row.get("workflow_id"):
                self._start_workflow(s, lf)
            elif s.heartbeat:
                lf.task_id = self.service.submit(submit.evaluation_request(self, s, lf, now)).id
            else:
                lf.task_id = self.service.submit(submit.task_request(self, s, lf, now)).id
        except Exception as exc:
            reason = f"could not start: {type(exc).__name__}: {exc}"
            outcomes.close(self, s, lf, Ended("failed", None, reason, 0.0, 0))
            return
        fields = {"status": "running", "fired_at": now, "task_id": lf.task_id}
        fields["workflow_run_id"] = lf.run_id
        fid = lf.id
        self.service.writer_defer(lambda con: repo.update_firing(con, fid, fields), "firing", None)
        self._log(
            s,
            "schedule_fired",
            number=lf.number,
            firing_id=lf.id,
            scheduled_for=lf.scheduled_for,
            missed_count=lf.missed,
            task_id=lf.task_id,
            workflow_run_id=lf.run_id,
        )

    def _start_workflow(self, s: Sched, lf: LiveFiring) -> None:
        cls = REQUESTS.get("run_workflow")
        if cls is None:
            raise ScheduleError(
                "this workspace cannot run workflows (the workflows feature is not installed)"
            )
        view = self.service.handle(
            build(
                cls,
                workflow=s.row["workflow_id"],
                inputs=None,
                trigger="schedule",
                trigger_id=lf.id,
            )
        )
        lf.run_id = view.id
        self.runs[view.id] = lf.id

    def scrub(self, value: Any) -> Any:
        """``value`` with every text in it redacted (secrets never reach the store)."""
        if isinstance(value, str):
            return self.service.redact(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    # ---- liveness ------------------------------------------------------------------------

    def is_live(self, lf: LiveFiring) -> bool:
        if lf.run_id is not None:
            return lf.run_id in self.runs
        if lf.task_id is None:
            return True  # being started
        return self.task_status(lf.task_id) in LIVE

    def task_status(self, task_id: str) -> str | None:
        snap = self.service.task_snapshot(task_id)
        if snap is not None:
            return snap["status"]
        self.service.writer_flush()
        found = repo.task_outcome(self.service.reader(), task_id)
        return found["status"] if found else None

    # ---- workflow runs -------------------------------------------------------------------

    def _on_event(self, ev: dict[str, Any]) -> None:
        if ev.get("subject") != "workflow_run":
            return
        name = ev.get("event")
        if name not in ("workflow_completed", "workflow_failed", "workflow_cancelled"):
            return
        run_id = ev.get("task_id")
        if run_id in self.runs:
            payload = ev.get("payload")
            self.service.post(lambda: outcomes.run_ended(self, run_id, name, payload))

    # ---- operations (engine thread) ------------------------------------------------------

    def resolve(self, text: str) -> Sched:
        text = str(text).strip()
        hit = self.scheds.get(text)
        if hit is not None:
            return hit
        named = [s for s in self.scheds.values() if s.name == text]
        if len(named) == 1:
            return named[0]
        prefixed = [s for s in self.scheds.values() if s.id.startswith(text)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise ScheduleError(
                f"{text!r} matches several schedules ({', '.join(s.name for s in prefixed[:5])}); "
                "give more of the id or the name"
            )
        names = ", ".join(sorted(s.name for s in self.scheds.values())[:20]) or "none yet"
        raise ScheduleError(f"no schedule named or with id {text!r}; schedules: {names}")

    def fire_now(self, text: str, force: bool) -> dict[str, Any]:
        s = self.resolve(text)
        now = self.service.clock.now()
        plan = Plan(s)
        plans_mod.fire(self, plan, now, now, 0, manual=True, force=force)
        self._commit([plan])
        self._push(s)
        firing = plan.firing or {}
        if plan.start is not None:
            firing = {**firing, "task_id": plan.start.task_id, "workflow_run_id": plan.start.run_id}
        stored = repo.firing(self.service.reader(), firing["id"]) if firing else None
        out = dict(stored or firing)
        out.update({k: v for k, v in firing.items() if k in ("task_id", "workflow_run_id") and v})
        return out

    def set_status(self, s: Sched, status: str, reason: str | None, event: str, by: str) -> None:
        now = self.service.clock.now()
        fields: dict[str, Any] = {"status": status, "paused_reason": reason, "updated_at": now}
        if status == "active":
            fields["failure_streak"] = 0
            if s.timing.cron is not None:
                fields["next_fire_at"] = s.timing.next_after(now)
        s.row.update(fields)
        sid, stored = s.id, self.scrub(fields)
        self.service.writer_flush(lambda con: repo.update_schedule(con, sid, stored))
        self._log(s, event, by=by, reason=reason, next_fire_at=s.row.get("next_fire_at"))
        self._push(s)

    def save(self, s: Sched, fields: dict[str, Any]) -> None:
        """Change a schedule's row in memory now and in the store with the next batch."""
        s.row.update(fields)
        sid, data = s.id, self.scrub(dict(fields))
        self.service.writer_defer(
            lambda con: repo.update_schedule(con, sid, data), "schedule", None
        )

    def _log(self, s: Sched, event: str, **payload: Any) -> None:
        payload.setdefault("schedule", s.name)
        self.service.log_subject("schedule", s.id, event, **payload)

    def local(self, s: Sched, instant: datetime | None) -> str | None:
        return local_text(instant, s.timing.tz)

    def today(self, s: Sched, now: datetime) -> Any:
        return local_day(now, s.timing.tz)


__all__ = ["LIVE", "Scheduler"]
