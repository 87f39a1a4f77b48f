// The chat: a governed conversation with one agent (see chat.py). Each operator message is a
// turn, a task whose approvals show inline under it, whose streaming text and tool calls show
// while it runs, and whose rendered reply and cost close it. Enter sends; Shift+Enter adds a
// line; `/help` lists the commands; @file:, @task:, @df: attach context.

const TURN_ACTIVE = new Set(["queued", "running", "waiting"]);
const MENTION_RE = /@(file|task|df):("[^"\n]+"|[^\s"'`,;()<>[\]{}]+)/g;

function withMentions(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(MENTION_RE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    // As the kernel reads it: sentence punctuation after an unquoted name is not part of it.
    const mention = m[2].startsWith('"') ? m[0] : m[0].replace(/[.:!?]+$/, "");
    out.push(h("span", { class: `stg-mention stg-mention-${m[1]}`, text: mention }));
    last = m.index + mention.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export default {
  render({ model, el }) {
    const banner = h("div", { class: "stg-banner", role: "alert", hidden: true });
    let connection = null;
    const actions = makeActions(model, (why) => connection && connection.dead(why));
    const title = h("h3", { class: "stg-title" });
    const chips = h("div", { class: "stg-meta" });
    const offline = h("span", { class: "stg-offline-badge", text: "offline demo", hidden: true, title: "The scripted runtime plays canned replies offline: no model is called." });
    const total = h("span", { class: "stg-muted stg-chat-total" });
    const log = h("div", { class: "stg-chat-log", role: "log", "aria-label": "Conversation" });
    const empty = h("p", { class: "stg-muted stg-empty", text: "Ask something. /help lists the commands; @df:name attaches a DataFrame." });
    const input = h("textarea", {
      class: "stg-chat-input",
      rows: "2",
      "aria-label": "Message",
      placeholder: "Message (Enter sends, Shift+Enter new line) · /help · @file:path @task:id @df:name",
    });
    const sendBtn = h("button", { type: "button", class: "stg-btn stg-primary", text: "Send" });
    const feedback = h("div", { class: "stg-feedback", role: "status", "aria-live": "polite" });
    const composer = h("div", { class: "stg-chat-composer" }, input, sendBtn);
    const root = h(
      "div",
      { class: "stagent stg-chat", role: "region", "aria-label": "Chat" },
      h("div", { class: "stg-head" }, title, offline, total),
      chips,
      banner,
      empty,
      log,
      composer,
      feedback,
    );
    el.append(root);
    let lastState = { ok: true };

    function send() {
      const text = input.value.trim();
      if (!text || sendBtn.disabled) return;
      sendBtn.disabled = true;
      feedback.className = "stg-feedback";
      feedback.textContent = text.startsWith("/") ? "running…" : "sending…";
      actions.send({ type: "send", text }, (ack) => {
        sendBtn.disabled = !lastState.ok;
        feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
        feedback.textContent = ack.ok ? "" : ack.message;
        if (ack.ok) input.value = "";
        input.focus();
      });
    }
    sendBtn.addEventListener("click", send);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });

    function renderSession() {
      const s = model.get("session") || {};
      root.dataset.sessionId = s.id || "";
      title.textContent = s.title || "Chat";
      offline.hidden = s.runtime !== "scripted";
      const bits = [
        ["profile", s.profile],
        ["runtime", s.runtime === "scripted" ? "scripted (offline demo)" : s.runtime || "routing"],
        ["project", s.project],
        ["session", s.id],
      ].filter(([, v]) => v);
      chips.replaceChildren(
        ...bits.map(([k, v]) => h("span", { class: "stg-meta-item" }, h("span", { class: "stg-muted", text: `${k} ` }), String(v))),
      );
    }

    // One node per message (and per note), kept across renders so an approval's message box
    // keeps what the operator is typing.
    function fillMessage(node, m) {
      node.dataset.status = m.status || "";
      node.className = `stg-chat-msg stg-chat-${m.role}${TURN_ACTIVE.has(m.status) ? " stg-chat-busy" : ""}`;
      const parts = node._parts;
      if (m.role === "note") {
        parts.body.innerHTML = m.content_html || "";
        return;
      }
      parts.who.textContent = m.role === "user" ? "You" : "Background task";
      parts.text.replaceChildren(...withMentions(m.content || ""));
      parts.context.replaceChildren(
        ...(m.context || []).map((c) => h("span", { class: "stg-chip stg-chip-tag", title: c.note || "", text: `${c.kind} ${c.ref}${c.note ? ` · ${c.note}` : ""}` })),
      );
      parts.context.hidden = !(m.context || []).length;
      const active = TURN_ACTIVE.has(m.status);
      const act = (model.get("activity") || {})[m.task_id] || {};
      parts.badge.replaceChildren(statusBadge(m.status || "queued"));
      parts.streaming.hidden = !(active && act.streaming);
      parts.streaming.textContent = act.streaming || "";
      parts.line.hidden = !(active && act.line);
      parts.line.textContent = act.line || "";
      parts.reply.hidden = !m.reply_html;
      parts.reply.innerHTML = m.reply_html || ""; // sanitised in Python (markdown-it + nh3)
      parts.failure.hidden = !m.failure;
      parts.failure.textContent = m.failure ? `${m.status}: ${m.failure}` : "";
      const tokens = m.tokens_in || m.tokens_out ? ` · ${fmtCount(m.tokens_in)} in / ${fmtCount(m.tokens_out)} out` : "";
      parts.numbers.textContent = m.task_id ? `${fmtTurns(m.turns)}${tokens} · ${fmtUsd(m.cost_usd || 0)} · task ${m.task_id}` : "";
      parts.cancel.hidden = !active;
      const items = (model.get("pending") || []).filter((it) => it.task === m.task_id);
      parts.approvals.hidden = items.length === 0;
      syncKeyed(parts.approvals, items, (it) => it.id, (it) => approvalBox(it, actions));
    }

    function messageNode(m) {
      const node = h("div", { "data-message-id": m.id });
      if (m.role === "note") {
        node._parts = { body: h("div", { class: "stg-markdown" }) };
        node.append(node._parts.body);
        return node;
      }
      const parts = {
        who: h("strong", { class: "stg-chat-who" }),
        text: h("span", { class: "stg-chat-text" }),
        context: h("div", { class: "stg-chips stg-chat-context" }),
        badge: h("span", { class: "stg-chat-badge" }),
        streaming: h("div", { class: "stg-streaming" }),
        line: h("div", { class: "stg-chat-line stg-muted" }),
        approvals: h("div", { class: "stg-pending", "aria-label": "Approvals of this turn" }),
        reply: h("div", { class: "stg-chat-reply stg-markdown" }),
        failure: h("div", { class: "stg-failure" }),
        numbers: h("div", { class: "stg-chat-numbers stg-muted" }),
        cancel: h("button", {
          type: "button",
          class: "stg-btn stg-danger stg-chat-cancel",
          text: "Cancel",
          onclick: (event) => {
            event.currentTarget.disabled = true;
            actions.send({ type: "cancel", task_id: m.task_id }, (ack) => {
              feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
              feedback.textContent = ack.message;
            });
          },
        }),
      };
      node._parts = parts;
      node.append(
        h("div", { class: "stg-chat-ask" }, parts.who, " ", parts.text),
        parts.context,
        h("div", { class: "stg-chat-answer" }, h("div", { class: "stg-chat-status" }, parts.badge, parts.cancel), parts.streaming, parts.line, parts.approvals, parts.reply, parts.failure, parts.numbers),
      );
      return node;
    }

    let follow = true;
    log.addEventListener("scroll", () => {
      follow = nearBottom(log);
    });

    function renderMessages() {
      const messages = model.get("messages") || [];
      const notes = model.get("notes") || [];
      const items = [];
      for (const m of messages) {
        items.push(m);
        for (const n of notes) if (n.after === m.seq) items.push({ id: n.id, role: "note", content_html: n.html });
      }
      for (const n of notes) if (!messages.some((m) => m.seq === n.after)) items.push({ id: n.id, role: "note", content_html: n.html });
      empty.hidden = items.length > 0;
      syncKeyed(log, items, (m) => m.id, messageNode);
      const byId = new Map(items.map((m) => [String(m.id), m]));
      for (const node of log.children) {
        const m = byId.get(node.dataset.key);
        if (m) fillMessage(node, m);
      }
      const spent = messages.reduce((sum, m) => sum + (m.cost_usd || 0), 0);
      const turns = messages.filter((m) => m.role === "user").length;
      total.textContent = `${fmtPlural(turns, "turn")} · ${fmtUsd(spent)}`;
      if (!lastState.ok) setLive(root, banner, lastState, guidance);
      if (follow) log.scrollTop = log.scrollHeight;
    }

    function guidance(state) {
      const id = (model.get("session") || {}).id || "ID";
      if (state.kind === "reconnecting") return "Reconnecting to the kernel…";
      if (state.kind === "kernel") {
        return `This chat's kernel is gone (restarted or shut down), so messages no longer reach the workspace. The conversation is stored: run %stagent chat --session ${id} to continue it.`;
      }
      return `${state.text || "The workspace does not answer."} (%stagent chat --session ${id})`;
    }

    renderSession();
    renderMessages();
    model.on("change:session", renderSession);
    for (const name of ["messages", "notes", "pending", "activity"]) model.on(`change:${name}`, renderMessages);
    connection = watchConnection(model, el, (state) => {
      lastState = state;
      setLive(root, banner, state, guidance);
    });
    return () => {
      connection.dispose();
      actions.dispose();
    };
  },
};
