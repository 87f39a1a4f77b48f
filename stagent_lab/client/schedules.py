"""``lab.schedules``: clock schedules, heartbeats, their firings and the interval preview.

Schedules run in the process that owns the workspace (the workspace service), so they keep
firing when this notebook closes. Every method builds a request; listings are DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.api import schedules as rq

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab


class SchedulesClient:
    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def __repr__(self) -> str:
        return f"<schedules of {self._lab.home}>"

    def parse(self, text: str, tz: str | None = None) -> dict[str, Any]:
        """Preview ``text``: ``{cron, description, timezone, next: [3 × {utc, local}],
        warnings}`` (IntervalError, with examples, when it does not parse)."""
        return self._lab._req(rq.ParseInterval, text=text, tz=tz)

    def add(
        self,
        name: str,
        prompt: str | None = None,
        *,
        workflow: str | None = None,
        when: str | None = None,
        at: str | datetime | None = None,
        tz: str | None = None,
        profile: str | None = None,
        runtime: str | None = None,
        model: str | None = None,
        project: str | None = None,
        max_turns: int | None = None,
        max_budget_usd: float | None = None,
        max_run_s: float | None = None,
        overlap: str = "skip",
        catch_up: str = "once",
        on_approval: str | None = None,
        include_previous: bool = True,
        once: bool = False,
        max_firings: int | None = None,
        expires_at: str | datetime | None = None,
        failure_streak_limit: int | None = None,
        channels: Sequence[str] = (),
        script: Any = None,
    ) -> str:
        """A clock schedule: each firing runs ``prompt`` as a task (or starts ``workflow``).
        ``when`` is an English phrase, a shorthand or cron; ``at`` a one-shot local time.
        Returns the schedule id (``get(id).warnings`` lists what might surprise you)."""
        view = self._lab._req(
            rq.AddSchedule,
            name=name,
            prompt=prompt,
            workflow=workflow,
            when=when,
            at=at,
            tz=tz,
            profile=profile,
            runtime=runtime,
            model=model,
            project=project,
            max_turns=max_turns,
            max_budget_usd=max_budget_usd,
            max_run_s=max_run_s,
            overlap=overlap,
            catch_up=catch_up,
            on_approval=on_approval,
            include_previous=include_previous,
            once=once,
            max_firings=max_firings,
            expires_at=expires_at,
            failure_streak_limit=failure_streak_limit,
            channels=list(channels),
            script=script,
        )
        return view.id

    def add_heartbeat(
        self,
        name: str,
        checklist: Any,
        *,
        when: str,
        tz: str | None = None,
        active_hours: tuple[str, str] | None = None,
        active_days: Sequence[str] | None = None,
        daily_budget_usd: float | None = None,
        eval_budget_usd: float | None = None,
        action_mode: str = "task",
        action_prompt: str | None = None,
        action_profile: str | None = None,
        action_budget_usd: float | None = None,
        notify_ok: bool = False,
        cooldown_s: float = 0,
        profile: str | None = None,
        runtime: str | None = None,
        model: str | None = None,
        project: str | None = None,
        max_turns: int | None = None,
        max_run_s: float | None = None,
        overlap: str = "skip",
        catch_up: str = "once",
        on_approval: str | None = None,
        max_firings: int | None = None,
        expires_at: str | datetime | None = None,
        failure_streak_limit: int | None = None,
        channels: Sequence[str] = (),
        script: Any = None,
    ) -> str:
        """A heartbeat: at each firing inside the active hours, an evaluation task judges
        ``checklist`` (a list of strings or {id, text, priority}, YAML text or a YAML file)
        and returns a verdict; only a verdict that needs action starts an action task (or a
        notice with ``action_mode="notify"``). Returns the schedule id."""
        view = self._lab._req(
            rq.AddHeartbeat,
            name=name,
            checklist=checklist,
            when=when,
            tz=tz,
            active_hours=tuple(active_hours) if active_hours is not None else None,
            active_days=list(active_days) if active_days is not None else None,
            daily_budget_usd=daily_budget_usd,
            eval_budget_usd=eval_budget_usd,
            action_mode=action_mode,
            action_prompt=action_prompt,
            action_profile=action_profile,
            action_budget_usd=action_budget_usd,
            notify_ok=notify_ok,
            cooldown_s=cooldown_s,
            profile=profile,
            runtime=runtime,
            model=model,
            project=project,
            max_turns=max_turns,
            max_run_s=max_run_s,
            overlap=overlap,
            catch_up=catch_up,
            on_approval=on_approval,
            max_firings=max_firings,
            expires_at=expires_at,
            failure_streak_limit=failure_streak_limit,
            channels=list(channels),
            script=script,
        )
        return view.id

    def list(self) -> Any:
        """Every schedule with its next firing (UTC), failure streak and last outcome."""
        return self._lab._req(rq.ListSchedules)

    def get(self, schedule: str) -> rq.ScheduleView:
        """One schedule by name, id or unique id prefix."""
        return self._lab._req(rq.GetSchedule, schedule=schedule)

    def update(self, schedule: str, **changes: Any) -> rq.ScheduleView:
        """Change fields (the names ``add``/``add_heartbeat`` take); checked like a new one."""
        return self._lab._req(rq.UpdateSchedule, schedule=schedule, changes=changes)

    def pause(self, schedule: str, reason: str = "paused by the operator") -> rq.ScheduleView:
        return self._lab._req(rq.PauseSchedule, schedule=schedule, reason=reason)

    def resume(self, schedule: str) -> rq.ScheduleView:
        """Resume: the failure streak resets and the next firing is computed from now."""
        return self._lab._req(rq.ResumeSchedule, schedule=schedule)

    def remove(self, schedule: str) -> None:
        """Delete the schedule and its firing history (tasks, logs and costs stay)."""
        self._lab._req(rq.RemoveSchedule, schedule=schedule)

    def fire(self, schedule: str, force: bool = False) -> rq.FiringView:
        """A firing now (the overlap policy applies unless ``force``); the next scheduled
        firing does not move."""
        return self._lab._req(rq.FireSchedule, schedule=schedule, force=force)

    def firings(self, schedule: str | None = None, limit: int | None = 50) -> Any:
        """Firing history, newest first (one schedule, or all)."""
        return self._lab._req(rq.ListFirings, schedule=schedule, limit=limit)


__all__ = ["SchedulesClient"]
