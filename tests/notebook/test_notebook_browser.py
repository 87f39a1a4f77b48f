"""The notebook surface in a real browser: JupyterLab on loopback, driven in headless Chromium.

One scenario, step by step, on one server (starting JupyterLab and a kernel is the slow part):

1. open the quickstart, run its setup and ``%%stagent`` cells, see the pending approval in the
   task card, click Allow, see the task complete;
2. save and reload the page: the card re-renders from the kernel's state, still completed;
3. launch a second task and approve it from the ``%stagent inbox`` widget;
4. launch a third task, start a cell that sleeps 20 s, click Allow in the card while that cell
   is still running, and see the task complete before the sleep ends. This needs JupyterLab
   to send widget messages over a kernel subshell (``commsOverSubshells``), which this test
   sets through the JupyterLab settings overrides file.

A screenshot is kept in ``artifacts/`` (git-ignored). Without /usr/bin/chromium the test is
skipped with the reason, except under CI (``CI=true``), where it fails: ``make test`` installs
Chromium itself (``make sysdeps``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
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
]
NOTEBOOK_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext && w.sessionContext.session
    && w.sessionContext.session.kernel;
  return !!(w && w.content && w.content.widgets.length >= %d && kernel
            && kernel.status === 'idle');
}"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (required under CI; `make sysdeps` installs it)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        yield f"{base}/lab/tree/01_quickstart.ipynb?token={token}"
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
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
    with jupyter_lab(tmp_path) as url, sync_playwright() as pw:
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
            _scenario(page, url, expect)
            page.screenshot(path=str(shot), full_page=True)
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure_shot))
            raise
        finally:
            ctx.close()
    assert shot.stat().st_size > 10_000


def _scenario(page, url, expect):
    page.goto(url)
    page.wait_for_function(NOTEBOOK_READY % 22, timeout=90_000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    sources = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map(c => c.model.sharedModel.getSource())"
    )
    launch = next(i for i, s in enumerate(sources) if s.startswith("%%stagent"))
    second, inbox_cell, third, sleeper, monitor_cell, profiles_cell = range(
        len(sources) - 6, len(sources)
    )

    def run(index):
        cell = cells.nth(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+Enter")

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
    approval.get_by_role("button", name="Allow", exact=True).click()
    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".stg-approval")).to_have_count(0)
    expect(card.locator(".stg-result-text")).to_contain_text("Findings")
    expect(card.locator(".stg-log")).to_contain_text("allow by human")

    # 2. Reconnect: save, reload, and the card comes back from the kernel's state.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.reload()
    page.wait_for_function(NOTEBOOK_READY % 22, timeout=90_000)
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
    monitor.get_by_label("Filter by event").select_option("tool_decision")
    expect(monitor.locator(".stg-log-row").first).to_have_attribute("data-event", "tool_decision")
    run(profiles_cell)
    profiles = cells.nth(profiles_cell).locator(".stg-profiles")
    reviewer = profiles.locator('[data-profile-id="code-reviewer"]')
    expect(reviewer).to_contain_text("Code Reviewer")
    expect(reviewer).to_contain_text("Bash(command:rm *)")
    profiles.get_by_label("Filter profiles").fill("owasp")
    expect(profiles.locator(".stg-profile")).to_have_count(1)

    # 4. Allow while another cell keeps the main shell busy (kernel subshells).
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
    busy_card.scroll_into_view_if_needed()
