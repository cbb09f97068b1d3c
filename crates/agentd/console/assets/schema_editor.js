// The output schema editor: JSON text checked as you type, and a field
// builder for flat objects (name, type, description, required).

import { field, h, replace } from "./dom.js";

const FIELD_TYPES = ["string", "number", "integer", "boolean"];

/** Why `text` is not a usable output schema, or null when it is. */
export function schemaProblem(text) {
  let schema;
  try {
    schema = JSON.parse(text);
  } catch (error) {
    return `Not valid JSON: ${error.message}`;
  }
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    return "The output schema must be a JSON object.";
  }
  if (schema.type !== undefined && schema.type !== "object" && schema.type !== "array") {
    return "The output schema's type must be \"object\" (or \"array\").";
  }
  if (schema.properties !== undefined && (typeof schema.properties !== "object" || Array.isArray(schema.properties))) {
    return "\"properties\" must be an object of fields.";
  }
  return null;
}

/** The builder rows of a flat object schema, or null when it is not flat. */
function flatFields(schema) {
  if (!schema || schema.type !== "object" || typeof schema.properties !== "object") return null;
  const required = new Set(schema.required || []);
  const rows = [];
  for (const [name, property] of Object.entries(schema.properties)) {
    if (!FIELD_TYPES.includes(property?.type)) return null;
    rows.push({ name, type: property.type, description: property.description || "", required: required.has(name) });
  }
  return rows;
}

function schemaOf(rows) {
  const properties = {};
  for (const row of rows) {
    properties[row.name] = row.description ? { type: row.type, description: row.description } : { type: row.type };
  }
  return {
    type: "object",
    properties,
    required: rows.filter((row) => row.required).map((row) => row.name),
    additionalProperties: false,
  };
}

/** Builds the editor; `value()` is the parsed schema or throws with the problem. */
export function schemaEditor(initial) {
  const text = h("textarea", { class: "code", name: "output_schema", spellcheck: "false", id: "output-schema" });
  text.value = JSON.stringify(initial ?? { type: "object", properties: {}, required: [] }, null, 2);
  const status = h("div", { class: "hint", id: "output-schema-status", "aria-live": "polite" });
  const rowsBox = h("div", { id: "schema-builder-rows" });
  const builderNote = h("p", { class: "hint" });

  function check() {
    const problem = schemaProblem(text.value);
    text.setAttribute("aria-invalid", problem ? "true" : "false");
    status.className = problem ? "hint error" : "hint ok";
    status.textContent = problem || "Valid JSON schema.";
    return problem;
  }

  function rowElement(row) {
    const name = h("input", { type: "text", "aria-label": "Field name", value: row.name, placeholder: "field_name", class: "builder-name" });
    const type = h("select", { "aria-label": "Field type", class: "builder-type" },
      FIELD_TYPES.map((t) => h("option", { value: t, selected: t === row.type }, t)));
    const description = h("input", { type: "text", "aria-label": "Field description", value: row.description, placeholder: "What it holds" });
    const required = h("input", { type: "checkbox", checked: row.required, "aria-label": "Required" });
    const element = h("div", { class: "builder-row" }, name, type, description,
      h("label", { class: "muted" }, required, " required"),
      h("button", { type: "button", "aria-label": "Remove field", onclick: () => { element.remove(); syncFromBuilder(); } }, "Remove"));
    element.read = () => ({ name: name.value.trim(), type: type.value, description: description.value.trim(), required: required.checked });
    element.addEventListener("input", syncFromBuilder);
    element.addEventListener("change", syncFromBuilder);
    return element;
  }

  function syncFromBuilder() {
    const rows = [...rowsBox.children].map((element) => element.read()).filter((row) => row.name);
    text.value = JSON.stringify(schemaOf(rows), null, 2);
    check();
  }

  function loadBuilder() {
    let rows = null;
    try { rows = flatFields(JSON.parse(text.value)); } catch { rows = null; }
    if (rows === null) {
      builderNote.textContent = "The schema is not a flat object of simple fields; edit it as JSON.";
      return;
    }
    builderNote.textContent = "";
    replace(rowsBox, rows.map(rowElement));
  }

  text.addEventListener("input", () => { if (!check()) loadBuilder(); });
  check();
  loadBuilder();

  const element = h("fieldset", { class: "panel" },
    h("legend", {}, "Output schema"),
    h("h3", {}, "Fields"),
    builderNote,
    rowsBox,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "add-schema-field", onclick: () => {
        const row = rowElement({ name: "", type: "string", description: "", required: true });
        rowsBox.append(row);
        row.querySelector("input").focus();
      } }, "Add field")),
    field("JSON schema", text),
    status);

  return {
    element,
    value() {
      const problem = check();
      if (problem) throw new Error(`Output schema: ${problem}`);
      return JSON.parse(text.value);
    },
  };
}
