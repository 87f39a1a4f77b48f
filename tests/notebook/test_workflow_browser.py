"""The workflow run card in a real browser: JupyterLab on loopback, headless Chromium.

Reuses the JupyterLab server and Chromium set-up of ``test_notebook_browser.py``. On
``notebooks/04_workflows.ipynb``: run its set-up and the checkpoint workflow, see the run card
with the pending checkpoint, type a note and click **Allow** in the card, and see the run
complete with the note delivered to the step; then reload the page and see the card re-render
from the kernel's state. A screenshot is kept in ``artifacts/``.
"""

from __future__ import annotations

import contextlib

import nbformat
import pytest
from test_notebook_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    NOTEBOOK_READY,
    ROOT,
    _unavailable,
    jupyter_lab,
)

NOTEBOOK = "04_workflows.ipynb"
NOTE = "Only touch app/db.py"
CHECK_CELL = (
    "print('note:', lab.sql(\"SELECT operator_note FROM workflow_step_runs "
    "WHERE step_id = 'fix'\")['operator_note'].iloc[0])"
)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_checkpoint_decided_in_the_run_card(tmp_path):
    if not CHROMIUM.exists():
        _unavailable("headless Chromium (/usr/bin/chromium) is not installed")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "workflow-run-card.png"
    failure_shot = ARTIFACTS / "workflow-run-card-failure.png"
    failure_shot.unlink(missing_ok=True)
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    with jupyter_lab(tmp_path) as url, sync_playwright() as pw:
        nbformat.write(nb, tmp_path / "notebooks" / NOTEBOOK)
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
            _scenario(page, url.replace("01_quickstart.ipynb", NOTEBOOK), len(nb.cells), expect)
            page.screenshot(path=str(shot), full_page=True)
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure_shot))
            raise
        finally:
            ctx.close()
    assert shot.stat().st_size > 10_000


def _scenario(page, url, n_cells, expect):
    page.goto(url)
    page.wait_for_function(NOTEBOOK_READY % n_cells, timeout=90_000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    sources = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".map(c => c.model.sharedModel.getSource())"
    )
    setup = next(i for i, s in enumerate(sources) if s.startswith("import tempfile"))
    define = next(i for i, s in enumerate(sources) if '"review-and-fix",' in s)
    launch = next(
        i for i, s in enumerate(sources) if s.strip() == "%stagent workflows run review-and-fix"
    )
    check = len(sources) - 1

    def run(index):
        cell = cells.nth(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+Enter")

    run(setup)
    expect(cells.nth(setup).locator(".jp-OutputArea-output")).to_contain_text("workspace:")
    run(define)
    expect(cells.nth(define).locator(".jp-InputPrompt")).to_have_text("[2]:")
    run(launch)
    card = cells.nth(launch).locator(".stg-run")
    expect(card).to_have_attribute("data-status", "waiting")
    expect(card.locator(".stg-title")).to_contain_text("review-and-fix · run #1")
    expect(card.locator('tr[data-step-id="review"]')).to_have_attribute("data-status", "completed")
    expect(card.locator('tr[data-step-id="fix"]')).to_have_attribute("data-status", "waiting")
    checkpoint = card.locator(".stg-checkpoint")
    expect(checkpoint).to_contain_text("Step: Fix (profile general)")
    expect(checkpoint).to_contain_text("app/db.py:12 builds SQL from user input")
    checkpoint.get_by_label("Note for the step, or the reason to deny").fill(NOTE)
    checkpoint.get_by_role("button", name="Allow", exact=True).click()
    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".stg-checkpoint")).to_have_count(0)
    expect(card.locator('tr[data-step-id="fix"]')).to_have_attribute("data-status", "completed")
    expect(card.locator(".stg-run-output")).to_contain_text("Parameterized the query")
    expect(card.locator('tr[data-step-id="fix"]')).to_contain_text(f"operator's note: {NOTE}")

    run(check)
    expect(cells.nth(check).locator(".jp-OutputArea-output")).to_contain_text(f"note: {NOTE}")

    # Reconnect: save, reload, and the card comes back from the kernel's state.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.reload()
    page.wait_for_function(NOTEBOOK_READY % n_cells, timeout=90_000)
    card = cells.nth(launch).locator(".stg-run")
    expect(card).to_have_attribute("data-status", "completed")
    card.scroll_into_view_if_needed()
