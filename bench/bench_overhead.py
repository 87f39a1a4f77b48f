"""Per-turn engine overhead of a direct runtime vs. the bare SDK, on the same loopback fake.

Both sides talk to the same Anthropic Messages fake (real SSE over HTTP on 127.0.0.1) with the
real anthropic client and play the same conversation: N turns, each asking for the Glob tool,
then a final answer. The bare side is what a user would write by hand: a loop of
``client.messages.stream(...)`` calls that runs the tool and sends the result back. The engine
side is ``lab.submit(..., runtime="anthropic-direct")``: the same calls plus the permission
cascade, the log, the ledger (priced with genai-prices), the transcript saved every turn and
the task state machine. Ratio = engine seconds per turn / bare seconds per turn.

A second figure isolates the runtime: ``AnthropicDirectRuntime.run`` (the shared tool loop of
the direct runtimes, with its retry and stall plumbing) driven by a minimal RunContext that runs
the same Glob tool, no engine, no store. Ratio = runtime seconds per turn / bare seconds per turn.
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import bench_lab, median, metric, pick_sizes, scratch_dir, write_profile

MODEL = "claude-haiku-4-5"
KEY = "sk-bench-not-a-real-key-0000000000"
PROFILE = """\
id: overhead
name: Overhead
supportedRuntimes: [anthropic-direct]
allowedTools: [Glob]
canUseToolPolicy:
  autoApprove: [Glob]
maxTurns: 500
"""


def _turns(n: int) -> list[dict[str, Any]]:
    tool = {
        "text": "Looking.",
        "tool_uses": [{"name": "Glob", "input": {"pattern": "*.md"}}],
        "usage": {"input_tokens": 200, "output_tokens": 20},
    }
    final = {"text": "Done.", "usage": {"input_tokens": 300, "output_tokens": 5}}
    return [tool] * (n - 1) + [final]


def _bare(fake, n: int, folder) -> float:
    import anthropic

    from stagent_lab.tools import get_tool
    from stagent_lab.tools.base import ToolContext

    client = anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=0)
    glob = get_tool("Glob")
    ctx = ToolContext(working_dir=folder)
    tools = [{"name": "Glob", "description": glob.description, "input_schema": glob.input_schema}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "look"}]
    fake.script(*_turns(n))
    import asyncio

    t0 = time.perf_counter()
    for _ in range(n):
        with client.messages.stream(
            model=MODEL, max_tokens=1024, system="x", tools=tools, messages=messages
        ) as stream:
            for _event in stream:
                pass
            msg = stream.get_final_message()
        messages.append({"role": "assistant", "content": [b.model_dump() for b in msg.content]})
        uses = [b for b in msg.content if b.type == "tool_use"]
        if not uses:
            break
        results = []
        for use in uses:
            out = asyncio.run(glob.run(dict(use.input), ctx))
            results.append({"type": "tool_result", "tool_use_id": use.id, "content": out.output})
        messages.append({"role": "user", "content": results})
    elapsed = time.perf_counter() - t0
    client.close()
    return elapsed


def _engine(fake, n: int, root, folder) -> float:
    write_profile(root / "profiles", "overhead", PROFILE)  # bench_lab loads root/profiles
    opts = {"anthropic-direct": {"base_url": fake.base_url, "api_key": KEY}}
    fake.script(*_turns(n))
    with bench_lab(root, runtime_options=opts) as lab:
        t0 = time.perf_counter()
        h = lab.submit(
            "look",
            profile="overhead",
            runtime="anthropic-direct",
            project=folder,
            model=MODEL,
            max_turns=n + 5,
        )
        h.wait(timeout=600)
        elapsed = time.perf_counter() - t0
        if h.status != "completed":
            raise RuntimeError(f"engine run ended {h.status}: {h.failure_reason}")
    return elapsed


class _BareContext:
    """The least a RunContext must do for the loop: count turns, run Glob, keep a transcript."""

    def __init__(self, folder, n: int) -> None:
        from types import SimpleNamespace

        from stagent_lab.tools import get_tool
        from stagent_lab.tools.base import ToolContext

        self.prompt, self.instructions, self.model = "look", "x", MODEL
        self.profile = SimpleNamespace(id="overhead", capability_overrides={})
        self.options: dict[str, Any] = {}
        self.turn, self.max_turns = 0, n + 5
        self.stall_timeout_s = 60.0
        self._glob = get_tool("Glob")
        self._tool_ctx = ToolContext(working_dir=folder)
        self._spec = {
            "name": "Glob",
            "description": self._glob.description,
            "input_schema": self._glob.input_schema,
        }

    def begin_turn(self) -> int:
        self.turn += 1
        return self.turn

    def tool_specs(self) -> list[dict[str, Any]]:
        return [self._spec]

    async def use_tool(self, name, tool_input, call_id=None):
        from stagent_lab.runtimes.base import PermissionDecision, ToolOutcome

        out = await self._glob.run(dict(tool_input), self._tool_ctx)
        return ToolOutcome(True, out.output, False, PermissionDecision("allow", "rule"))

    async def save_transcript(self, data) -> None:
        self.transcript = data

    async def load_transcript(self):
        return None


def _runtime_only(fake, n: int, folder) -> float:
    import asyncio

    from stagent_lab.runtimes.anthropic_direct import AnthropicDirectRuntime

    runtime = AnthropicDirectRuntime(base_url=fake.base_url, api_key=KEY, max_tokens=1024)
    ctx = _BareContext(folder, n)
    fake.script(*_turns(n))

    async def go() -> None:
        async for _event in runtime.run(ctx):  # type: ignore[arg-type]
            pass

    t0 = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t0


def run(quick: bool) -> list[dict[str, Any]]:
    from tests.fakes import AnthropicFake

    sizes = pick_sizes(
        quick,
        quick_sizes={"turns": 40, "repeat": 3},
        full_sizes={"turns": 200, "repeat": 5},
        smoke_sizes={"turns": 3, "repeat": 1},
    )
    n, repeat = sizes["turns"], sizes["repeat"]
    bare, engine, loop = [], [], []
    with scratch_dir() as root, AnthropicFake() as fake:
        folder = root / "project"
        folder.mkdir()
        (folder / "README.md").write_text("# bench\n")
        for i in range(repeat):  # interleaved, so machine noise hits all sides alike
            bare.append(_bare(fake, n, folder) / n)
            loop.append(_runtime_only(fake, n, folder) / n)
            engine.append(_engine(fake, n, root / f"r{i}", folder) / n)
    b, e, r = median(bare), median(engine), median(loop)
    return [
        metric(
            "overhead.turn.runtime",
            r * 1000,
            "ms/turn",
            baseline="bare anthropic SDK",
            ratio=r / b,
            note=f"anthropic-direct on the shared tool loop, no engine; {n} tool turns, median "
            f"of {repeat}; bare SDK {b * 1000:.2f} ms/turn",
        ),
        metric(
            "overhead.turn.engine",
            e * 1000,
            "ms/turn",
            baseline="bare anthropic SDK",
            ratio=e / b,
            note=f"{n} tool turns on the loopback Anthropic fake, median of {repeat}; "
            f"bare SDK {b * 1000:.2f} ms/turn; difference {(e - b) * 1000:.2f} ms/turn",
        ),
    ]
