"""The scripted runtime: deterministic and offline; used when chosen (demos, tests), never as a
silent fallback (see ``catalog.RuntimeCatalog.resolve``).

It plays a script of steps through the same governed path as a model runtime would:

    {"say": "text"}                          the agent says something (one turn)
    {"tool": "Read", "input": {...}}         a tool call (one turn; goes through the cascade)
    {"ask": "question?"}                     the agent asks the operator (an inbox question)
    {"sleep": 0.5}                           think time, in seconds (0 to 3600)
    {"result": "text"}                       final answer; ends the run
    {"fail": "reason"}                       the run fails with this reason

A script is a list of steps, a YAML string holding one (or a mapping with ``steps:``), or a
Python callable ``fn(prompt, profile)`` (or ``fn(prompt, profile, ctx)`` to see the run context)
returning a list or a generator; a generator receives
each tool's output (or the operator's answer) as the value of its ``yield``. With no script the
runtime runs a default plan for the profile that does real work with its tools.

Numbers are checked when the script loads: a ``sleep`` must be finite, not negative and at
most an hour, and no number in a tool's ``input`` may be NaN or infinite (it could not be
logged as JSON), so a one-line ``{"sleep": .inf}`` is refused instead of running forever.

Token counts are estimated (about four characters a token), so the usage ledger fills; the
model is ``scripted`` (free) unless the task names a real model, which is then priced.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any, ClassVar

import yaml

from stagent_lab.errors import RuntimeFailure, ScriptError
from stagent_lab.runtimes.base import (
    AssistantText,
    Capabilities,
    Result,
    RunContext,
    Runtime,
    RuntimeEvent,
    UsageReport,
)

STEP_KINDS = ("say", "tool", "ask", "sleep", "result", "fail")
_TOOL_KEYS = {"tool", "input", "id"}
MAX_SLEEP_S = 3600.0


def estimate_tokens(chars: int) -> int:
    """About four characters a token; never zero."""
    return max(1, (chars + 3) // 4)


def load_script(script: Any) -> list[dict[str, Any]] | Callable[..., Any] | None:
    """Normalize and validate a script; raises ScriptError naming the step and the problem."""
    if script is None or callable(script):
        return script
    if isinstance(script, str):
        try:
            data = yaml.safe_load(script)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ScriptError(f"script is not valid YAML{where}: {exc}") from None
        script = data
    if isinstance(script, dict) and set(script) == {"steps"}:
        script = script["steps"]
    if not isinstance(script, list):
        raise ScriptError(f"a script is a list of steps, got {type(script).__name__}")
    return [validate_step(step, i) for i, step in enumerate(script, start=1)]


def validate_step(step: Any, index: int) -> dict[str, Any]:
    if not isinstance(step, dict) or not step:
        raise ScriptError(f"step {index}: expected a mapping like {{'say': 'text'}}, got {step!r}")
    kinds = [k for k in step if k in STEP_KINDS]
    if len(kinds) != 1:
        raise ScriptError(
            f"step {index}: needs exactly one of {', '.join(STEP_KINDS)}; got keys {sorted(step)}"
        )
    kind = kinds[0]
    extra = set(step) - ({kind} | (_TOOL_KEYS if kind == "tool" else set()))
    if extra:
        raise ScriptError(f"step {index}: unknown key(s) {sorted(extra)} in a {kind!r} step")
    value = step[kind]
    if kind == "tool":
        if not isinstance(value, str) or not value:
            raise ScriptError(f"step {index}: 'tool' must be a tool name, got {value!r}")
        if not isinstance(step.get("input", {}), dict):
            raise ScriptError(f"step {index}: 'input' must be a mapping, got {step['input']!r}")
        _check_numbers(step.get("input", {}), f"step {index}: 'input", "'")
        if "id" in step and not isinstance(step["id"], str):
            raise ScriptError(f"step {index}: 'id' must be text, got {step['id']!r}")
    elif kind == "sleep":
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or not 0 <= value <= MAX_SLEEP_S
        ):
            raise ScriptError(
                f"step {index}: 'sleep' must be a number of seconds from 0 to "
                f"{MAX_SLEEP_S:g}, got {value!r}"
            )
    elif not isinstance(value, str):
        raise ScriptError(f"step {index}: {kind!r} must be text, got {type(value).__name__}")
    return dict(step)


def _check_numbers(value: Any, where: str, end: str) -> None:
    """Refuse NaN and infinities anywhere in ``value``, naming the field's path."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ScriptError(f"{where}{end} must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, f"{where}.{key}", end)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            _check_numbers(item, f"{where}[{n}]", end)


def _provider_for(model: str) -> str:
    m = model.lower()
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith(("gpt", "o1", "o3", "o4", "codex")):
        return "openai"
    return "scripted"


def _as_generator(steps: Iterable[dict[str, Any]]) -> Generator[dict[str, Any], Any, None]:
    # A plain loop, not `yield from`: the runtime calls .send() on this generator, and a list
    # iterator has no .send().
    for step in steps:
        yield step


class ScriptedRuntime(Runtime):
    id: ClassVar[str] = "scripted"
    label: ClassVar[str] = "Scripted (offline)"
    provider: ClassVar[str] = "scripted"
    capabilities: ClassVar[Capabilities] = Capabilities(resume=True, cancel=True, approvals=True)
    default_model: ClassVar[str | None] = "scripted"

    async def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        script = load_script(ctx.options.get("script"))
        model = ctx.model or "scripted"
        provider = _provider_for(model)
        state = await ctx.load_transcript() if ctx.resuming else None
        done: int = state["done"] if state else 0
        history: list[Any] = list(state["history"]) if state else []
        context_chars = len(ctx.instructions) + len(ctx.prompt) + sum(len(str(h)) for h in history)

        if script is None:
            from stagent_lab.runtimes.scripted_plans import default_plan

            gen = default_plan(ctx)
        elif callable(script):
            # fn(prompt, profile) or fn(prompt, profile, ctx): the third form sees the run
            # context (instructions, working_dir, ...), which tests use to check what a run got.
            try:
                n_params = len(inspect.signature(script).parameters)
            except (TypeError, ValueError):
                n_params = 2
            produced = (
                script(ctx.prompt, ctx.profile, ctx)
                if n_params >= 3
                else script(ctx.prompt, ctx.profile)
            )
            gen = (
                produced if inspect.isgenerator(produced) else _as_generator(load_script(produced))
            )
        else:
            gen = _as_generator(script)

        last_text: str | None = None
        index = 0
        send: Any = None
        while True:
            try:
                raw = gen.send(send) if index else next(gen)
            except StopIteration:
                break
            step = validate_step(raw, index + 1)
            kind = next(k for k in step if k in STEP_KINDS)
            if index < done:  # replay what a previous run already did (resume)
                send = history[index]
                if kind == "say":
                    last_text = step["say"]
                index += 1
                continue
            send = None
            if kind == "say":
                ctx.begin_turn()
                text = step["say"]
                yield AssistantText(text)
                yield self._usage(provider, model, context_chars, len(text))
                context_chars += len(text)
                last_text = text
            elif kind == "tool":
                ctx.begin_turn()
                tool_input = step.get("input", {})
                yield self._usage(provider, model, context_chars, len(json.dumps(tool_input)) + 40)
                outcome = await ctx.use_tool(step["tool"], tool_input, step.get("id"))
                send = outcome.output
                context_chars += len(outcome.output)
            elif kind == "ask":
                send = await ctx.ask(step["ask"])
                context_chars += len(send)
            elif kind == "sleep":
                await asyncio.sleep(step["sleep"])
            elif kind == "fail":
                raise RuntimeFailure(step["fail"])
            elif kind == "result":
                yield Result(step["result"])
                return
            history.append(send)
            index += 1
            await ctx.save_transcript({"done": index, "history": history})
        if last_text is not None:
            yield Result(last_text)

    @staticmethod
    def _usage(provider: str, model: str, context_chars: int, out_chars: int) -> UsageReport:
        return UsageReport(
            provider=provider,
            model=model,
            input_tokens=estimate_tokens(context_chars),
            output_tokens=estimate_tokens(out_chars),
            estimated=True,
        )
