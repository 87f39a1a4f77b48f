"""The workspace service as users meet it: real service processes, real client processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from stagent_lab import Lab, ServiceError, StagentError, WorkspaceLockedError
from stagent_lab.service import connection as conn

ASK = [{"tool": "Bash", "input": {"command": "echo shared"}}, {"result": "decided elsewhere"}]
SLOW = [{"say": "working"}, {"sleep": 3}, {"result": "outlived its client"}]


@pytest.fixture(autouse=True)
def service_mode(monkeypatch):
    monkeypatch.setenv("STAGENT_TRANSPORT", "service")


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "ws"
    yield path
    info = conn.read_connection(path)
    if info is not None and conn.pid_alive(info.pid):
        os.kill(info.pid, signal.SIGTERM)
        _wait_gone(info.pid)


def _wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while conn.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not conn.pid_alive(pid)


def _client(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "STAGENT_TRANSPORT": "service"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_client_processes_share_one_workspace(home, profiles_dir, project):
    with Lab(home=home, profile_dirs=[profiles_dir]) as a:
        assert a.transport == "service"
        handle = a.submit("shared work", profile="guarded", project=project, script=ASK)
        b = _client(
            """
            import sys
            from stagent_lab import Lab
            with Lab(home=sys.argv[1], profile_dirs=[sys.argv[2]]) as b:
                item = b.wait_inbox(timeout=60, task=sys.argv[3]).iloc[0]
                print(b.decide(item["id"], "allow")["decision"])
            """,
            str(home),
            str(profiles_dir),
            handle.id,
        )
        out, err = b.communicate(timeout=120)
        assert b.returncode == 0, err
        assert out.strip() == "allow"
        assert handle.wait(timeout=60).status == "completed"
        assert handle.result == "decided elsewhere"
        decided = a.inbox("decided").iloc[0]
        assert decided["decided_by"].startswith("python:")  # who decided, from which client
        # Both clients talked to one service process.
        info = conn.read_connection(home)
        assert info is not None and info.pid != os.getpid()


def test_a_client_killed_mid_task_does_not_stop_the_task(home, profiles_dir, project):
    a = _client(
        """
        import sys, time
        from stagent_lab import Lab
        lab = Lab(home=sys.argv[1], profile_dirs=[sys.argv[2]])
        h = lab.submit("long", profile="tester", project=sys.argv[3], script=SLOW)
        h.wait_for("running", timeout=60)
        print(h.id, flush=True)
        time.sleep(600)
        """.replace("SLOW", repr(SLOW)),
        str(home),
        str(profiles_dir),
        str(project),
    )
    task_id = a.stdout.readline().strip()
    assert task_id, a.stderr.read()
    a.send_signal(signal.SIGKILL)
    a.wait(30)
    a.stdout.close()
    a.stderr.close()
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        h = lab.task(task_id)
        assert h.wait(timeout=60).status == "completed"
        assert h.result == "outlived its client"


def test_a_killed_service_is_restarted_and_its_task_failed_resumable(home, profiles_dir, project):
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        seen: list[dict] = []
        unsubscribe = lab.subscribe(seen.append)
        h = lab.submit(
            "interrupted",
            profile="tester",
            project=project,
            script=[{"say": "before the crash"}, {"sleep": 60}, {"result": "x"}],
        )
        h.wait_for("running", timeout=60)
        deadline = time.monotonic() + 30
        while "before the crash" not in json.dumps(lab.logs(task=h.id)["payload"].tolist()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        committed = len(lab.logs(task=h.id))
        old = conn.read_connection(home)
        assert lab.workspace.connected() and lab.workspace.connection_error is None
        os.kill(old.pid, signal.SIGKILL)
        assert _wait_gone(old.pid)
        # what the widgets show before the next call: the service is gone, and which one
        assert not lab.workspace.connected()
        assert lab.workspace.connection_error == f"the service (pid {old.pid}) has stopped"
        with pytest.raises(ServiceError, match=r"stopped .*a new one .*has started"):
            lab.tasks()
        assert lab.workspace.connected()
        new = conn.read_connection(home)
        assert new.pid != old.pid and conn.pid_alive(new.pid)
        view = h.view()
        assert (view.status, view.failure_reason) == ("failed", "engine stopped")
        logs = lab.logs(task=h.id)
        assert len(logs) >= committed + 1  # nothing committed was lost; the reconcile row added
        assert logs.iloc[-1]["payload"] == {
            "from": "running",
            "to": "failed",
            "reason": "engine stopped",
        }
        # A scripted resume replays the steps already done, then goes on.
        h.resume(script=[{"say": "before the crash"}, {"result": "resumed after the crash"}])
        assert h.wait(timeout=60).result == "resumed after the crash"
        # The event stream resumed on the new service without a gap or a repeat.
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "result" for e in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        unsubscribe()
        ids = [e["id"] for e in seen if e["id"] is not None]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
        assert any(e.get("event") == "result" for e in seen)


def test_run_no_wait_completes_in_the_service(home, profiles_dir, tmp_path):
    script = tmp_path / "steps.yaml"
    script.write_text("- say: started\n- sleep: 1\n- result: finished after the CLI left\n")
    env = {**os.environ, "STAGENT_TRANSPORT": "service"}
    out = subprocess.run(
        [
            sys.executable, "-m", "stagent_lab.cli", "--home", str(home), "run", "no wait",
            "--profile", "general", "--script", str(script), "--no-wait",
        ],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip().splitlines()[-1]
    with Lab(home=home) as lab:
        h = lab.task(task_id)
        assert h.wait(timeout=60).status == "completed"
        assert h.result == "finished after the CLI left"


def test_only_the_token_holder_gets_in(home, profiles_dir, tmp_path):
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        lab.run("warm", profile="tester", script=[{"result": "ok"}], timeout=60)
        info = conn.read_connection(home)
        sdir = home / ".service"
        assert os.stat(sdir).st_mode & 0o777 == 0o700
        assert os.stat(info.socket).st_mode & 0o777 == 0o600
        assert os.stat(sdir / "service.json").st_mode & 0o777 == 0o600
        transport = httpx.HTTPTransport(uds=info.socket)
        with httpx.Client(transport=transport, base_url="http://x") as http:
            body = json.dumps({"kind": "list_tasks"})
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": info.token}):
                resp = http.post("/v1/call", content=body, headers=headers)
                assert (resp.status_code, resp.text) == (401, "unauthorized")
            assert http.get("/v1/info", headers={"authorization": "Bearer x"}).status_code == 401
            ok = http.post(
                "/v1/call", content=body, headers={"authorization": f"Bearer {info.token}"}
            )
            assert ok.status_code == 200
            auth = {"authorization": f"Bearer {info.token}"}
            # hostile bodies get a typed error naming the problem, and the service carries on
            for bad, expect in (
                (b"{not json", "bad JSON"),
                (json.dumps({"kind": "drop_everything"}).encode(), "drop_everything"),
                (json.dumps({"kind": "list_tasks", "sneaky": 1}).encode(), "sneaky"),
                (b"x" * (64 * 1024 * 1024 + 10), "too large"),
            ):
                resp = http.post("/v1/call", content=bad, headers=auth)
                assert resp.status_code in (400, 413), resp.text
                assert expect in resp.json()["error"]["message"]
            assert http.post("/v1/call", content=body, headers=auth).status_code == 200
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import unix_connect

        for route in ("events", "rpc"):
            wrong = {"authorization": "Bearer wrong"}
            with (  # the upgrade itself is refused
                pytest.raises(InvalidStatus) as refused,
                unix_connect(info.socket, uri=f"ws://x/v1/{route}", additional_headers=wrong),
            ):
                pass
            assert refused.value.response.status_code == 401
        with unix_connect(
            info.socket, uri="ws://x/v1/rpc", additional_headers=auth, max_size=None
        ) as rpc:
            for bad, expect in (
                (b"{not json", "bad JSON"),
                (json.dumps({"kind": "task_status", "task_id": 7}).encode(), "task_id"),
            ):
                rpc.send(bad)
                head, _, answer = rpc.recv(timeout=30).partition(b"\n")
                assert json.loads(head)["status"] == 400
                assert expect in json.loads(answer)["error"]["message"]
            rpc.send(json.dumps({"kind": "ping"}).encode())  # the socket carries on
            head, _, answer = rpc.recv(timeout=30).partition(b"\n")
            assert json.loads(head) == {"status": 200, "media": "application/json"}
            assert json.loads(answer)["result"]["pid"] == info.pid
        with pytest.raises(StagentError, match="Python callable"):
            lab.submit("x", profile="tester", script=lambda p, prof: [{"result": "no"}])
    token = info.token.encode()
    for path in [home / "stagent.duckdb", *(home / ".service").glob("*.log")]:
        assert token not in path.read_bytes(), path


def test_a_long_workspace_path_gets_a_short_socket(tmp_path, profiles_dir):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    try:
        with Lab(home=deep, profile_dirs=[profiles_dir]) as lab:
            info = conn.read_connection(deep)
            assert not Path(info.socket).is_relative_to(deep)
            assert len(os.fsencode(info.socket)) <= conn.MAX_SOCKET_PATH
            assert os.stat(Path(info.socket).parent).st_mode & 0o777 == 0o700
            assert lab.run("x", profile="tester", script=[{"result": "ok"}], timeout=60).result
    finally:
        info = conn.read_connection(deep)
        if info is not None and conn.pid_alive(info.pid):
            os.kill(info.pid, signal.SIGTERM)
            _wait_gone(info.pid)


def test_one_workspace_never_has_two_owners(home, profiles_dir):
    with Lab(home=home, profile_dirs=[profiles_dir]):
        info = conn.read_connection(home)
        second = subprocess.run(
            [sys.executable, "-m", "stagent_lab.service", "--home", str(home)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert second.returncode == 3
        assert f"in use by process {info.pid}" in second.stderr
        with pytest.raises(WorkspaceLockedError, match="this workspace's service"):
            Lab(home=home, in_process=True)
        assert conn.read_connection(home).pid == info.pid  # the first one is untouched


def test_the_service_stops_when_idle_and_starts_again_on_demand(home, profiles_dir):
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        lab.run("x", profile="tester", script=[{"result": "ok"}], timeout=60)
        first = conn.read_connection(home).pid
    assert _wait_gone(first, timeout=60)  # STAGENT_SERVICE_IDLE_TIMEOUT=3 in conftest
    assert conn.read_connection(home) is None
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        assert conn.read_connection(home).pid != first
        assert len(lab.tasks()) == 1


def test_server_status_and_stop(home, profiles_dir, project):
    env = {**os.environ, "STAGENT_TRANSPORT": "service"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "stagent_lab.cli", "--home", str(home), *args],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip

    assert cli("server", "status").returncode == 1  # nothing runs yet
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        h = lab.submit("busy", profile="tester", project=project, script=[{"sleep": 60}])
        h.wait_for("running", timeout=60)
        status = cli("server", "status")
        assert status.returncode == 0
        assert "1 active task(s)" in status.stdout, status.stdout
        assert "python:" in status.stdout, status.stdout
        assert conn.read_connection(home).token not in status.stdout
        refused = cli("server", "stop")
        assert refused.returncode == 1 and "live work" in refused.stdout
        pid = conn.read_connection(home).pid
        stopped = cli("server", "stop", "--force")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert _wait_gone(pid)
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        view = lab.task(h.id).view()
        assert (view.status, view.failure_reason) == ("paused", "engine closed")


def test_a_client_of_another_version_replaces_an_idle_service(home, profiles_dir, monkeypatch):
    import stagent_lab.client.remote as remote

    with Lab(home=home, profile_dirs=[profiles_dir]) as first:
        old = conn.read_connection(home)
        # Busy (a client is connected): a client of another version is told, and it stays.
        monkeypatch.setattr(remote, "__version__", "9.9.9")
        with pytest.raises(
            ServiceError, match=r"runs stagent_lab 0\.1\.0 .*this client is 9\.9\.9"
        ):
            Lab(home=home)
        assert conn.pid_alive(old.pid)
        monkeypatch.setattr(remote, "__version__", old.version)
        assert len(first.tasks()) == 0
    # Idle (no client, no live work): it is replaced by a service of the client's version.
    monkeypatch.setattr(remote, "__version__", "9.9.9")
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        new = conn.read_connection(home)
        assert new.pid != old.pid
        assert _wait_gone(old.pid)
        assert lab.tasks().empty


def test_a_refused_connect_leaves_no_socket_behind(tmp_path):
    """A client that reaches a dead service's socket gets ConnectError and leaks nothing (the
    stock httpcore backend leaves that socket to the garbage collector)."""
    import gc
    import socket
    import warnings

    path = str(tmp_path / "dead.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.close()  # the file stays, nobody listens: connection refused, as after SIGKILL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for target in (path, str(tmp_path / "missing.sock")):
            transport = conn.uds_transport(target)
            with (
                httpx.Client(transport=transport, base_url="http://x") as http,
                pytest.raises(httpx.ConnectError),
            ):
                http.get("/v1/info")
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_a_schedule_fires_in_the_service_after_every_client_left(home, profiles_dir):
    """Real processes: the client adds a one-shot schedule a few seconds ahead and leaves; the
    service (idle limit 3 s in tests) stays up for it, fires it, and only then stops."""
    from datetime import UTC, datetime, timedelta

    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        at = datetime.now(UTC) + timedelta(seconds=8)
        sid = lab.schedules.add(
            "unattended", "Job.", at=at, profile="tester", script=[{"result": "fired alone"}]
        )
        pid = conn.read_connection(home).pid
    # no client now: without the schedule the service would stop after 3 s
    time.sleep(4)
    assert conn.pid_alive(pid), "the service stopped with an active schedule"
    assert _wait_gone(pid, timeout=90), "the service did not stop once the schedule was done"
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:  # a new service, same record
        firings = lab.schedules.firings(sid)
        assert list(firings["status"]) == ["succeeded"]
        task = lab.task(firings["task_id"].iloc[0])
        assert (task.status, task.result) == ("completed", "fired alone")
        assert conn.read_connection(home).pid != pid


def test_quick_calls_ride_one_socket_and_the_rest_go_over_http(home, profiles_dir, monkeypatch):
    """Quick calls share the call socket; a call that waits, a tabular answer, a large request
    or a call made while the socket is busy goes over HTTP, and all of them work."""
    from stagent_lab.client import remote

    over_http: list[str] = []
    real = remote.RemoteWorkspace._post_call

    def post(self, body):
        over_http.append(json.loads(body)["kind"])
        return real(self, body)

    monkeypatch.setattr(remote.RemoteWorkspace, "_post_call", post)
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        over_http.clear()  # connecting is over
        h = lab.submit("quick", profile="tester", script=[{"result": "ok"}])
        assert h.wait(60).status == "completed"
        lab.settings()
        assert over_http == []
        lab.sql("SELECT 1 AS x")
        assert over_http == ["sql"]
        lab._ws._rpc._lock.acquire()  # another thread's call holds the socket
        try:
            assert lab.task(h.id).status == "completed"
        finally:
            lab._ws._rpc._lock.release()
        assert over_http[1:] == ["resolve_task_id", "get_task", "task_status"]
        from stagent_lab.api import requests as rq

        lab.call(rq.WaitInbox(timeout=0))  # a call that waits never holds the socket
        assert over_http[-1] == "wait_inbox"
        lab._ws._rpc._conn.close()  # the socket closed under us: nothing was sent on it
        assert lab.settings() and over_http[-1] == "get_settings"
        n = len(over_http)
        assert lab.task(h.id).status == "completed"  # and the next call reopens it
        assert len(over_http) == n
        big = "word " * (remote.WS_MAX_REQUEST // 5 + 10)
        with pytest.raises(StagentError):  # a typed answer, over HTTP
            lab.submit(big, profile="no-such-profile")
        assert over_http[-1] == "submit_task"


def test_a_filtered_subscription_gets_only_the_events_it_names(home, profiles_dir):
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        got: list[dict] = []
        unsubscribe = lab._ws.subscribe(got.append, events=frozenset({"status"}))
        try:
            h = lab.run("filtered", profile="tester", script=[{"say": "hi"}, {"result": "ok"}])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                e.get("task_id") == h.id and e.get("status") == "completed" for e in got
            ):
                time.sleep(0.05)
        finally:
            unsubscribe()
        mine = [e for e in got if e.get("task_id") == h.id]
        assert {e["event"] for e in got} == {"status"}
        assert [e["status"] for e in mine][-1] == "completed"
        assert "running" in [e["status"] for e in mine]
        logs = lab.logs(h.id)
        assert "assistant_text" in set(logs["event"])  # the unnamed events still happened


def test_a_sql_answer_that_breaks_off_says_so_and_the_next_query_works(home, profiles_dir):
    """lab.sql through the service is streamed: a query that fails after its first rows were
    sent ends the stream early, and the client says where to look instead of returning rows."""
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        df = lab.sql("SELECT i FROM range(400000) t(i) ORDER BY i")
        assert len(df) == 400000 and df["i"].iloc[-1] == 399999
        with pytest.raises(StagentError, match="broke off before its end") as info:
            lab.sql(
                "SELECT CASE WHEN i < 1500000 THEN i ELSE error('boom at ' || i) END AS v "
                "FROM range(2000000) t(i)"
            )
        assert "service.log" in str(info.value)
        assert lab.sql("SELECT 41 + 1 AS x")["x"].tolist() == [42]
    log = (conn.service_dir(home) / conn.LOG_FILE).read_text()
    assert "broke off after" in log and "boom at" in log
