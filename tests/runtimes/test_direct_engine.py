"""Direct runtimes through the whole engine: real SDK → loopback fake, cascade, inbox, ledger."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from stagent_lab import Lab
from tests.conftest import write_profile
from tests.fakes import AnthropicFake, OllamaFake, OpenAIFake

KEY = "sk-test-do-not-store-0123456789abcdef"
PROFILE = """\
id: direct
name: Direct
supportedRuntimes: [anthropic-direct, openai-direct, ollama]
allowedTools: [Read, Glob, Bash]
canUseToolPolicy:
  autoApprove: [Glob]
  autoDeny: ["Bash(command:rm *)"]
maxTurns: 10
"""

# Per runtime: the fake, how a tool call is spelled in its script, its usage, and the model.
CASES = {
    "anthropic-direct": (
        AnthropicFake,
        "tool_uses",
        "input",
        lambda i, o: {"input_tokens": i, "output_tokens": o},
        "claude-haiku-4-5",
    ),
    "openai-direct": (
        OpenAIFake,
        "tool_calls",
        "arguments",
        lambda i, o: {"input_tokens": i, "output_tokens": o},
        "gpt-5-mini",
    ),
    "ollama": (
        OllamaFake,
        "tool_calls",
        "arguments",
        lambda i, o: {"prompt_eval_count": i, "eval_count": o},
        "llama3.2",
    ),
}


def _requests(fake):
    for name in ("message_requests", "response_requests", "chat_requests"):
        if hasattr(fake, name):
            return getattr(fake, name)
    raise AssertionError("unknown fake")


@pytest.mark.parametrize("runtime_id", list(CASES))
def test_governed_multi_turn_run(runtime_id, tmp_path, project, profiles_dir):
    fake_cls, calls_key, args_key, usage, model = CASES[runtime_id]
    write_profile(profiles_dir, "direct", PROFILE)

    def turn(text, tool=None, args=None, i=100, o=10):
        t = {"text": text, "usage": usage(i, o)}
        if tool:
            t[calls_key] = [{"name": tool, args_key: args}]
        return t

    with fake_cls() as fake:
        fake.script(
            turn("Listing.", "Glob", {"pattern": "*.md"}, 100, 10),
            turn("Checking.", "Bash", {"command": "echo approved-output"}, 200, 20),
            turn("Cleaning.", "Bash", {"command": "rm -rf src"}, 300, 30),
            turn("All done: README found.", i=400, o=40),
        )
        base = fake.base_url if runtime_id != "openai-direct" else fake.v1_url
        options = {runtime_id: {"base_url": base, "api_key": KEY, "retry_base_s": 0.01}}
        home = tmp_path / "ws"
        with Lab(home=home, profile_dirs=[profiles_dir], runtime_options=options) as lab:
            h = lab.submit(
                "Look at the project",
                profile="direct",
                runtime=runtime_id,
                project=project,
                model=model,
            )
            item = lab.wait_inbox(task=h.id, timeout=60).iloc[0]
            assert item["tool_name"] == "Bash"
            assert item["tool_input"] == {"command": "echo approved-output"}
            lab.decide(item["id"], "allow")
            h.wait(timeout=60)
            assert h.status == "completed", h.failure_reason
            assert h.result.endswith("All done: README found.")

            tiers = [
                (p["behavior"], p["tier"])
                for p in h.logs().query("event == 'tool_decision'")["payload"]
            ]
            assert tiers == [
                ("allow", "profile_auto_approve"),
                ("allow", "human"),
                ("deny", "profile_auto_deny"),
            ]
            reqs = [r.body for r in _requests(fake)]
            assert len(reqs) == 4
            assert "README.md" in str(reqs[1])  # Glob output went back to the model
            assert "approved-output" in str(reqs[2])  # the approved command really ran
            assert "Denied by profile direct policy" in str(reqs[3])  # the deny reached it
            assert (project / "src").is_dir()

            ledger = h.usage()
            assert ledger["input_tokens"].tolist() == [100, 200, 300, 400]
            assert ledger["output_tokens"].tolist() == [10, 20, 30, 40]
            assert set(ledger["model"]) == {model}
            if runtime_id == "ollama":
                assert ledger["cost_usd"].sum() == 0 and set(ledger["pricing_source"]) == {"free"}
            else:
                expected = sum(
                    float(
                        calc_price(
                            Usage(input_tokens=i, output_tokens=o), model_ref=model
                        ).total_price
                    )
                    for i, o in [(100, 10), (200, 20), (300, 30), (400, 40)]
                )
                assert ledger["cost_usd"].sum() == pytest.approx(expected)
                assert set(ledger["pricing_source"]) == {"genai-prices"}
        data = (home / "stagent.duckdb").read_bytes()
        assert KEY.encode() not in data
        assert all(KEY not in str(r.body) for r in _requests(fake))


def test_resume_after_interruption_sends_earlier_turns(tmp_path, project, profiles_dir):
    from tests.fakes import cut_after

    write_profile(profiles_dir, "direct", PROFILE)
    with AnthropicFake() as fake:
        fake.script(
            {
                "text": "Listing.",
                "tool_uses": [{"name": "Glob", "input": {"pattern": "*.md"}}],
                "usage": {"input_tokens": 50, "output_tokens": 5},
            },
            *[cut_after(2, {"text": "never finishes"})] * 4,  # every retry is cut mid-stream
            {"text": "Resumed and done.", "usage": {"input_tokens": 90, "output_tokens": 9}},
        )
        options = {
            "anthropic-direct": {"base_url": fake.base_url, "api_key": KEY, "retry_base_s": 0.01}
        }
        with Lab(home=tmp_path / "ws", profile_dirs=[profiles_dir], runtime_options=options) as lab:
            h = lab.submit(
                "x",
                profile="direct",
                runtime="anthropic-direct",
                project=project,
                model="claude-haiku-4-5",
            ).wait(timeout=60)
            assert h.status == "failed"
            assert "anthropic" in h.failure_reason.lower()
            n_before = len(fake.message_requests)
            h.resume().wait(timeout=60)
            assert h.status == "completed" and h.result.endswith("Resumed and done.")
            resumed = fake.message_requests[n_before].body["messages"]
            # The resumed call carries the first turn and its tool result, not a fresh start.
            assert resumed[0]["content"] == "x"
            assert any(b.get("type") == "tool_use" for b in resumed[1]["content"])
            assert resumed[2]["content"][0]["type"] == "tool_result"
            assert set(h.usage()["activity"]) == {"task_run", "task_resume"}
