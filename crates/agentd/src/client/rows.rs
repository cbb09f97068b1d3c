//! The input rows of `run-many`: JSON Lines (one object per line) or CSV
//! (a header row names the inputs; quoted fields may hold commas and line
//! breaks).

use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::ClientError;

pub type Row = Map<String, Value>;

/// The rows of the file, and a digest of its bytes (a resumed run must read
/// the same file).
pub fn read(path: &Path) -> Result<(Vec<Row>, String), ClientError> {
    let bytes = std::fs::read(path)
        .map_err(|error| ClientError::usage(format!("cannot read {}: {error}", path.display())))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rows = match extension.as_str() {
        "jsonl" | "ndjson" | "json" => json_lines(&bytes),
        "csv" => csv_rows(&bytes),
        _ => Err(format!(
            "unknown input format '.{extension}': use a .jsonl or .csv file"
        )),
    }
    .map_err(|error| ClientError::usage(format!("{}: {error}", path.display())))?;
    Ok((rows, digest))
}

/// One JSON object per non-blank line.
fn json_lines(bytes: &[u8]) -> Result<Vec<Row>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(row)) => rows.push(row),
            Ok(_) => return Err(format!("line {}: expected a JSON object", index + 1)),
            Err(error) => return Err(format!("line {}: {error}", index + 1)),
        }
    }
    Ok(rows)
}

/// Every record as `{header: value}`; an empty cell is left out, so the
/// input's default (if it declares one) applies.
fn csv_rows(bytes: &[u8]) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if let Some(blank) = headers.iter().position(String::is_empty) {
        return Err(format!(
            "column {} has no name in the header row",
            blank + 1
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let row: Row = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, value)| !value.is_empty())
            .map(|(header, value)| (header.clone(), Value::String(value.to_owned())))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quoted_commas_and_line_breaks_stay_in_their_cell() {
        let text = "text,lang\n\"Hello, world\",en\n\"two\nlines, \"\"quoted\"\"\",\n";
        let rows = csv_rows(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"text": "Hello, world", "lang": "en"})
        );
        assert_eq!(
            Value::Object(rows[1].clone()),
            json!({"text": "two\nlines, \"quoted\""})
        );
    }

    #[test]
    fn json_lines_skip_blank_lines_and_name_the_bad_one() {
        let rows = json_lines(b"{\"a\": 1}\n\n{\"a\": 2}\n").unwrap();
        assert_eq!(rows.len(), 2);
        let error = json_lines(b"{\"a\": 1}\n[1]\n").unwrap_err();
        assert!(error.starts_with("line 2"), "{error}");
    }
}
