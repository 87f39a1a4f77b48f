"""Validating a workflow definition: every problem at once, each with its path.

``validate_definition`` turns raw input (Python, JSON or blueprint YAML) into a frozen
:class:`~stagent_lab.workflows.definition.Definition` or raises one
:class:`WorkflowDefinitionError` listing every problem (``steps[2].prompt``,
``loop.max_iterations``). ``definition_from_json`` rebuilds a stored definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from stagent_lab.errors import ScriptError, WorkflowDefinitionError
from stagent_lab.runtimes.scripted import load_script
from stagent_lab.workflows.definition import (
    DELAY,
    IDENTIFIER,
    MAX_DELAY_S,
    MAX_PROMPT_CHARS,
    MAX_ROWS,
    MAX_STEPS,
    MIN_DELAY_S,
    PATTERNS,
    RESERVED_TEMPLATE_NAMES,
    SLUG,
    TASK_ONLY_FIELDS,
    ConcurrencyInput,
    Definition,
    LoopConfig,
    LoopInput,
    Step,
    StepInput,
    delay_seconds,
    is_callable_ref,
    slugify,
)


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required"
        out.append((_path(prefix, tuple(err["loc"])), msg))
    return out


def validate_definition(
    pattern: Any,
    steps: Any,
    *,
    loop: Any = None,
    parallel: Any = None,
    swarm: Any = None,
    known_profile: Callable[[str], bool] = lambda p: True,
    known_runtime: Callable[[str], bool] = lambda r: True,
    default_profile: str | None = None,
    default_runtime: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Definition:
    """The typed definition, or WorkflowDefinitionError listing every problem with its path."""
    problems: list[tuple[str, str]] = []
    settings = settings or {}
    if pattern not in PATTERNS:
        problems.append(("pattern", f"must be one of {', '.join(PATTERNS)}, got {pattern!r}"))
    parsed: list[StepInput | None] = []
    if not isinstance(steps, list | tuple):
        problems.append(("steps", "a list of steps is required"))
        steps = []
    elif not 1 <= len(steps) <= MAX_STEPS:
        problems.append(("steps", f"1 to {MAX_STEPS} steps, got {len(steps)}"))
    for i, raw in enumerate(steps):
        where = f"steps[{i}]"
        if not isinstance(raw, Mapping):
            problems.append((where, f"a step is a mapping, got {type(raw).__name__}"))
            parsed.append(None)
            continue
        try:
            parsed.append(StepInput.model_validate(dict(raw)))
        except ValidationError as exc:
            problems += _pydantic_problems(exc, where)
            parsed.append(None)
    out_steps = _check_steps(
        parsed, problems, known_profile, known_runtime, default_profile, default_runtime
    )
    loop_cfg = _check_configs(pattern, loop, parallel, swarm, problems)
    max_conc = _check_pattern(
        pattern, out_steps, parsed, loop_cfg, parallel, swarm, settings, problems
    )
    if problems:
        raise WorkflowDefinitionError(problems)
    if pattern == "checkpoint":
        out_steps = _checkpoint_approvals(out_steps, parsed)
    return Definition(
        pattern=pattern, steps=tuple(out_steps), loop=loop_cfg, max_concurrent=max_conc
    )


def _check_steps(
    parsed: list[StepInput | None],
    problems: list[tuple[str, str]],
    known_profile: Callable[[str], bool],
    known_runtime: Callable[[str], bool],
    default_profile: str | None,
    default_runtime: str | None,
) -> list[Step]:
    out: list[Step] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(parsed):
        if s is None:
            continue
        where = f"steps[{i}]"
        name = s.name.strip()
        if not name:
            problems.append((f"{where}.name", "required (a short name of the step)"))
        elif len(name) > 80:
            problems.append((f"{where}.name", f"at most 80 characters, got {len(name)}"))
        if s.id is not None:
            sid = s.id
            if not SLUG.match(sid):
                problems.append(
                    (f"{where}.id", f"lowercase letters, digits, - and _ (≤ 40), got {sid!r}")
                )
            elif sid in seen:
                problems.append((f"{where}.id", f"{sid!r} is already the id of steps[{seen[sid]}]"))
        else:
            base = slugify(name) or f"step-{i + 1}"
            sid, n = base, 1
            while sid in seen or any(p is not None and p.id == sid for p in parsed):
                n += 1
                sid = f"{base[:36]}-{n}"
        seen.setdefault(sid, i)
        if s.delay is not None:
            extra = [k for k in TASK_ONLY_FIELDS if getattr(s, k) is not None]
            if extra:
                problems.append((where, f"a delay step has only id, name and delay; drop {extra}"))
            m = DELAY.match(s.delay)
            if not m:
                problems.append((f"{where}.delay", f"like 30m, 2h, 1d or 1w; got {s.delay!r}"))
            elif not MIN_DELAY_S <= delay_seconds(s.delay) <= MAX_DELAY_S:
                problems.append((f"{where}.delay", f"from 1 minute to 30 days, got {s.delay!r}"))
            out.append(Step(id=sid, name=name, index=i, delay=s.delay))
            continue
        if s.prompt is None or not s.prompt.strip():
            problems.append((f"{where}.prompt", "required for a task step"))
        elif len(s.prompt) > MAX_PROMPT_CHARS:
            problems.append((f"{where}.prompt", f"at most {MAX_PROMPT_CHARS:,} characters"))
        profile = s.profile or default_profile or "auto"
        if profile != "auto" and not known_profile(profile):
            problems.append((f"{where}.profile", f"unknown profile {profile!r} (or 'auto')"))
        runtime = s.runtime or default_runtime
        if runtime is not None and not known_runtime(runtime):
            problems.append((f"{where}.runtime", f"unknown runtime {runtime!r}"))
        if s.max_turns is not None and not 1 <= s.max_turns <= 10_000:
            problems.append((f"{where}.max_turns", f"a positive integer, got {s.max_turns}"))
        if s.budget_usd is not None and not 0 < s.budget_usd <= 1_000_000:
            problems.append((f"{where}.budget_usd", f"greater than 0, got {s.budget_usd}"))
        if s.script is not None and not callable(s.script) and not is_callable_ref(s.script):
            try:
                load_script(s.script)
            except ScriptError as exc:
                problems.append((f"{where}.script", str(exc)))
        out.append(
            Step(
                id=sid,
                name=name,
                index=i,
                prompt=s.prompt,
                profile=profile,
                runtime=runtime,
                model=s.model,
                max_turns=s.max_turns,
                budget_usd=s.budget_usd,
                requires_approval=bool(s.requires_approval),
                depends_on=tuple(s.depends_on or ()),
                script=s.script,
            )
        )
    return out


def _check_configs(
    pattern: Any, loop: Any, parallel: Any, swarm: Any, problems: list[tuple[str, str]]
) -> LoopConfig | None:
    for key, value in (("loop", loop), ("parallel", parallel), ("swarm", swarm)):
        if value is not None and pattern != key:
            problems.append((key, f"only for the {key} pattern (this one is {pattern})"))
    if pattern != "loop":
        return None
    if loop is None:
        problems.append(("loop.max_iterations", "required for the loop pattern (1 to 1000)"))
        return None
    if not isinstance(loop, Mapping):
        problems.append(("loop", "a mapping such as {'max_iterations': 5}"))
        return None
    try:
        cfg = LoopInput.model_validate(dict(loop))
    except ValidationError as exc:
        problems += _pydantic_problems(exc, "loop")
        return None
    bad = len(problems)
    if not 1 <= cfg.max_iterations <= 1000:
        problems.append(("loop.max_iterations", f"1 to 1000, got {cfg.max_iterations}"))
    if cfg.time_budget_s is not None and not 0 < cfg.time_budget_s <= 30 * 86400:
        problems.append(("loop.time_budget_s", f"greater than 0, got {cfg.time_budget_s}"))
    signals = [s.strip() for s in cfg.signals]
    if not signals or any(not s or "\n" in s for s in signals):
        problems.append(("loop.signals", "one or more non-empty one-line signals"))
    if cfg.items is not None and cfg.items_sql is not None:
        problems.append(("loop.items_sql", "give items or items_sql, not both"))
    if cfg.items is not None:
        if len(cfg.items) > MAX_ROWS:
            problems.append(("loop.items", f"at most {MAX_ROWS:,} rows, got {len(cfg.items)}"))
        for n, item in enumerate(cfg.items):
            if not isinstance(item, Mapping):
                problems.append((f"loop.items[{n}]", "each row is a JSON object"))
                break
    if cfg.items_sql is not None and not cfg.items_sql.strip():
        problems.append(("loop.items_sql", "an empty query"))
    if not IDENTIFIER.match(cfg.item_var) or cfg.item_var in RESERVED_TEMPLATE_NAMES:
        problems.append(("loop.item_var", f"a name like 'item' (not {cfg.item_var!r})"))
    if cfg.delay_between is not None:
        if not DELAY.match(cfg.delay_between):
            problems.append(("loop.delay_between", f"like 30m or 1h, got {cfg.delay_between!r}"))
        elif not MIN_DELAY_S <= delay_seconds(cfg.delay_between) <= MAX_DELAY_S:
            problems.append(("loop.delay_between", "from 1 minute to 30 days"))
    if cfg.on_item_error not in ("continue", "stop"):
        problems.append(("loop.on_item_error", f"continue or stop, got {cfg.on_item_error!r}"))
    if len(problems) > bad:
        return None
    return LoopConfig(
        max_iterations=cfg.max_iterations,
        time_budget_s=cfg.time_budget_s,
        signals=tuple(signals),
        items=tuple(dict(i) for i in cfg.items) if cfg.items is not None else None,
        items_sql=cfg.items_sql,
        item_var=cfg.item_var,
        delay_between=cfg.delay_between,
        on_item_error=cfg.on_item_error,
    )


def _concurrency(
    key: str, value: Any, hi: int, default: int, problems: list[tuple[str, str]]
) -> int:
    if value is None:
        return max(1, min(default, hi))
    if not isinstance(value, Mapping):
        problems.append((key, "a mapping such as {'max_concurrent': 2}"))
        return 1
    try:
        cfg = ConcurrencyInput.model_validate(dict(value))
    except ValidationError as exc:
        problems += _pydantic_problems(exc, key)
        return 1
    if cfg.max_concurrent is None:
        return max(1, min(default, hi))
    if not 1 <= cfg.max_concurrent <= hi:
        problems.append((f"{key}.max_concurrent", f"1 to {hi}, got {cfg.max_concurrent}"))
    return cfg.max_concurrent


def _check_pattern(
    pattern: Any,
    steps: list[Step],
    parsed: list[StepInput | None],
    loop: LoopConfig | None,
    parallel: Any,
    swarm: Any,
    settings: Mapping[str, Any],
    problems: list[tuple[str, str]],
) -> int | None:
    if len(steps) != len(parsed) or not steps:
        return None  # the steps themselves are broken; their problems are listed
    tasks = [s for s in steps if not s.is_delay]
    delays = [s for s in steps if s.is_delay]
    if pattern != "parallel":
        for s in steps:
            if s.depends_on:
                problems.append((f"steps[{s.index}].depends_on", "only parallel steps depend"))
    if steps[-1].is_delay:
        problems.append((f"steps[{steps[-1].index}].delay", "a workflow cannot end with a delay"))
    if pattern in ("loop", "parallel", "swarm"):
        for s in delays:
            hint = " (use loop.delay_between)" if pattern == "loop" else ""
            problems.append((f"steps[{s.index}].delay", f"no delay steps in {pattern}{hint}"))
    if pattern == "sequence" and not tasks:
        problems.append(("steps", "a sequence needs at least one task step"))
    if pattern in ("checkpoint", "planner-executor") and len(tasks) < 2:
        problems.append(("steps", f"{pattern} needs at least 2 task steps, got {len(tasks)}"))
    if pattern == "planner-executor" and steps[0].is_delay:
        problems.append(("steps[0].delay", "the first step (the planner) cannot be a delay"))
    if pattern == "loop" and loop is not None:
        if loop.rows and not tasks:
            problems.append(("steps", "a loop over items needs at least one task step"))
        if not loop.rows and len(tasks) != 1:
            problems.append(("steps", f"a loop has exactly one task step, got {len(tasks)}"))
        if loop.rows:
            _check_row_templates(tasks, loop, problems)
    if pattern == "parallel":
        return _check_parallel(steps, parallel, settings, problems)
    if pattern == "swarm":
        workers = len(steps) - 2
        if not 2 <= workers <= 5:
            problems.append(
                (
                    "steps",
                    "a swarm is a mayor, 2 to 5 workers and a refinery (4 to 7 steps), "
                    f"got {len(steps)}",
                )
            )
            workers = max(workers, 1)
        default = int(settings.get("workflows.swarm_max_concurrent", 2))
        return _concurrency("swarm", swarm, max(workers, 1), default, problems)
    return None


def _check_parallel(
    steps: list[Step], parallel: Any, settings: Mapping[str, Any], problems: list[tuple[str, str]]
) -> int:
    branches = [s for s in steps if not s.depends_on and not s.is_delay]
    synth = [s for s in steps if s.depends_on]
    if not 2 <= len(branches) <= 5:
        problems.append(("steps", f"a parallel workflow has 2 to 5 branches, got {len(branches)}"))
    if len(synth) != 1:
        problems.append(
            ("steps", f"exactly one synthesis step depends on the branches, got {len(synth)}")
        )
    else:
        s = synth[0]
        want = {b.id for b in branches}
        deps = list(s.depends_on)
        if len(deps) != len(set(deps)):
            problems.append((f"steps[{s.index}].depends_on", "names a branch more than once"))
        other = [d for d in deps if d not in want]
        if other:
            problems.append((f"steps[{s.index}].depends_on", f"not branches: {other}"))
        missing = sorted(want - set(deps))
        if missing:
            problems.append((f"steps[{s.index}].depends_on", f"misses branches {missing}"))
    default = int(settings.get("workflows.parallel_max_concurrent", 3))
    return _concurrency("parallel", parallel, 5, default, problems)


_STEP_REF = re.compile(r"\{\{\s*steps\.([A-Za-z0-9_-]+)\s*\}\}")


def _check_row_templates(
    tasks: list[Step], loop: LoopConfig, problems: list[tuple[str, str]]
) -> None:
    earlier: set[str] = set()
    for s in tasks:
        for ref in _STEP_REF.findall(s.prompt or ""):
            if ref not in earlier:
                problems.append(
                    (f"steps[{s.index}].prompt", f"{{{{steps.{ref}}}}} is not an earlier step")
                )
        earlier.add(s.id)


def _checkpoint_approvals(steps: list[Step], parsed: list[StepInput | None]) -> list[Step]:
    """In the checkpoint pattern every task step after the first asks, unless it says no."""
    out, first = [], True
    for s, raw in zip(steps, parsed, strict=True):
        if not s.is_delay:
            if not first and (raw is None or raw.requires_approval is not False):
                s = Step(**{**asdict(s), "requires_approval": True, "depends_on": s.depends_on})
            first = False
        out.append(s)
    return out


def definition_from_json(pattern: str, data: Mapping[str, Any]) -> Definition:
    """Rebuild a stored definition (it was valid when stored, so no registry checks here).

    ``data["workflow"]`` (on a run's snapshot) holds the step defaults it started with."""
    defaults = data.get("workflow") or {}
    return validate_definition(
        pattern,
        [dict(s) for s in data.get("steps", [])],
        loop=data.get("loop"),
        parallel=data.get("parallel"),
        swarm=data.get("swarm"),
        default_profile=defaults.get("profile"),
        default_runtime=defaults.get("runtime"),
    )


def known(ids: Collection[str]) -> Callable[[str], bool]:
    return lambda value: value in ids


__all__ = ["definition_from_json", "known", "validate_definition"]
