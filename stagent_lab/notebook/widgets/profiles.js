// The profiles view: identity, runtime coverage, tools and policy per profile.

export default {
  render({ model, el }) {
    const banner = h("div", { class: "stg-banner", role: "alert", hidden: true });
    let connection = null;
    const actions = makeActions(model, (why) => connection && connection.dead(why));
    const search = h("input", { type: "search", class: "stg-search", placeholder: "Filter profiles (id, name, tag, tool)", "aria-label": "Filter profiles" });
    const count = h("span", { class: "stg-muted" });
    const refresh = h("button", {
      type: "button",
      class: "stg-btn stg-secondary",
      text: "Reload",
      title: "Re-read profile folders",
      onclick: () => {
        refresh.disabled = true;
        actions.send({ type: "refresh" }, () => {
          refresh.disabled = false;
        });
      },
    });
    const errors = h("div", { class: "stg-errors", role: "alert" });
    const grid = h("div", { class: "stg-grid" });
    const root = h(
      "div",
      { class: "stagent stg-profiles", role: "region", "aria-label": "Profiles" },
      h("div", { class: "stg-head" }, h("h3", { class: "stg-title", text: "Profiles" }), count, refresh),
      banner,
      search,
      errors,
      grid,
    );
    el.append(root);

    const chips = (values, cls) => h("div", { class: "stg-chips" }, ...(values || []).map((v) => h("span", { class: `stg-chip ${cls || ""}`, text: v })));

    function card(p) {
      const runtimes = h(
        "div",
        { class: "stg-chips" },
        ...p.runtimes.map((r) =>
          h("span", {
            class: `stg-chip ${r.usable ? "stg-chip-ok" : "stg-chip-off"}`,
            title: r.usable ? "usable here" : `not usable here: ${r.reason}`,
            text: `${r.id === p.preferred ? "★ " : ""}${r.id}`,
          }),
        ),
      );
      return h(
        "article",
        { class: "stg-profile", "data-profile-id": p.id, "aria-label": `Profile ${p.name}` },
        h("header", {}, h("strong", { text: p.name }), h("code", { text: p.id }), h("span", { class: "stg-chip", text: p.origin })),
        p.description ? h("p", { class: "stg-muted", text: p.description }) : null,
        h("dl", {},
          h("dt", { text: "domain" }), h("dd", { text: `${p.domain} · v${p.version}${p.author ? ` · ${p.author}` : ""}` }),
          h("dt", { text: "runtimes" }), h("dd", {}, runtimes),
          h("dt", { text: "tools" }), h("dd", {}, chips(p.tools)),
          h("dt", { text: "auto-approve" }), h("dd", {}, p.auto_approve.length ? chips(p.auto_approve, "stg-chip-ok") : h("span", { class: "stg-muted", text: "none: every allowed tool asks" })),
          h("dt", { text: "auto-deny" }), h("dd", {}, p.auto_deny.length ? chips(p.auto_deny, "stg-chip-bad") : h("span", { class: "stg-muted", text: "none" })),
          h("dt", { text: "limits" }), h("dd", { text: `max ${p.max_turns} turns${p.output_format ? ` · ${p.output_format}` : ""} · ${p.tests} smoke test(s)` }),
          p.tags.length ? h("dt", { text: "tags" }) : null,
          p.tags.length ? h("dd", {}, chips(p.tags, "stg-chip-tag")) : null,
        ),
      );
    }

    function render() {
      const q = search.value.trim().toLowerCase();
      const all = model.get("profiles") || [];
      const match = (p) => !q || [p.id, p.name, p.description, ...p.tags, ...p.tools].join(" ").toLowerCase().includes(q);
      const shown = all.filter(match);
      count.textContent = `${shown.length} of ${all.length}`;
      grid.replaceChildren(...shown.map(card));
      const errs = model.get("errors") || [];
      errors.hidden = errs.length === 0;
      errors.replaceChildren(...errs.map((e) => h("div", { text: `⚠ ${e}` })));
    }

    search.addEventListener("input", render);
    render();
    model.on("change:profiles", render);
    model.on("change:errors", render);
    connection = watchConnection(model, el, (state) => setLive(root, banner, state, (st) =>
        st.kind === "reconnecting"
          ? "Reconnecting to the kernel…"
          : st.kind === "kernel"
            ? "This view's kernel is gone (restarted or shut down), so its buttons do nothing. Run %stagent profiles for a live one."
            : `${st.text || "The workspace does not answer."}`));
    return () => {
      connection.dispose();
      actions.dispose();
    };
  },
};
