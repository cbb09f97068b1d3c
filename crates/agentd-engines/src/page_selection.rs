//! `PDFPageSelectionEngine` ("Document Segmentation"): picks pages of one
//! PDF and returns them as page ranges and as a new PDF saved with the job.
//!
//! `page_description` is one or more parts joined by `;`, whose pages are
//! united:
//! - `@PAGERANGE: 3, 5-15`: those pages (1-based, inclusive);
//! - `@TOC: <section title>`: the pages of that section, from the PDF's
//!   outline (bookmarks): from the entry's page to the page before the next
//!   entry at the same or a higher level (or the last page). Without an
//!   outline, a contents page among the first pages is read instead: lines
//!   ending in a page number (`Balance Sheet ..... 4`), the printed numbers
//!   taken as page numbers of the file;
//! - any other text describes pages ("the balance sheet"): the model reads
//!   each page's text, in batches that fit its context window, and names
//!   the pages that match.
//!
//! Output: `page_ranges` (JSON `[{"start": 3, "end": 5}, …]`, sorted and
//! merged), `selected_pages` (the new PDF's reference URL) and an artifact
//! with what each part selected.

use std::collections::BTreeSet;

use agentd_documents::{OutlineEntry, PageRange, PdfPage};
use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{Message, ProviderRegistry, ResolvedModel, Role};
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::answer::{ask_for_json, AnswerOptions};
use crate::config_schema::{file_list, model_property};
use crate::multimodal::{file_refs, non_empty_str};
use crate::pdf_extraction::{batches, estimated_tokens};
use crate::{load_file, Engine, EngineContext, EngineError, EngineFailure, EngineOutput};

pub struct PdfPageSelectionEngine;

const SYSTEM_PROMPT: &str = "You find pages of a document. Each page you are given starts \
with a marker such as '--- Page 3 ---'. Answer with the numbers of the pages that match the \
description, as {\"pages\": [numbers]}; an empty list when none of these pages match.";

/// Pages per model call at most; fewer when they do not fit the context.
const PAGES_PER_BATCH: usize = 20;
/// Batches of one run in flight at once (the provider's limit applies on top).
const BATCHES_IN_FLIGHT: usize = 8;
/// Pages at the start of a document searched for a contents page.
const CONTENTS_SEARCH_PAGES: usize = 5;
/// The artifact with what each part of the description selected.
const DETAILS_ARTIFACT: &str = "page_selection.json";

/// One part of `page_description`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selector {
    Pages(Vec<PageRange>),
    Section(String),
    Described(String),
}

/// Splits `page_description` into its parts; a malformed `@PAGERANGE` or
/// an empty `@TOC` is an error naming it.
fn parse_description(text: &str) -> Result<Vec<Selector>, String> {
    let mut selectors = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let selector = if let Some(ranges) = strip_directive(part, "@PAGERANGE") {
            Selector::Pages(parse_ranges(ranges)?)
        } else if let Some(title) = strip_directive(part, "@TOC") {
            if title.is_empty() {
                return Err("@TOC needs a section title, as in '@TOC: Balance Sheet'.".into());
            }
            Selector::Section(title.to_owned())
        } else {
            Selector::Described(part.to_owned())
        };
        selectors.push(selector);
    }
    if selectors.is_empty() {
        return Err("page_description is empty.".into());
    }
    Ok(selectors)
}

/// The text after `@NAME:` (case-insensitive), trimmed.
fn strip_directive<'a>(part: &'a str, name: &str) -> Option<&'a str> {
    let head = part.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    part[name.len()..]
        .trim_start()
        .strip_prefix(':')
        .map(str::trim)
}

/// `3, 5-15` into ranges (1-based, inclusive).
fn parse_ranges(text: &str) -> Result<Vec<PageRange>, String> {
    let page = |item: &str| -> Result<u32, String> {
        match item.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "@PAGERANGE: '{}' is not a page number (pages count from 1).",
                item.trim()
            )),
        }
    };
    let mut ranges = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!(
                "@PAGERANGE: '{text}' has an empty item; write pages as in '3, 5-15'."
            ));
        }
        let range = match item.split_once('-') {
            Some((first, last)) => PageRange {
                first: page(first)?,
                last: page(last)?,
            },
            None => {
                let n = page(item)?;
                PageRange { first: n, last: n }
            }
        };
        if range.first > range.last {
            return Err(format!("@PAGERANGE: '{item}' ends before it starts."));
        }
        ranges.push(range);
    }
    Ok(ranges)
}

/// Sorted, with overlapping and adjacent ranges merged.
fn normalize(pages: &BTreeSet<u32>) -> Vec<PageRange> {
    let mut ranges: Vec<PageRange> = Vec::new();
    for &page in pages {
        match ranges.last_mut() {
            Some(range) if range.last + 1 == page => range.last = page,
            _ => ranges.push(PageRange {
                first: page,
                last: page,
            }),
        }
    }
    ranges
}

fn expand(ranges: &[PageRange]) -> impl Iterator<Item = u32> + '_ {
    ranges.iter().flat_map(|range| range.first..=range.last)
}

/// Titles compared without case and extra spaces.
fn same_title(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        s.split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    words(a) == words(b)
}

/// The pages of the section titled `title`: the entry with that title
/// (else the only entry containing it) up to the next entry at its level
/// or above.
fn section_pages(
    entries: &[OutlineEntry],
    title: &str,
    page_count: u32,
) -> Result<PageRange, String> {
    let wanted = title.to_lowercase();
    let position = entries
        .iter()
        .position(|entry| same_title(&entry.title, title))
        .or_else(|| {
            let containing: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].title.to_lowercase().contains(&wanted))
                .collect();
            (containing.len() == 1).then(|| containing[0])
        });
    let Some(position) = position else {
        let titles: Vec<&str> = entries.iter().map(|e| e.title.as_str()).take(50).collect();
        return Err(format!(
            "@TOC: no section titled '{title}' in the document's table of contents \
             (its entries: {})",
            titles.join("; ")
        ));
    };
    let entry = &entries[position];
    let first = entry
        .page
        .filter(|&page| page >= 1 && page <= page_count)
        .ok_or_else(|| {
            format!(
                "@TOC: the section '{}' points at no page of the document",
                entry.title
            )
        })?;
    let next = entries[position + 1..]
        .iter()
        .filter(|later| later.level <= entry.level)
        .filter_map(|later| later.page)
        .find(|&page| page > first);
    let last = next.map_or(page_count, |page| page - 1).min(page_count);
    Ok(PageRange { first, last })
}

/// A contents page's entries: among the first pages, one with a line
/// "Contents" (or "Table of Contents"), whose following lines end in a
/// page number.
fn contents_page_entries(pages: &[PdfPage]) -> Vec<OutlineEntry> {
    for page in pages.iter().take(CONTENTS_SEARCH_PAGES) {
        let lines: Vec<&str> = page.lines.iter().map(|l| l.text.trim()).collect();
        let Some(start) = lines.iter().position(|line| {
            let line = line.to_lowercase();
            line == "contents" || line == "table of contents"
        }) else {
            continue;
        };
        let entries: Vec<OutlineEntry> = lines[start + 1..]
            .iter()
            .filter_map(|line| contents_line(line))
            .collect();
        if !entries.is_empty() {
            return entries;
        }
    }
    Vec::new()
}

/// `Balance Sheet ......... 4` into an entry.
fn contents_line(line: &str) -> Option<OutlineEntry> {
    let (title, number) = line
        .trim_end()
        .rsplit_once(|c: char| c.is_whitespace() || c == '.')?;
    let page: u32 = number.parse().ok()?;
    let title = title
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .trim();
    (!title.is_empty()).then(|| OutlineEntry {
        title: title.to_owned(),
        level: 0,
        page: Some(page),
    })
}

fn pages_schema() -> OutputSchema {
    OutputSchema::parse(&json!({
        "type": "object",
        "properties": {"pages": {"type": "array", "items": {"type": "integer"}}},
        "required": ["pages"],
        "additionalProperties": false
    }))
    .expect("the pages schema is valid")
}

/// Tokens a batch's pages may take: the window less the prompt and room
/// for the answer.
fn page_budget(model: &ResolvedModel, description: &str) -> usize {
    let window = model.spec.context_window as usize;
    let answer = (model.spec.max_output_tokens as usize)
        .min(window / 4)
        .max(256);
    window.saturating_sub(
        answer + estimated_tokens(SYSTEM_PROMPT) + estimated_tokens(description) + 64,
    )
}

/// What one part of the description selected, for the artifact.
struct PartResult {
    part: Value,
    pages: Vec<u32>,
}

struct Run<'a> {
    context: &'a EngineContext<'a>,
    model: Option<String>,
    name: String,
    bytes: Vec<u8>,
    page_count: u32,
    /// Read on first need (semantic parts, contents-page fallback).
    pages: Option<Vec<PdfPage>>,
    /// Read on first need (`@TOC`).
    outline: Option<Vec<OutlineEntry>>,
    usage: Usage,
    cost: f64,
}

impl Run<'_> {
    fn document_error(&self, error: agentd_documents::DocumentError) -> EngineError {
        if error.is_caller_fault() {
            EngineError::Invalid(format!("'{}': {error}", self.name))
        } else {
            EngineError::Internal(format!("'{}': {error}", self.name))
        }
    }

    async fn pages(&mut self) -> Result<&[PdfPage], EngineError> {
        if self.pages.is_none() {
            let pages = self
                .context
                .documents
                .pdf()
                .extract(self.bytes.clone())
                .await
                .map_err(|e| self.document_error(e))?;
            self.pages = Some(pages);
        }
        Ok(self.pages.as_deref().unwrap_or_default())
    }

    async fn outline(&mut self) -> Result<Vec<OutlineEntry>, EngineError> {
        if self.outline.is_none() {
            let (entries, _) = self
                .context
                .documents
                .pdf()
                .outline(self.bytes.clone())
                .await
                .map_err(|e| self.document_error(e))?;
            let entries = if entries.iter().any(|e| e.page.is_some()) {
                entries
            } else {
                contents_page_entries(self.pages().await?)
            };
            self.outline = Some(entries);
        }
        Ok(self.outline.clone().unwrap_or_default())
    }

    async fn select(&mut self, selector: &Selector) -> Result<PartResult, EngineError> {
        match selector {
            Selector::Pages(ranges) => {
                if let Some(beyond) = ranges.iter().find(|r| r.last > self.page_count) {
                    return Err(EngineError::Invalid(format!(
                        "@PAGERANGE: page {} is beyond the last page of '{}' ({} pages)",
                        beyond.last, self.name, self.page_count
                    )));
                }
                Ok(PartResult {
                    part: json!({"type": "page_range", "ranges": ranges_json(ranges)}),
                    pages: expand(ranges).collect(),
                })
            }
            Selector::Section(title) => {
                let entries = self.outline().await?;
                if entries.is_empty() {
                    return Err(EngineError::Invalid(format!(
                        "@TOC: '{}' has no table of contents (no outline and no contents page)",
                        self.name
                    )));
                }
                let range = section_pages(&entries, title, self.page_count)
                    .map_err(EngineError::Invalid)?;
                Ok(PartResult {
                    part: json!({"type": "toc", "title": title, "ranges": ranges_json(&[range])}),
                    pages: expand(&[range]).collect(),
                })
            }
            Selector::Described(description) => {
                let pages = self.described_pages(description).await?;
                Ok(PartResult {
                    part: json!({"type": "description", "description": description, "pages": pages}),
                    pages,
                })
            }
        }
    }

    /// Asks the model, batch by batch, which pages match `description`.
    async fn described_pages(&mut self, description: &str) -> Result<Vec<u32>, EngineError> {
        let models = self.context.models;
        let model = models.resolve(models.model_or_default(self.model.as_deref()))?;
        let budget = page_budget(&model, description);
        let documents = vec![(self.name.clone(), self.pages().await?.to_vec())];
        let batches = batches(&documents, PAGES_PER_BATCH, budget)?;
        let schema = pages_schema();
        let answers: Vec<(Result<Value, EngineError>, Usage)> = stream::iter(batches)
            .map(|batch| ask_batch(&model, &schema, description, batch.text))
            .buffered(BATCHES_IN_FLIGHT)
            .collect()
            .await;
        let mut pages = BTreeSet::new();
        let mut failure = None;
        for (answer, spent) in answers {
            self.usage += spent;
            self.cost += model.spec.cost(&spent);
            match answer {
                // Numbers outside the document are the model's mistake: left out.
                Ok(value) => pages.extend(
                    value["pages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .filter(|&n| n >= 1 && n <= u64::from(self.page_count))
                        .map(|n| n as u32),
                ),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(pages.into_iter().collect()),
        }
    }
}

async fn ask_batch(
    model: &ResolvedModel,
    schema: &OutputSchema,
    description: &str,
    pages: String,
) -> (Result<Value, EngineError>, Usage) {
    let messages = vec![
        Message::text(
            Role::System,
            format!("{SYSTEM_PROMPT}\n\nDescription of the pages to find: {description}"),
        ),
        Message::text(Role::User, pages),
    ];
    let mut usage = Usage::default();
    let options = AnswerOptions {
        temperature: Some(0.0),
        ..AnswerOptions::default()
    };
    let answer = ask_for_json(model, messages, schema, options, &mut usage).await;
    (answer, usage)
}

fn ranges_json(ranges: &[PageRange]) -> Value {
    Value::Array(
        ranges
            .iter()
            .map(|r| json!({"start": r.first, "end": r.last}))
            .collect(),
    )
}

/// `pdf_file` or its alias `pdf_files`: exactly one PDF.
fn pdf_ref(config: &Value) -> Result<String, String> {
    let mut refs = file_refs(&config["pdf_file"]);
    refs.extend(file_refs(&config["pdf_files"]));
    match refs.len() {
        0 => Err("no PDF to read: the rendered 'pdf_file' is empty".into()),
        1 => Ok(refs.remove(0)),
        n => Err(format!("pdf_file takes one PDF, got {n}")),
    }
}

impl PdfPageSelectionEngine {
    async fn execute(
        &self,
        context: &EngineContext<'_>,
        config: &Value,
    ) -> Result<EngineOutput, EngineFailure> {
        let description = non_empty_str(config, "page_description").unwrap_or_default();
        let selectors = parse_description(description).map_err(EngineError::Invalid)?;
        let reference = pdf_ref(config).map_err(EngineError::Invalid)?;
        let (name, bytes) = load_file(context.files, &reference, "a PDF").await?;
        let mut run = Run {
            context,
            model: non_empty_str(config, "model").map(str::to_owned),
            name,
            bytes,
            page_count: 0,
            pages: None,
            outline: None,
            usage: Usage::default(),
            cost: 0.0,
        };
        run.page_count = context
            .documents
            .pdf()
            .page_count(run.bytes.clone())
            .await
            .map_err(|e| run.document_error(e))?;
        let mut selected = BTreeSet::new();
        let mut parts = Vec::new();
        for selector in &selectors {
            match run.select(selector).await {
                Ok(result) => {
                    selected.extend(result.pages.iter().copied());
                    parts.push(result.part);
                }
                Err(error) => return Err(run.failed(error)),
            }
        }
        let ranges = normalize(&selected);
        if ranges.is_empty() {
            return Err(run.failed(EngineError::Invalid(format!(
                "no page of '{}' matches the page description",
                run.name
            ))));
        }
        let saved = run.save(&ranges, parts).await.map_err(|e| run.failed(e))?;
        Ok(saved)
    }
}

impl Run<'_> {
    fn failed(&self, error: EngineError) -> EngineFailure {
        EngineFailure {
            error,
            usage: self.usage,
            cost: self.cost,
        }
    }

    /// Saves the new PDF and the details artifact; the job's outputs.
    async fn save(
        &self,
        ranges: &[PageRange],
        parts: Vec<Value>,
    ) -> Result<EngineOutput, EngineError> {
        let pdf = self
            .context
            .documents
            .pdf()
            .select_pages(self.bytes.clone(), ranges.to_vec())
            .await
            .map_err(|e| self.document_error(e))?;
        let stem = self.name.strip_suffix(".pdf").unwrap_or(&self.name);
        let file_name = format!("{stem} (selected pages).pdf");
        let reference = self
            .context
            .references
            .save_reference(&file_name, "application/pdf", pdf)
            .await?;
        let details = json!({
            "source": self.name,
            "page_count": self.page_count,
            "parts": parts,
            "page_ranges": ranges_json(ranges),
            "selected_pages": {"resource_id": reference.resource_id, "url": reference.url},
        });
        let artifact_key = self
            .context
            .references
            .save_artifact(DETAILS_ARTIFACT, &details)
            .await?;
        let summary = json!({
            "page_ranges": ranges_json(ranges),
            "selected_pages": {
                "resource_id": reference.resource_id,
                "url": reference.url,
                "file_name": file_name,
                "page_count": expand(ranges).count(),
            },
            "artifact_key": artifact_key,
        });
        Ok(EngineOutput {
            outputs: vec![
                AgentDatum {
                    key: "page_ranges".into(),
                    description: "Selected pages, 1-based inclusive ranges".into(),
                    data_type: "application/json".into(),
                    value: ranges_json(ranges).to_string(),
                    cost: Some(self.cost),
                },
                AgentDatum {
                    key: "selected_pages".into(),
                    description: "The selected pages as a PDF (a job reference)".into(),
                    data_type: "application/pdf".into(),
                    value: reference.url.clone(),
                    cost: None,
                },
                AgentDatum {
                    key: "output".into(),
                    description: "Page selection".into(),
                    data_type: "application/json".into(),
                    value: summary.to_string(),
                    cost: None,
                },
            ],
            usage: self.usage,
            cost: self.cost,
        })
    }
}

#[async_trait]
impl Engine for PdfPageSelectionEngine {
    fn class_id(&self) -> &'static str {
        "PDFPageSelectionEngine"
    }

    fn name(&self) -> &'static str {
        "Document Segmentation"
    }

    fn description(&self) -> &'static str {
        "Selects pages of a PDF by description, @PAGERANGE or @TOC section (parts joined by ';') \
         and returns their ranges and a new PDF of them."
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "model": model_property(),
                "pdf_file": file_list(Some("The PDF: a file input, a URL or a file id (alias: pdf_files).")),
                "pdf_files": file_list(None),
                "page_description": {
                    "type": "string",
                    "description": "Which pages: a description ('the balance sheet'), '@PAGERANGE: 3, 5-15' or '@TOC: <section title>', several joined by ';' (their pages are united)."
                }
            },
            "required": ["page_description"]
        })
    }

    fn default_config(&self) -> Value {
        json!({
            "pdf_file": "${pdf_file}",
            "page_description": "${page_description}"
        })
    }

    fn file_fields(&self) -> &'static [&'static str] {
        &["pdf_file", "pdf_files"]
    }

    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors {
        let mut errors = FieldErrors::default();
        if file_refs(&config["pdf_file"]).is_empty() && file_refs(&config["pdf_files"]).is_empty() {
            errors.add("engine_config.pdf_file", "pdf_file is required.");
        }
        match non_empty_str(config, "page_description") {
            None => errors.add(
                "engine_config.page_description",
                "page_description is required.",
            ),
            // Templated text is checked once it is rendered.
            Some(text) if text.contains('$') => {}
            Some(text) => {
                if let Err(message) = parse_description(text) {
                    errors.add("engine_config.page_description", message);
                }
            }
        }
        let named = non_empty_str(config, "model").filter(|m| !m.starts_with('$'));
        if let Some(model) = named {
            if let Err(error) = models.spec(model) {
                errors.add("engine_config.model", error.to_string());
            }
        }
        errors
    }

    async fn run(
        &self,
        context: &EngineContext<'_>,
        config: &Value,
        _inputs: &ResolvedInputs,
    ) -> Result<EngineOutput, EngineFailure> {
        self.execute(context, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: u32, last: u32) -> PageRange {
        PageRange { first, last }
    }

    #[test]
    fn descriptions_split_into_ranges_sections_and_text() {
        let parts = parse_description(
            "@PAGERANGE: 3, 5-15 ; @toc : Balance Sheet; the cash flow statement;",
        )
        .unwrap();
        assert_eq!(
            parts,
            vec![
                Selector::Pages(vec![range(3, 3), range(5, 15)]),
                Selector::Section("Balance Sheet".into()),
                Selector::Described("the cash flow statement".into()),
            ]
        );
    }

    #[test]
    fn bad_page_ranges_are_refused_with_the_reason() {
        for (text, expected) in [
            ("@PAGERANGE: 0", "'0' is not a page number"),
            ("@PAGERANGE: 5-3", "'5-3' ends before it starts"),
            ("@PAGERANGE: 2,,4", "empty item"),
            ("@PAGERANGE: two", "'two' is not a page number"),
            ("@TOC:", "needs a section title"),
            (" ; ", "empty"),
        ] {
            let error = parse_description(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn pages_are_sorted_and_merged_into_ranges() {
        let pages: BTreeSet<u32> = [9, 3, 4, 5, 1, 10, 12].into_iter().collect();
        assert_eq!(
            normalize(&pages),
            vec![range(1, 1), range(3, 5), range(9, 10), range(12, 12)]
        );
    }

    fn entry(title: &str, level: u32, page: u32) -> OutlineEntry {
        OutlineEntry {
            title: title.into(),
            level,
            page: Some(page),
        }
    }

    #[test]
    fn a_section_runs_to_the_next_entry_at_its_level_or_above() {
        let outline = vec![
            entry("Introduction", 0, 1),
            entry("Financial Statements", 0, 3),
            entry("Balance Sheet", 1, 4),
            entry("Income Statement", 1, 6),
            entry("Notes", 0, 8),
        ];
        assert_eq!(
            section_pages(&outline, "financial  statements", 10),
            Ok(range(3, 7))
        );
        assert_eq!(
            section_pages(&outline, "Balance Sheet", 10),
            Ok(range(4, 5))
        );
        assert_eq!(
            section_pages(&outline, "Income Statement", 10),
            Ok(range(6, 7))
        );
        assert_eq!(section_pages(&outline, "Notes", 10), Ok(range(8, 10)));
        // The only entry containing the text.
        assert_eq!(section_pages(&outline, "income", 10), Ok(range(6, 7)));
        let error = section_pages(&outline, "Cash Flow", 10).unwrap_err();
        assert!(error.contains("no section titled 'Cash Flow'") && error.contains("Balance Sheet"));
    }

    #[test]
    fn contents_lines_end_in_a_page_number() {
        assert_eq!(
            contents_line("Balance Sheet ........ 4"),
            Some(entry("Balance Sheet", 0, 4))
        );
        assert_eq!(contents_line("Notes 8"), Some(entry("Notes", 0, 8)));
        assert_eq!(contents_line("Just a sentence."), None);
        assert_eq!(contents_line("42"), None);
    }
}
