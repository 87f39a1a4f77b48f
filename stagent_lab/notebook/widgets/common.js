// Helpers shared by the stagent widgets. Python prepends this file to each widget's module,
// so every widget stays one self-contained ES module: no bundler, no network, no build step.

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

function fmtClock(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function fmtWhen(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? fmtClock(ms) : `${d.toISOString().slice(0, 10)} ${fmtClock(ms)}`;
}

function fmtElapsed(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad2(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad2(Math.floor((s % 3600) / 60))}m`;
}

function elapsedOf(startedMs, finishedMs) {
  if (!startedMs) return null;
  return ((finishedMs || Date.now()) - startedMs) / 1000;
}

// Money, limits and counts read the same here as in the static copy (notebook/fmt.py).
function fmtUsd(usd) {
  if (usd === null || usd === undefined || !isFinite(usd)) return "–";
  if (usd === 0) return "$0.00";
  return Math.abs(usd) < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

function fmtCost(usd, budget) {
  return budget ? `${fmtUsd(usd || 0)} of ${fmtUsd(budget)}` : fmtUsd(usd);
}

function fmtPlural(n, word, many) {
  return `${n} ${n === 1 ? word : many || `${word}s`}`;
}

function fmtTurns(turns, maxTurns) {
  const n = turns || 0;
  return maxTurns ? `${n} of ${maxTurns} turns` : fmtPlural(n, "turn");
}

function fmtCount(n) {
  if (!n) return "0";
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

function statusBadge(status) {
  const s = status || "unknown";
  return h("span", { class: `stg-badge stg-s-${s}`, "data-status": s, text: s });
}

// Front-end actions are custom messages; Python answers through the `last_action` trait
// with the request id, so each button can show its own outcome. A message that cannot be
// sent (the kernel is gone) or gets no answer in time says so instead of "sending…" forever.
let stgRequestCounter = 0;
const ACK_TIMEOUT_MS = 20000;

function makeActions(model, onDead) {
  const waiting = new Map();
  const onAck = () => {
    const ack = model.get("last_action") || {};
    const entry = waiting.get(ack.req);
    if (entry) {
      waiting.delete(ack.req);
      clearTimeout(entry.timer);
      entry.done(ack);
    }
  };
  model.on("change:last_action", onAck);
  return {
    send(payload, done) {
      stgRequestCounter += 1;
      const req = `${Date.now().toString(36)}-${stgRequestCounter}`;
      const finish = done || (() => {});
      try {
        model.send({ ...payload, req });
      } catch (err) {
        if (onDead) onDead(String(err));
        finish({ req, ok: false, message: "not sent: the kernel that owns this view is gone" });
        return;
      }
      const timer = setTimeout(() => {
        if (!waiting.has(req)) return;
        waiting.delete(req);
        finish({
          req,
          ok: false,
          message: "no answer from the kernel yet: it may be busy (see docs: kernel subshells) or gone",
        });
      }, ACK_TIMEOUT_MS);
      waiting.set(req, { done: finish, timer });
    },
    dispose() {
      model.off("change:last_action", onAck);
      for (const entry of waiting.values()) clearTimeout(entry.timer);
      waiting.clear();
    },
  };
}

// Is this view still connected? Three sources: the kernel connection of the page (the widget
// manager's kernel, its status and the model's comm), and the `connection` trait that Python
// sets when the workspace stops answering. `onChange(state)` gets {ok, kind, text}.
const DEAD_KERNEL_STATES = new Set(["dead", "restarting", "autorestarting", "terminating"]);

function watchConnection(model, el, onChange) {
  const manager = model.widget_manager;
  const kernelOf = () => {
    try {
      return manager && "kernel" in manager ? manager.kernel : undefined;
    } catch (err) {
      return null; // a disposed manager has no kernel
    }
  };
  const first = kernelOf();
  const firstId = first ? first.id : null;
  let last = "";
  let deadNote = "";
  const compute = () => {
    const kernel = kernelOf();
    if (deadNote) return { ok: false, kind: "kernel", text: deadNote };
    if (el.closest(".jupyter-widgets-disconnected")) return { ok: false, kind: "kernel" };
    if (kernel === null || (firstId && kernel && kernel.id !== firstId)) return { ok: false, kind: "kernel" };
    if (kernel && DEAD_KERNEL_STATES.has(kernel.status)) return { ok: false, kind: "kernel" };
    if (kernel && kernel.connectionStatus && kernel.connectionStatus !== "connected") {
      return { ok: false, kind: "reconnecting" };
    }
    const conn = model.get("connection") || {};
    if (conn.state && conn.state !== "live") {
      return { ok: false, kind: conn.state, text: conn.message || "", transport: conn.transport };
    }
    return { ok: true, kind: "live", transport: conn.transport };
  };
  const check = () => {
    const state = compute();
    const key = `${state.ok}|${state.kind}|${state.text || ""}`;
    if (key !== last) {
      last = key;
      onChange(state);
    }
  };
  model.on("change:connection", check);
  model.on("comm_live_update", () => setTimeout(check, 0));
  const session = manager && manager.context && manager.context.sessionContext;
  const signals = session
    ? [session.statusChanged, session.kernelChanged, session.connectionStatusChanged].filter(Boolean)
    : [];
  const slot = () => check();
  for (const signal of signals) signal.connect(slot);
  const timer = setInterval(check, 2000);
  check();
  return {
    dead(note) {
      deadNote = note || "the kernel that owns this view is gone";
      check();
    },
    dispose() {
      clearInterval(timer);
      for (const signal of signals) signal.disconnect(slot);
      model.off("change:connection", check);
    },
  };
}

// Grey out a view whose kernel or workspace is gone: disable its controls (remembering which
// were enabled) and show `banner` with what to do. `live` restores them.
function setLive(root, banner, state, guidance) {
  root.classList.toggle("stg-dead", !state.ok);
  if (state.ok) {
    banner.hidden = true;
    for (const node of root.querySelectorAll("[data-stg-off]")) {
      node.disabled = false;
      delete node.dataset.stgOff;
    }
    return;
  }
  for (const node of root.querySelectorAll("button, input, textarea, select")) {
    if (banner.contains(node) || node.disabled) continue;
    node.disabled = true;
    node.dataset.stgOff = "1";
  }
  banner.hidden = false;
  banner.textContent = guidance(state);
}

// Keep one DOM node per key so typing in an approval's message box survives re-renders.
function syncKeyed(container, items, keyOf, create) {
  const existing = new Map();
  for (const node of Array.from(container.children)) {
    if (node.dataset && node.dataset.key) existing.set(node.dataset.key, node);
  }
  const wanted = new Set();
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    wanted.add(key);
    let node = existing.get(key);
    if (!node) {
      node = create(item);
      node.dataset.key = key;
    }
    const expectedPosition = previous ? previous.nextSibling : container.firstChild;
    if (node !== expectedPosition) container.insertBefore(node, expectedPosition);
    previous = node;
  }
  for (const [key, node] of existing) if (!wanted.has(key)) node.remove();
}

const EVENT_LABEL = {
  assistant_text: "assistant",
  tool_request: "tool call",
  tool_decision: "decision",
  tool_result: "result",
  task_started: "started",
  inbox: "inbox",
  status: "status",
  result: "done",
};

// A task as the monitor names it: its title (the id is in the tooltip).
function taskName(id, titles) {
  const title = titles && titles[id];
  return title ? (title.length > 40 ? `${title.slice(0, 39)}…` : title) : String(id || "").slice(0, 8);
}

function logRow(entry, { showTask = false, titles = null } = {}) {
  const kind = entry.event || "";
  const row = h(
    "li",
    { class: `stg-log-row stg-ev-${kind} stg-lv-${entry.level || "info"}`, "data-event": kind },
    h("span", { class: "stg-log-time", text: fmtClock(entry.ts) }),
    showTask && entry.task
      ? h("span", {
          class: "stg-log-task",
          title: `task ${entry.task}${entry.profile ? ` · ${entry.profile}` : ""}`,
          text: taskName(entry.task, titles),
        })
      : null,
    h("span", { class: "stg-log-kind", text: EVENT_LABEL[kind] || kind }),
    entry.tool ? h("span", { class: "stg-log-tool", text: entry.tool }) : null,
    h("span", { class: "stg-log-text", text: entry.text || "" }),
  );
  if (entry.detail) {
    row.append(
      h("details", { class: "stg-log-detail" }, h("summary", { text: "details" }), h("pre", { text: entry.detail })),
    );
  }
  return row;
}

function fillLog(list, entries, options) {
  const fragment = document.createDocumentFragment();
  for (const entry of entries) fragment.append(logRow(entry, options));
  list.replaceChildren(fragment);
}

function nearBottom(node) {
  return node.scrollHeight - node.scrollTop - node.clientHeight < 24;
}

// One pending inbox item with its controls. `showTask` adds the task's title (inbox view).
function approvalBox(item, actions, { showTask = false } = {}) {
  const isQuestion = item.kind === "question";
  const isPermission = item.kind === "permission";
  const what = isQuestion ? "Question" : isPermission ? `Approval: ${item.tool}` : `${item.kind}`;
  const box = h("div", {
    class: `stg-approval stg-k-${item.kind}`,
    role: "group",
    "aria-label": `${what} (item ${item.id})`,
    "data-item-id": item.id,
  });
  box.append(
    h(
      "div",
      { class: "stg-approval-head" },
      h("span", { class: "stg-kind", text: item.kind }),
      item.tool ? h("strong", { class: "stg-tool", text: item.tool }) : null,
      showTask ? h("span", { class: "stg-approval-task", text: `${item.title || item.task} · ${item.profile || ""}` }) : null,
      h("span", { class: "stg-muted", text: fmtWhen(item.created_ms) }),
    ),
  );
  if (isQuestion) box.append(h("p", { class: "stg-question", text: item.question || "" }));
  if (item.input) box.append(h("pre", { class: "stg-input", "aria-label": "Tool input", text: item.input }));

  const feedback = h("div", { class: "stg-feedback", role: "status", "aria-live": "polite" });
  const buttons = [];
  let ruleInput = null;
  let messageInput;
  if (isPermission && item.rule !== null && item.rule !== undefined) {
    ruleInput = h("input", { type: "text", class: "stg-rule", value: item.rule || "", "aria-label": "Rule to save with Always allow", spellcheck: "false" });
    box.append(h("label", { class: "stg-field" }, h("span", { text: "Always-allow rule" }), ruleInput));
  }
  if (isQuestion) {
    messageInput = h("textarea", { class: "stg-message", rows: "2", "aria-label": "Your answer", placeholder: "Your answer" });
  } else {
    messageInput = h("input", { type: "text", class: "stg-message", "aria-label": "Message to the agent", placeholder: "Message to the agent (Enter denies with it)" });
  }
  box.append(messageInput);

  const decide = (decision) => {
    for (const b of buttons) b.disabled = true;
    feedback.className = "stg-feedback";
    feedback.textContent = "sending…";
    actions.send(
      { type: "decide", item_id: item.id, decision, message: messageInput.value, rule: ruleInput ? ruleInput.value : "" },
      (ack) => {
        feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
        feedback.textContent = ack.message || (ack.ok ? "done" : "failed");
        if (!ack.ok) for (const b of buttons) b.disabled = false;
      },
    );
  };
  // Enter sends the message with the decision it belongs to: Deny for a permission (the agent
  // reads it), Answer for a question (Shift+Enter adds a line to an answer).
  messageInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (!messageInput.value.trim()) return;
    event.preventDefault();
    decide(isQuestion ? "answer" : "deny");
  });
  const button = (label, decision, style, title) => {
    const b = h("button", { type: "button", class: `stg-btn ${style}`, title, text: label, onclick: () => decide(decision) });
    buttons.push(b);
    return b;
  };
  const row = h("div", { class: "stg-buttons" });
  if (isQuestion) {
    row.append(button("Answer", "answer", "stg-primary", "Send the answer to the agent"));
    row.append(button("Decline", "deny", "stg-danger", "Decline to answer"));
  } else if (isPermission) {
    row.append(button("Allow", "allow", "stg-primary", `Allow this ${item.tool} call once`));
    row.append(button("Always allow", "always", "stg-secondary", "Allow and save the rule above"));
    row.append(button("Deny", "deny", "stg-danger", "Deny; the agent sees your message"));
  } else {
    row.append(button("Allow", "allow", "stg-primary", "Approve"));
    row.append(button("Deny", "deny", "stg-danger", "Reject"));
  }
  box.append(row, feedback);
  return box;
}
