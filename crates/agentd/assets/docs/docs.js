// Renders /openapi.json as a reference page: operations grouped by tag, their
// parameters, request bodies and responses, schemas with $ref resolved, and an
// example of each body. No library, no network beyond this server.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
const MAX_DEPTH = 6;

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Renders `code spans` in descriptions; everything else stays text.
function prose(text) {
  const paragraph = element("p");
  String(text || "").split(/(`[^`]*`)/).forEach((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      paragraph.append(element("code", {}, part.slice(1, -1)));
    } else if (part) {
      paragraph.append(document.createTextNode(part));
    }
  });
  return paragraph;
}

function resolve(spec, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen < 20) {
    const path = schema.$ref.replace(/^#\//, "").split("/");
    schema = path.reduce((node, key) => (node ? node[key] : undefined), spec);
    seen += 1;
  }
  return schema || {};
}

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

// A short type label: `string (uuid)`, `array of BaseAgent`, `integer | null`.
function typeLabel(spec, schema) {
  if (!schema) return "any";
  const name = refName(schema);
  if (name) return name;
  if (schema.oneOf || schema.anyOf) {
    return (schema.oneOf || schema.anyOf).map((s) => typeLabel(spec, s)).join(" | ");
  }
  if (schema.allOf) return schema.allOf.map((s) => typeLabel(spec, s)).join(" & ");
  let type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (!type) type = schema.properties ? "object" : "any";
  if (type.includes("array") && schema.items) type = type.replace("array", `array of ${typeLabel(spec, schema.items)}`);
  if (schema.format) type += ` (${schema.format})`;
  if (schema.contentMediaType) type += ` (file: ${schema.contentMediaType})`;
  if (schema.enum) type += ` — one of ${schema.enum.join(", ")}`;
  return type;
}

// The object behind a schema, through $ref, allOf and nullable oneOf.
function objectParts(spec, schema, depth) {
  const resolved = resolve(spec, schema);
  const parts = { properties: {}, required: [], additional: resolved.additionalProperties };
  const branches = resolved.allOf || [];
  for (const branch of branches) {
    if (depth > MAX_DEPTH) break;
    const inner = objectParts(spec, branch, depth + 1);
    Object.assign(parts.properties, inner.properties);
    parts.required.push(...inner.required);
  }
  Object.assign(parts.properties, resolved.properties || {});
  parts.required.push(...(resolved.required || []));
  return parts;
}

function schemaView(spec, schema, depth = 0) {
  const resolved = resolve(spec, schema);
  const box = element("div", { class: "schema" });
  if (resolved.description && depth === 0) box.append(prose(resolved.description));
  const nested = [resolved.items, ...(resolved.oneOf || []), ...(resolved.anyOf || [])].filter(Boolean);
  const parts = objectParts(spec, schema, depth);
  const names = Object.keys(parts.properties);
  if (names.length === 0) {
    box.append(element("div", { class: "type" }, typeLabel(spec, schema)));
    if (depth < MAX_DEPTH) {
      for (const inner of nested) {
        if (Object.keys(objectParts(spec, inner, depth + 1).properties).length) {
          box.append(schemaView(spec, inner, depth + 1));
        }
      }
    }
  } else {
    const rows = names.map((name) => {
      const property = parts.properties[name];
      const inner = resolve(spec, property);
      const child = inner.items || property;
      const expandable = depth < MAX_DEPTH && Object.keys(objectParts(spec, child, depth + 1).properties).length;
      return element("tr", {},
        element("td", {}, element("code", {}, name),
          parts.required.includes(name) ? element("span", { class: "required" }, "required") : null),
        element("td", { class: "type" }, typeLabel(spec, property)),
        element("td", {}, inner.description ? prose(inner.description) : null,
          expandable ? element("details", {}, element("summary", {}, "fields"), schemaView(spec, child, depth + 1)) : null));
    });
    box.append(element("table", {}, element("tr", {}, element("th", {}, "Field"), element("th", {}, "Type"), element("th", {}, "Description")), rows));
    if (parts.additional && parts.additional !== false) {
      box.append(element("div", { class: "meta" },
        parts.additional === true ? "Other properties are allowed." : `Other properties: ${typeLabel(spec, parts.additional)}.`));
    }
  }
  return box;
}

// An example value built from the schema, for a body or an answer.
function example(spec, schema, depth = 0) {
  const resolved = resolve(spec, schema);
  if (resolved.example !== undefined) return resolved.example;
  if (resolved.examples && resolved.examples.length) return resolved.examples[0];
  if (depth > MAX_DEPTH) return null;
  const choices = resolved.oneOf || resolved.anyOf;
  if (choices) return example(spec, choices.find((s) => resolve(spec, s).type !== "null") || choices[0], depth + 1);
  const types = Array.isArray(resolved.type) ? resolved.type : [resolved.type];
  const type = types.find((t) => t && t !== "null") || (resolved.properties || resolved.allOf ? "object" : undefined);
  if (resolved.enum) return resolved.enum[0];
  switch (type) {
    case "object": {
      const parts = objectParts(spec, schema, depth);
      const value = {};
      for (const [name, property] of Object.entries(parts.properties)) value[name] = example(spec, property, depth + 1);
      return value;
    }
    case "array": return resolved.items ? [example(spec, resolved.items, depth + 1)] : [];
    case "integer": return 0;
    case "number": return 0.5;
    case "boolean": return true;
    case "string":
      if (resolved.format === "uuid") return "3fa85f64-5717-4562-b3fc-2c963f66afa6";
      if (resolved.format === "date-time") return "2025-01-01T00:00:00Z";
      if (resolved.format === "uri") return `${location.origin}/v1/agents/?page=2`;
      if (resolved.contentMediaType) return "<file>";
      return "string";
    default: return null;
  }
}

function bodyView(spec, content, title) {
  const section = element("div", {});
  for (const [mediaType, media] of Object.entries(content || {})) {
    section.append(element("h4", {}, `${title} `, element("code", {}, mediaType)));
    if (media.schema) {
      section.append(schemaView(spec, media.schema));
      if (mediaType.includes("json")) {
        section.append(element("details", {}, element("summary", {}, "Example"),
          element("pre", {}, JSON.stringify(example(spec, media.schema), null, 2))));
      }
    }
  }
  return section;
}

function parametersView(spec, parameters) {
  if (!parameters || !parameters.length) return null;
  const rows = parameters.map((raw) => {
    const parameter = resolve(spec, raw);
    return element("tr", {},
      element("td", {}, element("code", {}, parameter.name),
        parameter.required ? element("span", { class: "required" }, "required") : null),
      element("td", {}, parameter.in),
      element("td", { class: "type" }, typeLabel(spec, parameter.schema)),
      element("td", {}, parameter.description ? prose(parameter.description) : null));
  });
  return element("div", {}, element("h4", {}, "Parameters"),
    element("table", {}, element("tr", {}, element("th", {}, "Name"), element("th", {}, "In"), element("th", {}, "Type"), element("th", {}, "Description")), rows));
}

function responsesView(spec, responses) {
  const list = element("div", {}, element("h4", {}, "Responses"));
  for (const [status, raw] of Object.entries(responses || {})) {
    const response = resolve(spec, raw);
    const item = element("details", { open: status.startsWith("2") ? "" : null },
      element("summary", {}, element("span", { class: `status s${status[0]}` }, status), " ", response.description || ""));
    if (response.content) item.append(bodyView(spec, response.content, "Body"));
    list.append(item);
  }
  return list;
}

function anchor(operation, method, path) {
  return operation.operationId || `${method}-${path}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

function operationView(spec, method, path, operation) {
  const security = (operation.security || spec.security || []).flatMap((s) => Object.keys(s));
  return element("section", { class: "operation", id: anchor(operation, method, path), "data-search": `${method} ${path} ${operation.summary || ""} ${operation.operationId || ""}`.toLowerCase() },
    element("h3", {}, operation.summary || operation.operationId || path),
    element("div", { class: "endpoint" }, element("span", { class: `method ${method}` }, method.toUpperCase()), path),
    element("div", { class: "meta" }, "operationId ", element("code", {}, operation.operationId || "—"),
      security.length ? ` · auth: ${security.join(", ")}` : " · no authentication"),
    operation.description ? prose(operation.description) : null,
    parametersView(spec, operation.parameters),
    operation.requestBody ? element("div", {}, bodyView(spec, resolve(spec, operation.requestBody).content, "Request body")) : null,
    responsesView(spec, operation.responses));
}

function securityView(spec) {
  const schemes = (spec.components && spec.components.securitySchemes) || {};
  const items = Object.entries(schemes).map(([name, scheme]) => element("li", {}, element("code", {}, name), ": ",
    scheme.type === "http" ? `HTTP ${scheme.scheme}` : scheme.type, scheme.description ? prose(scheme.description) : null));
  return items.length ? element("section", {}, element("h2", {}, "Authentication"), element("ul", {}, items)) : null;
}

function render(spec) {
  const content = document.getElementById("content");
  const toc = document.getElementById("toc");
  content.replaceChildren();
  const info = spec.info || {};
  content.append(element("h1", {}, info.title || "API", info.version ? element("span", { class: "meta" }, ` ${info.version}`) : null));
  if (info.description) content.append(prose(info.description));
  content.append(element("p", { class: "meta" }, `OpenAPI ${spec.openapi}`));
  const security = securityView(spec);
  if (security) content.append(security);

  const groups = new Map();
  for (const tag of spec.tags || []) groups.set(tag.name, { description: tag.description, operations: [] });
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags && operation.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, { operations: [] });
      groups.get(tag).operations.push({ method, path, operation: { ...operation, parameters: [...(item.parameters || []), ...(operation.parameters || [])] } });
    }
  }
  for (const [tag, group] of groups) {
    if (!group.operations.length) continue;
    content.append(element("h2", { class: "tag-title", id: `tag-${tag}` }, tag));
    if (group.description) content.append(prose(group.description));
    toc.append(element("h2", {}, tag));
    for (const { method, path, operation } of group.operations) {
      content.append(operationView(spec, method, path, operation));
      toc.append(element("a", { href: `#${anchor(operation, method, path)}`, "data-search": `${method} ${path} ${operation.summary || ""} ${operation.operationId || ""}`.toLowerCase() },
        element("span", { class: `method ${method}` }, method.toUpperCase()), operation.summary || path));
    }
  }
}

function applyFilter(text) {
  const needle = text.trim().toLowerCase();
  document.querySelectorAll("[data-search]").forEach((node) => {
    node.classList.toggle("hidden", needle !== "" && !node.dataset.search.includes(needle));
  });
}

async function main() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`/openapi.json answered ${response.status}`);
    render(await response.json());
    document.getElementById("filter").addEventListener("input", (event) => applyFilter(event.target.value));
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  } catch (error) {
    status.textContent = `Could not load the API document: ${error.message}`;
  }
}

main();
