// CSV (RFC 4180: quoted fields with commas, quotes and newlines) and JSON
// Lines, read into rows of objects and written back.

/** Rows of `text` as objects keyed by the header line. */
export function parseCsv(text) {
  const records = csvRecords(text.replace(/^\uFEFF/, ""));
  if (!records.length) throw new Error("The CSV file is empty.");
  const header = records[0].map((name) => name.trim());
  if (header.some((name) => !name)) throw new Error("The CSV header has an empty column name.");
  return records.slice(1)
    .filter((record) => !(record.length === 1 && record[0] === ""))
    .map((record, index) => {
      if (record.length !== header.length) {
        throw new Error(`CSV row ${index + 2} has ${record.length} fields; the header has ${header.length}.`);
      }
      return Object.fromEntries(header.map((name, i) => [name, record[i]]));
    });
}

function csvRecords(text) {
  const records = [];
  let record = [];
  let value = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === "\"" && text[i + 1] === "\"") { value += "\""; i += 1; }
      else if (char === "\"") quoted = false;
      else value += char;
    } else if (char === "\"" && value === "") {
      quoted = true;
    } else if (char === ",") {
      record.push(value); value = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i += 1;
      record.push(value); records.push(record); record = []; value = "";
    } else {
      value += char;
    }
  }
  if (quoted) throw new Error("The CSV file ends inside a quoted field.");
  if (value !== "" || record.length) { record.push(value); records.push(record); }
  return records;
}

/** Rows of a JSON Lines file: one object per non-blank line. */
export function parseJsonl(text) {
  return text.split(/\r?\n/).map((line, index) => [line.trim(), index + 1])
    .filter(([line]) => line)
    .map(([line, number]) => {
      let row;
      try { row = JSON.parse(line); } catch (error) { throw new Error(`Line ${number} is not JSON: ${error.message}`); }
      if (!row || typeof row !== "object" || Array.isArray(row)) throw new Error(`Line ${number} is not a JSON object.`);
      return Object.fromEntries(Object.entries(row).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]));
    });
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text;
}

export function toCsv(columns, rows) {
  return [columns, ...rows.map((row) => columns.map((column) => row[column]))]
    .map((record) => record.map(csvField).join(","))
    .join("\r\n") + "\r\n";
}

export function toJsonl(rows) {
  return rows.map((row) => JSON.stringify(row)).join("\n") + "\n";
}
