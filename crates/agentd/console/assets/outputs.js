// Job outputs and status events, shown as readable tables and as JSON.

import { formatCost, formatDate, formatDuration, formatTokens, h, statusBadge } from "./dom.js";

function parsed(value) {
  if (typeof value !== "string") return value;
  try { return JSON.parse(value); } catch { return value; }
}

function cellText(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** One table row per output field (object outputs spread into their fields). */
export function outputsTable(outputs) {
  const rows = [];
  for (const datum of outputs || []) {
    const value = parsed(datum.value);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, item] of Object.entries(value)) rows.push([key, cellText(item)]);
    } else {
      rows.push([datum.key, cellText(value)]);
    }
  }
  if (!rows.length) return h("p", { class: "muted" }, "No outputs.");
  return h("div", { class: "table-wrap" }, h("table", { class: "outputs" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Value"))),
    h("tbody", {}, rows.map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, value))))));
}

/** The outputs as pretty JSON (values that are JSON text are expanded). */
export function outputsJson(outputs) {
  const expanded = (outputs || []).map((datum) => ({ ...datum, value: parsed(datum.value) }));
  return h("pre", { class: "outputs-json", tabindex: "0", "aria-label": "Outputs as JSON" }, JSON.stringify(expanded, null, 2));
}

/** Cost, tokens and duration of a finished job. */
export function jobFacts(result, durationMs) {
  return h("dl", { class: "facts job-facts" },
    h("dt", {}, "Status"), h("dd", {}, statusBadge(result.status)),
    h("dt", {}, "Cost"), h("dd", { class: "job-cost" }, formatCost(result.cost)),
    h("dt", {}, "Tokens"), h("dd", {}, formatTokens(result.input_tokens, result.output_tokens)),
    h("dt", {}, "Duration"), h("dd", {}, formatDuration(durationMs)));
}

export function eventsList(events) {
  if (!events?.length) return h("p", { class: "muted" }, "No status events yet.");
  return h("ol", { class: "events" }, events.map((event) => h("li", {},
    statusBadge(event.status_code), " ", formatDate(event.timestamp),
    event.error_message ? h("span", { class: "error" }, ` — ${event.error_message}`) : null)));
}
