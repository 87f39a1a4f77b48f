// The inbox: every pending item across tasks, decided inline, plus recent decisions.

export default {
  render({ model, el }) {
    const actions = makeActions(model);
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
    el.append(h("div", { class: "stagent stg-inbox", role: "region", "aria-label": "Inbox" }, heading, empty, list, recent));

    function renderItems() {
      const items = model.get("items") || [];
      heading.replaceChildren(
        "Inbox ",
        h("span", { class: `stg-count${items.length ? " stg-count-hot" : ""}`, text: `${items.length} pending` }),
      );
      empty.hidden = items.length > 0;
      syncKeyed(list, items, (it) => it.id, (it) => approvalBox(it, actions, { showTask: true }));
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
    return () => actions.dispose();
  },
};
