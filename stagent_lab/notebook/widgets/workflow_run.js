// The workflow run card (see workflow_run.py). Everything shown comes from the model's synced
// state, so a reloaded page re-renders the same card from the kernel.

const RUN_ACTIVE = new Set(["running", "waiting", "delayed"]);

function stepWhere(step) {
  return step.iteration ? ` #${step.iteration}` : "";
}

export default {
  render({ model, el }) {
    const actions = makeActions(model);
    const title = h("h3", { class: "stg-title" });
    const badgeSlot = h("span", { class: "stg-badge-slot" });
    const numbers = h("div", { class: "stg-numbers" });
    const failure = h("div", { class: "stg-failure", role: "alert" });
    const checkpoints = h("div", { class: "stg-pending", "aria-label": "Pending checkpoints" });
    const table = h("table", { class: "stg-run-steps", "aria-label": "Steps" });
    const tbody = h("tbody");
    table.append(
      h("thead", {}, h("tr", {}, ...["step", "status", "child task", "cost", "result"].map((t) => h("th", { text: t })))),
      tbody,
    );
    const output = h("details", { class: "stg-run-output", open: true }, h("summary", { text: "Output" }));
    const outputText = h("pre");
    output.append(outputText);
    const feedback = h("span", { class: "stg-feedback", role: "status", "aria-live": "polite" });
    const control = (label, type, style, extra = {}) =>
      h("button", {
        type: "button",
        class: `stg-btn ${style}`,
        text: label,
        onclick: (event) => {
          const b = event.currentTarget;
          b.disabled = true;
          feedback.className = "stg-feedback";
          feedback.textContent = "sending…";
          actions.send({ type, ...extra }, (ack) => {
            feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
            feedback.textContent = ack.message;
            renderControls();
          });
        },
      });
    const pauseBtn = control("Pause", "pause", "stg-secondary");
    const resumeBtn = control("Resume", "resume", "stg-secondary");
    const cancelBtn = control("Cancel", "cancel", "stg-danger");
    const retryBtn = control("Retry", "retry", "stg-secondary");
    const controls = h("div", { class: "stg-controls" }, pauseBtn, resumeBtn, cancelBtn, retryBtn, feedback);
    const card = h(
      "div",
      { class: "stagent stg-card stg-run", role: "region" },
      h("div", { class: "stg-head" }, title, badgeSlot),
      numbers,
      failure,
      checkpoints,
      table,
      output,
      controls,
    );
    el.append(card);

    const run = () => model.get("run") || {};

    function renderControls() {
      const r = run();
      pauseBtn.disabled = !RUN_ACTIVE.has(r.status);
      resumeBtn.disabled = !(r.status === "paused" || r.status === "delayed");
      cancelBtn.disabled = !(RUN_ACTIVE.has(r.status) || r.status === "paused");
      retryBtn.disabled = !(r.status === "failed" || (r.status === "completed" && r.failed_items > 0));
    }

    function renderRun() {
      const r = run();
      card.dataset.runId = r.id || "";
      card.dataset.status = r.status || "";
      card.setAttribute("aria-label", `Workflow run ${r.workflow || ""} #${r.run_number || ""}`);
      title.textContent = `${r.workflow || "workflow"} · run #${r.run_number || "?"}`;
      badgeSlot.replaceChildren(statusBadge(r.status));
      const bits = [
        r.pattern,
        r.stop_reason ? `stop: ${r.stop_reason}` : null,
        `cost ${fmtCost(r.cost_usd)}` + (r.budget_usd ? ` of $${Number(r.budget_usd).toFixed(2)}` : ""),
        r.failed_items ? `${r.failed_items} failed row(s)` : null,
        r.resume_ms ? `resumes at ${fmtWhen(r.resume_ms)}` : null,
        `elapsed ${fmtElapsed(elapsedOf(r.started_ms, r.finished_ms))}`,
        `run ${r.id}`,
      ].filter(Boolean);
      numbers.replaceChildren(...bits.map((b) => h("span", { class: "stg-run-bit", text: b })));
      failure.hidden = !r.failure_reason;
      failure.textContent = r.failure_reason ? `${r.status}: ${r.failure_reason}` : "";
      output.hidden = !r.output;
      outputText.textContent = r.output || "";
      renderControls();
    }

    function stepRow(step) {
      const detail = step.error || step.result || "";
      const cell = h("td", { class: "stg-run-detail" });
      if (step.note) cell.append(h("div", { class: "stg-muted", text: `operator's note: ${step.note}` }));
      if (detail) {
        const box = h("details", {}, h("summary", { text: detail.split("\n")[0].slice(0, 120) || "details" }));
        box.append(h("pre", { text: detail }));
        cell.append(box);
      }
      const task = step.task_id
        ? h("span", {}, h("code", { text: step.task_id, title: step.task_title || "" }), " ", statusBadge(step.task_status))
        : h("span", { class: "stg-muted", text: step.kind === "delay" ? "wait" : "–" });
      return h(
        "tr",
        { "data-step-id": step.step_id, "data-status": step.status, "data-iteration": String(step.iteration) },
        h("td", {}, h("span", { text: `${step.name}${stepWhere(step)}` }),
          step.attempts > 1 ? h("span", { class: "stg-muted", text: ` (attempt ${step.attempt})` }) : null),
        h("td", {}, statusBadge(step.status)),
        h("td", {}, task),
        h("td", { class: "stg-num", text: step.kind === "delay" ? "" : fmtCost(step.cost_usd) }),
        cell,
      );
    }

    // Rows are rebuilt only when their step changes, so an opened result stays open.
    const stepKey = (s) => [s.id, s.status, s.task_status, s.cost_usd, s.attempts, s.note].join("|");
    function renderSteps() {
      syncKeyed(tbody, model.get("steps") || [], stepKey, stepRow);
    }

    function checkpointBox(item) {
      const message = h("input", {
        type: "text",
        class: "stg-message",
        "aria-label": "Note for the step, or the reason to deny",
        placeholder: "Note for the step (Allow) or the reason (Deny)",
      });
      const fb = h("div", { class: "stg-feedback", role: "status", "aria-live": "polite" });
      const buttons = [];
      const decide = (decision) => {
        for (const b of buttons) b.disabled = true;
        fb.className = "stg-feedback";
        fb.textContent = "sending…";
        actions.send({ type: "decide", item_id: item.id, decision, message: message.value }, (ack) => {
          fb.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
          fb.textContent = ack.message || (ack.ok ? "done" : "failed");
          if (!ack.ok) for (const b of buttons) b.disabled = false;
        });
      };
      const button = (label, decision, style, tip) => {
        const b = h("button", { type: "button", class: `stg-btn ${style}`, title: tip, text: label, onclick: () => decide(decision) });
        buttons.push(b);
        return b;
      };
      return h(
        "div",
        { class: "stg-approval stg-checkpoint stg-k-checkpoint", role: "group", "aria-label": `Checkpoint (item ${item.id})`, "data-item-id": item.id },
        h("div", { class: "stg-approval-head" }, h("span", { class: "stg-kind", text: "checkpoint" }), h("span", { class: "stg-muted", text: fmtWhen(item.created_ms) })),
        h("pre", { class: "stg-body", text: item.body }),
        message,
        h("div", { class: "stg-buttons" },
          button("Allow", "allow", "stg-primary", "Start the step; your note reaches it"),
          button("Deny", "deny", "stg-danger", "Fail the step with your message")),
        fb,
      );
    }

    function renderPending() {
      const items = model.get("pending") || [];
      checkpoints.hidden = items.length === 0;
      syncKeyed(checkpoints, items, (it) => it.id, checkpointBox);
    }

    renderRun();
    renderSteps();
    renderPending();
    model.on("change:run", renderRun);
    model.on("change:steps", renderSteps);
    model.on("change:pending", renderPending);
    const timer = setInterval(() => {
      if (RUN_ACTIVE.has(run().status)) renderRun();
    }, 1000);
    return () => {
      clearInterval(timer);
      actions.dispose();
    };
  },
};
