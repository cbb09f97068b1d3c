// Run the current version with one form field per input; follow the job's
// status events while it runs, cancel it, and show its outputs.

import { api } from "../api.js";
import { field, FINAL_STATUSES, h, oversizeMessage, replace, statusBadge } from "../dom.js";
import { eventsList, jobFacts, outputsJson, outputsTable } from "../outputs.js";
import { agentHeader } from "./agent.js";

/** Inputs whose value is typed; every other data type is a file. */
export function isTextInput(dataType) {
  return dataType.startsWith("text/") || dataType.includes("json");
}

export async function render(main, params, context) {
  const [agent, version] = await Promise.all([api.getAgent(params.id), api.currentVersion(params.id)]);
  const maxBytes = context.user?.max_upload_bytes;
  const controls = version.input_definitions.map((definition) => {
    const required = definition.default === undefined || definition.default === null;
    const control = isTextInput(definition.data_type)
      ? h("textarea", { name: definition.key, rows: 4, required, placeholder: definition.default ?? "", id: `input-${definition.key}` })
      : h("input", { type: "file", name: definition.key, accept: definition.data_type, required,
        multiple: definition.accepts_multiple_files || null, id: `input-${definition.key}` });
    const hint = [definition.description, `${definition.data_type}${required ? "" : " · optional"}`,
      control.type === "file" && maxBytes ? `at most ${Math.floor(maxBytes / 1048576)} MiB` : null].filter(Boolean).join(" — ");
    return { definition, control, element: field(definition.key, control, hint) };
  });
  const error = h("div", { class: "error", role: "alert", id: "run-error" });
  const progress = h("section", { id: "run-progress", "aria-live": "polite" });
  const output = h("section", { id: "run-output" });
  const runButton = h("button", { type: "submit", class: "primary", id: "run" }, "Run");
  const cancelButton = h("button", { type: "button", id: "cancel-run", hidden: true }, "Cancel run");
  let stopPolling = () => {};

  const form = h("form", { class: "panel", novalidate: true },
    h("p", { class: "muted" }, `Runs the current version (${version.version_name || version.id}).`),
    controls.map((c) => c.element), error,
    h("div", { class: "actions" }, runButton, cancelButton));

  for (const { control } of controls) {
    if (control.type !== "file") continue;
    control.addEventListener("change", () => {
      const problem = [...control.files].map((file) => oversizeMessage(file, maxBytes)).find(Boolean);
      control.setCustomValidity(problem || "");
      control.setAttribute("aria-invalid", problem ? "true" : "false");
      error.textContent = problem || "";
      if (problem) control.value = "";
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = new FormData();
    for (const { definition, control } of controls) {
      if (control.type === "file") {
        for (const file of control.files) {
          const problem = oversizeMessage(file, maxBytes);
          if (problem) { error.textContent = problem; return; }
          body.append(definition.key, file, file.name);
        }
      } else if (control.value !== "") {
        body.append(definition.key, control.value);
      }
    }
    runButton.disabled = true;
    replace(output);
    try {
      const submitted = await api.runAsync(agent.id, body);
      follow(typeof submitted === "string" ? submitted : submitted.job_id || submitted.id);
    } catch (failure) {
      error.textContent = failure.message;
      runButton.disabled = false;
    }
  });

  function follow(jobId) {
    cancelButton.hidden = false;
    cancelButton.onclick = async () => {
      cancelButton.disabled = true;
      try { await api.cancelJob(jobId); } catch (failure) { error.textContent = failure.message; }
    };
    stopPolling();
    let stopped = false;
    let timer = null;
    stopPolling = () => { stopped = true; clearTimeout(timer); };
    const tick = async () => {
      let job;
      try {
        const page = await api.listJobs(agent.id, { job_id: jobId, page_size: 1 });
        job = page.results[0];
      } catch (failure) {
        error.textContent = failure.message;
      }
      if (stopped) return;
      if (job) {
        replace(progress, h("h2", {}, "Progress ", statusBadge(job.status_code)), eventsList(job.status_events));
        if (FINAL_STATUSES.has(job.status_code)) {
          await showResult(jobId, job);
          return;
        }
      }
      timer = setTimeout(tick, 700);
    };
    tick();
  }

  async function showResult(jobId, job) {
    cancelButton.hidden = true;
    cancelButton.disabled = false;
    runButton.disabled = false;
    try {
      const result = await api.jobResult(jobId);
      replace(output,
        h("h2", {}, "Result"),
        jobFacts(result, job.duration_ms),
        result.error_message ? h("p", { class: "error", id: "run-failure" }, result.error_message) : null,
        h("h3", {}, "Outputs"), outputsTable(result.outputs),
        h("details", { open: true }, h("summary", {}, "JSON"), outputsJson(result.outputs)),
        h("p", {}, h("a", { href: `/console/agents/${agent.id}/jobs/${jobId}`, id: "open-job" }, "Open the job")));
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  main.append(...agentHeader(agent, "/playground"), form, progress, output);
  return () => stopPolling();
}
