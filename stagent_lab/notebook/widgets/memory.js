// The memory browser: every profile's memories, filtered, with Edit / Reject / Delete per row
// and a form to add one. Filters are traits (Python re-reads the store when they change);
// actions are custom messages answered through `last_action`.

const STATUS_LABEL = { "": "not rejected", all: "all (incl. rejected)" };

function memOption(value, label, selected) {
  return h("option", { value, selected: selected ? true : undefined, text: label });
}

function memSelect(props, options, current) {
  const node = h("select", props);
  node.replaceChildren(...options.map(([value, label]) => memOption(value, label, value === current)));
  node.value = current;
  return node;
}

export default {
  render({ model, el }) {
    const banner = h("div", { class: "stg-banner", role: "alert", hidden: true });
    let connection = null;
    const actions = makeActions(model, (why) => connection && connection.dead(why));
    const editing = new Map(); // memory id → its open edit row (typing survives refreshes)

    // ---- toolbar: title, count, filters -------------------------------------------------
    const count = h("span", { class: "stg-muted" });
    const feedback = h("div", { class: "stg-feedback", role: "status", "aria-live": "polite" });
    const refresh = h("button", {
      type: "button",
      class: "stg-btn stg-secondary",
      text: "Refresh",
      "aria-label": "Refresh memories",
      onclick: () => {
        refresh.disabled = true;
        actions.send({ type: "refresh" }, () => {
          refresh.disabled = false;
        });
      },
    });
    const profileFilter = h("select", { class: "stg-mem-filter", "aria-label": "Filter by profile" });
    const categoryFilter = h("select", { class: "stg-mem-filter", "aria-label": "Filter by category" });
    const statusFilter = h("select", { class: "stg-mem-filter", "aria-label": "Filter by status" });
    const search = h("input", { type: "search", class: "stg-search", placeholder: "Search content, tags, ids, source task", "aria-label": "Search memories" });

    const setFilter = (name, value) => {
      if (model.get(name) === value) return;
      model.set(name, value);
      model.save_changes();
    };
    profileFilter.addEventListener("change", () => setFilter("profile", profileFilter.value));
    categoryFilter.addEventListener("change", () => setFilter("category", categoryFilter.value));
    statusFilter.addEventListener("change", () => setFilter("status", statusFilter.value));
    let searchTimer = null;
    search.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => setFilter("search", search.value), 250);
    });

    // ---- the add form -------------------------------------------------------------------
    const addProfile = h("select", { "aria-label": "Profile of the new memory" });
    const addCategory = h("select", { "aria-label": "Category of the new memory" });
    const addContent = h("textarea", { class: "stg-message", rows: "2", "aria-label": "Content of the new memory", placeholder: "One self-contained fact, preference or pattern" });
    const addTags = h("input", { type: "text", "aria-label": "Tags of the new memory (comma-separated)", placeholder: "tags, comma-separated" });
    const addFeedback = h("div", { class: "stg-feedback", role: "status", "aria-live": "polite" });
    const addButton = h("button", {
      type: "button",
      class: "stg-btn stg-primary",
      text: "Add memory",
      "aria-label": "Add memory",
      onclick: () => {
        addButton.disabled = true;
        addFeedback.className = "stg-feedback";
        addFeedback.textContent = "saving…";
        actions.send(
          { type: "add", profile: addProfile.value, category: addCategory.value, content: addContent.value, tags: addTags.value },
          (ack) => {
            addButton.disabled = false;
            addFeedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
            addFeedback.textContent = ack.message || (ack.ok ? "added" : "failed");
            if (ack.ok) {
              addContent.value = "";
              addTags.value = "";
            }
          },
        );
      },
    });
    const addForm = h(
      "details",
      { class: "stg-mem-add" },
      h("summary", { text: "New memory" }),
      h(
        "div",
        { class: "stg-mem-form", role: "group", "aria-label": "New memory" },
        h("label", { class: "stg-field" }, h("span", { text: "profile" }), addProfile),
        h("label", { class: "stg-field" }, h("span", { text: "category" }), addCategory),
        addContent,
        h("label", { class: "stg-field" }, h("span", { text: "tags" }), addTags),
        h("div", { class: "stg-buttons" }, addButton),
        addFeedback,
      ),
    );

    // ---- the table ----------------------------------------------------------------------
    const columns = ["profile", "category", "content", "confidence", "status", "tags", "uses", "last used", "source task", ""];
    const body = h("tbody");
    const empty = h("p", { class: "stg-empty stg-muted", text: "No memories match." });
    const table = h(
      "table",
      { class: "stg-table stg-mem-table" },
      h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { text: c, scope: "col" })))),
      body,
    );

    const root = h(
      "div",
      { class: "stagent stg-memory", role: "region", "aria-label": "Memory browser" },
      h("div", { class: "stg-head" }, h("h3", { class: "stg-title", text: "Memory" }), count, refresh),
      banner,
      h(
        "div",
        { class: "stg-filters" },
        h("label", { class: "stg-field" }, h("span", { text: "profile" }), profileFilter),
        h("label", { class: "stg-field" }, h("span", { text: "category" }), categoryFilter),
        h("label", { class: "stg-field" }, h("span", { text: "status" }), statusFilter),
      ),
      search,
      feedback,
      addForm,
      empty,
      table,
    );
    el.append(root);

    const say = (ack, fallback) => {
      feedback.className = `stg-feedback ${ack.ok ? "stg-ok" : "stg-err"}`;
      feedback.textContent = ack.message || fallback;
    };

    function rowAction(button, payload, busy) {
      button.disabled = true;
      feedback.className = "stg-feedback";
      feedback.textContent = busy;
      actions.send(payload, (ack) => {
        button.disabled = false;
        say(ack, ack.ok ? "done" : "failed");
      });
    }

    function deleteButton(m) {
      const b = h("button", { type: "button", class: "stg-btn stg-danger", text: "Delete", "aria-label": `Delete memory ${m.id}`, title: "Remove for good (agents could learn it again; Reject keeps them from it)" });
      let armed = null;
      b.addEventListener("click", () => {
        if (!armed) {
          b.textContent = "Confirm delete";
          b.setAttribute("aria-label", `Confirm delete of memory ${m.id}`);
          b.classList.add("stg-armed");
          armed = setTimeout(() => {
            armed = null;
            b.textContent = "Delete";
            b.setAttribute("aria-label", `Delete memory ${m.id}`);
            b.classList.remove("stg-armed");
          }, 4000);
          return;
        }
        clearTimeout(armed);
        armed = null;
        rowAction(b, { type: "delete", id: m.id }, "deleting…");
      });
      return b;
    }

    function memoryRow(m) {
      const rejected = m.status === "rejected";
      const edit = h("button", {
        type: "button",
        class: "stg-btn stg-secondary",
        text: "Edit",
        "aria-label": `Edit memory ${m.id}`,
        disabled: rejected,
        title: rejected ? "Rejected memories stay rejected; add a new one instead" : "Change content, category, tags or confidence",
        onclick: () => {
          if (!editing.has(m.id)) editing.set(m.id, editRow(m));
          render();
          const box = editing.get(m.id).querySelector("textarea");
          if (box) box.focus();
        },
      });
      const reject = rejected
        ? null
        : h("button", {
            type: "button",
            class: "stg-btn stg-danger",
            text: "Reject",
            "aria-label": `Reject memory ${m.id}`,
            title: "Wrong: never used again, and agents cannot re-learn it",
            onclick: () => rowAction(reject, { type: "reject", id: m.id }, "rejecting…"),
          });
      const source = m.source_task
        ? h("span", { title: m.source_task, text: m.source_title || m.source_task.slice(0, 8) })
        : h("span", { class: "stg-muted", text: "operator" });
      return h(
        "tr",
        { class: `stg-mem-row stg-mem-${m.status}`, "data-memory-id": m.id, "data-status": m.status },
        h("td", {}, h("code", { text: m.profile }), m.project ? h("div", { class: "stg-muted", text: m.project }) : null),
        h("td", {}, h("span", { class: "stg-chip", text: m.category })),
        h("td", { class: "stg-mem-content" }, rejected ? h("s", { text: m.content }) : m.content),
        h("td", {
          class: "stg-mem-conf",
          title: `stored ${m.confidence}; decays ${m.decay_rate}‰ a day since last use`,
          text: String(m.effective),
        }),
        h("td", {}, h("span", { class: `stg-badge stg-m-${m.status}`, "data-status": m.status, text: m.status })),
        h("td", {}, h("div", { class: "stg-chips" }, ...(m.tags || []).map((t) => h("span", { class: "stg-chip stg-chip-tag", text: t })))),
        h("td", { class: "stg-mem-num", text: String(m.access_count) }),
        h("td", { class: "stg-muted", text: m.last_access_ms ? fmtWhen(m.last_access_ms) : "never" }),
        h("td", {}, source),
        h("td", {}, h("div", { class: "stg-buttons stg-mem-actions" }, edit, reject, deleteButton(m))),
      );
    }

    function editRow(m) {
      const content = h("textarea", { class: "stg-message", rows: "3", "aria-label": `Content of memory ${m.id}` });
      content.value = m.content;
      const category = memSelect(
        { "aria-label": `Category of memory ${m.id}` },
        (model.get("categories") || []).map((c) => [c, c]),
        m.category,
      );
      const tags = h("input", { type: "text", "aria-label": `Tags of memory ${m.id} (comma-separated)`, value: (m.tags || []).join(", ") });
      const confidence = h("input", { type: "number", min: "0", max: "1000", step: "1", class: "stg-mem-conf-input", "aria-label": `Confidence of memory ${m.id} (0 to 1000)`, value: String(m.effective) });
      const note = h("div", { class: "stg-feedback", role: "status", "aria-live": "polite" });
      const close = () => {
        editing.delete(m.id);
        render();
      };
      const save = h("button", {
        type: "button",
        class: "stg-btn stg-primary",
        text: "Save",
        "aria-label": `Save memory ${m.id}`,
        onclick: () => {
          const payload = { type: "edit", id: m.id };
          if (content.value !== m.content) payload.content = content.value;
          if (category.value !== m.category) payload.category = category.value;
          if (tags.value !== (m.tags || []).join(", ")) payload.tags = tags.value;
          if (confidence.value !== String(m.effective)) payload.confidence = confidence.value;
          if (Object.keys(payload).length === 2) {
            note.className = "stg-feedback";
            note.textContent = "nothing changed";
            return;
          }
          save.disabled = true;
          note.className = "stg-feedback";
          note.textContent = "saving…";
          actions.send(payload, (ack) => {
            save.disabled = false;
            if (ack.ok) {
              say(ack, "saved");
              close();
            } else {
              note.className = "stg-feedback stg-err";
              note.textContent = ack.message || "failed";
            }
          });
        },
      });
      const cancel = h("button", { type: "button", class: "stg-btn", text: "Cancel", "aria-label": `Cancel editing memory ${m.id}`, onclick: close });
      return h(
        "tr",
        { class: "stg-mem-edit", "data-memory-id": m.id },
        h(
          "td",
          { colspan: String(columns.length) },
          h(
            "div",
            { class: "stg-mem-form", role: "group", "aria-label": `Edit memory ${m.id}` },
            content,
            h("label", { class: "stg-field" }, h("span", { text: "category" }), category),
            h("label", { class: "stg-field" }, h("span", { text: "tags" }), tags),
            h("label", { class: "stg-field" }, h("span", { text: "confidence" }), confidence),
            h("div", { class: "stg-buttons" }, save, cancel),
            note,
          ),
        ),
      );
    }

    // ---- rendering ----------------------------------------------------------------------
    function renderFilters() {
      const profiles = model.get("profiles") || [];
      const categories = model.get("categories") || [];
      const statuses = model.get("statuses") || [];
      const current = model.get("profile") || "";
      const profileIds = current && !profiles.includes(current) ? [current, ...profiles] : profiles;
      const fill = (node, options, value) => {
        node.replaceChildren(...options.map(([v, label]) => memOption(v, label, v === value)));
        node.value = value;
      };
      fill(profileFilter, [["", "all profiles"], ...profileIds.map((p) => [p, p])], current);
      fill(categoryFilter, [["", "all categories"], ...categories.map((c) => [c, c])], model.get("category") || "");
      const statusValue = model.get("status") || "";
      fill(statusFilter, [["", STATUS_LABEL[""]], ["all", STATUS_LABEL.all], ...statuses.map((s) => [s, s])], statusValue);
      if (document.activeElement !== search) search.value = model.get("search") || "";
      const chosen = addProfile.value || current;
      fill(addProfile, [["", "choose…"], ...profiles.map((p) => [p, p])], profiles.includes(chosen) ? chosen : "");
      fill(addCategory, categories.map((c) => [c, c]), addCategory.value || categories[0] || "fact");
    }

    function render() {
      const rows = model.get("memories") || [];
      const total = model.get("total") || 0;
      count.textContent = rows.length < total ? `${rows.length} shown of ${total}` : `${total} ${total === 1 ? "memory" : "memories"}`;
      empty.hidden = rows.length > 0;
      table.hidden = rows.length === 0;
      const ids = new Set(rows.map((m) => m.id));
      for (const id of Array.from(editing.keys())) if (!ids.has(id)) editing.delete(id);
      const items = [];
      for (const m of rows) {
        items.push({ kind: "row", m });
        if (editing.has(m.id)) items.push({ kind: "edit", m });
      }
      syncKeyed(
        body,
        items,
        (it) => (it.kind === "edit" ? `edit:${it.m.id}` : `row:${JSON.stringify(it.m)}`),
        (it) => (it.kind === "edit" ? editing.get(it.m.id) : memoryRow(it.m)),
      );
    }

    renderFilters();
    render();
    for (const name of ["profiles", "categories", "statuses", "profile", "category", "status", "search"]) {
      model.on(`change:${name}`, renderFilters);
    }
    model.on("change:memories", render);
    model.on("change:total", render);
    connection = watchConnection(model, el, (state) => setLive(root, banner, state, (st) =>
        st.kind === "reconnecting"
          ? "Reconnecting to the kernel…"
          : st.kind === "kernel"
            ? "This view's kernel is gone (restarted or shut down), so its buttons do nothing. Run %stagent memory for a live one."
            : `${st.text || "The workspace does not answer."}`));
    return () => {
      clearTimeout(searchTimer);
      connection.dispose();
      actions.dispose();
    };
  },
};
