"""Read models of runs: step lists, child tasks, row results, the run card, the monitor panel.

All of them read the store on the caller's thread (after a flush, so they see every change
announced so far) and overlay what the engine knows of live children (cost so far, status).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from stagent_lab.service.core import item_view
from stagent_lab.store import inbox as inbox_repo
from stagent_lab.store import workflows as repo
from stagent_lab.workflows.definition import Definition
from stagent_lab.workflows.state import DELAY_BETWEEN
from stagent_lab.workflows.validation import definition_from_json

if TYPE_CHECKING:
    from stagent_lab.workflows.feature import WorkflowsFeature

RESULT_CHARS = 2_000


class Reads:
    def __init__(self, feature: WorkflowsFeature) -> None:
        self.feature = feature
        self.service = feature.service

    def _con(self) -> Any:
        self.service.fresh()
        return self.service.reader()

    def _run_row(self, con: Any, run_id: str) -> dict[str, Any]:
        row = repo.run(con, run_id)
        if row is None:
            raise KeyError(f"no workflow run with id {run_id!r}")
        return row

    def monitor_rows(self) -> list[dict[str, Any]]:
        return [
            {k: (v.isoformat(sep=" ") if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in repo.active_runs_panel(self._con())
        ]

    def steps(self, run_id: str) -> Any:
        return repo.steps_arrow(self._con(), run_id)

    def tasks(self, run_id: str) -> Any:
        return repo.run_tasks_arrow(self._con(), run_id)

    # ---- row results -------------------------------------------------------------------

    def results(self, run_id: str) -> Any:
        """One row per item: ``row``, the item's fields, one column per step output,
        ``status`` (completed / failed / running / waiting / not run) and ``error``."""
        con = self._con()
        row = self._run_row(con, run_id)
        inputs = repo.loads(row["inputs"], {}) or {}
        items = inputs.get("_rows")
        if items is None:
            raise KeyError(f"run {run_id} is not a loop over rows; see run.steps()")
        definition = definition_from_json(row["pattern"], repo.loads(row["definition"], {}))
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for s in repo.steps_of(con, run_id):
            latest[(s["step_id"], s["iteration"])] = s
        steps = definition.task_steps
        fields: list[str] = []
        for item in items:
            fields += [k for k in item if k not in fields]
        taken = {"row", "status", "error"}
        columns = {s.id: (s.id if s.id not in fields and s.id not in taken else f"step_{s.id}")
                   for s in steps}  # fmt: skip
        out = []
        for r, item in enumerate(items, start=1):
            record: dict[str, Any] = {"row": r}
            for f in fields:
                value = item.get(f)
                record[f] = (
                    value
                    if value is None or isinstance(value, str | int | float | bool)
                    else json.dumps(value, default=str)
                )
            status, error = "completed", None
            started = False
            for s in steps:
                sr = latest.get((s.id, r))
                record[columns[s.id]] = sr["result"] if sr and sr["status"] == "completed" else None
                if sr is None:
                    continue
                started = True
                if sr["status"] in ("failed", "blocked") and status != "failed":
                    status, error = "failed", sr["error"]
                elif (
                    sr["status"] in ("running", "waiting", "pending", "delayed")
                    and status == "completed"
                ):
                    status = sr["status"]
            unfinished = any(latest.get((s.id, r)) is None for s in steps)
            if not started or (status == "completed" and unfinished):
                status = "not run"
            record["status"] = status
            record["error"] = error
            out.append(record)
        return _table(out, ["row", *fields, *columns.values(), "status", "error"])

    # ---- the run card ------------------------------------------------------------------

    def card(self, run_id: str) -> dict[str, Any]:
        view = self.feature.run_view(run_id).model_dump()
        con = self._con()
        row = self._run_row(con, run_id)
        definition = definition_from_json(row["pattern"], repo.loads(row["definition"], {}))
        attempts: dict[tuple[str, int], int] = {}
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for s in repo.card_steps(con, run_id):
            key = (s["step_id"], s["iteration"])
            attempts[key] = attempts.get(key, 0) + 1
            latest[key] = s
        steps = [self._card_step(definition, s, attempts[k]) for k, s in latest.items()]
        steps.sort(key=lambda s: (s["iteration"], s["index"]))
        pending = [
            item_view(i).model_dump()
            for i in inbox_repo.items(con, "pending")
            if i.get("subject") == "workflow_run" and i.get("subject_id") == run_id
        ]
        return {
            "run": view,
            "steps": steps,
            "pending": pending,
            "definition": _outline(definition),
        }

    def _card_step(
        self, definition: Definition, s: dict[str, Any], attempts: int
    ) -> dict[str, Any]:
        if s["step_id"] == DELAY_BETWEEN:
            name, kind, profile = "wait between", "delay", None
        else:
            step = definition.step(s["step_id"])
            name, kind, profile = step.name, "delay" if step.is_delay else "task", step.profile
        cost = float(s["cost_usd"] or 0.0)
        task_status = s["task_status"]
        if s["task_id"]:
            snap = self.service.task_snapshot(s["task_id"])
            if snap is not None:
                task_status = snap["status"]
                cost = float(snap.get("cost_usd") or cost)
            elif s["task_cost_usd"] is not None:
                cost = max(cost, float(s["task_cost_usd"]))
        return {
            "id": s["id"],
            "step_id": s["step_id"],
            "name": name,
            "kind": kind,
            "index": int(s["step_index"]),
            "iteration": int(s["iteration"]),
            "attempt": int(s["attempt"]),
            "attempts": attempts,
            "status": s["status"],
            "profile": s["profile_id"] or profile,
            "task_id": s["task_id"],
            "task_title": s["task_title"],
            "task_status": task_status,
            "turns": int(s["turns"] or 0),
            "cost_usd": cost,
            "result": (s["result"] or "")[:RESULT_CHARS] or None,
            "error": s["error"] or None,
            "note": s["operator_note"],
            "approval_item_id": s["approval_item_id"],
            "decision": s["decision"],
            "resume_at": s["resume_at"],
            "started_at": s["started_at"],
            "finished_at": s["finished_at"],
        }


def _outline(definition: Definition) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "name": s.name,
            "kind": "delay" if s.is_delay else "task",
            "delay": s.delay,
            "profile": s.profile,
            "requires_approval": s.requires_approval,
            "depends_on": list(s.depends_on),
        }
        for s in definition.steps
    ]


def _table(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    if not rows:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    data = [{c: r.get(c) for c in columns} for r in rows]
    try:
        return pa.Table.from_pylist(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a field with mixed types: show it as text
        return pa.Table.from_pylist(
            [{c: (v if c == "row" or v is None else str(v)) for c, v in r.items()} for r in data]
        )


__all__ = ["Reads"]
