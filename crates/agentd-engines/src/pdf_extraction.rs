//! `PDFExtractionEngine` ("Document Insights"): PDFs read page by page
//! (text layer, layout reading order), sent to the model in batches of
//! `batch_size` pages, the answers merged into one JSON value.
//!
//! **Pages**: a batch's pages are read from the PDF only when the batch
//! runs, so memory follows the batches in flight, not the document's size.
//! Each page goes as its text after a `--- Page N ---` marker; with
//! `convert_to_images` (the default) and a model that takes images, its
//! rendering follows its text. A page without a text layer (a scan) goes as
//! its rendering to a model that takes images, and is read by OCR
//! (tesseract) for a text-only model.
//!
//! **Batches** run concurrently (at most `BATCHES_IN_FLIGHT`, and the
//! provider's own concurrency limit on top); each finished batch is a
//! status event ("batch 3/20 done"); a failed batch is retried alone, up to
//! `BATCH_ATTEMPTS` times, before the job fails. A batch whose pages do not
//! fit the model's context window is split further; a single page that does
//! not fit is an error: text is never cut silently.
//!
//! **Merge rule** (documented in the README): batches are merged in page
//! order. Arrays are concatenated, leaving out items equal to one already
//! kept; objects are merged key by key with the same rule; a scalar (string,
//! number, boolean) comes from the first batch that found it (not null, not
//! an empty string). The merged value is checked against `output_schema`.
//!
//! **`use_source`**: each batch's answer is matched against its pages'
//! character boxes (see `sources`); the sources follow their values through
//! the merge and come out as a second output, `sources`. A page read by OCR
//! is searched through the word boxes Tesseract gives.
//!
//! **Page images**: each rendering sent to the model is saved as a job
//! reference as soon as its batch is read (memory still follows the
//! batches in flight), and listed in page order in the output
//! `page_images`: `[{"document", "page", "resource_id", "url"}]`.

use std::sync::atomic::{AtomicUsize, Ordering};

use agentd_documents::ocr::{self, PageGeometry};
use agentd_documents::{PageBatch, PageContent, PageImage, PdfBytes, RenderPages};
use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{
    Capability, ContentPart, Message, ProviderError, ProviderRegistry, ResolvedModel, Role,
};
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::answer::{ask_for_json, AnswerOptions};
use crate::config_schema::{file_list, model_property, output_schema_property, summary_schema};
use crate::multimodal::{file_refs, non_empty_str, number, read_temperature};
use crate::sources::{self, PageGlyphs, SourceTree};
use crate::{
    is_template, load_file, Engine, EngineContext, EngineError, EngineFailure, EngineOutput,
};

pub struct PdfExtractionEngine;

const SYSTEM_PROMPT: &str = "You extract structured information from pages of a document. \
Follow the instructions, use only the pages you are given (each starts with a marker such as \
'--- Page 3 ---', and may be followed by an image of the page), and answer with one JSON value \
that matches the required JSON Schema. \
When these pages hold nothing for a field, leave arrays empty and other values null or empty.";

/// Said of a page without a text layer sent as its image.
const SCAN_NOTE: &str = "(This page has no text layer: read it from its image.)\n";

const DEFAULT_BATCH_SIZE: usize = 10;
const MAX_BATCH_SIZE: usize = 50;
/// Batches of one run in flight at once; the provider's own concurrency
/// limit applies on top.
const BATCHES_IN_FLIGHT: usize = 8;
/// Times a batch is tried before the run fails (a provider error, an answer
/// that does not match the schema even after `ask_for_json`'s own retry).
const BATCH_ATTEMPTS: usize = 3;
/// PDFs one run may read.
const MAX_PDFS: usize = 20;
/// Page renders for models: legible text at a modest image size (a Letter
/// page is 850 × 1100 pixels).
const MODEL_DPI: u16 = 100;
/// Page renders for OCR, which reads small print badly below 300 DPI.
const OCR_DPI: u16 = 300;
/// What a page image costs in a context window, cautiously: providers
/// count about 800 (OpenAI) to 1,600 (Anthropic) tokens for a page render.
const IMAGE_TOKENS: usize = 1_600;

struct RunConfig {
    model: Option<String>,
    instructions: String,
    pdfs: Vec<String>,
    batch_size: usize,
    temperature: f64,
    schema: OutputSchema,
    use_source: bool,
    convert_to_images: bool,
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

/// A boolean option: a JSON boolean or a string Roe configs use ("true",
/// "0", …); unset is `default`.
fn flag(config: &Value, key: &str, default: bool) -> Result<bool, String> {
    match &config[key] {
        Value::Null => Ok(default),
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(format!("{key} must be true or false, not '{s}'.")),
        },
        _ => Err(format!("{key} must be true or false.")),
    }
}

/// Boolean options with their defaults.
const FLAGS: [(&str, bool); 2] = [("use_source", false), ("convert_to_images", true)];

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
        let [(source_key, source_default), (images_key, images_default)] = FLAGS;
        Ok(Self {
            model: non_empty_str(config, "model").map(str::to_owned),
            instructions: instructions(config).unwrap_or_default().to_owned(),
            pdfs,
            batch_size: batch_size(config).map_err(EngineError::Invalid)?,
            temperature: read_temperature(&config["temperature"])
                .map_err(|message| EngineError::Invalid(format!("temperature: {message}")))?
                .unwrap_or(0.0),
            schema: OutputSchema::parse(&config["output_schema"]).map_err(EngineError::Invalid)?,
            use_source: flag(config, source_key, source_default).map_err(EngineError::Invalid)?,
            convert_to_images: flag(config, images_key, images_default)
                .map_err(EngineError::Invalid)?,
        })
    }
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

/// A PDF of the run, held once for all its batches.
struct Document {
    name: String,
    /// Hashed once, for all its batches.
    bytes: PdfBytes,
    pages: u32,
}

/// Up to `batch_size` consecutive pages of one document: the unit that is
/// read, asked about, retried and reported.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    document: &'a Document,
    first: u32,
    count: u32,
}

impl Chunk<'_> {
    fn describe(&self) -> String {
        let last = self.first + self.count - 1;
        let pages = if self.count == 1 {
            format!("page {}", self.first)
        } else {
            format!("pages {}-{last}", self.first)
        };
        format!("{pages} of '{}'", self.document.name)
    }
}

fn chunks(documents: &[Document], size: usize) -> Vec<Chunk<'_>> {
    let size = size as u32;
    documents
        .iter()
        .flat_map(|document| {
            (1..=document.pages)
                .step_by(size as usize)
                .map(move |first| Chunk {
                    document,
                    first,
                    count: size.min(document.pages - first + 1),
                })
        })
        .collect()
}

/// One page as the model gets it.
struct PreparedPage {
    content: PageContent,
    /// The marker and the page's text (its text layer, or OCR).
    text: String,
    image: Option<PageImage>,
}

impl PreparedPage {
    fn tokens(&self) -> usize {
        estimated_tokens(&self.text) + self.image.as_ref().map_or(0, |_| IMAGE_TOKENS)
    }

    fn parts(&self) -> impl Iterator<Item = ContentPart> + '_ {
        let image = self.image.as_ref().map(|image| ContentPart::Image {
            mime_type: "image/png".into(),
            data: image.png.clone(),
        });
        std::iter::once(ContentPart::Text(self.text.clone())).chain(image)
    }
}

fn page_marker(name: &str, several: bool, number: u32) -> String {
    if several {
        format!("--- {name}, Page {number} ---\n")
    } else {
        format!("--- Page {number} ---\n")
    }
}

fn page_too_large(number: u32, name: &str, tokens: usize, budget: usize) -> EngineError {
    EngineError::Invalid(format!(
        "page {number} of '{name}' (about {tokens} tokens) does not fit the model's context \
         window (about {budget} tokens left for pages); choose a model with a larger context window"
    ))
}

/// Consecutive pages of one document as text, for engines that read whole
/// documents' text layers (`PDFPageSelectionEngine`).
pub(crate) struct Batch {
    pub(crate) text: String,
}

/// Splits each document's pages into batches of at most `size` pages, split
/// further to fit `budget` tokens; a single page over the budget is an
/// error: text is never cut silently.
pub(crate) fn batches(
    documents: &[(String, Vec<agentd_documents::PdfPage>)],
    size: usize,
    budget: usize,
) -> Result<Vec<Batch>, EngineError> {
    let several = documents.len() > 1;
    let mut out = Vec::new();
    for (name, pages) in documents {
        for chunk in pages.chunks(size) {
            let texts: Vec<String> = chunk
                .iter()
                .map(|page| {
                    format!(
                        "{}{}\n",
                        page_marker(name, several, page.number),
                        page.text()
                    )
                })
                .collect();
            let tokens: Vec<usize> = texts.iter().map(|text| estimated_tokens(text)).collect();
            let groups = fit(&tokens, budget).map_err(|index| {
                page_too_large(chunk[index].number, name, tokens[index], budget)
            })?;
            out.extend(groups.into_iter().map(|group| Batch {
                text: texts[group].concat(),
            }));
        }
    }
    Ok(out)
}

/// Cuts pages (given by their token counts) into runs that fit `budget`,
/// in order; `Err(index)` names a page that cannot fit alone.
fn fit(tokens: &[usize], budget: usize) -> Result<Vec<std::ops::Range<usize>>, usize> {
    let mut groups = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (index, &page) in tokens.iter().enumerate() {
        if page > budget {
            return Err(index);
        }
        if index > start && used + page > budget {
            groups.push(start..index);
            (start, used) = (index, 0);
        }
        used += page;
    }
    if start < tokens.len() {
        groups.push(start..tokens.len());
    }
    Ok(groups)
}

/// A value with the sources of its leaves.
#[derive(Debug, Default)]
struct Sourced {
    value: Value,
    sources: SourceTree,
}

/// A batch's answer and the page images it saved, in page order.
#[derive(Debug, Default)]
struct BatchAnswer {
    answer: Sourced,
    page_images: Vec<Value>,
}

/// What every batch of one run shares.
struct BatchRunner<'a> {
    context: &'a EngineContext<'a>,
    model: &'a ResolvedModel,
    run: &'a RunConfig,
    /// Which pages are rendered, and at what resolution.
    render: RenderPages,
    dpi: u16,
    takes_images: bool,
    several: bool,
    budget: usize,
    total: usize,
    done: AtomicUsize,
}

impl BatchRunner<'_> {
    /// Reads, asks about and merges one chunk of pages.
    async fn answer(&self, chunk: Chunk<'_>) -> (Result<BatchAnswer, EngineError>, Usage) {
        let mut usage = Usage::default();
        let answer = self.answer_chunk(chunk, &mut usage).await;
        if answer.is_ok() {
            let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
            let message = format!("batch {done}/{} done: {}", self.total, chunk.describe());
            self.context.progress.report(message).await;
        }
        (answer, usage)
    }

    async fn answer_chunk(
        &self,
        chunk: Chunk<'_>,
        usage: &mut Usage,
    ) -> Result<BatchAnswer, EngineError> {
        let (pages, page_images) = self.read(chunk).await?;
        let tokens: Vec<usize> = pages.iter().map(PreparedPage::tokens).collect();
        let groups = fit(&tokens, self.budget).map_err(|index| {
            page_too_large(
                pages[index].content.page.number,
                &chunk.document.name,
                tokens[index],
                self.budget,
            )
        })?;
        let mut merged: Option<Sourced> = None;
        for group in groups {
            let group = &pages[group];
            let value = self.ask(chunk, group, usage).await?;
            let sources = if self.run.use_source {
                SourceTree::locate(&value, &page_glyphs(&chunk.document.name, group))
            } else {
                SourceTree::None
            };
            let answer = Sourced { value, sources };
            merged = Some(match merged {
                Some(kept) => merge_sourced(kept, answer),
                None => answer,
            });
        }
        Ok(BatchAnswer {
            answer: merged.unwrap_or_default(),
            page_images,
        })
    }

    /// The chunk's pages (text layer, renders, OCR for scans when the model
    /// reads text only), and the renders sent to the model, saved.
    async fn read(&self, chunk: Chunk<'_>) -> Result<(Vec<PreparedPage>, Vec<Value>), EngineError> {
        let range = PageBatch {
            first: chunk.first,
            count: chunk.count,
            render: self.render,
            dpi: self.dpi,
        };
        let name = &chunk.document.name;
        let contents = self
            .context
            .documents
            .pdf()
            .pages(chunk.document.bytes.clone(), range)
            .await
            .map_err(|e| document_error(name, &e))?;
        let mut pages = Vec::with_capacity(contents.len());
        let mut page_images = Vec::new();
        for mut content in contents {
            let mut text = page_marker(name, self.several, content.page.number);
            let mut image = content.image.take();
            if !content.has_no_text() {
                text.push_str(&content.page.text());
            } else if self.takes_images && image.is_some() {
                text.push_str(SCAN_NOTE);
            } else if let Some(scan) = image.take() {
                let geometry = PageGeometry {
                    page_width: content.page.width,
                    page_height: content.page.height,
                    image_width: scan.width,
                    image_height: scan.height,
                };
                let read = ocr::read_page(&scan.png, geometry)
                    .await
                    .map_err(|e| document_error(name, &e))?;
                text.push_str(&read.text);
                // Sources are looked for in what OCR read.
                content.glyphs = read.glyphs;
            }
            if let Some(image) = &image {
                page_images.push(self.save_image(name, content.page.number, image).await?);
            }
            pages.push(PreparedPage {
                content,
                text,
                image,
            });
        }
        Ok((pages, page_images))
    }

    /// Saves a page rendering sent to the model as a job reference.
    async fn save_image(
        &self,
        document: &str,
        page: u32,
        image: &PageImage,
    ) -> Result<Value, EngineError> {
        let stem = document.strip_suffix(".pdf").unwrap_or(document);
        let saved = self
            .context
            .references
            .save_reference(
                &format!("{stem} page {page}.png"),
                "image/png",
                image.png.clone(),
            )
            .await?;
        Ok(json!({
            "document": document,
            "page": page,
            "resource_id": saved.resource_id,
            "url": saved.url,
        }))
    }

    /// Asks the model about some pages, retrying alone on failure.
    async fn ask(
        &self,
        chunk: Chunk<'_>,
        pages: &[PreparedPage],
        usage: &mut Usage,
    ) -> Result<Value, EngineError> {
        let messages = vec![
            Message::text(
                Role::System,
                format!("{SYSTEM_PROMPT}\n\nInstructions: {}", self.run.instructions),
            ),
            Message {
                role: Role::User,
                parts: pages.iter().flat_map(PreparedPage::parts).collect(),
            },
        ];
        let options = AnswerOptions {
            temperature: Some(self.run.temperature),
            ..AnswerOptions::default()
        };
        let mut attempt = 1;
        loop {
            let answer = ask_for_json(
                self.model,
                messages.clone(),
                &self.run.schema,
                options,
                usage,
            )
            .await;
            match answer {
                Err(error) if attempt < BATCH_ATTEMPTS && is_worth_retrying(&error) => {
                    tracing::warn!(%error, attempt, batch = %chunk.describe(), "a PDF batch failed; retrying it");
                    let message = format!(
                        "{} failed (attempt {attempt} of {BATCH_ATTEMPTS}); retrying it",
                        chunk.describe()
                    );
                    self.context.progress.report(message).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }
}

/// Failures another try may mend: not a refused request or key.
fn is_worth_retrying(error: &EngineError) -> bool {
    match error {
        EngineError::InvalidAnswer(_) => true,
        EngineError::Provider(error) => !matches!(
            error,
            ProviderError::Unauthorized { .. } | ProviderError::Rejected { .. }
        ),
        EngineError::Invalid(_) | EngineError::Model(_) | EngineError::Internal(_) => false,
    }
}

fn document_error(name: &str, error: &agentd_documents::DocumentError) -> EngineError {
    EngineError::Invalid(format!("'{name}': {error}"))
}

fn page_glyphs<'a>(document: &'a str, pages: &'a [PreparedPage]) -> Vec<PageGlyphs<'a>> {
    pages
        .iter()
        .map(|page| PageGlyphs {
            document,
            number: page.content.page.number,
            height: page.content.page.height,
            glyphs: &page.content.glyphs,
        })
        .collect()
}

/// Merges batch answers in page order (see the module documentation).
pub fn merge(answers: Vec<Value>) -> Value {
    answers
        .into_iter()
        .map(|value| Sourced {
            value,
            sources: SourceTree::None,
        })
        .reduce(merge_sourced)
        .map_or(Value::Null, |merged| merged.value)
}

fn is_missing(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Merges two answers and, alongside, their sources.
fn merge_sourced(first: Sourced, later: Sourced) -> Sourced {
    let (mut kept_sources, mut more_sources) = (first.sources, later.sources);
    match (first.value, later.value) {
        (Value::Array(mut kept), Value::Array(more)) => {
            let mut trees: Vec<SourceTree> =
                (0..kept.len()).map(|i| kept_sources.take_item(i)).collect();
            for (index, item) in more.into_iter().enumerate() {
                if !kept.contains(&item) {
                    kept.push(item);
                    trees.push(more_sources.take_item(index));
                }
            }
            Sourced {
                value: Value::Array(kept),
                sources: SourceTree::List(trees),
            }
        }
        (Value::Object(mut kept), Value::Object(more)) => {
            let mut trees = std::collections::HashMap::new();
            for (key, value) in more {
                let later = Sourced {
                    value,
                    sources: more_sources.take_field(&key),
                };
                let merged = match kept.remove(&key) {
                    Some(existing) => merge_sourced(
                        Sourced {
                            value: existing,
                            sources: kept_sources.take_field(&key),
                        },
                        later,
                    ),
                    None => later,
                };
                trees.insert(key.clone(), merged.sources);
                kept.insert(key, merged.value);
            }
            for key in kept.keys() {
                if !trees.contains_key(key) {
                    trees.insert(key.clone(), kept_sources.take_field(key));
                }
            }
            Sourced {
                value: Value::Object(kept),
                sources: SourceTree::Map(trees),
            }
        }
        (first, later) if is_missing(&first) => Sourced {
            value: later,
            sources: more_sources,
        },
        (first, _) => Sourced {
            value: first,
            sources: kept_sources,
        },
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
                "use_source": {"type": ["boolean", "string"], "description": "Default false. When true, a second output 'sources' gives, for each extracted value (by JSON Pointer), its page, matching text and box on the page."},
                "convert_to_images": {"type": ["boolean", "string"], "description": "Default true: each page's rendering goes with its text to models that take images (text only otherwise), and is saved as a job reference listed in the output 'page_images'."},
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
            "convert_to_images": true,
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
        for (field, default) in FLAGS {
            if let (false, Err(message)) =
                (is_template(&config[field]), flag(config, field, default))
            {
                errors.add(format!("engine_config.{field}"), message);
            }
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
        let documents = open_documents(context, &run).await?;
        let chunks = chunks(&documents, run.batch_size);
        if chunks.is_empty() {
            return Err(EngineError::Invalid("the PDFs have no pages".into()).into());
        }
        let runner = BatchRunner::new(context, &model, &run, documents.len() > 1, chunks.len());
        let mut answers = stream::iter(0..chunks.len())
            .map(|index| runner.answer(chunks[index]))
            .buffered(BATCHES_IN_FLIGHT);
        let mut usage = Usage::default();
        let mut merged: Option<Sourced> = None;
        let mut page_images = Vec::new();
        let mut failure = None;
        // In page order; the first failure stops the batches still running.
        while let Some((answer, spent)) = answers.next().await {
            usage += spent;
            match answer {
                Ok(batch) => {
                    page_images.extend(batch.page_images);
                    merged = Some(match merged {
                        Some(kept) => merge_sourced(kept, batch.answer),
                        None => batch.answer,
                    })
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        drop(answers);
        let cost = model.spec.cost(&usage);
        let fail = |error| EngineFailure { error, usage, cost };
        if let Some(error) = failure {
            return Err(fail(error));
        }
        let merged = merged.unwrap_or_default();
        let value = run
            .schema
            .check_answer(&merged.value.to_string())
            .map_err(|problem| {
                fail(EngineError::InvalidAnswer(format!(
                    "the merged answer: {problem}"
                )))
            })?;
        let mut outputs = vec![AgentDatum {
            key: "output".into(),
            description: "Extracted data".into(),
            data_type: "application/json".into(),
            value: value.to_string(),
            cost: Some(cost),
        }];
        if run.use_source {
            outputs.push(AgentDatum {
                key: "sources".into(),
                description: "Where each extracted value was found, by JSON Pointer into output"
                    .into(),
                data_type: "application/json".into(),
                value: Value::Object(sources::pointers(&value, &merged.sources)).to_string(),
                cost: None,
            });
        }
        if !page_images.is_empty() {
            outputs.push(AgentDatum {
                key: "page_images".into(),
                description: "The page renderings sent to the model (job references)".into(),
                data_type: "application/json".into(),
                value: Value::Array(page_images).to_string(),
                cost: None,
            });
        }
        Ok(EngineOutput {
            outputs,
            usage,
            cost,
        })
    }
}

impl<'a> BatchRunner<'a> {
    fn new(
        context: &'a EngineContext<'a>,
        model: &'a ResolvedModel,
        run: &'a RunConfig,
        several: bool,
        total: usize,
    ) -> Self {
        let takes_images = model.spec.supports(Capability::Image);
        let (render, dpi) = match (takes_images, run.convert_to_images) {
            (true, true) => (RenderPages::All, MODEL_DPI),
            (true, false) => (RenderPages::WithoutText, MODEL_DPI),
            (false, _) => (RenderPages::WithoutText, OCR_DPI),
        };
        Self {
            context,
            model,
            run,
            render,
            dpi,
            takes_images,
            several,
            budget: page_budget(model, run),
            total,
            done: AtomicUsize::new(0),
        }
    }
}

/// Loads each PDF and counts its pages; encrypted, corrupt and oversized
/// files fail here, before any model is asked.
async fn open_documents(
    context: &EngineContext<'_>,
    run: &RunConfig,
) -> Result<Vec<Document>, EngineError> {
    let mut documents = Vec::with_capacity(run.pdfs.len());
    for reference in &run.pdfs {
        let (name, bytes) = load_file(context.files, reference, "a PDF").await?;
        let bytes = PdfBytes::from(bytes);
        let pages = context
            .documents
            .pdf()
            .count(bytes.clone())
            .await
            .map_err(|e| document_error(&name, &e))?;
        documents.push(Document { name, bytes, pages });
    }
    Ok(documents)
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

    #[test]
    fn pages_are_grouped_to_fit_the_context_and_never_cut() {
        let roomy = fit(&[100, 100, 100], 1_000).unwrap();
        assert_eq!((roomy.len(), roomy[0].clone()), (1, 0..3));
        assert_eq!(
            fit(&[105, 105, 105, 105, 105], 250),
            Ok(vec![0..2, 2..4, 4..5])
        );
        // A page that cannot fit is an error, not a cut.
        assert_eq!(fit(&[10, 300, 10], 250), Err(1));
    }

    #[test]
    fn chunks_cover_every_page_in_batch_size_runs() {
        let document = |pages| Document {
            name: "a.pdf".into(),
            bytes: PdfBytes::from(Vec::new()),
            pages,
        };
        let documents = [document(25), document(3)];
        let runs: Vec<(u32, u32)> = chunks(&documents, 10)
            .iter()
            .map(|c| (c.first, c.count))
            .collect();
        assert_eq!(runs, [(1, 10), (11, 10), (21, 5), (1, 3)]);
        assert_eq!(
            chunks(&documents, 10)[2].describe(),
            "pages 21-25 of 'a.pdf'"
        );
    }

    #[test]
    fn sources_follow_their_values_through_the_merge() {
        let source = |page| {
            SourceTree::Leaf(sources::Source {
                document: "a.pdf".into(),
                page,
                text: String::new(),
                left: 0.0,
                top: 0.0,
                right: 1.0,
                bottom: 1.0,
            })
        };
        let first = Sourced {
            value: json!({"items": ["a", "b"], "title": null}),
            sources: SourceTree::Map(
                [
                    (
                        "items".to_string(),
                        SourceTree::List(vec![source(1), source(2)]),
                    ),
                    ("title".to_string(), SourceTree::None),
                ]
                .into(),
            ),
        };
        let later = Sourced {
            value: json!({"items": ["b", "c"], "title": "T"}),
            sources: SourceTree::Map(
                [
                    (
                        "items".to_string(),
                        SourceTree::List(vec![source(3), source(4)]),
                    ),
                    ("title".to_string(), source(5)),
                ]
                .into(),
            ),
        };
        let merged = merge_sourced(first, later);
        assert_eq!(
            merged.value,
            json!({"items": ["a", "b", "c"], "title": "T"})
        );
        let pages: Vec<(String, u64)> = sources::pointers(&merged.value, &merged.sources)
            .into_iter()
            .map(|(pointer, source)| (pointer, source["page"].as_u64().unwrap()))
            .collect();
        let mut pages = pages;
        pages.sort();
        assert_eq!(
            pages,
            [
                ("/items/0".to_string(), 1),
                ("/items/1".to_string(), 2),
                ("/items/2".to_string(), 4),
                ("/title".to_string(), 5)
            ]
        );
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
    fn flags_read_booleans_and_roe_strings() {
        let config = json!({"use_source": "true", "convert_to_images": false, "bad": "maybe"});
        assert_eq!(flag(&config, "use_source", false), Ok(true));
        assert_eq!(flag(&config, "convert_to_images", true), Ok(false));
        assert_eq!(flag(&config, "unset", true), Ok(true));
        assert!(flag(&config, "bad", false).is_err());
    }
}
