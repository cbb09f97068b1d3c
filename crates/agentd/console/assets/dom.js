// Small DOM and formatting helpers shared by every page.

/** Creates an element: h("a", {href: "/x", onclick: fn}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "value" || name === "checked" || name === "selected") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A labelled form field; `control` gets the id the label points at. */
export function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintElement = hint ? h("div", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintElement) control.setAttribute("aria-describedby", hintElement.id);
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control, hintElement);
}

export const STATUS_NAMES = ["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "CANCELLED", "CACHED"];
export const FINAL_STATUSES = new Set([3, 4, 5, 6]);

export function statusName(code) {
  return STATUS_NAMES[code] ?? `status ${code}`;
}

export function statusBadge(code) {
  const name = statusName(code);
  return h("span", { class: `badge status-${name}` }, name);
}

export function formatCost(cost) {
  if (cost === null || cost === undefined) return "–";
  return `$${Number(cost).toFixed(cost !== 0 && Math.abs(cost) < 0.01 ? 6 : 4)}`;
}

export function formatDate(text) {
  if (!text) return "–";
  const date = new Date(typeof text === "number" ? text * 1000 : text);
  return Number.isNaN(date.getTime()) ? String(text) : date.toLocaleString();
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = -1;
  do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatTokens(input, output) {
  if (input === null || input === undefined) return "–";
  return `${input} in / ${output ?? 0} out`;
}

/** Offers text as a file download. */
export function download(fileName, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: fileName, class: "visually-hidden" }, fileName);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** The refusal message for a file over the server's upload limit, or null. */
export function oversizeMessage(file, maxBytes) {
  if (!maxBytes || file.size <= maxBytes) return null;
  return `“${file.name}” is ${formatBytes(file.size)}, over the server's limit of ${formatBytes(maxBytes)} (${maxBytes} bytes); it was not uploaded.`;
}

/** Shows a message in the page-level alert area (errors by default). */
export function flash(message, kind = "error") {
  const box = document.getElementById("flash");
  box.className = kind === "error" ? "flash" : "flash info";
  box.textContent = message || "";
}
