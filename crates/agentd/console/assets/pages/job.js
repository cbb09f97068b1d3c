// One job: inputs, outputs, status events, error; cancel and delete data.

import { api } from "../api.js";
import { FINAL_STATUSES, flash, formatDate, h, replace } from "../dom.js";
import { eventsList, jobFacts, outputsJson, outputsTable } from "../outputs.js";
import { agentHeader } from "./agent.js";

export async function render(main, params) {
  const agent = await api.getAgent(params.id);
  const body = h("div", { id: "job-detail" });
  let timer = null;
  let stopped = false;

  async function load() {
    clearTimeout(timer);
    const page = await api.listJobs(agent.id, { job_id: params.job, page_size: 1 });
    const job = page.results.find((item) => item.id === params.job);
    if (stopped) return;
    if (!job) {
      replace(body, h("p", { class: "error" }, "This job does not exist (or belongs to another agent)."));
      return;
    }
    const final = FINAL_STATUSES.has(job.status_code);
    const result = final ? await api.jobResult(job.id).catch(() => null) : null;
    if (stopped) return;
    replace(body,
      h("p", {}, "Job ", h("code", {}, job.id), ` · created ${formatDate(job.created_at)} · version ${job.agent_version_name || job.agent_version_id}`),
      jobFacts({ ...job, status: job.status_code, ...(result || {}) }, job.duration_ms),
      job.error_message ? h("p", { class: "error", id: "job-error" }, job.error_message) : null,
      h("div", { class: "actions" },
        final ? null : h("button", { type: "button", id: "cancel-job", onclick: cancel }, "Cancel job"),
        final ? h("button", { type: "button", class: "danger", id: "delete-job-data", onclick: () => deleteData(job) }, "Delete data…") : null),
      h("h2", {}, "Inputs"), inputsTable(job.job_inputs),
      h("h2", {}, "Outputs"),
      result ? [outputsTable(result.outputs), h("details", {}, h("summary", {}, "JSON"), outputsJson(result.outputs))]
        : h("p", { class: "muted" }, final ? "No outputs." : "Not finished yet."),
      h("h2", {}, "Status events"), eventsList(job.status_events));
    if (!final) timer = setTimeout(() => load().catch((error) => flash(error.message)), 1500);
  }

  async function cancel() {
    try {
      await api.cancelJob(params.job);
      flash("Cancel requested.", "info");
      await load();
    } catch (error) {
      flash(error.message);
    }
  }

  async function deleteData(job) {
    if (!window.confirm("Delete this job's inputs, outputs and files? Its status and cost are kept.")) return;
    try {
      await api.deleteJobData(job.id);
      flash("The job's data was deleted.", "info");
      await load();
    } catch (error) {
      flash(error.message);
    }
  }

  main.append(...agentHeader(agent, "/jobs"), body);
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}

function inputsTable(inputs) {
  if (!inputs?.length) return h("p", { class: "muted" }, "No inputs (or they were deleted).");
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Value"))),
    h("tbody", {}, inputs.map((input) => h("tr", {},
      h("th", { scope: "row" }, input.key), h("td", {}, input.data_type),
      h("td", {}, input.file_name ? `file: ${input.file_name}` : String(input.value ?? "")))))));
}
