"""The notebook surface in a real browser: JupyterLab on loopback, driven in headless Chromium.

One scenario, step by step, on one server (starting JupyterLab and a kernel is the slow part):

1. open the quickstart, run its setup and ``%%stagent`` cells, see the pending approval in the
   task card (with the offline-demo badge and its limits), click Allow, see the rendered result;
2. save and reload the page: the card re-renders from the kernel's state, still completed;
3. launch a second task and approve it from the ``%stagent inbox`` widget;
4. launch a third task, start a cell that sleeps 20 s, click Allow in the card while that cell
   is still running, and see the task complete before the sleep ends, while the kernel still
   reads Busy. This needs JupyterLab to send widget messages over a kernel subshell
   (``commsOverSubshells``), which this test sets through the JupyterLab settings overrides
   file, and the server config this package installs (comm_msg status is not tracked);
5. Tab after ``%%stagent --profile co`` lists the profiles;
6. save, then ``jupyter nbconvert --to html`` the notebook: the export shows the result text;
7. restart the kernel while a task waits: the old card greys out, disables Allow and says what
   to do;
8. reload: the widgets' kernel is gone, so each output shows its static copy, and no
   "Error displaying widget";
9. open ``05_chat.ipynb``: a chat turn with a ``@df`` mention and an inline approval.

Screenshots are kept in ``artifacts/`` (git-ignored). With ``STAGENT_DOC_SHOTS=1`` the pictures
of docs/notebook.md are refreshed from the same run. Without /usr/bin/chromium the test is
skipped with the reason, except under CI (``CI=true``), where it fails: ``make test`` installs
Chromium itself (``make sysdeps``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Settings applied as JupyterLab defaults (the admin "overrides.json" mechanism).
OVERRIDES = {
    # Widget (comm) messages go to a kernel subshell, so a click is handled while a cell runs.
    "@jupyterlab/apputils-extension:kernels-settings": {"commsOverSubshells": "perCommTarget"},
    # Offline and quiet: no news or update checks.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    # Every cell in the DOM, so locators find cells that are scrolled out of view.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}
EXTRA_CELLS = [
    "%%stagent --profile code-reviewer --runtime scripted --project {project} --name second\n"
    "Review it again; this time the approval comes from the inbox.",
    "%stagent inbox",
    "%%stagent --profile code-reviewer --runtime scripted --project {project} --name third\n"
    "One more review, approved while another cell is busy.",
    "import time\nprint('sleeping', flush=True)\ntime.sleep(20)\nprint('slept')",
    "%stagent monitor",
    "%stagent profiles",
    "%%stagent --profile code-reviewer --runtime scripted --project {project} --name fourth\n"
    "A review whose kernel restarts while it waits.",
    "",  # Tab completion is typed here
]
N_EXTRA = len(EXTRA_CELLS)
DOCS = ROOT / "docs"
NOTEBOOK_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext && w.sessionContext.session
    && w.sessionContext.session.kernel;
  return !!(w && w.content && w.content.widgets.length >= %d && kernel
            && kernel.status === 'idle');
}"""


SAVED = "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (required under CI; `make sysdeps` installs it)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(str):
    """The notebook's URL, plus the chat notebook's URL, the root folder and the environment."""

    def __new__(cls, url: str, *, chat: str, root: Path, env: dict[str, str]) -> Server:
        out = super().__new__(cls, url)
        out.chat, out.root, out.env = chat, root, env
        return out


@contextlib.contextmanager
def jupyter_lab(tmp: Path, notebook=None):
    """A JupyterLab server on loopback with every Jupyter and stagent folder under ``tmp``,
    opened on the quickstart plus EXTRA_CELLS (or on ``notebook``)."""
    root = tmp / "notebooks"
    root.mkdir()
    nb = notebook
    if nb is None:
        nb = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
        nb.cells.extend(nbformat.v4.new_code_cell(src) for src in EXTRA_CELLS)
    nbformat.write(nb, root / "01_quickstart.ipynb")
    shutil.copy(ROOT / "notebooks" / "05_chat.ipynb", root / "05_chat.ipynb")
    app_settings = tmp / "app-settings"
    app_settings.mkdir()
    (app_settings / "overrides.json").write_text(json.dumps(OVERRIDES, indent=2))
    dirs = {
        name: tmp / name
        for name in ("home", "config", "data", "runtime", "settings", "workspaces", "stagent")
    }
    for d in dirs.values():
        d.mkdir()
    env = {
        **os.environ,
        "HOME": str(dirs["home"]),
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "STAGENT_HOME": str(dirs["stagent"]),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    token, port = secrets.token_hex(16), _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.token={token}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={app_settings}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    log = (tmp / "jupyter.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited:\n{(tmp / 'jupyter.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{base}/api/status", params={"token": token}, timeout=2)
                if r.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("jupyter lab did not answer /api/status within 90 s")
            time.sleep(0.3)
        yield Server(
            f"{base}/lab/tree/01_quickstart.ipynb?token={token}",
            chat=f"{base}/lab/tree/05_chat.ipynb?token={token}",
            root=root,
            env=env,
        )
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quickstart_in_chromium_card_inbox_reload_and_busy_kernel(tmp_path):
    if not CHROMIUM.exists():
        _unavailable("headless Chromium (/usr/bin/chromium) is not installed")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "notebook-browser.png"
    failure_shot = ARTIFACTS / "notebook-browser-failure.png"
    failure_shot.unlink(missing_ok=True)
    with jupyter_lab(tmp_path) as server, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        try:
            _scenario(page, server, expect)
            page.screenshot(path=str(shot), full_page=True)
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure_shot))
            raise
        finally:
            ctx.close()
    assert shot.stat().st_size > 10_000


def _picture(locator, name):
    """Keep a screenshot in artifacts/; with STAGENT_DOC_SHOTS=1 also as docs/<name>.png."""
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if os.environ.get("STAGENT_DOC_SHOTS", "").strip() in ("1", "true", "yes"):
        shutil.copy(ARTIFACTS / f"{name}.png", DOCS / f"{name}.png")


def _command(page, name, wait=True):
    """Run a JupyterLab command; ``wait=False`` for one that opens a dialog (its promise only
    settles once the dialog is answered)."""
    if wait:
        page.evaluate(f"() => window.jupyterapp.commands.execute('{name}')")
    else:
        page.evaluate(f"() => {{ window.jupyterapp.commands.execute('{name}'); }}")


def _scenario(page, server, expect):
    url = str(server)
    n_cells = 18 + N_EXTRA
    page.goto(url)
    page.wait_for_function(NOTEBOOK_READY % n_cells, timeout=90_000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    sources = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map(c => c.model.sharedModel.getSource())"
    )
    launch = next(i for i, s in enumerate(sources) if s.startswith("%%stagent"))
    first_extra = len(sources) - N_EXTRA
    second, inbox_cell, third, sleeper, monitor_cell, profiles_cell, fourth, typing = range(
        first_extra, len(sources)
    )

    def run(index):
        """Run one cell of the current notebook (not waiting for it to finish)."""
        cells.nth(index).scroll_into_view_if_needed()
        page.evaluate(
            """(i) => {
              const panel = window.jupyterapp.shell.currentWidget;
              panel.content.activeCellIndex = i;
              panel.content.mode = "command";
              window.jupyterapp.commands.execute("notebook:run-cell");
            }""",
            index,
        )

    def card_of(index):
        return cells.nth(index).locator(".stg-card")

    # 1. Setup, launch, approve in the card.
    run(1)
    expect(cells.nth(1).locator(".jp-OutputArea-output")).to_contain_text("workspace:")
    run(launch)
    card = card_of(launch)
    approval = card.locator(".stg-approval")
    expect(approval).to_contain_text("git status --short")
    expect(approval.locator(".stg-rule")).to_have_value("Bash(command:git status *)")
    expect(card).to_have_attribute("data-status", "waiting")
    expect(card.locator(".stg-offline-badge")).to_have_text("offline demo")
    expect(card.locator(".stg-turns")).to_contain_text(" of 20 turns")
    approval.get_by_role("button", name="Allow", exact=True).click()
    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".stg-approval")).to_have_count(0)
    expect(card.locator(".stg-result-text h2").first).to_have_text("Findings")  # rendered
    expect(card.locator(".stg-log")).to_contain_text("allow by human")
    expect(card.locator(".stg-log")).to_contain_text("result: Findings")
    expect(cells.nth(launch).locator(".stg-static")).to_be_hidden()  # the copy hides
    _picture(card, "notebook-card")

    # 2. Reconnect: save, reload, and the card comes back from the kernel's state.
    _command(page, "docmanager:save")
    page.reload()
    page.wait_for_function(NOTEBOOK_READY % n_cells, timeout=90_000)
    card = card_of(launch)
    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".stg-log")).to_contain_text("allow by human")

    # 3. A second task, approved from the inbox widget.
    run(second)
    expect(card_of(second).locator(".stg-approval")).to_contain_text("git status --short")
    run(inbox_cell)
    inbox = cells.nth(inbox_cell).locator(".stg-inbox")
    item = inbox.locator(".stg-approval")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Review it again")
    _picture(inbox, "notebook-inbox")
    item.get_by_role("button", name="Allow", exact=True).click()
    expect(inbox.locator(".stg-approval")).to_have_count(0)
    expect(inbox.locator(".stg-count")).to_have_text("0 pending")
    expect(inbox.locator(".stg-recent tbody tr").first).to_contain_text("notebook:")
    expect(card_of(second)).to_have_attribute("data-status", "completed")

    # The monitor and the profiles view render from their state too.
    run(monitor_cell)
    monitor = cells.nth(monitor_cell).locator(".stg-monitor")
    expect(monitor.locator(".stg-tile").first).to_contain_text("active agents")
    expect(monitor.locator(".stg-tile").nth(1)).to_contain_text("100%")
    expect(monitor.get_by_role("log", name="Live log")).to_contain_text("allow by human")
    expect(monitor.locator(".stg-log-task").first).to_contain_text("Review")  # titles, not ids
    monitor.get_by_label("Filter by event").select_option("tool_decision")
    expect(monitor.locator(".stg-log-row").first).to_have_attribute("data-event", "tool_decision")
    _picture(monitor, "notebook-monitor")
    run(profiles_cell)
    profiles = cells.nth(profiles_cell).locator(".stg-profiles")
    reviewer = profiles.locator('[data-profile-id="code-reviewer"]')
    expect(reviewer).to_contain_text("Code Reviewer")
    expect(reviewer).to_contain_text("Bash(command:rm *)")
    profiles.get_by_label("Filter profiles").fill("owasp")
    expect(profiles.locator(".stg-profile")).to_have_count(1)

    # 4. Allow while another cell keeps the main shell busy (kernel subshells); the kernel
    # still reads Busy afterwards (the click's own status messages are not tracked).
    run(third)
    busy_card = card_of(third)
    expect(busy_card.locator(".stg-approval")).to_contain_text("git status --short")
    run(sleeper)
    expect(cells.nth(sleeper).locator(".jp-OutputArea-output")).to_contain_text("sleeping")
    busy_card.get_by_role("button", name="Allow", exact=True).click()
    expect(busy_card).to_have_attribute("data-status", "completed", timeout=15_000)
    # ... and the sleeping cell is still running: the decision did not wait for it.
    expect(cells.nth(sleeper).locator(".jp-InputPrompt")).to_have_text("[*]:")
    assert "slept" not in cells.nth(sleeper).locator(".jp-OutputArea").inner_text()
    status = page.locator(".jp-StatusBar-TextItem", has_text="Python 3")
    expect(status).to_contain_text("Busy")
    expect(cells.nth(sleeper).locator(".jp-InputPrompt")).not_to_have_text("[*]:", timeout=30_000)

    # 5. Tab completion lists profiles.
    editor = cells.nth(typing).locator(".cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.type("%%stagent --profile co")
    page.keyboard.press("Tab")
    completer = page.locator(".jp-Completer")
    expect(completer).to_be_visible()
    expect(completer.locator(".jp-Completer-item")).to_have_count(2)
    expect(completer).to_contain_text("code-reviewer")
    expect(completer).to_contain_text("content-creator")
    page.keyboard.press("Escape")

    # 6. The saved notebook exported to HTML shows the outcome, not a repr.
    _command(page, "docmanager:save")
    page.wait_for_function(SAVED)
    html = server.root / "quickstart.html"
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--output", str(html),
         str(server.root / "01_quickstart.ipynb")],
        env=server.env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    exported = html.read_text()
    assert "<h2>Findings</h2>" in exported and 'data-stagent="card"' in exported
    assert "TaskCard object at" not in exported

    # 7. Restart the kernel while a task waits: the card greys out and says what to do.
    run(fourth)
    doomed = card_of(fourth)
    expect(doomed.locator(".stg-approval")).to_contain_text("git status --short")
    _command(page, "kernelmenu:restart", wait=False)
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()  # "Restart"
    expect(doomed).to_have_class(re.compile(r"\bstg-dead\b"))
    expect(doomed.locator(".stg-banner")).to_contain_text("kernel is gone")
    expect(doomed.locator(".stg-banner")).to_contain_text("%stagent task")
    expect(doomed.get_by_role("button", name="Allow", exact=True)).to_be_disabled()

    # 8. Reload: no kernel holds these widgets any more, so each output shows its static copy.
    _command(page, "docmanager:save")
    page.reload()
    page.wait_for_function(NOTEBOOK_READY % n_cells, timeout=90_000)
    saved = cells.nth(launch).locator(".stg-static")
    expect(saved).to_be_visible()
    expect(saved).to_contain_text("completed")
    expect(saved.locator("h2").first).to_have_text("Findings")
    expect(saved).to_contain_text("offline demo")
    for placeholder in page.get_by_text("Error displaying widget").all():
        expect(placeholder).to_be_hidden()
    _picture(saved, "notebook-static-card")
    page.screenshot(path=str(ARTIFACTS / "notebook-static.png"), full_page=False)

    # 9. The chat: a turn with a @df mention and an inline approval.
    page.goto(server.chat)
    # The page reloads with both tabs; wait until the chat notebook is the current one.
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.context?.path === '05_chat.ipynb'",
        timeout=90_000,
    )
    page.wait_for_function(NOTEBOOK_READY % 14, timeout=90_000)
    # The quickstart's tab stays open (hidden): only the chat notebook's cells count.
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    expect(cells).to_have_count(14)
    run(1)
    expect(cells.nth(1).locator(".jp-OutputArea-output")).to_contain_text("region", timeout=90_000)
    run(3)
    chat = cells.nth(3).locator(".stg-chat")
    expect(chat.locator(".stg-offline-badge")).to_be_visible()
    box = chat.get_by_label("Message")
    box.fill("What stands out in @df:sales?")
    box.press("Enter")
    turn = chat.locator(".stg-chat-user")
    expect(turn.locator(".stg-mention-df")).to_have_text("@df:sales")
    expect(turn.locator(".stg-chat-context")).to_contain_text("df sales · 5 rows × 3 columns")
    inline = turn.locator(".stg-approval")
    expect(inline).to_contain_text("ls")
    inline.get_by_role("button", name="Allow", exact=True).click()
    expect(turn.locator(".stg-chat-reply h2")).to_have_text("What stands out")
    expect(turn.locator(".stg-chat-numbers")).to_contain_text("$0.00")
    expect(turn).to_have_attribute("data-status", "completed")
    _picture(chat, "notebook-chat")
