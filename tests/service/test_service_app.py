"""The service's ASGI app in this process (Starlette's test client, no socket): the order of a
submit's answer and the task's creation, and what a failed submit leaves behind."""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from stagent_lab.api import requests as rq
from stagent_lab.api import wire
from stagent_lab.service.app import build_app
from stagent_lab.service.core import WorkspaceService

TOKEN = "t" * 43


@pytest.fixture
def served(tmp_path, profiles_dir):
    service = WorkspaceService(tmp_path / "ws", profile_dirs=[profiles_dir])
    app = build_app(service, TOKEN, on_shutdown=lambda: None)
    client = TestClient(app, headers={"authorization": f"Bearer {TOKEN}"})
    try:
        yield service, client
    finally:
        client.close()
        app.state.call_pool.shutdown(wait=True)
        service.close()


def _call(client: TestClient, request: rq.Request) -> tuple[int, dict]:
    resp = client.post("/v1/call", content=wire.encode_request(request))
    out = json.loads(resp.content)
    return resp.status_code, out.get("result", out)


def _slow_submit(i: int, project) -> rq.Request:
    return rq.build(
        rq.SubmitTask, prompt=f"p{i}", profile="tester", project=str(project),
        script=[{"sleep": 5}, {"result": "late"}],
    )  # fmt: skip


def _rpc(ws, body: bytes) -> tuple[dict, bytes]:
    """One call on the ``/v1/rpc`` socket: (its header, its body)."""
    ws.send_bytes(body)
    head, _, answer = ws.receive_bytes().partition(b"\n")
    return json.loads(head), answer


def _settled(service, ids: list[str], want: set[str], timeout: float = 30) -> set[str]:
    """The tasks' statuses once they are all in ``want`` (or as they stand at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        states = {service.task_snapshot(i)["status"] for i in ids}
        if states <= want or time.monotonic() >= deadline:
            return states
        time.sleep(0.05)


def test_a_submit_answers_first_then_the_task_is_created_in_order(served, project):
    service, client = served
    posted: list[str] = []
    real_post = service.engine.post

    def spy(fn):
        posted.append("post")
        real_post(fn)

    service.engine.post = spy  # what the app hands the engine, and when
    ids = []
    for i in range(10):
        code, view = _call(client, _slow_submit(i, project))
        assert code == 200 and view["status"] == "queued"
        # A cancel right after the answer finds the task (its creation was posted before this
        # connection's next request was read).
        code, out = _call(client, rq.CancelTask(task_id=view["id"]))
        assert code == 200, out
        ids.append(view["id"])
    assert posted.count("post") >= 10
    assert _settled(service, ids, {"cancelled"}) == {"cancelled"}


def test_calls_on_the_rpc_socket_are_answered_in_order(served, project):
    """The same guarantee on ``/v1/rpc``: a submit's creation is posted once its answer is
    sent, before the socket's next call is read, so a cancel right after finds the task."""
    service, client = served
    with client.websocket_connect("/v1/rpc") as ws:
        ids = []
        for i in range(10):
            head, body = _rpc(ws, wire.encode_request(_slow_submit(i, project)))
            assert head == {"status": 200, "media": "application/json"}
            view = json.loads(body)["result"]
            head, body = _rpc(ws, wire.encode_request(rq.CancelTask(task_id=view["id"])))
            assert head["status"] == 200, body
            ids.append(view["id"])
        head, body = _rpc(ws, b'{"kind": "cancel_task", "task_id": "nope"}')
        assert head["status"] == 409 and b"nope" in body
    assert _settled(service, ids, {"cancelled"}) == {"cancelled"}


def test_a_submit_that_fails_creates_nothing(served, project):
    service, client = served
    code, out = _call(
        client, rq.build(rq.SubmitTask, prompt="x", profile="no-such-profile", project=str(project))
    )
    assert code in (400, 404), out
    assert "no-such-profile" in out["error"]["message"]
    tasks = service.handle(rq.ListTasks())
    assert tasks.num_rows == 0


def test_the_held_creation_is_posted_even_when_the_answer_cannot_be_sent(served, project):
    """The creation is released in a finally: a client gone before the answer still gets a
    task that runs (it was announced as queued)."""
    service, client = served
    from stagent_lab.service import app as app_mod

    sent: list[bool] = []
    real_call = app_mod.Response.__call__

    async def failing(self, scope, receive, send):
        sent.append(True)
        raise ConnectionResetError("client went away")

    app_mod.Response.__call__ = failing
    try:
        with pytest.raises(ConnectionResetError):
            request = rq.build(
                rq.SubmitTask, prompt="gone", profile="tester", project=str(project),
                script=[{"result": "ran anyway"}],
            )  # fmt: skip
            _call(client, request)
    finally:
        app_mod.Response.__call__ = real_call
    assert sent
    deadline = time.monotonic() + 30
    rows = []
    while time.monotonic() < deadline:
        rows = service.handle(rq.ListTasks()).to_pylist()
        if rows and rows[0]["status"] == "completed":
            break
        time.sleep(0.05)
    assert [(r["title"], r["status"]) for r in rows] == [("gone", "completed")]


def test_held_work_is_posted_exactly_once_whoever_lets_go_first():
    from stagent_lab.service.app import _Held

    got: list = []
    answered = _Held(got.extend)
    answered.add(["a"])
    answered.release()
    answered.release()  # the answer's release, then an error path's: once
    assert got == ["a"]

    given_up = _Held(got.extend)
    given_up.release()  # the request was cancelled while its handler still ran
    assert got == ["a"]
    given_up.add(["b", "c"])  # the handler finishes later: its thread posts them itself
    given_up.release()
    assert got == ["a", "b", "c"]


BROKEN_LATE = (
    "SELECT CASE WHEN i < 1500000 THEN i ELSE error('boom at ' || i) END AS v "
    "FROM range(2000000) t(i)"
)


def test_a_sql_answer_is_streamed_batch_by_batch_and_reads_back_whole(served):
    import pyarrow as pa

    _, client = served
    query = rq.Sql(query="SELECT i, 'row ' || i AS label FROM range(300000) t(i) ORDER BY i")
    resp = client.post("/v1/call", content=wire.encode_request(query))
    assert resp.status_code == 200 and resp.headers["content-type"] == wire.ARROW
    assert "content-length" not in resp.headers  # sent while computed, length unknown
    batches = list(pa.ipc.open_stream(resp.content))
    assert len(batches) >= 3  # 122,880 rows a batch
    table = wire.decode_result(query, resp.content, wire.ARROW)
    assert table.num_rows == 300000
    assert table["i"].to_pylist() == list(range(300000))
    assert table["label"][299999].as_py() == "row 299999"


def test_a_sql_answer_on_the_rpc_socket_comes_whole(served):
    _, client = served
    query = rq.Sql(query="SELECT 7 AS x")
    with client.websocket_connect("/v1/rpc") as ws:
        head, body = _rpc(ws, wire.encode_request(query))
    assert head == {"status": 200, "media": wire.ARROW}
    assert wire.decode_result(query, body, wire.ARROW)["x"].to_pylist() == [7]


def test_a_query_that_cannot_run_fails_before_anything_is_sent(served):
    _, client = served
    status, out = _call(client, rq.Sql(query="SELEC nope"))
    assert status == 400 and out["error"]["type"] == "InvalidInput"
    assert "syntax error" in out["error"]["message"]
    status, out = _call(client, rq.Sql(query="SELECT error('early') AS v"))  # the first batch
    assert status >= 400 and "early" in out["error"]["message"]
    status, out = _call(client, rq.Sql(query="DELETE FROM tasks"))
    assert status == 400 and "read-only" in out["error"]["message"]


def test_a_query_that_fails_midway_breaks_off_and_the_service_goes_on(served, caplog):
    import duckdb

    _, client = served
    with pytest.raises((duckdb.Error, OSError), match="boom at"):  # Arrow's reader re-raises
        client.post("/v1/call", content=wire.encode_request(rq.Sql(query=BROKEN_LATE)))
    assert any("broke off after" in r.getMessage() and "boom at" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    query = rq.Sql(query="SELECT count(*) AS n FROM range(1000)")
    resp = client.post("/v1/call", content=wire.encode_request(query))
    assert wire.decode_result(query, resp.content, wire.ARROW)["n"].to_pylist() == [1000]


def test_an_empty_sql_answer_streams_its_columns(served):
    _, client = served
    query = rq.Sql(query="SELECT i, 'x' AS label FROM range(10) t(i) WHERE i > 100")
    resp = client.post("/v1/call", content=wire.encode_request(query))
    assert resp.status_code == 200 and "content-length" not in resp.headers
    table = wire.decode_result(query, resp.content, wire.ARROW)
    assert table.num_rows == 0 and table.column_names == ["i", "label"]
