"""The operator's controls over spend caps: set, enable, disable, remove, resume what a cap
paused, the status table and the Monitor panel (mixed into ``BudgetsFeature``; engine thread
through ``service.on_engine``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from stagent_lab.api import budgets as rq
from stagent_lab.engine.task import new_id
from stagent_lab.errors import BudgetError
from stagent_lab.store import budgets as repo
from stagent_lab.usage.budgets import Tally

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService


class BudgetControls:
    service: WorkspaceService
    tallies: dict[str, Tally]

    def _fresh(self, tally: Tally, now: Any) -> Tally:  # provided by BudgetsFeature
        raise NotImplementedError

    def _reload(self, tally: Tally, now: Any, *, flush: bool = True) -> None:
        raise NotImplementedError

    def _evaluate(self, tally: Tally, *, changed: bool = False) -> None:
        raise NotImplementedError

    def _save(self, tally: Tally, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def _resolve(self, budget_id: str) -> Tally:
        hit = self.tallies.get(budget_id)
        if hit is not None:
            return hit
        found = [t for t in self.tallies.values() if t.id.startswith(budget_id)]
        if len(found) == 1:
            return found[0]
        if found:
            raise BudgetError(f"{budget_id!r} matches several budgets; give more of the id")
        raise BudgetError(f"no budget with id {budget_id!r} (see lab.budgets.status())")

    def _set(self, r: rq.SetBudget) -> str:
        service = self.service
        scope_id: str | None = r.scope_id
        if r.scope == "workspace":
            if scope_id is not None:
                raise BudgetError("a workspace budget has no scope_id")
        elif not scope_id:
            raise BudgetError(f"a {r.scope} budget needs scope_id (the {r.scope} id)")
        elif r.scope == "runtime" and scope_id not in service.catalog.ids():
            raise BudgetError(
                f"unknown runtime {scope_id!r}; known runtimes: {', '.join(service.catalog.ids())}"
            )
        elif r.scope == "profile":
            service.profiles.get(scope_id)
        elif r.scope == "project":
            scope_id = service.project_id_of(scope_id)
        warn = (
            r.warn_ratio
            if r.warn_ratio is not None
            else service.settings.value("budget.warn_ratio")
        )
        return service.on_engine(self._upsert, r.scope, scope_id, r.window, r, float(warn))

    def _upsert(self, scope: str, scope_id: str | None, window: str, r: Any, warn: float) -> str:
        now = self.service.clock.now()
        same = [
            t
            for t in self.tallies.values()
            if t.row["scope"] == scope
            and t.row["scope_id"] == scope_id
            and t.row["window"] == window
        ]
        fields = {"limit_usd": float(r.limit_usd), "warn_ratio": warn, "on_exceed": r.on_exceed}
        if same:
            tally = same[0]
            tally.row.update(fields, updated_at=now)
            self._save(tally, fields)
        else:
            row = {
                "id": new_id(),
                "scope": scope,
                "scope_id": scope_id,
                "window": window,
                **fields,
                "enabled": True,
                "warned_window": None,
                "exceeded_window": None,
                "created_at": now,
                "updated_at": now,
            }
            self.service.writer_flush(lambda con: repo.insert(con, row))
            tally = Tally(dict(row))
            self.tallies[tally.id] = tally
            self._reload(tally, now)
        self._fresh(tally, now)
        self._evaluate(tally, changed=True)
        return tally.id

    def _toggle(self, budget_id: str, enabled: bool) -> None:
        def run() -> None:
            tally = self._resolve(budget_id)
            tally.row["enabled"] = enabled
            self._save(tally, {"enabled": enabled})
            if enabled:
                self._fresh(tally, self.service.clock.now())
            self._evaluate(tally, changed=True)

        self.service.on_engine(run)

    def _remove(self, r: rq.RemoveBudget) -> None:
        def run() -> None:
            tally = self._resolve(r.budget_id)
            del self.tallies[tally.id]
            self.service.writer_flush(lambda con: repo.delete(con, tally.id))

        self.service.on_engine(run)

    def _resume_paused(self, r: rq.ResumePausedBudget) -> list[str]:
        def run() -> list[str]:
            tally = self._resolve(r.budget_id)
            self._fresh(tally, self.service.clock.now())
            if tally.row["enabled"] and tally.state == "exceeded":
                raise BudgetError(
                    f"budget {tally.id} is still exceeded (${tally.spent:.2f} of "
                    f"${tally.limit:.2f}); raise its limit with lab.budgets.set(...) or disable "
                    "it first, or the tasks would stop again at once"
                )
            self.service.writer_flush()
            ids = repo.paused_by(self.service.reader(), tally.id)
            for task_id in ids:
                self.service.resume_task(task_id)
            return ids

        return self.service.on_engine(run)

    def blocking(
        self, runtime: str | None, profile: str | None, project_id: str | None
    ) -> list[dict[str, Any]]:
        """Enabled block caps that are exceeded now and cover this scope (unknown parts of the
        scope, such as a runtime routing will pick, match only workspace caps and their own)."""
        now = self.service.clock.now()
        out = []
        for tally in self.tallies.values():
            row = tally.row
            if not row["enabled"] or row["on_exceed"] != "block":
                continue
            if not tally.covers(runtime, profile, project_id):
                continue
            self._fresh(tally, now)
            if tally.state == "exceeded":
                out.append({**tally.summary(), "reason": tally.reason()})
        return out

    def status_rows(self) -> list[dict[str, Any]]:
        now = self.service.clock.now()
        rows = []
        for tally in self.tallies.values():
            self._fresh(tally, now)
            row = tally.row
            rows.append(
                {
                    "id": tally.id,
                    "scope": row["scope"],
                    "scope_id": row["scope_id"],
                    "window": row["window"],
                    "limit_usd": tally.limit,
                    "spent_usd": round(tally.spent, 6),
                    "ratio": round(tally.spent / tally.limit, 4) if tally.limit else 0.0,
                    "state": tally.state,
                    "resets_at": tally.end,
                    "unpriced_calls": tally.unpriced,
                    "on_exceed": row["on_exceed"],
                    "warn_ratio": float(row["warn_ratio"]),
                    "window_key": tally.key,
                }
            )
        return rows

    def status_table(self) -> pa.Table:
        rows = self.status_rows()
        schema = pa.schema(
            [
                ("id", pa.string()),
                ("scope", pa.string()),
                ("scope_id", pa.string()),
                ("window", pa.string()),
                ("limit_usd", pa.float64()),
                ("spent_usd", pa.float64()),
                ("ratio", pa.float64()),
                ("state", pa.string()),
                ("resets_at", pa.timestamp("us")),
                ("unpriced_calls", pa.int64()),
                ("on_exceed", pa.string()),
                ("warn_ratio", pa.float64()),
                ("window_key", pa.string()),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def monitor_rows(self) -> list[dict[str, Any]]:
        rows = self.service.on_engine(self.status_rows)
        for row in rows:
            row["resets_at"] = (
                row["resets_at"].strftime("%Y-%m-%d %H:%M UTC") if row["resets_at"] else None
            )
        return rows


__all__ = ["BudgetControls"]
