//! Plain-text tables and JSON for the terminal.

use serde_json::Value;

/// Left-aligned columns separated by two spaces; a cell's line breaks are
/// shown as `\n` so each row stays on one line.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| one_line(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header_cells: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_cells).chain(&cells) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn one_line(text: &str) -> String {
    text.replace('\r', "").replace('\n', "\\n")
}

/// A JSON value as a cell: strings without quotes, the rest as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Outputs (`AgentDatum`s) as rows `key, value, cost`; a JSON object value
/// is spread over one row per field (`output.title`), which reads better
/// than one long line.
pub fn outputs_table(outputs: &[Value]) -> String {
    let mut rows = Vec::new();
    for datum in outputs {
        let key = cell(&datum["key"]);
        let cost = cell(&datum["cost"]);
        let raw = cell(&datum["value"]);
        match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(fields)) if is_json(&datum["data_type"]) && !fields.is_empty() => {
                for (index, (field, value)) in fields.iter().enumerate() {
                    let cost = if index == 0 {
                        cost.clone()
                    } else {
                        String::new()
                    };
                    rows.push(vec![format!("{key}.{field}"), cell(value), cost]);
                }
            }
            _ => rows.push(vec![key, raw, cost]),
        }
    }
    table(&["OUTPUT", "VALUE", "COST"], &rows)
}

fn is_json(data_type: &Value) -> bool {
    data_type
        .as_str()
        .is_some_and(|t| t.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up_and_line_breaks_stay_inside_a_row() {
        let text = table(
            &["A", "B"],
            &[
                vec!["long value".into(), "x\ny".into()],
                vec!["s".into(), "z".into()],
            ],
        );
        assert_eq!(text, "A           B\nlong value  x\\ny\ns           z\n");
    }

    #[test]
    fn json_outputs_spread_over_one_row_per_field() {
        let outputs = [json!({
            "key": "output", "data_type": "application/json",
            "value": "{\"title\":\"Hi\",\"score\":3}", "cost": 0.5
        })];
        let text = outputs_table(&outputs);
        assert!(text.contains("output.title  Hi     0.5"), "{text}");
        assert!(text.contains("output.score  3"), "{text}");
    }
}
