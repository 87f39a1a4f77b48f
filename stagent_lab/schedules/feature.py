"""Schedules and heartbeats as a feature of the workspace service (``lab.schedules``).

The scheduler runs on the engine loop of the process that owns the workspace (the workspace
service, or an in-process Lab until it closes), so schedules keep firing whatever notebooks
come and go. Firing tasks share the ``schedule`` slot pool (``schedules.max_concurrent``).

Settings: ``schedules.default_timezone`` (UTC), ``schedules.max_run_s`` (1200),
``schedules.failure_streak_limit`` (3), ``schedules.max_concurrent`` (2),
``heartbeat.profile`` (general), ``heartbeat.max_turns`` (8).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.api import schedules as rq
from stagent_lab.api.requests import build
from stagent_lab.config import SettingSpec
from stagent_lab.engine.task import new_id
from stagent_lab.errors import IntervalError, ScheduleError
from stagent_lab.schedules import heartbeat, outcomes
from stagent_lab.schedules.cron import zone
from stagent_lab.schedules.describe import describe, preview
from stagent_lab.schedules.model import build_row, check_fields, input_form, timing_of
from stagent_lab.schedules.scheduler import Scheduler
from stagent_lab.schedules.state import Sched
from stagent_lab.store import schedules as repo

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService


def _check_zone(value: Any) -> None:
    try:
        zone(value)
    except IntervalError as exc:
        raise ValueError(str(exc)) from None


SETTINGS = (
    SettingSpec(
        "schedules.default_timezone",
        "str",
        "UTC",
        "zone of schedules without tz=",
        check=_check_zone,
    ),
    SettingSpec(
        "schedules.max_run_s", "float", 1200.0, "run-time limit of a firing task (s)", 1, 7 * 86400
    ),
    SettingSpec(
        "schedules.failure_streak_limit",
        "int",
        3,
        "failed firings in a row that pause a schedule (0 = never)",
        0,
        1000,
    ),
    SettingSpec(
        "schedules.max_concurrent", "int", 2, "firing tasks running at once; the rest queue", 1, 256
    ),
    SettingSpec("heartbeat.profile", "str", "general", "profile of heartbeat evaluations"),
    SettingSpec("heartbeat.max_turns", "int", 8, "turn limit of a heartbeat evaluation", 1, 10_000),
)


class SchedulesFeature:
    name = "schedules"
    migrations = repo.MIGRATIONS
    settings = SETTINGS

    def attach(self, service: WorkspaceService) -> None:
        self.service = service
        self.scheduler = sch = Scheduler(service)
        service.set_pool_limit(
            "schedule", lambda: int(service.settings.value("schedules.max_concurrent"))
        )
        hooks = service.hooks
        hooks.started.append(sch.start)
        hooks.stopping.append(sch.stop)
        hooks.finish.append(lambda st: outcomes.on_finish(sch, st))
        hooks.usage.insert(0, lambda st, row: heartbeat.account(sch, st, row))
        on = service.on
        on(rq.ParseInterval)(self._parse)
        on(rq.AddSchedule)(lambda r: self._add("clock", r))
        on(rq.AddHeartbeat)(lambda r: self._add("heartbeat", r))
        on(rq.UpdateSchedule)(self._update)
        on(rq.GetSchedule)(lambda r: self._engine(lambda: self.view(sch.resolve(r.schedule))))
        on(rq.ListSchedules)(self._list)
        on(rq.PauseSchedule)(self._pause)
        on(rq.ResumeSchedule)(self._resume)
        on(rq.RemoveSchedule)(self._remove)
        on(rq.FireSchedule)(
            lambda r: rq.FiringView(**self._engine(lambda: sch.fire_now(r.schedule, r.force)))
        )
        on(rq.ListFirings)(self._firings)
        service.add_monitor_section("schedules", self.monitor_rows)
        keep_alive = getattr(service, "keep_alive", None)  # the long-lived service's idle stop
        if keep_alive is not None:
            keep_alive.append(self.keep_alive)

    def keep_alive(self) -> str | None:
        """Why the workspace service must stay up with no client: active schedules."""
        active = sum(1 for s in list(self.scheduler.scheds.values()) if s.row["status"] == "active")
        return f"{active} active schedule(s)" if active else None

    def _engine(self, fn: Any) -> Any:
        return self.service.on_engine(fn)

    # ---- views -------------------------------------------------------------------------

    def view(self, s: Sched, warnings: list[str] | None = None) -> rq.ScheduleView:
        row = dict(s.row)
        options = row.pop("options", None) or {}
        del options
        row["description"] = describe(s.timing.cron) if s.timing.cron else row.get("when_text")
        row["next_fire_local"] = self.scheduler.local(s, row.get("next_fire_at"))
        row["channels"] = list(row.get("channels") or [])
        row["warnings"] = list(warnings or [])
        return rq.ScheduleView(**{k: v for k, v in row.items() if v is not None or k == "channels"})

    def monitor_rows(self) -> list[dict[str, Any]]:
        def rows() -> list[dict[str, Any]]:
            out = []
            for s in sorted(
                self.scheduler.scheds.values(),
                key=lambda s: (
                    s.row.get("next_fire_at") is None,
                    s.row.get("next_fire_at") or datetime.min,
                ),
            ):
                row = s.row
                nxt = row.get("next_fire_at")
                out.append(
                    {
                        "name": row["name"],
                        "kind": row["kind"],
                        "status": row["status"],
                        "when": row.get("when_text"),
                        "next_fire": self.scheduler.local(s, nxt),
                        "next_fire_utc": nxt.strftime("%Y-%m-%d %H:%M UTC") if nxt else None,
                        "streak": f"{row['failure_streak']}/{row['failure_streak_limit']}",
                        "last_outcome": row.get("last_outcome"),
                        "firings": int(row.get("firing_count") or 0),
                        "live": sum(1 for f in s.live.values() if self.scheduler.is_live(f)),
                    }
                )
            return out

        return self._engine(rows)

    # ---- requests ------------------------------------------------------------------------

    def _parse(self, r: rq.ParseInterval) -> dict[str, Any]:
        tz = r.tz or str(self.service.settings.value("schedules.default_timezone"))
        return preview(r.text, tz, self.service.clock.now())

    def _fields(self, kind: str, r: Any) -> dict[str, Any]:
        data = r.model_dump()
        if kind == "heartbeat":
            data["checklist"] = r.checklist
        data["script"] = r.script
        return data

    def _add(self, kind: str, r: Any) -> rq.ScheduleView:
        data = self._fields(kind, r)
        sch = self.scheduler

        def run() -> rq.ScheduleView:
            now = self.service.clock.now()
            row, warnings, script = build_row(self.service, kind, data, now)
            row.update(
                id=new_id(),
                status="active",
                failure_streak=0,
                firing_count=0,
                spent_today_usd=0.0,
                suppression_count=0,
                created_at=now,
                updated_at=now,
            )
            stored = sch.scrub(row)
            self.service.writer_flush(lambda con: repo.insert_schedule(con, stored))
            s = Sched.from_row(repo.get(self.service.reader(), row["id"]) or row)
            s.script = script
            sch.scheds[s.id] = s
            sch._log(
                s,
                "schedule_added",
                kind=kind,
                cron=row.get("cron"),
                next_fire_at=row.get("next_fire_at"),
            )
            sch._push(s)
            return self.view(s, warnings)

        return self._engine(run)

    def _update(self, r: rq.UpdateSchedule) -> rq.ScheduleView:
        sch = self.scheduler
        changes = dict(r.changes)

        def run() -> rq.ScheduleView:
            s = sch.resolve(r.schedule)
            kind = s.row["kind"]
            check_fields(kind, changes)
            data = {**input_form(s.row), **changes}
            if "script" not in changes and s.script is not None:
                data["script"] = s.script
            # The same checks as a new one: types and ranges first, then the workspace.
            data = self._fields(
                kind, build(rq.AddSchedule if kind == "clock" else rq.AddHeartbeat, **data)
            )
            now = self.service.clock.now()
            row, warnings, script = build_row(
                self.service, kind, data, now, existing=s.row, changed=frozenset(changes)
            )
            row["updated_at"] = now
            sid, stored = s.id, sch.scrub(row)
            self.service.writer_flush(lambda con: repo.update_schedule(con, sid, stored))
            s.row.update(row)
            s.timing = timing_of(s.row)
            s.script = script
            sch._log(
                s,
                "schedule_updated",
                fields=sorted(changes),
                next_fire_at=s.row.get("next_fire_at"),
            )
            sch._push(s)
            return self.view(s, warnings)

        return self._engine(run)

    def _list(self, r: rq.ListSchedules) -> Any:
        self.service.fresh()
        return repo.list_arrow(self.service.reader())

    def _firings(self, r: rq.ListFirings) -> Any:
        sid = None
        if r.schedule is not None:
            sid = self._engine(lambda: self.scheduler.resolve(r.schedule).id)
        self.service.fresh()
        return repo.firings_arrow(self.service.reader(), sid, r.limit)

    def _pause(self, r: rq.PauseSchedule) -> rq.ScheduleView:
        sch = self.scheduler

        def run() -> rq.ScheduleView:
            s = sch.resolve(r.schedule)
            if s.row["status"] != "active":
                raise ScheduleError(
                    f"schedule {s.name} is {s.row['status']}; only active ones pause"
                )
            sch.set_status(s, "paused", r.reason, "schedule_paused", r.by)
            return self.view(s)

        return self._engine(run)

    def _resume(self, r: rq.ResumeSchedule) -> rq.ScheduleView:
        sch = self.scheduler

        def run() -> rq.ScheduleView:
            s = sch.resolve(r.schedule)
            row = s.row
            if row["status"] == "active":
                raise ScheduleError(f"schedule {s.name} is already active")
            if row["status"] in ("completed", "expired"):
                now = self.service.clock.now()
                ended = (
                    (row["once"] and row["status"] == "completed")
                    or (row.get("max_firings") and row["firing_count"] >= row["max_firings"])
                    or (row.get("expires_at") and row["expires_at"] <= now)
                    or s.timing.cron is None
                )
                if ended:
                    raise ScheduleError(
                        f"schedule {s.name} is {row['status']} and its end condition still "
                        "holds; raise max_firings or move expires_at with lab.schedules.update "
                        "first"
                    )
            sch.set_status(s, "active", None, "schedule_resumed", r.by)
            return self.view(s)

        return self._engine(run)

    def _remove(self, r: rq.RemoveSchedule) -> None:
        sch = self.scheduler

        def run() -> None:
            s = sch.resolve(r.schedule)
            sid = s.id
            self.service.writer_flush(lambda con: repo.delete_schedule(con, sid))
            del sch.scheds[sid]
            sch._log(s, "schedule_removed")
            sch._arm()

        self._engine(run)


__all__ = ["SETTINGS", "SchedulesFeature"]
