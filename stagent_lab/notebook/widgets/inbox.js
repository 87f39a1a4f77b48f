// The inbox: every pending item across tasks, decided inline, plus recent decisions.

export default {
  render({ model, el }) {
    const banner = h("div", { class: "stg-banner", role: "alert", hidden: true });
    let connection = null;
    const actions = makeActions(model, (why) => connection && connection.dead(why));
    const heading = h("h3", { class: "stg-title" });
    const list = h("div", { class: "stg-pending", "aria-label": "Pending items" });
    const empty = h("p", { class: "stg-empty stg-muted", text: "Nothing is waiting for you." });
    const recentBody = h("tbody");
    const recent = h(
      "details",
      { class: "stg-recent", open: true },
      h("summary", { text: "Recent decisions" }),
      h(
        "table",
        { class: "stg-table" },
        h("thead", {}, h("tr", {}, ...["when", "task", "item", "decision", "by", "message"].map((c) => h("th", { text: c })))),
        recentBody,
      ),
    );
    const root = h("div", { class: "stagent stg-inbox", role: "region", "aria-label": "Inbox" }, heading, banner, empty, list, recent);
    el.append(root);
    let lastState = { ok: true };
    const guidance = (st) =>
      st.kind === "reconnecting"
        ? "Reconnecting to the kernel…"
        : st.kind === "kernel"
          ? "This inbox's kernel is gone (restarted or shut down), so its buttons no longer reach the workspace. Run %stagent inbox for a live one."
          : `${st.text || "The workspace does not answer."}`;

    function renderItems() {
      const items = model.get("items") || [];
      heading.replaceChildren(
        "Inbox ",
        h("span", { class: `stg-count${items.length ? " stg-count-hot" : ""}`, text: `${items.length} pending` }),
      );
      empty.hidden = items.length > 0;
      syncKeyed(list, items, (it) => it.id, (it) => approvalBox(it, actions, { showTask: true }));
      if (!lastState.ok) setLive(root, banner, lastState, guidance);
    }

    function renderRecent() {
      const rows = model.get("recent") || [];
      recent.hidden = rows.length === 0;
      recentBody.replaceChildren(
        ...rows.map((r) =>
          h(
            "tr",
            { "data-item-id": r.id },
            h("td", { text: fmtWhen(r.decided_ms || r.created_ms) }),
            h("td", { text: r.title || r.task || "" }),
            h("td", { text: r.tool ? `${r.kind} ${r.tool}` : r.kind }),
            h("td", {}, h("span", { class: `stg-badge stg-d-${r.decision || r.status}`, text: r.decision || r.status })),
            h("td", { text: r.decided_by || "" }),
            h("td", { class: "stg-muted", text: r.response || "" }),
          ),
        ),
      );
    }

    renderItems();
    renderRecent();
    model.on("change:items", renderItems);
    model.on("change:recent", renderRecent);
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
