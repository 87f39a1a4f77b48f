from test_codex_app_server_cli import *  # noqa
def test_show(cx_lab, fake, project):
    cmd = "touch seen.txt"
    fake.script(exec_turn(cmd), exec_turn(cmd, text="Once more."), final("Touched twice."))
    handle = cx_lab.submit("Touch twice", profile="cx-guarded", project=project)
    item = cx_lab.wait_inbox(WAIT, task=handle.id).iloc[0]
    cx_lab.decide(item["id"], "always")
    handle.wait(WAIT)
    print()
    print(cx_lab.logs(task=handle.id)[["event", "tool_name", "payload"]].to_string(max_colwidth=150))
    fake.script(exec_turn("touch x.txt"), final("ok"))
    h2 = cx_lab.submit("Touch", profile="cx-guarded", project=project)
    item = cx_lab.wait_inbox(WAIT, task=h2.id).iloc[0]
    cx_lab.decide(item["id"], "deny", "Never touch x.")
    h2.wait(WAIT)
    for r in fake.response_requests[-1:]:
        print([ (i.get("type"), str(i.get("output") or i.get("content"))[:200]) for i in r.body["input"][-4:]])
