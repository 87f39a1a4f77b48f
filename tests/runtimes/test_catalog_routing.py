"""Runtime health and routing: explicit → preferredRuntime → first usable supported → scripted."""

from __future__ import annotations

import pytest

from stagent_lab import Lab, RuntimeNotAvailableError
from tests.conftest import write_profile
from tests.fakes import OllamaFake

PROFILE = """\
id: router
name: Router
supportedRuntimes: [anthropic-direct, ollama]
preferredRuntime: anthropic-direct
allowedTools: [Read]
"""


def test_health_table_says_why(lab):
    df = lab.runtimes(refresh=True).set_index("runtime")
    assert bool(df.loc["scripted", "usable"]) is True
    assert not df.loc["anthropic-direct", "usable"]
    assert "ANTHROPIC_API_KEY" in df.loc["anthropic-direct", "reason"]
    assert "OPENAI_API_KEY" in df.loc["openai-direct", "reason"]
    assert not df.loc["ollama", "usable"] and df.loc["ollama", "reason"]
    assert bool(df.loc["anthropic-direct", "resume"]) is True


def test_key_in_environment_makes_runtime_usable(lab, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-0123456789")
    df = lab.runtimes(refresh=True).set_index("runtime")
    assert bool(df.loc["anthropic-direct", "usable"]) is True


def test_routing_falls_back_with_reasons(tmp_path, profiles_dir, project):
    write_profile(profiles_dir, "router", PROFILE)
    with OllamaFake() as fake:
        fake.script({"text": "local answer", "usage": {"prompt_eval_count": 5, "eval_count": 2}})
        opts = {"ollama": {"base_url": fake.base_url}}
        with Lab(home=tmp_path / "ws", profile_dirs=[profiles_dir], runtime_options=opts) as lab:
            h = lab.submit("x", profile="router", project=project).wait(timeout=60)
            assert h.view().runtime_id == "ollama"
            assert h.result == "local answer"
            notes = [p["message"] for p in h.logs().query("event == 'notice'")["payload"]]
            assert any(n.startswith("anthropic-direct not usable: ") for n in notes)
    with Lab(
        home=tmp_path / "ws2",
        profile_dirs=[profiles_dir],
        runtime_options={"ollama": {"base_url": "http://127.0.0.1:9"}},
    ) as lab:
        h = lab.submit("x", profile="router", project=project)
        assert h.view().runtime_id == "scripted"
        h.wait(timeout=60)
        notes = [p["message"] for p in h.logs().query("event == 'notice'")["payload"]]
        assert notes[-1] == "falling back to the offline scripted runtime"


def test_explicit_runtime_errors(lab, profiles_dir):
    write_profile(profiles_dir, "router", PROFILE)
    with pytest.raises(RuntimeNotAvailableError, match="does not support runtime 'openai-direct'"):
        lab.submit("x", profile="router", runtime="openai-direct")
    with pytest.raises(RuntimeNotAvailableError, match=r"not usable: .*ANTHROPIC_API_KEY"):
        lab.submit("x", profile="router", runtime="anthropic-direct")
    with pytest.raises(RuntimeNotAvailableError, match="valid runtimes: claude-code, "):
        lab.submit("x", profile="router", runtime="gpt-cli")


def test_auto_routing_explains_the_profile_choice(lab, project):
    h = lab.submit("Review the auth middleware for SQL injection", project=project)
    item = lab.wait_inbox(task=h.id, timeout=60).iloc[0]  # its plan asks for `git status`
    lab.decide(item["id"], "deny", "not needed")
    h.wait(timeout=60)
    assert h.info()["profile_id"] == "code-reviewer"
    first = h.logs().query("event == 'notice'").iloc[0]["payload"]["message"]
    assert first.startswith("routed to profile code-reviewer (scores: code-reviewer=")
    general = lab.submit("hello there", project=project)
    assert general.info()["profile_id"] == "general"
    general.wait(timeout=60)
