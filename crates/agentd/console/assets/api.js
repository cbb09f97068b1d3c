// The console's only way to the server: the public agentd API, with the
// API key from session storage. Errors become ApiError with readable text.

const KEY_STORAGE = "agentd.apiKey";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let unauthorizedHandler = () => {};

/** Called with the server's message when the key stops working (401). */
export function onUnauthorized(handler) { unauthorizedHandler = handler; }
export function storedKey() { return sessionStorage.getItem(KEY_STORAGE); }
export function storeKey(key) { sessionStorage.setItem(KEY_STORAGE, key); }
export function forgetKey() { sessionStorage.removeItem(KEY_STORAGE); }

function errorMessage(status, statusText, body) {
  if (body && typeof body === "object") {
    const text = body.detail || body.message;
    if (text) return String(text);
  }
  if (status >= 500) return `The server failed to answer (HTTP ${status} ${statusText}). Try again in a moment.`;
  return `The request was refused (HTTP ${status} ${statusText}).`;
}

/**
 * Sends one request. `json` is sent as a JSON body, `form` as multipart;
 * `query` is an object of parameters (arrays repeat the name).
 */
export async function request(method, path, { json, form, query, key, signal } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    for (const item of [].concat(value)) {
      if (item !== undefined && item !== null && item !== "") url.searchParams.append(name, item);
    }
  }
  const headers = { Accept: "application/json" };
  const apiKey = key ?? storedKey();
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The server could not be reached. Check that agentd is running and try again.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, errorMessage(response.status, response.statusText, data), data);
    if (response.status === 401 && key === undefined) unauthorizedHandler(error.message);
    throw error;
  }
  return data;
}

const agentPath = (id) => `/v1/agents/${encodeURIComponent(id)}/`;
const jobPath = (id) => `/v1/agents/jobs/${encodeURIComponent(id)}/`;

export const api = {
  currentUser: (key) => request("GET", "/v1/users/current_user/", { key }),
  models: () => request("GET", "/v1/agents/models/"),
  engineTypes: () => request("GET", "/v1/agents/types/"),
  usage: (days) => request("GET", "/v1/agents/usage/", { query: { days } }),

  listAgents: (query) => request("GET", "/v1/agents/", { query }),
  getAgent: (id) => request("GET", agentPath(id)),
  createAgent: (body) => request("POST", "/v1/agents/", { json: body }),
  updateAgent: (id, body) => request("PATCH", agentPath(id), { json: body }),
  deleteAgent: (id) => request("DELETE", agentPath(id)),
  duplicateAgent: (id) => request("POST", `${agentPath(id)}duplicate/`),

  listVersions: (id) => request("GET", `${agentPath(id)}versions/`),
  currentVersion: (id) => request("GET", `${agentPath(id)}versions/current/`),
  createVersion: (id, body) => request("POST", `${agentPath(id)}versions/`, { json: body }),
  makeCurrent: (id, versionId) => request("PATCH", agentPath(id), { json: { current_version_id: versionId } }),

  runAsync: (id, form, signal) => request("POST", `/v1/agents/run/${encodeURIComponent(id)}/async/`, { form, signal }),
  runAsyncMany: (id, inputs) => request("POST", `/v1/agents/run/${encodeURIComponent(id)}/async/many/`, { json: { inputs } }),

  listJobs: (agentId, query) => request("GET", `${agentPath(agentId)}jobs/`, { query }),
  jobStatus: (id) => request("GET", `${jobPath(id)}status/`),
  jobResult: (id) => request("GET", `${jobPath(id)}result/`),
  jobStatuses: (ids) => request("POST", "/v1/agents/jobs/statuses/", { json: { job_ids: ids } }),
  jobResults: (ids) => request("POST", "/v1/agents/jobs/results/", { json: { job_ids: ids } }),
  cancelJob: (id) => request("POST", `${jobPath(id)}cancel/`),
  deleteJobData: (id) => request("POST", `${jobPath(id)}delete-data/`),
};
