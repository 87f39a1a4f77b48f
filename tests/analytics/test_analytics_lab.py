"""Lab analytics methods on real scripted runs: they flush first and agree with the ledger."""

from __future__ import annotations

import pytest

SAY = {"say": "Looked at the code and found two issues worth fixing before release."}


def _run(lab, model: str, steps, **kw):
    return lab.run("check the code", profile="tester", script=steps, model=model, timeout=30, **kw)


def test_lab_cost_outcomes_failures(lab):
    ok1 = _run(lab, "claude-haiku-4-5", [SAY, {"result": "ok"}])
    ok2 = _run(lab, "gpt-5-mini", [SAY, SAY, {"result": "ok"}])
    bad = _run(lab, "claude-haiku-4-5", [SAY, {"fail": "upstream returned HTTP 503"}])
    limit = _run(lab, "gpt-5-mini", [SAY, SAY, SAY], max_turns=2)
    assert [h.status for h in (ok1, ok2, bad, limit)] == [
        "completed",
        "completed",
        "failed",
        "failed",
    ]

    usage = lab.usage()
    by_model = lab.cost_by("model")
    assert set(by_model["model"]) == {"claude-haiku-4-5", "gpt-5-mini"}
    for model, cost in zip(by_model["model"], by_model["cost_usd"], strict=True):
        assert cost > 0
        assert cost == pytest.approx(usage[usage["model"] == model]["cost_usd"].sum())
    assert by_model["calls"].sum() == len(usage) == 1 + 2 + 1 + 2

    total = lab.cost_by()
    assert total["cost_usd"].iloc[0] == pytest.approx(usage["cost_usd"].sum())
    assert lab.cost_by("profile", "day")["profile"].tolist() == ["tester"]

    out = lab.outcomes()
    row = out[out["profile"] == "tester"].iloc[0]
    assert (row["tasks"], row["completed"], row["failed"]) == (4, 2, 2)
    assert row["success_rate"] == pytest.approx(0.5)
    assert row["turns_p50"] == pytest.approx(1.5)  # turns 1, 2, 1, 2
    assert row["duration_p95_s"] >= row["duration_p50_s"] > 0

    fails = lab.failures()
    assert sorted(fails["reason"]) == ["max turns reached (N)", "upstream returned HTTP N"]
    assert set(fails["last_task_id"]) == {bad.id, limit.id}

    with pytest.raises(ValueError, match="valid dimensions"):
        lab.cost_by("colour")


def test_lab_plots(lab):
    pytest.importorskip("matplotlib")
    _run(lab, "claude-haiku-4-5", [SAY, {"result": "ok"}])
    _run(lab, "claude-haiku-4-5", [{"fail": "nope"}])
    fig = lab.plot_cost(by="model")
    assert [line.get_label() for line in fig.axes[0].lines] == ["claude-haiku-4-5"]
    succ = lab.plot_success()
    assert [b.get_width() for b in succ.axes[0].patches] == pytest.approx([50.0])
    assert lab.plot_cost().axes[0].get_title() == "Cost per day"
