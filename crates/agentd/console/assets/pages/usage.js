// Spend and job counts per day and model over the last 30 days: stacked
// bar charts drawn as SVG, and a per-model table.

import { api } from "../api.js";
import { formatCost, h } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";
const DAYS = 30;

function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/** A stacked bar per day; `measure` picks jobs or cost from a model's entry. */
function stackedChart(title, usage, models, measure, format) {
  const width = 900;
  const height = 260;
  const left = 84;
  const bottom = 28;
  const top = 12;
  const plotHeight = height - bottom - top;
  const totals = usage.daily.map((day) => models.reduce((sum, model) => sum + (day.models[model] ? measure(day.models[model]) : 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const slot = (width - left - 8) / usage.daily.length;
  const bars = [];
  usage.daily.forEach((day, index) => {
    let y = top + plotHeight;
    models.forEach((model, series) => {
      const entry = day.models[model];
      if (!entry) return;
      const barHeight = (measure(entry) / max) * plotHeight;
      y -= barHeight;
      bars.push(svg("rect", { x: left + index * slot + slot * 0.15, y, width: slot * 0.7, height: barHeight, class: `series-${series % 6}` },
        svg("title", {}, `${day.date} · ${model}: ${format(measure(entry))}`)));
    });
  });
  const ticks = [0, 0.5, 1].map((fraction) => {
    const y = top + plotHeight - fraction * plotHeight;
    return svg("g", {},
      svg("line", { x1: left - 4, x2: width - 8, y1: y, y2: y, class: "axis" }),
      svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, format(max * fraction)));
  });
  const labels = usage.daily.map((day, index) => (index % 5 === 0 || index === usage.daily.length - 1)
    ? svg("text", { x: left + index * slot + slot / 2, y: height - 8, "text-anchor": "middle" }, day.date.slice(5))
    : null).filter(Boolean);
  const summary = `${title}: ${format(totals.reduce((a, b) => a + b, 0))} over ${usage.daily.length} days, at most ${format(Math.max(...totals, 0))} on one day.`;
  return h("figure", { class: "panel chart" },
    h("figcaption", {}, h("h2", {}, title)),
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": summary }, ...ticks, ...bars, ...labels));
}

export async function render(main) {
  const usage = await api.usage(DAYS);
  const models = usage.models.map((m) => m.model);
  main.append(
    h("h1", {}, `Usage, last ${usage.days} days`),
    h("p", { id: "usage-totals" }, `${usage.total_jobs} jobs · ${formatCost(usage.total_cost)} since ${usage.from}`),
    h("div", { class: "legend", "aria-label": "Models" }, models.map((model, series) =>
      h("span", {}, h("span", { class: `swatch series-${series % 6}` }), model))),
    stackedChart("Spend per day", usage, models, (entry) => entry.cost, formatCost),
    stackedChart("Jobs per day", usage, models, (entry) => entry.jobs, (n) => String(Math.round(n * 10) / 10)),
    h("h2", {}, "Per model"),
    h("div", { class: "table-wrap" }, h("table", { id: "usage-models" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Model"), h("th", { scope: "col", class: "num" }, "Jobs"),
        h("th", { scope: "col", class: "num" }, "Cost"), h("th", { scope: "col", class: "num hide-narrow" }, "Input tokens"),
        h("th", { scope: "col", class: "num hide-narrow" }, "Output tokens"))),
      h("tbody", {}, usage.models.length ? usage.models.map((m) => h("tr", {},
        h("th", { scope: "row" }, m.model), h("td", { class: "num" }, m.jobs), h("td", { class: "num" }, formatCost(m.cost)),
        h("td", { class: "num hide-narrow" }, m.input_tokens), h("td", { class: "num hide-narrow" }, m.output_tokens)))
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No jobs in this period."))))));
}
