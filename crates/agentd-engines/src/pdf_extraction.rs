//! `PDFExtractionEngine` ("Document Insights"): PDFs read page by page
//! (text layer, layout reading order), sent to the model in batches of
//! `batch_size` pages, the answers merged into one JSON value.
//!
//! **Merge rule** (documented in the README): batches are merged in page
//! order. Arrays are concatenated, leaving out items equal to one already
//! kept; objects are merged key by key with the same rule; a scalar (string,
//! number, boolean) comes from the first batch that found it (not null, not
//! an empty string). The merged value is checked against `output_schema`.
//!
//! Not yet implemented, and refused with a 400 rather than ignored:
//! `use_source: true` and `convert_to_images: true` (pages go as text only).

use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{Message, ProviderRegistry, ResolvedModel, Role};
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::answer::{ask_for_json, AnswerOptions};
use crate::config_schema::{file_list, model_property, output_schema_property, summary_schema};
use crate::multimodal::{file_refs, non_empty_str, number, read_temperature};
use crate::{
    is_template, load_file, Engine, EngineContext, EngineError, EngineFailure, EngineOutput,
};

pub struct PdfExtractionEngine;

const SYSTEM_PROMPT: &str = "You extract structured information from pages of a document. \
Follow the instructions, use only the pages you are given (each starts with a marker such as \
'--- Page 3 ---'), and answer with one JSON value that matches the required JSON Schema. \
When these pages hold nothing for a field, leave arrays empty and other values null or empty.";

const DEFAULT_BATCH_SIZE: usize = 10;
const MAX_BATCH_SIZE: usize = 50;
/// Batches of one run in flight at once; the provider's own concurrency
/// limit applies on top.
const BATCHES_IN_FLIGHT: usize = 8;
/// PDFs one run may read.
const MAX_PDFS: usize = 20;

struct RunConfig {
    model: Option<String>,
    instructions: String,
    pdfs: Vec<String>,
    batch_size: usize,
    temperature: f64,
    schema: OutputSchema,
}

/// `instructions` or its alias `instruction`.
fn instructions(config: &Value) -> Option<&str> {
    non_empty_str(config, "instructions").or_else(|| non_empty_str(config, "instruction"))
}

/// `pdf_files` or its alias `pdf_file`.
fn pdf_refs(config: &Value) -> Vec<String> {
    let mut refs = file_refs(&config["pdf_files"]);
    refs.extend(file_refs(&config["pdf_file"]));
    refs
}

fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Options Roe accepts that this server does not implement yet.
fn unsupported_options(config: &Value) -> Vec<(&'static str, &'static str)> {
    let mut found = Vec::new();
    if flag(&config["use_source"]) == Some(true) {
        found.push((
            "use_source",
            "use_source is not supported yet: values cannot carry their page and box. Leave it false.",
        ));
    }
    if flag(&config["convert_to_images"]) == Some(true) {
        found.push((
            "convert_to_images",
            "convert_to_images is not supported yet: pages are sent as text. Set it to false.",
        ));
    }
    found
}

fn batch_size(config: &Value) -> Result<usize, String> {
    match &config["batch_size"] {
        Value::Null => Ok(DEFAULT_BATCH_SIZE),
        value => match number(value).ok().flatten() {
            Some(n) if n.fract() == 0.0 && (1.0..=MAX_BATCH_SIZE as f64).contains(&n) => {
                Ok(n as usize)
            }
            _ => Err(format!(
                "batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}."
            )),
        },
    }
}

impl RunConfig {
    fn read(config: &Value) -> Result<Self, EngineError> {
        if let Some((_, message)) = unsupported_options(config).first() {
            return Err(EngineError::Invalid((*message).into()));
        }
        let pdfs = pdf_refs(config);
        if pdfs.is_empty() {
            return Err(EngineError::Invalid(
                "no PDF to read: the rendered 'pdf_files' is empty".into(),
            ));
        }
        if pdfs.len() > MAX_PDFS {
            return Err(EngineError::Invalid(format!(
                "at most {MAX_PDFS} PDFs per run, got {}",
                pdfs.len()
            )));
        }
        Ok(Self {
            model: non_empty_str(config, "model").map(str::to_owned),
            instructions: instructions(config).unwrap_or_default().to_owned(),
            pdfs,
            batch_size: batch_size(config).map_err(EngineError::Invalid)?,
            temperature: read_temperature(&config["temperature"])
                .map_err(|message| EngineError::Invalid(format!("temperature: {message}")))?
                .unwrap_or(0.0),
            schema: OutputSchema::parse(&config["output_schema"]).map_err(EngineError::Invalid)?,
        })
    }
}

/// Consecutive pages of one document, as the model sees them.
pub(crate) struct Batch {
    pub(crate) text: String,
}

/// A cautious token estimate for text (about 3 characters per token; real
/// tokenizers give 3.5–4.5 on prose, fewer on code and numbers).
pub(crate) fn estimated_tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}

/// Tokens a batch's pages may take in `model`'s context window: what is
/// left after the instructions, the schema and room for the answer.
fn page_budget(model: &ResolvedModel, run: &RunConfig) -> usize {
    let window = model.spec.context_window as usize;
    let answer = (model.spec.max_output_tokens as usize)
        .min(window / 4)
        .max(256);
    let fixed = estimated_tokens(SYSTEM_PROMPT)
        + estimated_tokens(&run.instructions)
        + estimated_tokens(&run.schema.as_value().to_string())
        + 64;
    window.saturating_sub(answer + fixed)
}

fn page_marker(name: &str, several: bool, page: &agentd_documents::PdfPage) -> String {
    let mut text = if several {
        format!("--- {name}, Page {} ---\n", page.number)
    } else {
        format!("--- Page {} ---\n", page.number)
    };
    text.push_str(&page.text());
    text.push('\n');
    text
}

/// Splits each document into batches of at most `size` pages; a batch whose
/// pages would not fit `budget` tokens is split further, page by page. A
/// single page over the budget is an error: text is never cut silently.
pub(crate) fn batches(
    documents: &[(String, Vec<agentd_documents::PdfPage>)],
    size: usize,
    budget: usize,
) -> Result<Vec<Batch>, EngineError> {
    let several = documents.len() > 1;
    let mut out = Vec::new();
    for (name, pages) in documents {
        for chunk in pages.chunks(size) {
            let mut text = String::new();
            for page in chunk {
                let page_text = page_marker(name, several, page);
                let tokens = estimated_tokens(&page_text);
                if tokens > budget {
                    return Err(EngineError::Invalid(format!(
                        "page {} of '{name}' (about {tokens} tokens) does not fit the model's \
                         context window (about {budget} tokens left for pages); choose a model \
                         with a larger context window",
                        page.number
                    )));
                }
                if !text.is_empty() && estimated_tokens(&text) + tokens > budget {
                    out.push(Batch {
                        text: std::mem::take(&mut text),
                    });
                }
                text.push_str(&page_text);
            }
            if !text.is_empty() {
                out.push(Batch { text });
            }
        }
    }
    Ok(out)
}

/// Merges batch answers in page order (see the module documentation).
pub fn merge(answers: Vec<Value>) -> Value {
    answers.into_iter().reduce(merge_two).unwrap_or(Value::Null)
}

fn is_missing(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn merge_two(first: Value, later: Value) -> Value {
    match (first, later) {
        (Value::Array(mut kept), Value::Array(more)) => {
            for item in more {
                if !kept.contains(&item) {
                    kept.push(item);
                }
            }
            Value::Array(kept)
        }
        (Value::Object(mut kept), Value::Object(more)) => {
            for (key, value) in more {
                let merged = match kept.remove(&key) {
                    Some(existing) => merge_two(existing, value),
                    None => value,
                };
                kept.insert(key, merged);
            }
            Value::Object(kept)
        }
        (first, later) if is_missing(&first) => later,
        (first, _) => first,
    }
}

#[async_trait]
impl Engine for PdfExtractionEngine {
    fn class_id(&self) -> &'static str {
        "PDFExtractionEngine"
    }

    fn name(&self) -> &'static str {
        "Document Insights"
    }

    fn description(&self) -> &'static str {
        "Extracts structured data matching output_schema from PDFs, read page by page in batches of pages."
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "model": model_property(),
                "instructions": {"type": "string", "description": "What to extract (alias: instruction)."},
                "instruction": {"type": "string"},
                "pdf_files": file_list(Some("PDFs: file inputs, URLs or file ids (alias: pdf_file).")),
                "pdf_file": file_list(None),
                "batch_size": {"type": ["integer", "string"], "description": "Pages per model call, 1 to 50 (default 10)."},
                "temperature": {"type": ["number", "string"], "description": "Default 0."},
                "use_source": {"type": ["boolean", "string"], "description": "Not supported yet; must be false."},
                "convert_to_images": {"type": ["boolean", "string"], "description": "Not supported yet; must be false (pages go as text)."},
                "output_schema": output_schema_property()
            },
            "required": ["output_schema"]
        })
    }

    fn default_config(&self) -> Value {
        json!({
            "pdf_files": "${pdf_files}",
            "instructions": "Extract the requested fields from the document.",
            "batch_size": DEFAULT_BATCH_SIZE,
            "temperature": 0,
            "use_source": false,
            "convert_to_images": false,
            "output_schema": summary_schema()
        })
    }

    fn file_fields(&self) -> &'static [&'static str] {
        &["pdf_files", "pdf_file"]
    }

    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors {
        let mut errors = FieldErrors::default();
        if instructions(config).is_none() {
            errors.add(
                "engine_config.instructions",
                "instructions (or instruction) is required.",
            );
        }
        if pdf_refs(config).is_empty() {
            errors.add(
                "engine_config.pdf_files",
                "pdf_files (or pdf_file) is required.",
            );
        }
        for (field, message) in unsupported_options(config) {
            errors.add(format!("engine_config.{field}"), message);
        }
        if !is_template(&config["batch_size"]) {
            if let Err(message) = batch_size(config) {
                errors.add("engine_config.batch_size", message);
            }
        }
        if !is_template(&config["temperature"]) {
            if let Err(message) = read_temperature(&config["temperature"]) {
                errors.add("engine_config.temperature", message);
            }
        }
        let named = non_empty_str(config, "model").filter(|m| !m.starts_with('$'));
        if let Some(model) = named {
            if let Err(error) = models.spec(model) {
                errors.add("engine_config.model", error.to_string());
            }
        }
        if !is_template(&config["output_schema"]) {
            if let Err(message) = OutputSchema::parse(&config["output_schema"]) {
                errors.add("engine_config.output_schema", message);
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
        let run = RunConfig::read(config)?;
        let model = context
            .models
            .resolve(context.models.model_or_default(run.model.as_deref()))?;
        let mut documents = Vec::with_capacity(run.pdfs.len());
        for reference in &run.pdfs {
            let (name, bytes) = load_file(context.files, reference, "a PDF").await?;
            let pages = context
                .documents
                .pdf()
                .extract(bytes)
                .await
                .map_err(|e| EngineError::Invalid(format!("'{name}': {e}")))?;
            documents.push((name, pages));
        }
        let batches = batches(&documents, run.batch_size, page_budget(&model, &run))?;
        if batches.is_empty() {
            return Err(EngineError::Invalid("the PDFs have no pages".into()).into());
        }
        let total = batches.len();
        let answers: Vec<(Result<Value, EngineError>, Usage)> =
            stream::iter(batches.into_iter().enumerate())
                .map(|(index, batch)| ask_batch(&model, &run, batch, index, total))
                .buffered(BATCHES_IN_FLIGHT)
                .collect()
                .await;
        let mut usage = Usage::default();
        let mut values = Vec::with_capacity(answers.len());
        let mut failure = None;
        for (answer, spent) in answers {
            usage += spent;
            match answer {
                Ok(value) => values.push(value),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        let cost = model.spec.cost(&usage);
        let fail = |error| EngineFailure { error, usage, cost };
        if let Some(error) = failure {
            return Err(fail(error));
        }
        let merged = merge(values);
        let merged = run
            .schema
            .check_answer(&merged.to_string())
            .map_err(|problem| {
                fail(EngineError::InvalidAnswer(format!(
                    "the merged answer: {problem}"
                )))
            })?;
        Ok(EngineOutput {
            outputs: vec![AgentDatum {
                key: "output".into(),
                description: "Extracted data".into(),
                data_type: "application/json".into(),
                value: merged.to_string(),
                cost: Some(cost),
            }],
            usage,
            cost,
        })
    }
}

async fn ask_batch(
    model: &ResolvedModel,
    run: &RunConfig,
    batch: Batch,
    index: usize,
    total: usize,
) -> (Result<Value, EngineError>, Usage) {
    let messages = vec![
        Message::text(
            Role::System,
            format!("{SYSTEM_PROMPT}\n\nInstructions: {}", run.instructions),
        ),
        Message::text(Role::User, batch.text),
    ];
    let mut usage = Usage::default();
    let options = AnswerOptions {
        temperature: Some(run.temperature),
        ..AnswerOptions::default()
    };
    let answer = ask_for_json(model, messages, &run.schema, options, &mut usage).await;
    tracing::debug!(
        batch = index + 1,
        total,
        ok = answer.is_ok(),
        "PDF batch answered"
    );
    (answer, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_concatenate_in_order_without_duplicates() {
        let merged = merge(vec![
            json!({"items": [{"n": 1}, {"n": 2}], "title": "Catalogue"}),
            json!({"items": [{"n": 2}, {"n": 3}], "title": "Other"}),
            json!({"items": [{"n": 4}], "title": null}),
        ]);
        assert_eq!(
            merged,
            json!({"items": [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}], "title": "Catalogue"})
        );
    }

    #[test]
    fn scalars_come_from_the_first_batch_that_found_them() {
        let merged = merge(vec![
            json!({"total": null, "vendor": "", "meta": {"date": null}}),
            json!({"total": 12.5, "vendor": "ACME", "meta": {"date": "2024-01-02"}}),
            json!({"total": 99, "vendor": "Other", "meta": {"date": "1999-01-01"}}),
        ]);
        assert_eq!(
            merged,
            json!({"total": 12.5, "vendor": "ACME", "meta": {"date": "2024-01-02"}})
        );
    }

    fn page(number: u32, text: &str) -> agentd_documents::PdfPage {
        agentd_documents::PdfPage {
            number,
            width: 612.0,
            height: 792.0,
            lines: vec![agentd_documents::layout::Line {
                text: text.into(),
                rect: agentd_documents::layout::Rect {
                    left: 0.0,
                    bottom: 0.0,
                    right: 1.0,
                    top: 1.0,
                },
            }],
        }
    }

    #[test]
    fn batches_hold_batch_size_pages_and_split_to_fit_the_context() {
        let pages: Vec<_> = (1..=5).map(|n| page(n, &"x".repeat(300))).collect();
        let docs = vec![("a.pdf".to_string(), pages)];
        let roomy = batches(&docs, 2, 100_000).unwrap();
        assert_eq!(roomy.len(), 3);
        assert!(
            roomy[0].text.starts_with("--- Page 1 ---\n")
                && roomy[0].text.contains("--- Page 2 ---")
        );
        // About 105 tokens a page: a 250-token budget takes two pages, not three.
        let tight = batches(&docs, 5, 250).unwrap();
        let counts: Vec<usize> = tight
            .iter()
            .map(|b| b.text.matches("--- Page").count())
            .collect();
        assert_eq!(counts, [2, 2, 1]);
        // A page that cannot fit is an error, not a cut.
        match batches(&docs, 5, 50) {
            Err(EngineError::Invalid(message)) => assert!(message.contains("page 1"), "{message}"),
            _ => panic!("an oversized page must be refused"),
        }
    }

    #[test]
    fn batch_size_is_bounded() {
        assert_eq!(batch_size(&json!({})), Ok(10));
        assert_eq!(batch_size(&json!({"batch_size": "5"})), Ok(5));
        assert!(batch_size(&json!({"batch_size": 0})).is_err());
        assert!(batch_size(&json!({"batch_size": 51})).is_err());
        assert!(batch_size(&json!({"batch_size": 2.5})).is_err());
    }

    #[test]
    fn unimplemented_options_are_refused_not_ignored() {
        let config = json!({"use_source": true, "convert_to_images": "true"});
        let fields: Vec<_> = unsupported_options(&config)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["use_source", "convert_to_images"]);
        assert!(unsupported_options(&json!({"use_source": false})).is_empty());
    }
}
