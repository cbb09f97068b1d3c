// The agents of the organization: search, engine filter, paging.

import { api } from "../api.js";
import { field, flash, formatDate, h, replace } from "../dom.js";

const PAGE_SIZE = 20;

export async function render(main) {
  const search = h("input", { type: "search", name: "search", placeholder: "Name contains…" });
  const engine = h("select", { name: "engine" }, h("option", { value: "" }, "All engines"));
  const results = h("div", { class: "table-wrap", "aria-live": "polite" });
  const pager = h("div", { class: "actions" });
  let page = 1;

  main.append(
    h("div", { class: "row" },
      h("h1", { class: "grow" }, "Agents"),
      h("a", { class: "button primary", href: "/console/agents/new", id: "new-agent" }, "New agent")),
    h("form", { class: "row panel", role: "search", onsubmit: (e) => { e.preventDefault(); page = 1; load(); } },
      h("div", { class: "grow" }, field("Search", search)),
      h("div", { class: "grow" }, field("Engine", engine)),
      h("div", { class: "field" }, h("button", { type: "submit" }, "Filter"))),
    results, pager);

  engine.addEventListener("change", () => { page = 1; load(); });
  api.engineTypes().then((types) => {
    for (const item of types.engines) engine.append(h("option", { value: item.engine_class_id }, item.name));
  }).catch((error) => flash(error.message));

  async function load() {
    const data = await api.listAgents({
      page, page_size: PAGE_SIZE, search: search.value.trim(), engine_class_id: engine.value, ordering: "-created_at",
    });
    if (!data.results.length) {
      replace(results, h("p", { class: "muted" }, search.value || engine.value
        ? "No agent matches these filters."
        : "No agents yet. Create one to get started."));
    } else {
      replace(results, h("table", {},
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Engine"),
          h("th", { scope: "col", class: "num" }, "Jobs"), h("th", { scope: "col", class: "hide-narrow" }, "Last job"),
          h("th", { scope: "col", class: "hide-narrow" }, "Created"))),
        h("tbody", {}, data.results.map((agent) => h("tr", {},
          h("td", {}, h("a", { href: `/console/agents/${agent.id}` }, agent.name)),
          h("td", {}, agent.engine_name),
          h("td", { class: "num" }, agent.job_count ?? 0),
          h("td", { class: "hide-narrow" }, formatDate(agent.most_recent_job)),
          h("td", { class: "hide-narrow" }, formatDate(agent.created_at)))))));
    }
    const pages = Math.max(1, Math.ceil(data.count / PAGE_SIZE));
    replace(pager,
      h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; load(); } }, "Previous"),
      h("span", { class: "muted" }, `Page ${page} of ${pages} · ${data.count} agents`),
      h("button", { type: "button", disabled: page >= pages, onclick: () => { page += 1; load(); } }, "Next"));
  }

  await load().catch((error) => replace(results, h("p", { class: "error" }, error.message)));
}
