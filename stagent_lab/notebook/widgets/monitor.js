// The monitor: headline numbers, active agents, a live log filterable by task, profile and
// event type, and one titled table per feature panel (`sections`: budgets, schedules, workflow
// runs, channels …). Filters live in the page only, so changing one costs no round trip.

function sectionTitle(name) {
  const text = String(name).replace(/[_-]+/g, " ").trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function sectionCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}=${v}`).join(", ");
  return String(value);
}

function sectionTable(name, rows) {
  const columns = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  const body = rows.length
    ? h(
        "div",
        { class: "stg-table-wrap" },
        h(
          "table",
          { class: "stg-table", "aria-label": sectionTitle(name) },
          h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { text: c.replace(/_/g, " ") })))),
          h(
            "tbody",
            {},
            ...rows.map((row) =>
              h(
                "tr",
                {},
                ...columns.map((c) =>
                  h("td", { class: typeof row[c] === "number" ? "stg-num" : "", text: sectionCell(row[c]) }),
                ),
              ),
            ),
          ),
        ),
      )
    : h("p", { class: "stg-muted stg-empty", text: "Nothing here yet." });
  return h("section", { class: "stg-section", "data-section": name }, h("h4", { text: sectionTitle(name) }), body);
}

export default {
  render({ model, el }) {
    const banner = h("div", { class: "stg-banner", role: "alert", hidden: true });
    const tiles = h("div", { class: "stg-tiles" });
    const agentsBody = h("tbody");
    const agents = h(
      "table",
      { class: "stg-table stg-agents", "aria-label": "Active agents" },
      h("thead", {}, h("tr", {}, ...["task", "profile", "runtime", "status", "elapsed", "turns", "cost"].map((c) => h("th", { text: c, class: c === "turns" || c === "cost" ? "stg-num" : "" })))),
      agentsBody,
    );
    const noAgents = h("p", { class: "stg-muted stg-empty", text: "No agent is running." });
    const filters = { task: "", profile: "", event: "" };
    const selects = {};
    const filterBar = h("div", { class: "stg-filters" });
    for (const [key, label] of [["task", "Task"], ["profile", "Profile"], ["event", "Event"]]) {
      const select = h("select", {
        "aria-label": `Filter by ${label.toLowerCase()}`,
        onchange: (e) => {
          filters[key] = e.target.value;
          renderLog("all");
        },
      });
      selects[key] = select;
      filterBar.append(h("label", {}, h("span", { text: `${label} ` }), select));
    }
    const dropped = h("div", { class: "stg-dropped stg-muted" });
    const headList = h("ol", { class: "stg-log-list" });
    const tailList = h("ol", { class: "stg-log-list" });
    const logBox = h("div", { class: "stg-log stg-log-tall", role: "log", "aria-label": "Live log" }, dropped, headList, tailList);
    let follow = true;
    logBox.addEventListener("scroll", () => {
      follow = nearBottom(logBox);
    });
    const sectionsBox = h("div", { class: "stg-sections" });
    const root = h(
      "div",
      { class: "stagent stg-monitor", role: "region", "aria-label": "Monitor" },
      h("div", { class: "stg-head" }, h("h3", { class: "stg-title", text: "Monitor" })),
      banner,
      tiles,
      h("h4", { text: "Active agents" }),
      noAgents,
      h("div", { class: "stg-table-wrap" }, agents),
      sectionsBox,
      h("h4", { text: "Live log" }),
      filterBar,
      logBox,
    );
    el.append(root);

    function tile(label, value, hint) {
      return h("div", { class: "stg-tile", title: hint || "" }, h("div", { class: "stg-tile-value", text: value }), h("div", { class: "stg-tile-label", text: label }));
    }

    function renderStats() {
      const s = model.get("stats") || {};
      const rate = s.success_rate === null || s.success_rate === undefined ? "–" : `${Math.round(s.success_rate * 100)}%`;
      tiles.replaceChildren(
        tile("active agents", String(s.active || 0), `${s.running || 0} running, ${s.waiting || 0} waiting, ${s.queued || 0} queued`),
        tile("success rate", rate, `${s.completed || 0} completed, ${s.failed || 0} failed (all time)`),
        tile(s.tasks_today === 1 ? "task today" : "tasks today", String(s.tasks_today || 0), `${s.completed_today || 0} completed, ${s.failed_today || 0} failed`),
        tile("cost today", fmtUsd(s.cost_today || 0), "usage ledger since local midnight"),
        tile("waiting for you", String(s.pending_inbox || 0), "pending inbox items"),
      );
    }

    function renderAgents() {
      const rows = model.get("agents") || [];
      noAgents.hidden = rows.length > 0;
      agents.hidden = rows.length === 0;
      agentsBody.replaceChildren(
        ...rows.map((a) =>
          h(
            "tr",
            {
              "data-task-id": a.id,
              class: "stg-clickable",
              title: "Show this task's log",
              onclick: () => {
                filters.task = filters.task === a.id ? "" : a.id;
                renderLog("all");
              },
            },
            h("td", { class: "stg-agent-title", title: `task ${a.id}`, text: a.title || a.id }),
            h("td", { text: a.profile }),
            h("td", { text: a.runtime }),
            h("td", {}, statusBadge(a.status)),
            h("td", { class: "stg-elapsed", "data-started": a.started_ms || "", text: fmtElapsed(elapsedOf(a.started_ms)) }),
            h("td", { class: "stg-num", text: fmtTurns(a.turns, a.max_turns) }),
            h("td", { class: "stg-num", text: fmtCost(a.cost_usd || 0, a.max_budget_usd) }),
          ),
        ),
      );
    }

    function entries() {
      return (model.get("log") || []).concat(model.get("log_tail") || []);
    }

    // Options change rarely; rebuilding an open <select> would close it under the pointer.
    const optionKeys = { task: "", profile: "", event: "" };
    function fillSelect(key, values, labels) {
      const select = selects[key];
      const current = filters[key];
      const wanted = current && !values.includes(current) ? [...values, current] : values;
      const signature = wanted.join("\u0000");
      if (signature === optionKeys[key]) return;
      optionKeys[key] = signature;
      select.replaceChildren(
        h("option", { value: "", text: "all" }),
        ...wanted.map((v) => h("option", { value: v, text: labels.get(v) || v })),
      );
      select.value = current;
    }

    function renderFilters() {
      const all = entries();
      const taskLabels = new Map();
      const titles = model.get("titles") || {};
      for (const id of Object.keys(titles)) taskLabels.set(id, taskName(id, titles));
      for (const a of model.get("agents") || []) taskLabels.set(a.id, taskName(a.id, { [a.id]: a.title }));
      const uniq = (f) => Array.from(new Set(all.map(f).filter(Boolean))).sort();
      fillSelect("task", uniq((e) => e.task), taskLabels);
      fillSelect("profile", uniq((e) => e.profile), new Map());
      fillSelect("event", uniq((e) => e.event), new Map());
    }

    const keep = (e) =>
      (!filters.task || e.task === filters.task) &&
      (!filters.profile || e.profile === filters.profile) &&
      (!filters.event || e.event === filters.event);

    function renderLog(which) {
      renderFilters();
      const titles = model.get("titles") || {};
      if (which !== "tail") fillLog(headList, (model.get("log") || []).filter(keep), { showTask: true, titles });
      fillLog(tailList, (model.get("log_tail") || []).filter(keep), { showTask: true, titles });
      const n = model.get("dropped") || 0;
      dropped.hidden = !n;
      dropped.textContent = n ? `${n} earlier entries not shown (query agent_logs for all)` : "";
      if (follow) logBox.scrollTop = logBox.scrollHeight;
    }

    function renderSections() {
      const sections = model.get("sections") || {};
      sectionsBox.replaceChildren(...Object.keys(sections).map((name) => sectionTable(name, sections[name] || [])));
    }

    renderStats();
    renderAgents();
    renderSections();
    renderLog("all");
    requestAnimationFrame(() => {
      logBox.scrollTop = logBox.scrollHeight;
    });
    model.on("change:stats", renderStats);
    model.on("change:agents", renderAgents);
    model.on("change:log", () => renderLog("all"));
    model.on("change:log_tail", () => renderLog("tail"));
    model.on("change:titles", () => renderLog("all"));
    model.on("change:sections", renderSections);
    let alive = true;
    const connection = watchConnection(model, el, (state) => {
      alive = state.ok;
      setLive(root, banner, state, (st) =>
        st.kind === "reconnecting"
          ? "Reconnecting to the kernel…"
          : st.kind === "kernel"
            ? "This monitor's kernel is gone (restarted or shut down), so it no longer updates. Run %stagent monitor for a live one."
            : `${st.text || "The workspace does not answer."}`,
      );
    });
    const timer = setInterval(() => {
      if (!alive) return;
      for (const cell of agentsBody.querySelectorAll("td.stg-elapsed")) {
        const started = Number(cell.dataset.started);
        if (started) cell.textContent = fmtElapsed(elapsedOf(started));
      }
    }, 1000);
    return () => {
      clearInterval(timer);
      connection.dispose();
    };
  },
};
