// A batch: a CSV or JSONL file whose columns are the input keys, sent in
// chunks to async/many, followed with a progress bar, results downloadable.

import { api } from "../api.js";
import { download, field, FINAL_STATUSES, h, oversizeMessage, replace, statusName } from "../dom.js";
import { parseCsv, parseJsonl, toCsv, toJsonl } from "../tabular.js";
import { agentHeader } from "./agent.js";
import { isTextInput } from "./playground.js";

const CHUNK = 100;
const POLL_MS = 1000;

export async function render(main, params, context) {
  const [agent, version] = await Promise.all([api.getAgent(params.id), api.currentVersion(params.id)]);
  const keys = version.input_definitions.map((d) => d.key);
  const fileInputs = version.input_definitions.filter((d) => !isTextInput(d.data_type)).map((d) => d.key);
  const picker = h("input", { type: "file", accept: ".csv,.jsonl,.ndjson,text/csv,application/x-ndjson", id: "batch-file" });
  const error = h("div", { class: "error", role: "alert", id: "batch-error" });
  const preview = h("div", { id: "batch-preview" });
  const progressBar = h("progress", { id: "batch-progress", max: 1, value: 0 });
  const progressText = h("p", { id: "batch-progress-text", "aria-live": "polite" });
  const results = h("div", { class: "actions", id: "batch-results" });
  const runButton = h("button", { type: "button", class: "primary", id: "run-batch", disabled: true }, "Run batch");
  let rows = [];
  let stopped = false;
  let timer = null;

  picker.addEventListener("change", async () => {
    error.textContent = "";
    replace(preview);
    runButton.disabled = true;
    const file = picker.files[0];
    if (!file) return;
    const tooBig = oversizeMessage(file, context.user?.max_upload_bytes);
    if (tooBig) { error.textContent = tooBig; picker.value = ""; return; }
    try {
      const text = await file.text();
      rows = /\.(jsonl|ndjson)$/i.test(file.name) ? parseJsonl(text) : parseCsv(text);
      if (!rows.length) throw new Error("The file has no rows.");
      const unknown = Object.keys(rows[0]).filter((column) => !keys.includes(column) && column !== "metadata");
      if (unknown.length) throw new Error(`Unknown column(s) ${unknown.join(", ")}: the inputs are ${keys.join(", ")}.`);
      replace(preview, h("p", {}, `${rows.length} row(s) with columns ${Object.keys(rows[0]).join(", ")}.`));
      runButton.disabled = false;
    } catch (failure) {
      error.textContent = failure.message;
    }
  });

  runButton.addEventListener("click", async () => {
    runButton.disabled = true;
    picker.disabled = true;
    error.textContent = "";
    replace(results);
    const ids = [];
    try {
      for (let start = 0; start < rows.length; start += CHUNK) {
        const chunk = rows.slice(start, start + CHUNK).map(({ metadata: _ignored, ...inputs }) => inputs);
        ids.push(...await api.runAsyncMany(agent.id, chunk));
        progressText.textContent = `Submitted ${ids.length} of ${rows.length}…`;
      }
    } catch (failure) {
      error.textContent = `Submitting failed after ${ids.length} of ${rows.length} rows: ${failure.message}`;
      picker.disabled = false;
      if (!ids.length) { runButton.disabled = false; return; }
    }
    progressBar.max = ids.length;
    poll(ids);
  });

  async function poll(ids) {
    let statuses = [];
    try {
      for (let start = 0; start < ids.length; start += 1000) {
        statuses.push(...await api.jobStatuses(ids.slice(start, start + 1000)));
      }
    } catch (failure) {
      error.textContent = failure.message;
      statuses = [];
    }
    if (stopped) return;
    const done = statuses.filter((s) => FINAL_STATUSES.has(s.status)).length;
    const counts = {};
    for (const s of statuses) counts[statusName(s.status)] = (counts[statusName(s.status)] || 0) + 1;
    progressBar.value = done;
    progressText.textContent = `${done} of ${ids.length} finished — ${Object.entries(counts).map(([k, v]) => `${k}: ${v}`).join(", ")}`;
    if (statuses.length && done === ids.length) {
      await offerDownloads(ids);
      picker.disabled = false;
      return;
    }
    timer = setTimeout(() => poll(ids), POLL_MS);
  }

  async function offerDownloads(ids) {
    const items = [];
    for (let start = 0; start < ids.length; start += 1000) items.push(...await api.jobResults(ids.slice(start, start + 1000)));
    const rowsOut = items.map((item, index) => resultRow(rows[index], item));
    const columns = [...new Set(rowsOut.flatMap((row) => Object.keys(row)))];
    const base = `${agent.name.replace(/[^\w.-]+/g, "_")}-batch`;
    replace(results,
      h("button", { type: "button", id: "download-csv", onclick: () => download(`${base}.csv`, toCsv(columns, rowsOut), "text/csv") }, "Download CSV"),
      h("button", { type: "button", id: "download-jsonl", onclick: () => download(`${base}.jsonl`, toJsonl(rowsOut), "application/x-ndjson") }, "Download JSONL"));
  }

  main.append(...agentHeader(agent, "/batch"),
    h("section", { class: "panel" },
      h("p", {}, `Columns must be input keys: ${keys.join(", ")}.`,
        fileInputs.length ? ` File inputs (${fileInputs.join(", ")}) take URLs or file ids in a batch.` : ""),
      field("CSV or JSONL file", picker, "CSV with a header line, or one JSON object per line."),
      preview, error,
      h("div", { class: "actions" }, runButton),
      progressBar, progressText, results));
  return () => { stopped = true; clearTimeout(timer); };
}

/** The inputs of a row beside the job's status, cost and output fields. */
function resultRow(inputs, item) {
  const row = { ...inputs, job_id: item.id, status: statusName(item.status), cost: item.cost, error_message: item.error_message || "" };
  for (const datum of item.result || []) {
    let value = datum.value;
    try { value = JSON.parse(value); } catch { /* plain text output */ }
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, fieldValue] of Object.entries(value)) row[`output.${key}`] = fieldValue;
    } else {
      row[`output.${datum.key}`] = value;
    }
  }
  return row;
}
