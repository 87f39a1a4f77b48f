"""The contract at its edges: bad values are refused or repaired, the engine keeps working,
nothing is lost on close or when commits fail, and many threads at once corrupt nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import duckdb
import pytest

from stagent_lab import InvalidInput, Lab, SettingError
from stagent_lab.api.requests import Ping
from tests.conftest import engine_of
from tests.store.test_writer_faults import FailingCommits

SAY = [{"say": "working"}, {"result": "done"}]


def test_out_of_range_numbers_are_refused_naming_the_field(lab, project):
    with pytest.raises(InvalidInput, match=r"max_turns: .*less than or equal to 10000"):
        lab.submit("x", profile="tester", project=project, max_turns=2**31, script=SAY)
    with pytest.raises(InvalidInput, match=r"max_budget_usd: .*\(got inf\)"):
        lab.submit("x", profile="tester", project=project, max_budget_usd=float("inf"))
    with pytest.raises(InvalidInput, match="max_budget_usd"):
        lab.submit("x", profile="tester", project=project, max_budget_usd=float("nan"))
    with pytest.raises(InvalidInput, match=r"max_turns: .*not true/false"):
        lab.submit("x", profile="tester", project=project, max_turns=True)
    # The engine is untouched and takes the next task.
    assert lab.run("fine", profile="tester", project=project, script=SAY, timeout=30).result == (
        "done"
    )
    assert len(lab.tasks()) == 1


def test_text_that_does_not_encode_is_repaired_end_to_end(lab, project):
    bad = b"notes-\xff.txt".decode("utf-8", "surrogateescape")
    (project / "notes-ok.txt").write_text("x")
    os.rename(project / "notes-ok.txt", os.fsencode(project) + b"/notes-\xff.txt")
    h = lab.run(
        f"list {bad} and {chr(0xDC00)}",
        profile="tester",
        project=project,
        script=[{"tool": "Glob", "input": {"pattern": "*.txt"}}, {"result": f"saw {bad}"}],
        timeout=30,
    )
    assert h.status == "completed"
    assert h.result == "saw notes-\ufffd.txt"
    outputs = [p.get("output", "") for p in h.logs()["payload"]]
    assert any("notes-\ufffd.txt" in o for o in outputs)
    assert lab.tasks().iloc[0]["title"] == "list notes-\ufffd.txt and \ufffd"


def test_bad_settings_name_the_key_and_the_valid_range(lab):
    with pytest.raises(SettingError, match=r"'engine.max_concurrent' must be an integer from 1"):
        lab.set_setting("engine.max_concurrent", "abc")
    with pytest.raises(SettingError, match="from 1 to 256"):
        lab.set_setting("engine.max_concurrent", 0)
    with pytest.raises(
        SettingError, match=r"unknown setting 'engine.max_concurent'.*max_concurrent"
    ):
        lab.set_setting("engine.max_concurent", 2)
    with pytest.raises(SettingError, match="one of global, profile, project"):
        lab.set_setting("inbox.default_always_scope", "everywhere")
    lab.set_setting("engine.max_concurrent", "2")
    assert lab.settings()["engine.max_concurrent"] == "2"


def test_bad_values_stored_by_an_older_version_do_not_break_open(tmp_path, profiles_dir, project):
    home = tmp_path / "ws-old"
    Lab(home=home, profile_dirs=[profiles_dir]).close()
    con = duckdb.connect(str(home / "stagent.duckdb"))
    con.execute("INSERT INTO settings VALUES ('engine.max_concurrent', 'abc'), ('x.y', '1')")
    con.close()
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        assert lab.settings()["engine.max_concurrent"] == "4"  # the default applies
        h = lab.run("ok", profile="tester", project=project, script=SAY, timeout=30)
        assert h.status == "completed"


def test_close_with_queued_tasks_leaves_them_paused_and_resumable(tmp_path, profiles_dir, project):
    home = tmp_path / "ws-close"
    lab = Lab(home=home, profile_dirs=[profiles_dir], max_concurrent=1)
    slow = [{"sleep": 30}, {"result": "late"}]
    handles = [
        lab.submit(f"t{i}", profile="tester", project=project, script=slow) for i in range(3)
    ]
    handles[0].wait_for("running", timeout=30)
    lab.close()
    with Lab(home=home, profile_dirs=[profiles_dir]) as again:
        rows = again.tasks().set_index("id")
        assert [rows.loc[h.id, "status"] for h in handles] == ["paused"] * 3
        assert set(rows["failure_reason"]) == {"engine closed"}
        resumed = again.task(handles[2].id).resume(script=SAY)
        assert resumed.wait(timeout=30).status == "completed"


def test_failed_commits_lose_no_task_once_space_returns(tmp_path, profiles_dir, project):
    home = tmp_path / "ws-full"
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    engine = engine_of(lab)
    failing = engine.call(lambda: _fail_commits(engine, 6))  # 0.2 + 0.4 + … + 6.4 s of outage
    handles = [
        lab.submit(f"during the outage {i}", profile="tester", project=project, script=SAY)
        for i in range(5)
    ]
    for h in handles:
        assert h.wait(timeout=60).status == "completed"
    assert failing.commits_refused > 0
    deadline = time.monotonic() + 60
    while lab.call(Ping())["writer"]["pending"] and time.monotonic() < deadline:
        time.sleep(0.2)
    lab.close()
    with Lab(home=home, profile_dirs=[profiles_dir]) as again:
        rows = again.tasks().set_index("id")
        assert [rows.loc[h.id, "status"] for h in handles] == ["completed"] * 5
        for h in handles:
            statuses = [p["to"] for p in again.logs(task=h.id, event="status")["payload"]]
            assert statuses == ["queued", "running", "completed"]


def _fail_commits(engine, n: int) -> FailingCommits:
    failing = FailingCommits(engine.writer.con, failures=n)
    engine.writer.con = failing
    return failing


@pytest.mark.timeout(600)
def test_eight_threads_for_ten_seconds_corrupt_nothing(lab, project):
    ask = [{"tool": "Write", "input": {"file_path": "out.txt", "content": "x"}}, {"result": "ok"}]
    events: list[list[dict]] = [[] for _ in range(2)]
    unsubs = [lab.subscribe(events[i].append) for i in range(2)]
    submitted: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = time.monotonic() + 10

    def submitter(i: int) -> None:
        while time.monotonic() < stop:
            try:
                h = lab.submit(f"job {i}", profile="guarded", project=project, script=ask)
                with lock:
                    submitted.append(h.id)
                time.sleep(0.2)  # a busy team, not a fork bomb
            except BaseException as exc:  # pragma: no cover - the assertion reports it
                errors.append(exc)

    def decider() -> None:
        while time.monotonic() < stop:
            try:
                for item_id in lab.inbox()["id"]:
                    try:
                        lab.decide(item_id, "allow")
                    except Exception as exc:  # decided by the other decider meanwhile
                        assert "already" in str(exc) or "not running" in str(exc), exc
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

    def subscriber() -> None:
        while time.monotonic() < stop:
            seen: list[dict] = []
            off = lab.subscribe(seen.append)
            time.sleep(0.05)
            off()

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=decider) for _ in range(2)]
    threads += [threading.Thread(target=subscriber) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    deadline = time.monotonic() + 120
    while set(lab.tasks()["status"]) - {"completed"} and time.monotonic() < deadline:
        for item_id in lab.inbox()["id"]:
            lab.decide(item_id, "allow")
        time.sleep(0.1)
    for off in unsubs:
        off()
    df = lab.tasks()
    assert sorted(df["id"]) == sorted(submitted) and len(submitted) > 20
    assert set(df["status"]) == {"completed"}
    # Every task's events are numbered 1..n with no gap or repeat, and stream ids only grow.
    logs = lab.logs()
    for _, group in logs.groupby("task_id"):
        assert sorted(group["seq"]) == list(range(1, len(group) + 1))
    for stream in events:
        ids = [e["id"] for e in stream if e["id"] is not None]
        assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_a_script_that_never_closes_exits_silently(tmp_path, profiles_dir):
    home = tmp_path / "ws-script"
    code = textwrap.dedent(
        f"""
        from stagent_lab import Lab
        lab = Lab(home={str(home)!r}, profile_dirs=[{str(profiles_dir)!r}])
        h = lab.run("no close", profile="tester", script=[{{"result": "bye"}}], timeout=30)
        print(h.id, h.status)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no leak warnings, no traceback
    task_id, status = out.stdout.split()
    assert status == "completed"
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        assert lab.task(task_id).status == "completed"
