// The task card: a live view of one task (see task_card.py). Everything shown comes from the
// model's synced state, so a reloaded page re-renders the same card from the kernel.

const ACTIVE_STATES = new Set(["queued", "running", "waiting"]);
const RESUMABLE_STATES = new Set(["failed", "cancelled", "paused"]);

export default {
  render({ model, el }) {
    const actions = makeActions(model);
    const title = h("h3", { class: "stg-title" });
    const badgeSlot = h("span", { class: "stg-badge-slot" });
    const meta = h("div", { class: "stg-meta" });
    const numbers = h("div", { class: "stg-numbers" });
    const elapsed = h("span", { class: "stg-elapsed", title: "elapsed" });
    const turns = h("span", { class: "stg-turns" });
    const tokens = h("span", { class: "stg-tokens" });
    const cost = h("span", { class: "stg-cost" });
    numbers.append(elapsed, turns, tokens, cost);
    const pending = h("div", { class: "stg-pending", "aria-label": "Pending approvals" });
    const dropped = h("div", { class: "stg-dropped stg-muted" });
    const headList = h("ol", { class: "stg-log-list" });
    const tailList = h("ol", { class: "stg-log-list" });
    const logBox = h("div", { class: "stg-log", role: "log", "aria-label": "Task log" }, dropped, headList, tailList);
    const streaming = h("div", { class: "stg-streaming", "aria-live": "off" });
    const result = h("details", { class: "stg-result", open: true }, h("summary", { text: "Result" }));
    const resultText = h("div", { class: "stg-result-text" });
    result.append(resultText);
    const failure = h("div", { class: "stg-failure", role: "alert" });
    const feedback = h("span", { class: "stg-feedback", role: "status", "aria-live": "polite" });
    const control = (label, type, style) =>
      h("button", {
        type: "button",
        class: `stg-btn ${style}`,
        text: label,
        onclick: (event) => {
          const b = event.currentTarget;
          b.disabled = true;
          feedback.className = "stg-feedback";
          feedback.textContent = "sending…";
          actions.send({ type }, (ack) => {
            feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
            feedback.textContent = ack.message;
            renderControls();
          });
        },
      });
    const cancelBtn = control("Cancel", "cancel", "stg-danger");
    const resumeBtn = control("Resume", "resume", "stg-secondary");
    const controls = h("div", { class: "stg-controls" }, cancelBtn, resumeBtn, feedback);

    const card = h(
      "div",
      { class: "stagent stg-card", role: "region" },
      h("div", { class: "stg-head" }, title, badgeSlot),
      meta,
      numbers,
      pending,
      logBox,
      streaming,
      result,
      failure,
      controls,
    );
    el.append(card);

    function info() {
      return model.get("info") || {};
    }

    function renderElapsed() {
      const i = info();
      elapsed.textContent = `elapsed ${fmtElapsed(elapsedOf(i.started_ms, i.finished_ms))}`;
    }

    function renderControls() {
      const status = info().status;
      cancelBtn.disabled = !ACTIVE_STATES.has(status);
      resumeBtn.disabled = !RESUMABLE_STATES.has(status);
    }

    function renderInfo() {
      const i = info();
      card.dataset.taskId = i.id || "";
      card.dataset.status = i.status || "";
      card.setAttribute("aria-label", `Task ${i.title || i.id}`);
      title.textContent = i.title || i.id || "task";
      badgeSlot.replaceChildren(statusBadge(i.status));
      const bits = [
        ["profile", i.profile],
        ["runtime", i.runtime],
        ["model", i.model],
        ["project", i.project],
        ["task", i.id],
      ].filter(([, v]) => v);
      meta.replaceChildren(
        ...bits.map(([k, v]) => h("span", { class: "stg-meta-item" }, h("span", { class: "stg-muted", text: `${k} ` }), String(v))),
      );
      turns.textContent = `turns ${i.turns || 0}`;
      cost.textContent = fmtCost(i.cost_usd);
      result.hidden = !i.result;
      resultText.textContent = i.result || "";
      failure.hidden = !i.failure_reason || i.status === "completed";
      failure.textContent = i.failure_reason ? `${i.status}: ${i.failure_reason}` : "";
      renderElapsed();
      renderControls();
    }

    function renderTokens() {
      const t = model.get("tokens") || {};
      tokens.textContent = `tokens ${fmtCount(t.input)} in / ${fmtCount(t.output)} out`;
    }

    function renderPending() {
      const items = model.get("pending") || [];
      pending.hidden = items.length === 0;
      syncKeyed(pending, items, (it) => it.id, (it) => approvalBox(it, actions));
    }

    // Follow the newest entries unless the reader scrolled up to look at older ones.
    let follow = true;
    logBox.addEventListener("scroll", () => {
      follow = nearBottom(logBox);
    });
    const scrollToEnd = () => {
      if (follow) logBox.scrollTop = logBox.scrollHeight;
    };

    function renderLog(which) {
      if (which !== "tail") fillLog(headList, model.get("log") || []);
      fillLog(tailList, model.get("log_tail") || []);
      const n = model.get("dropped") || 0;
      dropped.textContent = n ? `${n} earlier entries not shown (all are in lab.logs())` : "";
      dropped.hidden = !n;
      scrollToEnd();
    }

    function renderStreaming() {
      const text = model.get("streaming") || "";
      streaming.hidden = !text;
      streaming.textContent = text;
    }

    renderInfo();
    renderTokens();
    renderPending();
    renderLog("all");
    renderStreaming();
    requestAnimationFrame(scrollToEnd); // once the card is laid out

    model.on("change:info", renderInfo);
    model.on("change:tokens", renderTokens);
    model.on("change:pending", renderPending);
    model.on("change:log", () => renderLog("all"));
    model.on("change:log_tail", () => renderLog("tail"));
    model.on("change:streaming", renderStreaming);
    const timer = setInterval(() => {
      if (ACTIVE_STATES.has(info().status)) renderElapsed();
    }, 1000);

    return () => {
      clearInterval(timer);
      actions.dispose();
    };
  },
};
