// The task card: a live view of one task (see task_card.py). Everything shown comes from the
// model's synced state, so a reloaded page re-renders the same card from the kernel. When the
// kernel or the workspace is gone the card greys out, disables its buttons and says what to do.

const ACTIVE_STATES = new Set(["queued", "running", "waiting"]);
const RESUMABLE_STATES = new Set(["failed", "cancelled", "paused"]);
const OFFLINE_TITLE =
  "The scripted runtime plays a deterministic demo offline: no model was called, and the result is canned.";

export default {
  render({ model, el }) {
    const banner = h("div", { class: "stg-banner", role: "alert", hidden: true });
    let connection = null;
    const actions = makeActions(model, (why) => connection && connection.dead(why));
    const title = h("h3", { class: "stg-title" });
    const badgeSlot = h("span", { class: "stg-badge-slot" });
    const offline = h("span", { class: "stg-offline-badge", title: OFFLINE_TITLE, text: "offline demo", hidden: true });
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
    const resultText = h("div", { class: "stg-result-text stg-markdown" });
    result.append(resultText);
    const failure = h("div", { class: "stg-failure", role: "alert" });
    const feedback = h("span", { class: "stg-feedback", role: "status", "aria-live": "polite" });
    // An action's outcome ("cancelling", "resumed") is true until the status moves on.
    let feedbackStatus = null;
    let feedbackTimer = null;
    const clearFeedback = () => {
      feedback.textContent = "";
      feedback.className = "stg-feedback";
      feedbackStatus = null;
    };
    const control = (label, type, style) =>
      h("button", {
        type: "button",
        class: `stg-btn ${style}`,
        text: label,
        onclick: (event) => {
          const b = event.currentTarget;
          b.disabled = true;
          clearTimeout(feedbackTimer);
          feedback.className = "stg-feedback";
          feedback.textContent = "sending…";
          actions.send({ type }, (ack) => {
            feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
            feedback.textContent = ack.message;
            feedbackStatus = info().status;
            if (ack.ok) feedbackTimer = setTimeout(clearFeedback, 10000);
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
      h("div", { class: "stg-head" }, title, offline, badgeSlot),
      banner,
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
      if (card.classList.contains("stg-dead")) return;
      const status = info().status;
      cancelBtn.disabled = !ACTIVE_STATES.has(status);
      resumeBtn.disabled = !RESUMABLE_STATES.has(status);
    }

    function renderInfo() {
      const i = info();
      card.dataset.taskId = i.id || "";
      card.dataset.status = i.status || "";
      card.dataset.runtime = i.runtime || "";
      card.setAttribute("aria-label", `Task ${i.title || i.id}`);
      title.textContent = i.title || i.id || "task";
      badgeSlot.replaceChildren(statusBadge(i.status));
      offline.hidden = i.runtime !== "scripted";
      const runtime = i.runtime === "scripted" ? "scripted (offline demo)" : i.runtime;
      const bits = [
        ["profile", i.profile],
        ["runtime", runtime],
        ["model", i.runtime === "scripted" ? null : i.model],
        ["project", i.project],
        ["task", i.id],
      ].filter(([, v]) => v);
      meta.replaceChildren(
        ...bits.map(([k, v]) => h("span", { class: "stg-meta-item" }, h("span", { class: "stg-muted", text: `${k} ` }), String(v))),
      );
      turns.textContent = fmtTurns(i.turns, i.max_turns);
      cost.textContent = fmtCost(i.cost_usd || 0, i.max_budget_usd);
      cost.title = i.max_budget_usd ? "spent of the task's budget" : "spent so far";
      failure.hidden = !i.failure_reason || i.status === "completed";
      failure.textContent = i.failure_reason ? `${i.status}: ${i.failure_reason}` : "";
      if (feedbackStatus !== null && feedbackStatus !== i.status) clearFeedback();
      renderElapsed();
      renderControls();
    }

    function renderResult() {
      const html = model.get("result_html") || "";
      result.hidden = !html;
      resultText.innerHTML = html; // sanitised in Python (markdown-it + nh3): no links, scripts or images
    }

    function renderTokens() {
      const t = model.get("tokens") || {};
      tokens.textContent = `tokens ${fmtCount(t.input)} in / ${fmtCount(t.output)} out`;
    }

    function renderPending() {
      const items = model.get("pending") || [];
      pending.hidden = items.length === 0;
      syncKeyed(pending, items, (it) => it.id, (it) => approvalBox(it, actions));
      if (card.classList.contains("stg-dead")) setLive(card, banner, lastState, guidance);
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

    function guidance(state) {
      const i = info();
      const id = i.id || "ID";
      if (state.kind === "reconnecting") return "Reconnecting to the kernel… the buttons wait until it answers.";
      if (state.kind === "kernel") {
        const where =
          state.transport === "service"
            ? `The task keeps running in the workspace service: run %stagent task ${id} in this notebook to get a live card.`
            : ACTIVE_STATES.has(i.status)
              ? `Its workspace ran inside that kernel, so the task stopped with it: open the workspace again and run %stagent task ${id} (or %stagent resume ${id}).`
              : `Run %stagent task ${id} in this notebook to show the task again.`;
        return `This card's kernel is gone (restarted or shut down), so its buttons no longer reach the task. ${where}`;
      }
      return `${state.text || "The workspace does not answer."} (%stagent task ${id})`;
    }

    let lastState = { ok: true };
    renderInfo();
    renderResult();
    renderTokens();
    renderPending();
    renderLog("all");
    renderStreaming();
    requestAnimationFrame(scrollToEnd); // once the card is laid out

    model.on("change:info", renderInfo);
    model.on("change:result_html", renderResult);
    model.on("change:tokens", renderTokens);
    model.on("change:pending", renderPending);
    model.on("change:log", () => renderLog("all"));
    model.on("change:log_tail", () => renderLog("tail"));
    model.on("change:streaming", renderStreaming);
    connection = watchConnection(model, el, (state) => {
      lastState = state;
      setLive(card, banner, state, guidance);
      if (state.ok) renderControls();
    });
    const timer = setInterval(() => {
      if (ACTIVE_STATES.has(info().status) && lastState.ok) renderElapsed();
    }, 1000);

    return () => {
      clearInterval(timer);
      clearTimeout(feedbackTimer);
      connection.dispose();
      actions.dispose();
    };
  },
};
