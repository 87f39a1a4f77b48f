"""Runtime health and routing: explicit → preferredRuntime → the workspace default
(``runtimes.default``) → first usable supported; never a silent offline fallback."""

from __future__ import annotations

import pytest

from stagent_lab import Lab, RuntimeNotAvailableError, SettingError
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
        # Nothing usable and nothing chosen: no offline fallback, one line saying what to do.
        with pytest.raises(RuntimeNotAvailableError) as err:
            lab.submit("x", profile="router", project=project)
        text = str(err.value)
        assert "\n" not in text
        assert text.startswith(
            "no usable runtime for profile router: anthropic-direct and ollama are not usable"
        )
        assert "runtime='scripted'" in text and "runtimes.default" in text
        assert lab.tasks().empty  # nothing was submitted
        # The workspace says so: the scripted runtime, with the reason in the log.
        lab.set_setting("runtimes.default", "scripted")
        h = lab.submit("x", profile="router", project=project)
        assert h.view().runtime_id == "scripted"
        h.wait(timeout=60)
        notes = [p["message"] for p in h.logs().query("event == 'notice'")["payload"]]
        assert any(n.startswith("anthropic-direct not usable: ") for n in notes)
        assert notes[-1] == "using the workspace default runtime scripted (runtimes.default)"


def test_workspace_default_comes_after_the_profiles_preference(tmp_path, profiles_dir, project):
    write_profile(profiles_dir, "router", PROFILE)
    with OllamaFake() as fake:
        fake.script({"text": "local", "usage": {"prompt_eval_count": 5, "eval_count": 2}})
        opts = {"ollama": {"base_url": fake.base_url}}
        with Lab(home=tmp_path / "ws", profile_dirs=[profiles_dir], runtime_options=opts) as lab:
            lab.set_setting("runtimes.default", "ollama")
            h = lab.submit("x", profile="router", project=project).wait(timeout=60)
            assert h.view().runtime_id == "ollama"
            notes = [p["message"] for p in h.logs().query("event == 'notice'")["payload"]]
            assert "using the workspace default runtime ollama (runtimes.default)" in notes
            # A preferred runtime that is usable wins over the workspace default.
            lab.set_setting("runtimes.default", "scripted")
            h = lab.submit("x", profile="router", project=project, runtime="ollama")
            assert h.view().runtime_id == "ollama"


def test_workspace_default_setting_is_checked(lab, profiles_dir, project):
    with pytest.raises(SettingError, match=r"runtimes\.default"):
        lab.set_setting("runtimes.default", "no spaces allowed")
    write_profile(profiles_dir, "router", PROFILE)
    lab.set_setting("runtimes.default", "warp")  # not a runtime: noted, then routing goes on
    with pytest.raises(RuntimeNotAvailableError, match="not usable here"):
        lab.submit("x", profile="router", project=project)
    lab.set_setting("runtimes.default", "")  # empty: no default
    assert lab.settings()["runtimes.default"] == ""


def test_explicit_runtime_errors(lab, profiles_dir):
    write_profile(profiles_dir, "router", PROFILE)
    with pytest.raises(RuntimeNotAvailableError, match="does not support runtime 'openai-direct'"):
        lab.submit("x", profile="router", runtime="openai-direct")
    with pytest.raises(RuntimeNotAvailableError, match=r"not usable: .*ANTHROPIC_API_KEY"):
        lab.submit("x", profile="router", runtime="anthropic-direct")
    with pytest.raises(RuntimeNotAvailableError, match="valid runtimes: claude-code, "):
        lab.submit("x", profile="router", runtime="gpt-cli")


def test_auto_routing_explains_the_profile_choice(lab, project):
    lab.set_setting("runtimes.default", "scripted")
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
