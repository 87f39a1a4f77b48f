"""Spend caps as a feature of the workspace service (``lab.budgets``).

* **Default per-task cap.** A task submitted without ``max_budget_usd`` gets
  ``budget.task_default_usd`` (2.00; 0 disables), through ``service.default_task_budget``.
* **Pre-flight** (``hooks.preflight``, when a task leaves the queue): an exceeded cap in the
  task's scope fails it (``block``: reason, reset time, a ``blocked`` ledger row at cost 0) or
  makes it wait on a ``budget`` inbox item (``ask``: allow exempts the task from that cap until
  the window ends, deny fails it).
* **During a run** (``hooks.usage``, after every model call): the call's cost joins each
  covering cap's total; a cap that is exceeded pauses the task at the end of that call
  (``block``) or asks (``ask``). Tasks of the scope waiting on a person are paused at once.
* **Alerts.** The first warning and the first exceeded of each cap in each window create a
  ``notice`` item and log ``budget_warning`` / ``budget_exceeded`` (routed to channels).

All state lives on the engine thread; requests reach it through ``service.on_engine``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api import budgets as rq
from stagent_lab.config import SettingSpec
from stagent_lab.engine.runner import StopTask
from stagent_lab.engine.task import new_id
from stagent_lab.errors import BudgetError, IntervalError, SettingError
from stagent_lab.schedules.cron import zone
from stagent_lab.store import budgets as repo
from stagent_lab.usage.budgets import Tally, window_bounds
from stagent_lab.usage.controls import BudgetControls

if TYPE_CHECKING:
    from stagent_lab.engine.task import TaskState
    from stagent_lab.service.core import WorkspaceService

LIVE = ("queued", "running", "waiting")


def _check_zone(value: Any) -> None:
    try:
        zone(value)
    except IntervalError as exc:
        raise ValueError(str(exc)) from None


def _check_ratio(value: float) -> None:
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1 (exclusive), e.g. 0.8")


def _refuse_budget_key(key: str, value: Any) -> BaseException:
    if key in ("budget.monthly_usd", "budget.daily_usd"):
        window = "month" if key == "budget.monthly_usd" else "day"
        return BudgetError(
            f"{key} is not a setting: spend caps are budgets. Use lab.budgets.set("
            f'scope="workspace", window="{window}", limit_usd={value!r})'
        )
    return SettingError(
        f"unknown setting {key!r}. Valid budget settings: budget.task_default_usd, "
        "budget.warn_ratio, budget.timezone; caps are set with lab.budgets.set(...)"
    )


SETTINGS = (
    SettingSpec(
        "budget.task_default_usd",
        "float",
        2.0,
        "cap of a task submitted without max_budget_usd (0 = none)",
        0,
        1_000_000,
    ),
    SettingSpec(
        "budget.warn_ratio",
        "float",
        0.8,
        "share of a cap that raises a warning",
        0,
        1,
        check=_check_ratio,
    ),
    SettingSpec(
        "budget.timezone", "str", "UTC", "zone of budget days and months", check=_check_zone
    ),
    SettingSpec("budget.*", "str", None, "not a setting", refuse=_refuse_budget_key),
)


class BudgetsFeature(BudgetControls):
    name = "budgets"
    migrations = repo.MIGRATIONS
    settings = SETTINGS

    def __init__(self) -> None:
        self.service: WorkspaceService
        self.tallies: dict[str, Tally] = {}  # engine thread
        self.live: dict[str, TaskState] = {}  # tasks past pre-flight and not stopped

    # ---- wiring ------------------------------------------------------------------------

    def attach(self, service: WorkspaceService) -> None:
        self.service = service
        service.default_task_budget = self.default_task_budget
        hooks = service.hooks
        hooks.preflight.append(self.preflight)
        hooks.usage.insert(0, self.account)  # totals first, whatever a later hook raises
        hooks.usage.append(self.enforce)
        hooks.finish.append(self.on_finish)
        hooks.started.append(self.load)
        on = service.on
        on(rq.SetBudget)(self._set)
        on(rq.BudgetStatus)(lambda r: service.on_engine(self.status_table))
        on(rq.DisableBudget)(lambda r: self._toggle(r.budget_id, False))
        on(rq.EnableBudget)(lambda r: self._toggle(r.budget_id, True))
        on(rq.RemoveBudget)(self._remove)
        on(rq.ResumePausedBudget)(self._resume_paused)
        on(rq.CheckBudgets)(
            lambda r: service.on_engine(self.blocking, r.runtime, r.profile, r.project_id)
        )
        service.add_monitor_section("budgets", self.monitor_rows)

    def default_task_budget(self) -> float | None:
        value = float(self.service.settings.value("budget.task_default_usd"))
        return value if value > 0 else None

    # ---- totals (engine thread) ----------------------------------------------------------

    @property
    def tz(self) -> str:
        return str(self.service.settings.value("budget.timezone"))

    def load(self) -> None:
        con = self.service.reader()
        self.tallies = {row["id"]: Tally(row) for row in repo.all_budgets(con)}
        now = self.service.clock.now()
        for tally in self.tallies.values():
            self._reload(tally, now, flush=False)

    def _reload(self, tally: Tally, now: Any, *, flush: bool = True) -> None:
        """Load the spend of the window holding ``now`` by SQL (on open and at rollover)."""
        if flush:
            self.service.writer_flush()
        tz = self.tz
        key, start, end = window_bounds(tally.row["window"], tz, now)
        if key != tally.key:
            tally.exempt = set()
        tally.key, tally.start, tally.end, tally.tz = key, start, end, tz
        tally.spent, tally.unpriced = repo.spend(
            self.service.reader(), tally.row["scope"], tally.row["scope_id"], start, end
        )

    def _fresh(self, tally: Tally, now: Any) -> Tally:
        if not tally.current(now, self.tz):
            self._reload(tally, now)
        return tally

    def covering(self, st: TaskState) -> list[Tally]:
        return [
            t
            for t in self.tallies.values()
            if t.row["enabled"] and t.covers(st.runtime_id, st.profile_id, st.project_id)
        ]

    # ---- hooks ---------------------------------------------------------------------------

    async def preflight(self, st: TaskState) -> None:
        self.live[st.id] = st
        now = self.service.clock.now()
        for tally in self.covering(st):
            self._fresh(tally, now)
            if tally.state != "exceeded" or st.id in tally.exempt:
                continue
            self._alert_exceeded(tally, blocked=[st.id])
            if tally.row["on_exceed"] == "ask":
                await self._ask(st, tally)
                continue
            self._log_task(st, "budget_blocked", tally)
            row = {
                "id": new_id(),
                "task_id": st.id,
                "project_id": st.project_id,
                "profile_id": st.profile_id,
                "activity": st.activity,
                "runtime_id": st.runtime_id,
                "model": st.model,
                "at": now,
            }
            self.service.writer_defer(
                lambda con, row=row: repo.insert_blocked_row(con, row), "blocked ledger row", st.id
            )
            raise StopTask("failed", tally.reason())

    def account(self, st: TaskState, row: dict[str, Any]) -> None:
        """Add one call's cost to every cap that covers it (a rollover reloads by SQL)."""
        now = row.get("finished_at") or self.service.clock.now()
        cost = float(row.get("cost_usd") or 0.0)
        unpriced = row.get("status") == "unknown_pricing"
        for tally in self.tallies.values():
            if not tally.covers(
                row.get("runtime_id"), row.get("profile_id"), row.get("project_id")
            ):
                continue
            if not tally.current(now, self.tz):
                self._reload(tally, now)  # flushes first: this call is in the sum
            else:
                tally.spent += cost
                tally.unpriced += int(unpriced)
            if tally.row["enabled"]:
                self._evaluate(tally)

    async def enforce(self, st: TaskState, row: dict[str, Any]) -> None:
        for tally in self.covering(st):
            if tally.state != "exceeded" or st.id in tally.exempt:
                continue
            if tally.row["on_exceed"] == "ask":
                await self._ask(st, tally)
                continue
            self._log_task(st, "budget_paused", tally)
            raise StopTask("paused", tally.reason())

    def on_finish(self, st: TaskState) -> None:
        self.live.pop(st.id, None)

    async def _ask(self, st: TaskState, tally: Tally) -> None:
        body = tally.body("Spend cap reached") + (
            "\nAllow lets this task go past this cap until the window ends; deny fails it."
        )
        decision = await self.service.ask(
            st, {"kind": "budget", "body": body, "subject": "budget", "subject_id": tally.id}
        )
        if decision.decision == "allow":
            tally.exempt.add(st.id)
            self._log_task(st, "budget_override", tally, decided_by=decision.decided_by)
            return
        raise StopTask(
            "failed", tally.reason() + (f" ({decision.message})" if decision.message else "")
        )

    def _log_task(self, st: TaskState, event: str, tally: Tally, **extra: Any) -> None:
        self.service.log_task(
            st, event, budget_id=tally.id, spent=round(tally.spent, 6), limit=tally.limit, **extra
        )

    # ---- states and alerts ---------------------------------------------------------------

    def _evaluate(self, tally: Tally, *, changed: bool = False) -> None:
        """Fire the first warning / exceeded of the window; after a change, clear markers
        whose threshold the spend is now below."""
        state, row, key = tally.state, tally.row, tally.key
        fields: dict[str, Any] = {}
        if changed:
            if state in ("ok", "disabled") and row["warned_window"] is not None:
                fields["warned_window"] = None
            if state != "exceeded" and row["exceeded_window"] is not None:
                fields["exceeded_window"] = None
            if fields:
                row.update(fields)
                self._save(tally, dict(fields))
        if state == "exceeded":
            self._alert_exceeded(tally)
        elif state == "warning" and row["warned_window"] != key:
            row["warned_window"] = key
            self._save(tally, {"warned_window": key})
            self._alert(tally, "warning", tally.body("Spend cap warning"), [])

    def _alert_exceeded(self, tally: Tally, blocked: list[str] | None = None) -> None:
        row, key = tally.row, tally.key
        if row["exceeded_window"] == key:
            return
        row["exceeded_window"] = key
        fields: dict[str, Any] = {"exceeded_window": key}
        if row["warned_window"] != key:  # a jump past the warning: no separate warning
            row["warned_window"] = key
            fields["warned_window"] = key
        self._save(tally, fields)
        affected = list(blocked or [])
        for st in list(self.live.values()):
            if st.id in tally.exempt or st.id in affected:
                continue
            if str(st.status) not in LIVE or not tally.covers(
                st.runtime_id, st.profile_id, st.project_id
            ):
                continue
            affected.append(st.id)
            if str(st.status) == "waiting" and row["on_exceed"] == "block":
                # Waiting on a person: no model call to finish, so it pauses now.
                self._log_task(st, "budget_paused", tally)
                self.service.pause_task(st.id, tally.reason())
        self._alert(tally, "exceeded", tally.body("Spend cap exceeded", affected), affected)

    def _alert(self, tally: Tally, what: str, body: str, tasks: list[str]) -> None:
        service = self.service
        item_id = service.create_inbox_item(
            "notice", subject="budget", subject_id=tally.id, body=body
        )
        service.log_subject(
            "budget",
            tally.id,
            f"budget_{what}",
            **tally.summary(),
            paused_tasks=tasks,
            item_id=item_id,
            channels=[],
            channel_event=f"budget.{what}",
        )

    def _save(self, tally: Tally, fields: dict[str, Any]) -> None:
        fields = {**fields, "updated_at": self.service.clock.now()}
        bid = tally.id
        self.service.writer_defer(lambda con: repo.update(con, bid, fields), "budget update", None)


__all__ = ["SETTINGS", "BudgetsFeature"]
