"""Workflows as a feature of the workspace service: settings, engine hooks, and the requests
behind ``lab.workflows`` (definitions, runs, blueprints).

Engine hooks: ``finish`` and ``usage`` (children end and spend), ``inbox_handlers["checkpoint"]``
(approvals), ``started`` (rebuild live runs, re-arm delays, resume interrupted children),
``stopping`` (drop timers). Definitions are validated here, with every problem reported at once;
runs are driven by the :class:`~stagent_lab.workflows.orchestrator.Orchestrator` on the engine
thread.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagent_lab.api import workflows as wq
from stagent_lab.config import SettingSpec
from stagent_lab.engine.task import new_id
from stagent_lab.errors import (
    BlueprintError,
    InvalidInput,
    WorkflowDefinitionError,
    WorkflowStateError,
)
from stagent_lab.store import projects as projects_repo
from stagent_lab.store import workflows as repo
from stagent_lab.store.sql import read_only_sql
from stagent_lab.workflows import blueprints as bps
from stagent_lab.workflows.control import RunControl
from stagent_lab.workflows.definition import (
    CALLABLE_KEY,
    IDENTIFIER,
    MAX_ROWS,
    Definition,
)
from stagent_lab.workflows.orchestrator import Orchestrator
from stagent_lab.workflows.reads import Reads
from stagent_lab.workflows.state import ACTIVE_STEP, TERMINAL_RUN
from stagent_lab.workflows.validation import validate_definition

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService

FIELDS = (
    "name", "description", "pattern", "steps", "loop", "parallel", "swarm", "project",
    "runtime", "profile", "budget_usd", "channels", "concurrent_runs",
)  # fmt: skip
INPUT_REF = re.compile(r"\{\{\s*#?(?:if\s+)?inputs\.([A-Za-z0-9_-]+)\s*\}\}")
MAX_INPUT_BYTES = 1_000_000


def _check_dirs(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError('a JSON list of folder paths, e.g. ["~/blueprints"]')


class WorkflowsFeature:
    name = "workflows"
    migrations = repo.MIGRATIONS
    settings = (
        SettingSpec(
            "workflows.max_context_chars", "int", 30_000,
            "carried text per item (previous output, plan, branch result)", 1_000, 10_000_000,
        ),
        SettingSpec(
            "workflows.parallel_max_concurrent", "int", 3, "parallel branches running at once",
            1, 5,
        ),
        SettingSpec(
            "workflows.swarm_max_concurrent", "int", 2, "swarm workers running at once", 1, 5
        ),
        SettingSpec(
            "workflows.resume_on_open", "bool", True,
            "resume runs whose children a restart interrupted (else pause them)",
        ),
        SettingSpec(
            "workflows.blueprint_dirs", "json", [], "more blueprint folders (JSON list)",
            check=_check_dirs,
        ),
    )  # fmt: skip

    def _keep_alive(self) -> str | None:
        """A run that is working, waiting on a checkpoint or sleeping through a delay keeps the
        service up (a delay must wake on time with no client connected)."""
        # list() copies in one step under the GIL; the engine thread owns the dict
        live = [r for r in list(self.orch.runs.values()) if r.status in ACTIVE_STEP]
        return f"{len(live)} active workflow run(s)" if live else None

    def attach(self, service: WorkspaceService) -> None:
        self.service = service
        self.orch = orch = Orchestrator(service)
        self.control = RunControl(orch)
        self.library = bps.BlueprintLibrary()
        self.reads = Reads(self)
        hooks = service.hooks
        hooks.finish.append(orch.on_finish)
        hooks.usage.append(orch.on_usage)
        hooks.inbox_handlers["checkpoint"] = orch.on_checkpoint
        hooks.started.append(self.control.recover)
        hooks.stopping.append(self._stopping)
        service.add_monitor_section("workflow runs", self.reads.monitor_rows)
        service.keep_alive.append(self._keep_alive)
        on = service.on
        on(wq.CreateWorkflow)(self._create)
        on(wq.UpdateWorkflow)(self._update)
        on(wq.GetWorkflow)(lambda r: self._view(self._find(r.workflow)))
        on(wq.ListWorkflows)(lambda r: self._read(repo.workflows_arrow, r.status))
        on(wq.ArchiveWorkflow)(self._archive)
        on(wq.DeleteWorkflow)(self._delete)
        on(wq.RunWorkflow)(self._run)
        on(wq.GetWorkflowRun)(lambda r: self.run_view(r.run_id))
        on(wq.WaitWorkflowRun)(self._wait)
        on(wq.ListWorkflowRuns)(self._runs)
        on(wq.PauseWorkflowRun)(lambda r: self._control("pause", r.run_id, r.stop_tasks, r.reason))
        on(wq.ResumeWorkflowRun)(lambda r: self._control("resume", r.run_id))
        on(wq.CancelWorkflowRun)(lambda r: self._control("cancel", r.run_id, r.reason))
        on(wq.RetryWorkflowRun)(
            lambda r: self._control("retry", r.run_id, r.step, r.items, r.resume)
        )
        on(wq.SetWorkflowRunBudget)(lambda r: self._control("set_budget", r.run_id, r.budget_usd))
        on(wq.WorkflowRunSteps)(lambda r: self.reads.steps(self.run_id(r.run_id)))
        on(wq.WorkflowRunTasks)(lambda r: self.reads.tasks(self.run_id(r.run_id)))
        on(wq.WorkflowRunResults)(lambda r: self.reads.results(self.run_id(r.run_id)))
        on(wq.WorkflowRunCard)(lambda r: self.reads.card(self.run_id(r.run_id)))
        on(wq.ListBlueprints)(lambda r: self._blueprints())
        on(wq.GetBlueprint)(lambda r: self._blueprint(r.blueprint))
        on(wq.FromBlueprint)(self._from_blueprint)

    def _stopping(self) -> None:
        for run in self.orch.runs.values():
            for timer in run.timers.values():
                timer.cancel()
            run.timers.clear()

    # ---- helpers -----------------------------------------------------------------------

    def _read(self, fn: Any, *args: Any) -> Any:
        self.service.fresh()
        return fn(self.service.reader(), *args)

    def _committed(self, fn: Any, *args: Any) -> Any:
        """Read rows that are committed as soon as they change (workflows, projects: written
        with an immediate commit), without waiting for the engine to flush its batch."""
        return fn(self.service.reader(), *args)

    def _find(self, ref: str) -> dict[str, Any]:
        rows = self._committed(repo.find_workflows, ref)
        if not rows:
            raise KeyError(f"no workflow named or with id {ref!r} (see lab.workflows.list())")
        if len(rows) > 1 and rows[0]["name"] != ref:
            ids = ", ".join(r["id"] for r in rows)
            raise KeyError(f"{ref!r} matches several workflows ({ids}); give more of the id")
        return rows[0]

    def _view(self, row: dict[str, Any]) -> wq.WorkflowView:
        data = dict(row)
        data["definition"] = repo.loads(row["definition"], {})
        data["channels"] = repo.loads(row["channels"], []) or []
        data["blueprint_vars"] = repo.loads(row["blueprint_vars"])
        return wq.WorkflowView(**{k: v for k, v in data.items() if v is not None})

    def run_id(self, ref: str) -> str:
        if self.orch.snapshot(ref) is not None:
            return ref
        ids = self._read(repo.run_ids_with_prefix, ref)
        if ref in ids:
            return ref
        if not ids:
            raise KeyError(f"no workflow run with id {ref!r}")
        if len(ids) > 1:
            raise KeyError(f"{ref!r} matches several runs ({', '.join(ids)}); give more")
        return ids[0]

    def run_view(self, ref: str) -> wq.WorkflowRunView:
        run_id = self.run_id(ref)
        snap = self.orch.snapshot(run_id)
        if snap is None:
            self.service.on_engine(self.control.get, run_id)
            snap = self.orch.snapshot(run_id)
        return wq.WorkflowRunView(**(snap or {}))

    def _control(self, action: str, ref: str, *args: Any) -> wq.WorkflowRunView:
        run_id = self.run_id(ref)
        self.service.on_engine(getattr(self.control, action), run_id, *args)
        return self.run_view(run_id)

    # ---- definitions -------------------------------------------------------------------

    def _problems_of_fields(self, data: dict[str, Any]) -> tuple[list[tuple[str, str]], Any]:
        problems: list[tuple[str, str]] = []
        name = (data.get("name") or "").strip()
        if not 1 <= len(name) <= 120:
            problems.append(("name", f"1 to 120 characters, got {len(name)}"))
        profile = data.get("profile")
        if profile is not None and profile != "auto" and profile not in self._profile_ids():
            problems.append(("profile", f"unknown profile {profile!r}"))
        runtime = data.get("runtime")
        if runtime is not None and not self._known_runtime(runtime):
            problems.append(("runtime", f"unknown runtime {runtime!r}"))
        project = None
        if data.get("project") is not None:
            try:
                project = self.service.resolve_project(data["project"])
            except (InvalidInput, FileNotFoundError) as exc:
                problems.append(("project", str(exc)))
        return problems, project

    def _profile_ids(self) -> set[str]:
        return {p.id for p in self.service.profiles.all()}

    def _known_runtime(self, rid: str) -> bool:
        return rid in self.service.catalog.ids()

    def validate(self, data: dict[str, Any]) -> Definition:
        """The typed definition of a workflow's fields (every problem in one error)."""
        problems, _ = self._problems_of_fields(data)
        bad = {p for p, _ in problems}  # a bad default is reported once, not on every step
        try:
            definition = validate_definition(
                data.get("pattern"),
                data.get("steps"),
                loop=data.get("loop"),
                parallel=data.get("parallel"),
                swarm=data.get("swarm"),
                known_profile=self._profile_ids().__contains__,
                known_runtime=self._known_runtime,
                default_profile=None if "profile" in bad else data.get("profile"),
                default_runtime=None if "runtime" in bad else data.get("runtime"),
                settings=self._settings(),
            )
        except WorkflowDefinitionError as exc:
            raise WorkflowDefinitionError(problems + exc.problems) from None
        if problems:
            raise WorkflowDefinitionError(problems)
        return definition

    def _settings(self) -> dict[str, Any]:
        value = self.service.settings.value
        return {
            "workflows.parallel_max_concurrent": value("workflows.parallel_max_concurrent"),
            "workflows.swarm_max_concurrent": value("workflows.swarm_max_concurrent"),
        }

    def _stored_steps(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Steps as stored: JSON, with a Python callable script kept in memory by token."""
        out = []
        for step in steps:
            step = dict(step)
            script = step.get("script")
            if callable(script):
                token = new_id()
                self.orch.callables[token] = script
                step["script"] = {CALLABLE_KEY: token}
            out.append(step)
        json.dumps(out)  # anything else that is not JSON fails here, not in the store
        return out

    def _row_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        _, project = self._problems_of_fields({**data, "name": data.get("name") or "x"})
        definition = {
            "steps": self._stored_steps(list(data["steps"])),
            **{k: data[k] for k in ("loop", "parallel", "swarm") if data.get(k) is not None},
        }
        return {
            "name": data["name"].strip(),
            "description": data.get("description"),
            "pattern": data["pattern"],
            "definition": repo.dumps(definition),
            "project_id": project[0] if project else None,
            "runtime_id": data.get("runtime"),
            "profile_id": data.get("profile"),
            "budget_usd": data.get("budget_usd"),
            "channels": repo.dumps(list(data.get("channels") or [])),
            "concurrent_runs": bool(data.get("concurrent_runs")),
        }

    def _create(self, r: wq.CreateWorkflow, extra: dict[str, Any] | None = None) -> Any:
        data = r.model_dump()
        self.validate(data)
        fields = self._row_fields(data)

        def insert() -> str:
            con = self.service.store.con
            self.service.writer_flush(None)
            if repo.name_taken(con, fields["name"]):
                raise WorkflowDefinitionError(
                    [("name", f"a workflow named {fields['name']!r} already exists")]
                )
            now = self.service.clock.now()
            row = {**fields, **(extra or {}), "id": new_id(), "version": 1, "status": "active",
                   "created_at": now, "updated_at": now}  # fmt: skip
            self.service.writer_flush(lambda c: repo.insert_workflow(c, row))
            return row["id"]

        wid = self.service.on_engine(insert)
        return self._view(self._read(repo.workflow, wid))

    def _current(self, row: dict[str, Any]) -> dict[str, Any]:
        definition = repo.loads(row["definition"], {})
        project = None
        if row["project_id"]:
            found = self._committed(projects_repo.by_id, row["project_id"])
            project = found["name"] if found else None
        return {
            "name": row["name"],
            "description": row["description"],
            "pattern": row["pattern"],
            "steps": definition.get("steps", []),
            "loop": definition.get("loop"),
            "parallel": definition.get("parallel"),
            "swarm": definition.get("swarm"),
            "project": project,
            "runtime": row["runtime_id"],
            "profile": row["profile_id"],
            "budget_usd": row["budget_usd"],
            "channels": repo.loads(row["channels"], []) or [],
            "concurrent_runs": bool(row["concurrent_runs"]),
        }

    def _update(self, r: wq.UpdateWorkflow) -> wq.WorkflowView:
        row = self._find(r.workflow)
        unknown = sorted(set(r.changes) - set(FIELDS))
        if unknown:
            raise InvalidInput(f"cannot change {unknown}; fields: {', '.join(FIELDS)}")
        checked = wq.CreateWorkflow(**{**self._current(row), **r.changes})  # types, as at create
        data = checked.model_dump()
        self.validate(data)
        fields = self._row_fields(data)

        def write() -> None:
            self.service.writer_flush(None)
            con = self.service.store.con
            if repo.name_taken(con, fields["name"], row["id"]):
                raise WorkflowDefinitionError(
                    [("name", f"a workflow named {fields['name']!r} already exists")]
                )
            now = self.service.clock.now()
            update = {**fields, "version": int(row["version"]) + 1, "updated_at": now}
            self.service.writer_flush(lambda c: repo.update_workflow(c, row["id"], update))

        self.service.on_engine(write)
        return self._view(self._read(repo.workflow, row["id"]))

    def _live_run_of(self, wid: str) -> Any:
        live = [r for r in self.orch.runs.values() if r.workflow_id == wid and r.live]
        if live:
            return live[0]
        stored = repo.live_runs(self.service.store.con, wid)
        return stored[0] if stored else None

    def _archive(self, r: wq.ArchiveWorkflow) -> wq.WorkflowView:
        row = self._find(r.workflow)
        now = self.service.clock.now()
        self.service.on_engine(
            lambda: self.service.writer_flush(
                lambda c: repo.update_workflow(
                    c, row["id"], {"status": "archived", "updated_at": now}
                )
            )
        )
        return self._view(self._read(repo.workflow, row["id"]))

    def _delete(self, r: wq.DeleteWorkflow) -> None:
        row = self._find(r.workflow)

        def delete() -> None:
            self.service.writer_flush(None)
            live = self._live_run_of(row["id"])
            if live is not None:
                rid = live.id if hasattr(live, "id") else live["id"]
                status = live.status if hasattr(live, "status") else live["status"]
                raise WorkflowStateError(
                    f"workflow {row['name']!r} has a live run ({rid} is {status}); cancel it "
                    "before deleting the workflow"
                )
            self.service.writer_flush(lambda c: repo.delete_workflow(c, row["id"]))
            for rid in [k for k, v in self.orch.runs.items() if v.workflow_id == row["id"]]:
                self.orch.runs.pop(rid, None)

        self.service.on_engine(delete)

    # ---- runs --------------------------------------------------------------------------

    def _run(self, r: wq.RunWorkflow) -> wq.WorkflowRunView:
        row = self._find(r.workflow)
        if row["status"] != "active":
            raise WorkflowStateError(f"workflow {row['name']!r} is {row['status']}; it cannot run")
        inputs = self._inputs(r.inputs)
        current = self._current(row)
        definition = self.validate(current)
        self._check_input_refs(definition, inputs)
        rows = self._rows(definition)
        snapshot = {
            "steps": current["steps"],
            **{k: current[k] for k in ("loop", "parallel", "swarm") if current[k] is not None},
            "workflow": {
                "name": row["name"],
                "project": current["project"],
                "channels": current["channels"],
                "description": row["description"],
                "profile": row["profile_id"],
                "runtime": row["runtime_id"],
            },
        }
        if definition.pattern in ("parallel", "swarm"):
            snapshot[definition.pattern] = {"max_concurrent": definition.max_concurrent}
        run = self.service.on_engine(
            self.control.start, row, definition, snapshot, inputs, rows, r.trigger, r.trigger_id
        )
        return self.run_view(run.id)

    def _inputs(self, inputs: dict[str, Any] | None) -> dict[str, Any]:
        inputs = dict(inputs or {})
        bad = [k for k in inputs if not IDENTIFIER.match(k) or k.startswith("_")]
        if bad:
            raise InvalidInput(f"inputs: names are identifiers not starting with _, got {bad}")
        try:
            size = len(json.dumps(inputs, ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"inputs must be JSON values: {exc}") from None
        if size > MAX_INPUT_BYTES:
            raise InvalidInput(f"inputs are limited to {MAX_INPUT_BYTES:,} characters of JSON")
        return inputs

    def _check_input_refs(self, definition: Definition, inputs: dict[str, Any]) -> None:
        problems = []
        for step in definition.steps:
            for name in INPUT_REF.findall(step.prompt or ""):
                if name not in inputs:
                    given = ", ".join(sorted(inputs)) or "none"
                    problems.append(
                        (f"steps[{step.index}].prompt",
                         f"{{{{inputs.{name}}}}}: no input named {name!r} (given: {given})")
                    )  # fmt: skip
        if problems:
            raise WorkflowDefinitionError(problems, "run inputs")

    def _rows(self, definition: Definition) -> list[dict[str, Any]] | None:
        loop = definition.loop
        if loop is None or not loop.rows:
            return None
        limit = min(loop.max_iterations, MAX_ROWS)
        if loop.items is not None:
            return [dict(i) for i in loop.items[:limit]]
        self.service.fresh()
        try:
            table = read_only_sql(self.service.reader(), loop.items_sql or "", None)
        except Exception as exc:
            raise WorkflowDefinitionError([("loop.items_sql", str(exc))], "run rows") from None
        rows = table.slice(0, limit).to_pylist()
        return json.loads(json.dumps(rows, default=str))  # JSON values only (dates as text)

    def _runs(self, r: wq.ListWorkflowRuns) -> Any:
        wid = self._find(r.workflow)["id"] if r.workflow else None
        return self._read(repo.runs_arrow, wid, r.status, r.limit)

    def _wait(self, r: wq.WaitWorkflowRun) -> wq.WorkflowRunView:
        run_id = self.run_id(r.run_id)
        wanted = set(r.statuses) or {*TERMINAL_RUN, "paused"}
        deadline = time.monotonic() + r.timeout
        view = self.run_view(run_id)
        cond = self.orch.changed
        while view.status not in wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with cond:
                snap = self.orch.snapshot(run_id)
                if snap is not None and snap["status"] not in wanted:
                    cond.wait(min(left, 1.0))
            view = self.run_view(run_id)
        return view

    # ---- blueprints --------------------------------------------------------------------

    def blueprint_sources(self) -> list[tuple[str, Path]]:
        sources = [("builtin", bps.builtin_dir()), ("home", self.service.home / "blueprints")]
        for d in self.service.settings.value("workflows.blueprint_dirs") or []:
            sources.append((d, Path(d).expanduser()))
        return sources

    def _library(self) -> tuple[dict[str, bps.Blueprint], list[dict[str, Any]]]:
        return self.library.load(self.blueprint_sources())

    def _blueprints(self) -> list[dict[str, Any]]:
        found, errors = self._library()
        out = [bp.summary() for bp in sorted(found.values(), key=lambda b: b.id)]
        return out + [{"id": None, **e} for e in errors]

    def _get_blueprint(self, bid: str) -> bps.Blueprint:
        found, _ = self._library()
        if bid not in found:
            raise KeyError(f"no blueprint {bid!r}; blueprints: {', '.join(sorted(found))}")
        return found[bid]

    def _blueprint(self, bid: str) -> dict[str, Any]:
        bp = self._get_blueprint(bid)
        return {**bp.summary(), "definition": bp.data.model_dump(exclude={"variables"})}

    def _from_blueprint(self, r: wq.FromBlueprint) -> dict[str, Any]:
        bp = self._get_blueprint(r.blueprint)
        values = bps.resolve_values(bp.data, r.variables)
        spec, skipped = bps.instantiate(bp.data, values)
        name = r.name or self._free_name(bp.data.name)
        request = wq.CreateWorkflow(
            name=name,
            pattern=spec["pattern"],
            steps=spec["steps"],
            description=bp.data.description or None,
            loop=spec["loop"],
            parallel=spec["parallel"],
            swarm=spec["swarm"],
            project=r.project,
            runtime=spec["runtime"],
            profile=spec["profile"],
            budget_usd=spec["budget_usd"],
        )
        try:
            view = self._create(
                request,
                extra={
                    "blueprint_id": bp.id,
                    "blueprint_version": bp.data.version,
                    "blueprint_vars": repo.dumps(values),
                },
            )
        except WorkflowDefinitionError as exc:
            raise BlueprintError(
                [f"{p}: {m}" for p, m in exc.problems], f"blueprint {bp.id} with these values"
            ) from None
        return {
            "workflow_id": view.id,
            "name": view.name,
            "steps": [s.get("name") for s in spec["steps"]],
            "skipped_steps": skipped,
        }

    def _free_name(self, base: str) -> str:
        con = self._read(lambda c: c)
        name, n = base, 1
        while repo.name_taken(con, name):
            n += 1
            name = f"{base} {n}"
        return name


__all__ = ["WorkflowsFeature"]
