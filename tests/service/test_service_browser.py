"""A kernel restart in JupyterLab: the task keeps running in the workspace service, the new
kernel re-attaches a live card, and approving in it works (headless Chromium)."""

from __future__ import annotations

import contextlib
import os
import time

import nbformat
import pytest

from stagent_lab.service import connection as conn
from tests.notebook import test_notebook_browser as browser

SETUP = (
    "import os\n"
    "from stagent_lab import Lab\n"
    "from stagent_lab.cli import prepare_sample_project\n"
    "from stagent_lab.notebook import set_lab\n"
    "lab = Lab()  # STAGENT_HOME, through the workspace service\n"
    "set_lab(lab)\n"
    "project = prepare_sample_project(lab.home)\n"
    "%load_ext stagent_lab\n"
    "print('transport:', lab.transport)"
)
LAUNCH = (
    "%%stagent --profile code-reviewer --runtime scripted --project {project} --name review\n"
    "Review this service; the approval will come after a kernel restart."
)
REATTACH = (
    "from stagent_lab import Lab\n"
    "from stagent_lab.notebook import set_lab\n"
    "lab = Lab()\n"
    "set_lab(lab)\n"
    "%load_ext stagent_lab\n"
    "tid = lab.tasks().iloc[-1]['id']\n"
    "print('waiting task:', tid, lab.task(tid).status)"
)
SHOW = "%stagent task {tid}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kernel_restart_reattaches_a_live_card_and_allow_works(tmp_path, monkeypatch):
    if not browser.CHROMIUM.exists():
        browser._unavailable("headless Chromium (/usr/bin/chromium) is not installed")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        browser._unavailable("the playwright Python package is not installed")
    monkeypatch.setenv("STAGENT_TRANSPORT", "service")
    monkeypatch.setenv("STAGENT_SERVICE_IDLE_TIMEOUT", "30")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (SETUP, LAUNCH, REATTACH, SHOW)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    browser.ARTIFACTS.mkdir(exist_ok=True)
    failure_shot = browser.ARTIFACTS / "service-restart-failure.png"
    with browser.jupyter_lab(tmp_path, notebook=nb) as url, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(browser.CHROMIUM),
            headless=True,
            args=browser.CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        try:
            _scenario(page, url, expect, tmp_path / "stagent")
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure_shot))
            raise
        finally:
            ctx.close()
            info = conn.read_connection(tmp_path / "stagent")
            if info is not None and conn.pid_alive(info.pid):
                os.kill(info.pid, 15)


def _scenario(page, url, expect, home):
    page.goto(url)
    page.wait_for_function(browser.NOTEBOOK_READY % 4, timeout=90_000)
    cells = page.locator(".jp-Notebook .jp-Cell")

    def run(index):
        cell = cells.nth(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+Enter")

    run(0)
    expect(cells.nth(0).locator(".jp-OutputArea-output")).to_contain_text("transport: service")
    run(1)
    card = cells.nth(1).locator(".stg-card")
    expect(card).to_have_attribute("data-status", "waiting")
    expect(card.locator(".stg-approval")).to_contain_text("git status --short")
    service_pid = conn.read_connection(home).pid

    # Restart the kernel: the task lives in the service, not in the kernel.
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()"
    )
    page.wait_for_function(browser.NOTEBOOK_READY % 4, timeout=90_000)
    time.sleep(1)  # let the old kernel's client disconnect
    assert conn.pid_alive(service_pid)

    run(2)
    expect(cells.nth(2).locator(".jp-OutputArea-output")).to_contain_text("waiting")
    run(3)
    fresh = cells.nth(3).locator(".stg-card")
    expect(fresh).to_have_attribute("data-status", "waiting")
    approval = fresh.locator(".stg-approval")
    expect(approval).to_contain_text("git status --short")
    approval.get_by_role("button", name="Allow", exact=True).click()
    expect(fresh).to_have_attribute("data-status", "completed")
    expect(fresh.locator(".stg-log")).to_contain_text("allow by human")
    assert conn.read_connection(home).pid == service_pid  # the same service all along
