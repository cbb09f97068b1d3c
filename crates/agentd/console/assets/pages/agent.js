// One agent: facts, versions (any can be made current), duplicate, delete.

import { api } from "../api.js";
import { flash, formatDate, h, replace } from "../dom.js";
import { navigate } from "../router.js";

const TABS = [["", "Overview"], ["/playground", "Playground"], ["/jobs", "Jobs"], ["/batch", "Batch"], ["/edit", "Edit"]];

/** The heading and tab bar every agent page shares. */
export function agentHeader(agent, currentTab) {
  return [
    h("p", {}, h("a", { href: "/console/" }, "← Agents")),
    h("h1", { id: "agent-title" }, agent.name),
    h("nav", { class: "tabs", "aria-label": "Agent" }, TABS.map(([suffix, label]) =>
      h("a", { href: `/console/agents/${agent.id}${suffix}`, "aria-current": suffix === currentTab ? "page" : null }, label))),
  ];
}

export async function render(main, params) {
  const [agent, versions] = await Promise.all([api.getAgent(params.id), api.listVersions(params.id)]);
  const versionList = h("div", { class: "table-wrap" });

  function renderVersions(list, currentId) {
    replace(versionList, h("table", { id: "versions" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Created"),
        h("th", { scope: "col", class: "hide-narrow" }, "Model"), h("th", { scope: "col" }, ""))),
      h("tbody", {}, list.map((version) => h("tr", {},
        h("td", {}, version.version_name || version.id, version.id === currentId ? h("span", { class: "badge status-SUCCESS" }, " current") : null),
        h("td", {}, formatDate(version.created_at)),
        h("td", { class: "hide-narrow" }, version.engine_config?.model || "server default"),
        h("td", {}, version.id === currentId ? null : h("button", { type: "button", onclick: () => makeCurrent(version) }, "Make current")))))));
  }

  async function makeCurrent(version) {
    try {
      const updated = await api.makeCurrent(agent.id, version.id);
      flash(`Version ${version.version_name || version.id} is now current.`, "info");
      renderVersions(versions.results || versions, updated.current_version_id);
    } catch (error) {
      flash(error.message);
    }
  }

  async function duplicate() {
    try {
      // The answer is the copy's first version; its agent is `base_agent`.
      const copy = (await api.duplicateAgent(agent.id)).base_agent;
      flash(`Duplicated as “${copy.name}”.`, "info");
      navigate(`/agents/${copy.id}`);
    } catch (error) {
      flash(error.message);
    }
  }

  async function remove() {
    if (!window.confirm(`Delete the agent “${agent.name}” with all its versions and jobs? This cannot be undone.`)) return;
    try {
      await api.deleteAgent(agent.id);
      flash(`Deleted “${agent.name}”.`, "info");
      navigate("/");
    } catch (error) {
      flash(error.message);
    }
  }

  main.append(
    ...agentHeader(agent, ""),
    h("section", { class: "panel" },
      h("dl", { class: "facts" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, agent.id)),
        h("dt", {}, "Engine"), h("dd", {}, agent.engine_name),
        h("dt", {}, "Jobs"), h("dd", {}, agent.job_count ?? 0),
        h("dt", {}, "Last job"), h("dd", {}, formatDate(agent.most_recent_job)),
        h("dt", {}, "Created"), h("dd", {}, formatDate(agent.created_at)))),
    h("div", { class: "actions" },
      h("a", { class: "button primary", href: `/console/agents/${agent.id}/playground` }, "Run in playground"),
      h("button", { type: "button", id: "duplicate-agent", onclick: duplicate }, "Duplicate"),
      h("button", { type: "button", class: "danger", id: "delete-agent", onclick: remove }, "Delete…")),
    h("h2", {}, "Versions"),
    versionList);
  renderVersions(versions.results || versions, agent.current_version_id);
}
