// An agent's jobs: status filter, paging, refreshed while any job runs.

import { api } from "../api.js";
import { field, FINAL_STATUSES, formatCost, formatDate, formatDuration, h, replace, statusBadge, STATUS_NAMES } from "../dom.js";
import { agentHeader } from "./agent.js";

const PAGE_SIZE = 25;
const REFRESH_MS = 2000;

export async function render(main, params) {
  const agent = await api.getAgent(params.id);
  const status = h("select", { name: "status", id: "job-status-filter" },
    h("option", { value: "" }, "Any status"),
    STATUS_NAMES.map((name, code) => h("option", { value: code }, name)));
  const table = h("div", { class: "table-wrap", id: "jobs-table" });
  const pager = h("div", { class: "actions" });
  const live = h("p", { class: "hint", "aria-live": "polite" });
  let page = 1;
  let timer = null;
  let stopped = false;

  async function load() {
    clearTimeout(timer);
    const data = await api.listJobs(agent.id, { page, page_size: PAGE_SIZE, status_code: status.value, ordering: "-created_at" });
    if (stopped) return;
    replace(table, data.results.length ? h("table", {},
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Job"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Created"),
        h("th", { scope: "col", class: "num" }, "Duration"), h("th", { scope: "col", class: "num" }, "Cost"),
        h("th", { scope: "col", class: "hide-narrow" }, "Version"))),
      h("tbody", {}, data.results.map((job) => h("tr", {},
        h("td", {}, h("a", { href: `/console/agents/${agent.id}/jobs/${job.id}`, class: "job-link" }, h("code", {}, job.id.slice(0, 8)))),
        h("td", {}, statusBadge(job.status_code)),
        h("td", {}, formatDate(job.created_at)),
        h("td", { class: "num" }, formatDuration(job.duration_ms)),
        h("td", { class: "num" }, formatCost(job.cost)),
        h("td", { class: "hide-narrow" }, job.agent_version_name || job.agent_version_id.slice(0, 8))))))
      : h("p", { class: "muted" }, status.value ? "No job has this status." : "No jobs yet: run the agent in the playground or as a batch."));
    const pages = Math.max(1, Math.ceil(data.count / PAGE_SIZE));
    replace(pager,
      h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; load(); } }, "Previous"),
      h("span", { class: "muted" }, `Page ${page} of ${pages} · ${data.count} jobs`),
      h("button", { type: "button", disabled: page >= pages, onclick: () => { page += 1; load(); } }, "Next"));
    const running = data.results.some((job) => !FINAL_STATUSES.has(job.status_code));
    live.textContent = running ? "Updating while jobs run…" : "";
    if (running) timer = setTimeout(() => load().catch((error) => { live.textContent = error.message; }), REFRESH_MS);
  }

  status.addEventListener("change", () => { page = 1; load(); });
  main.append(...agentHeader(agent, "/jobs"),
    h("div", { class: "row" }, h("div", {}, field("Status", status))),
    live, table, pager);
  await load().catch((error) => replace(table, h("p", { class: "error" }, error.message)));
  return () => { stopped = true; clearTimeout(timer); };
}
