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

function fmtCost(usd) {
  if (usd === null || usd === undefined) return "–";
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toFixed(5)}` : `$${usd.toFixed(4)}`;
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
// with the request id, so each button can show its own outcome.
let stgRequestCounter = 0;

function makeActions(model) {
  const waiting = new Map();
  const onAck = () => {
    const ack = model.get("last_action") || {};
    const done = waiting.get(ack.req);
    if (done) {
      waiting.delete(ack.req);
      done(ack);
    }
  };
  model.on("change:last_action", onAck);
  return {
    send(payload, done) {
      stgRequestCounter += 1;
      const req = `${Date.now().toString(36)}-${stgRequestCounter}`;
      if (done) waiting.set(req, done);
      model.send({ ...payload, req });
    },
    dispose() {
      model.off("change:last_action", onAck);
    },
  };
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

function logRow(entry, { showTask = false } = {}) {
  const kind = entry.event || "";
  const row = h(
    "li",
    { class: `stg-log-row stg-ev-${kind} stg-lv-${entry.level || "info"}`, "data-event": kind },
    h("span", { class: "stg-log-time", text: fmtClock(entry.ts) }),
    showTask && entry.task
      ? h("span", { class: "stg-log-task", title: entry.profile || "", text: entry.task.slice(0, 6) })
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
    messageInput = h("input", { type: "text", class: "stg-message", "aria-label": "Message to the agent", placeholder: "Message to the agent (optional; shown with Deny)" });
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
