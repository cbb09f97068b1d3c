// Create an agent, or edit one: an edit stores a new version (which
// becomes current) and renames the agent when the name changed.

import { api } from "../api.js";
import { field, flash, h, replace } from "../dom.js";
import { navigate } from "../router.js";
import { schemaEditor } from "../schema_editor.js";

const COMMON_TYPES = ["text/plain", "application/json", "application/pdf", "image/png", "image/jpeg", "image/webp",
  "image/gif", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "text/csv", "text/html"];
/** Engine fields with their own editors. */
const DEDICATED_FIELDS = new Set(["model", "instruction", "output_schema"]);

export async function render(main, params) {
  const editing = Boolean(params.id);
  const [types, models, agent, version] = await Promise.all([
    api.engineTypes(),
    api.models(),
    editing ? api.getAgent(params.id) : null,
    editing ? api.currentVersion(params.id) : null,
  ]);
  const engines = types.engines;
  const engineId = agent?.engine_class_id || engines[0]?.engine_class_id;
  const config = version?.engine_config || engines.find((e) => e.engine_class_id === engineId)?.default_engine_config || {};

  const name = h("input", { type: "text", name: "name", required: true, value: agent?.name || "", id: "agent-name" });
  const engine = h("select", { name: "engine_class_id", disabled: editing, id: "agent-engine" },
    engines.map((e) => h("option", { value: e.engine_class_id, selected: e.engine_class_id === engineId }, e.name)));
  const versionName = h("input", { type: "text", name: "version_name", placeholder: editing ? "e.g. v2: stricter schema" : "" });
  const inputs = inputDefinitionsEditor(version?.input_definitions || [{ key: "text", data_type: "text/plain", description: "Text to be processed" }]);
  const model = h("select", { name: "model", id: "agent-model" },
    h("option", { value: "" }, "Server default"),
    models.models.map((m) => h("option", { value: m.id, selected: m.id === config.model }, m.id)));
  if (config.model && !models.models.some((m) => m.id === config.model)) {
    model.append(h("option", { value: config.model, selected: true }, `${config.model} (not listed)`));
  }
  const instruction = h("textarea", { name: "instruction", id: "agent-instruction", rows: 4 });
  instruction.value = config.instruction || "";
  const schema = schemaEditor(config.output_schema);
  const otherFields = h("div");
  let readOtherFields = () => ({});
  const error = h("div", { class: "error", role: "alert", id: "form-error" });

  function renderOtherFields() {
    const selected = engines.find((e) => e.engine_class_id === engine.value);
    const properties = selected?.input_schema?.properties || {};
    const controls = Object.entries(properties)
      .filter(([key]) => !DEDICATED_FIELDS.has(key))
      .map(([key, property]) => {
        const current = config[key];
        const input = h("input", { type: "text", name: `engine_${key}`, id: `engine-${key}`,
          value: current === undefined ? "" : typeof current === "string" ? current : JSON.stringify(current) });
        return { key, input, element: field(key, input, property.description) };
      });
    replace(otherFields, controls.map((c) => c.element));
    readOtherFields = () => Object.fromEntries(controls
      .filter((c) => c.input.value.trim() !== "")
      .map((c) => [c.key, parseLoose(c.input.value.trim())]));
  }
  engine.addEventListener("change", renderOtherFields);
  renderOtherFields();

  const submit = h("button", { type: "submit", class: "primary", id: "save-agent" }, editing ? "Save as new version" : "Create agent");
  const form = h("form", { novalidate: true },
    h("h1", {}, editing ? `Edit ${agent.name}` : "New agent"),
    h("div", { class: "panel" },
      h("div", { class: "row" },
        h("div", { class: "grow" }, field("Name", name)),
        h("div", { class: "grow" }, field("Engine", engine, editing ? "An agent's engine cannot change." : null))),
      field("Version name", versionName, "Optional.")),
    inputs.element,
    h("fieldset", { class: "panel" }, h("legend", {}, "Engine settings"),
      field("Model", model, "From /v1/agents/models/: the models this server can run."),
      field("Instruction", instruction),
      otherFields),
    schema.element,
    error,
    h("div", { class: "actions" }, submit,
      h("a", { class: "button", href: editing ? `/console/agents/${params.id}` : "/console/" }, "Cancel")));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    let body;
    try {
      body = {
        input_definitions: inputs.value(),
        engine_config: {
          ...readOtherFields(),
          ...(model.value ? { model: model.value } : {}),
          instruction: instruction.value,
          output_schema: schema.value(),
        },
      };
    } catch (problem) {
      error.textContent = problem.message;
      return;
    }
    if (versionName.value.trim()) body.version_name = versionName.value.trim();
    submit.disabled = true;
    try {
      let id = params.id;
      if (editing) {
        if (name.value.trim() !== agent.name) await api.updateAgent(id, { name: name.value.trim() });
        await api.createVersion(id, body);
      } else {
        const created = await api.createAgent({ ...body, name: name.value.trim(), engine_class_id: engine.value });
        id = created.id;
      }
      flash(editing ? "Saved: a new version is now current." : "Agent created.", "info");
      navigate(`/agents/${id}`);
    } catch (failure) {
      error.replaceChildren(h("p", {}, failure.message), fieldErrors(failure.body));
    } finally {
      submit.disabled = false;
    }
  });
  main.append(form);
  name.focus();
}

/** A value typed in a one-line field: JSON when it parses as a list or object, text otherwise. */
function parseLoose(text) {
  if (/^[[{]/.test(text)) {
    try { return JSON.parse(text); } catch { return text; }
  }
  return text;
}

/** Roe's flat field map of a 400, as a list; nothing for other errors. */
function fieldErrors(body) {
  if (!body || typeof body !== "object") return null;
  const items = Object.entries(body).filter(([key, value]) => key !== "detail" && key !== "message" && Array.isArray(value));
  if (!items.length) return null;
  return h("ul", {}, items.map(([key, messages]) => h("li", {}, `${key}: ${messages.join(" ")}`)));
}

function inputDefinitionsEditor(initial) {
  const rows = h("div", { id: "input-definitions" });
  const typeList = h("datalist", { id: "data-types" }, COMMON_TYPES.map((t) => h("option", { value: t })));

  function row(definition) {
    const key = h("input", { type: "text", "aria-label": "Input key", value: definition.key || "", placeholder: "key", class: "input-key" });
    const dataType = h("input", { type: "text", "aria-label": "Data type", value: definition.data_type || "text/plain", list: "data-types", class: "input-type" });
    const description = h("input", { type: "text", "aria-label": "Input description", value: definition.description || "", placeholder: "Description" });
    const optional = h("input", { type: "text", "aria-label": "Default value (makes the input optional)", value: definition.default ?? "", placeholder: "Default (optional)" });
    const element = h("div", { class: "builder-row" }, key, dataType, description, optional,
      h("button", { type: "button", "aria-label": "Remove input", onclick: () => element.remove() }, "Remove"));
    element.read = () => {
      const value = { key: key.value.trim(), data_type: dataType.value.trim(), description: description.value.trim() };
      if (optional.value !== "") value.default = optional.value;
      return value;
    };
    return element;
  }

  rows.append(...initial.map(row));
  const element = h("fieldset", { class: "panel" },
    h("legend", {}, "Inputs"),
    h("p", { class: "hint" }, "Each input is a form field in the playground and a column of a batch file. Refer to it in the instruction or text as ${key}."),
    typeList, rows,
    h("div", { class: "actions" }, h("button", { type: "button", id: "add-input", onclick: () => rows.append(row({})) }, "Add input")));
  return {
    element,
    value() {
      const definitions = [...rows.children].map((r) => r.read()).filter((d) => d.key);
      const keys = new Set();
      for (const definition of definitions) {
        if (keys.has(definition.key)) throw new Error(`Inputs: the key “${definition.key}” appears twice.`);
        keys.add(definition.key);
        if (!definition.data_type) throw new Error(`Inputs: “${definition.key}” needs a data type.`);
      }
      return definitions;
    },
  };
}
