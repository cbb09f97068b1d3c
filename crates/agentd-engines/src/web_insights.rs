//! `URLWebsiteExtractionEngine` ("Web Insights"): a web page's main content
//! (fetched, or rendered in Chromium when needed) as Markdown, plus its
//! screenshot in vision mode, answered in the agent's `output_schema`. The
//! page's HTML, Markdown and screenshot can be saved as job references.

use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{Capability, ContentPart, Message, ProviderRegistry, ResolvedModel, Role};
use agentd_web::browser::RenderOptions;
use agentd_web::content::ExtractedPage;
use agentd_web::{LoadedPage, PageRequest, WebError};
use async_trait::async_trait;
use serde_json::{json, Value};

use crate::answer::{ask_for_json, AnswerOptions};
use crate::config_schema::{model_property, output_schema_property, summary_schema};
use crate::multimodal::{non_empty_str, number};
use crate::{
    is_template, Engine, EngineContext, EngineError, EngineFailure, EngineOutput, SavedReference,
};

pub struct WebInsightsEngine;

const SYSTEM_PROMPT: &str = "You extract structured information from a web page. Follow the \
instruction, use only the page you are given, and answer with one JSON value that matches the \
required JSON Schema.";

/// `min_wait_time_sec` above this is a typo, not a wish (the page timeout
/// bounds the whole load anyway).
const MAX_WAIT_SECS: f64 = 60.0;

/// `crawl_config`, read from the rendered `engine_config`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct CrawlConfig {
    pub save_html: bool,
    pub save_markdown: bool,
    pub save_screenshot: bool,
    pub crawling_only: bool,
    pub min_wait: std::time::Duration,
    pub ignore_robots_txt: bool,
}

impl CrawlConfig {
    pub(crate) fn read(value: &Value) -> Result<Self, String> {
        let flag = |name: &str| {
            flag(&value[name]).map_err(|message| format!("crawl_config.{name}: {message}"))
        };
        let wait = match number(&value["min_wait_time_sec"]) {
            Ok(None) => 0.0,
            Ok(Some(secs)) if (0.0..=MAX_WAIT_SECS).contains(&secs) => secs,
            Ok(Some(secs)) => {
                return Err(format!(
                    "crawl_config.min_wait_time_sec: must be from 0 to {MAX_WAIT_SECS}, got {secs}"
                ))
            }
            Err(message) => return Err(format!("crawl_config.min_wait_time_sec: {message}")),
        };
        Ok(Self {
            save_html: flag("save_html")?,
            save_markdown: flag("save_markdown")?,
            save_screenshot: flag("save_screenshot")?,
            crawling_only: flag("crawling_only")?,
            min_wait: std::time::Duration::from_secs_f64(wait),
            ignore_robots_txt: flag("ignore_robots_txt")?,
        })
    }
}

/// A boolean as Roe configs write it: `true`, `"true"`, `"1"`; missing,
/// `null` and `""` are false.
pub(crate) fn flag(value: &Value) -> Result<bool, String> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "no" => Ok(false),
            "true" | "1" | "yes" => Ok(true),
            _ => Err(format!("'{s}' is not true or false.")),
        },
        _ => Err("must be true or false.".into()),
    }
}

/// The URL to read: absolute http(s).
pub(crate) fn page_url(config: &Value) -> Result<url::Url, EngineError> {
    let text = non_empty_str(config, "url")
        .ok_or_else(|| EngineError::Invalid("url: the rendered URL is empty".into()))?;
    let url = url::Url::parse(text)
        .map_err(|_| EngineError::Invalid(format!("url: '{text}' is not a URL")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EngineError::Invalid(format!(
            "url: '{text}' is not an http:// or https:// URL"
        )));
    }
    Ok(url)
}

/// The config of one run.
struct RunConfig {
    url: url::Url,
    model: Option<String>,
    instruction: String,
    schema: Option<OutputSchema>,
    vision_mode: bool,
    crawl: CrawlConfig,
}

impl RunConfig {
    fn read(config: &Value) -> Result<Self, EngineError> {
        let crawl = CrawlConfig::read(&config["crawl_config"]).map_err(EngineError::Invalid)?;
        let schema = if crawl.crawling_only {
            None
        } else {
            Some(OutputSchema::parse(&config["output_schema"]).map_err(EngineError::Invalid)?)
        };
        Ok(Self {
            url: page_url(config)?,
            model: non_empty_str(config, "model").map(str::to_owned),
            instruction: non_empty_str(config, "instruction")
                .unwrap_or("Extract the requested fields from the page.")
                .to_owned(),
            schema,
            vision_mode: flag(&config["vision_mode"])
                .map_err(|message| EngineError::Invalid(format!("vision_mode: {message}")))?,
            crawl,
        })
    }

    fn page_request(&self) -> PageRequest {
        let screenshot = self.vision_mode || self.crawl.save_screenshot;
        PageRequest {
            url: self.url.clone(),
            force_render: screenshot || !self.crawl.min_wait.is_zero(),
            render: RenderOptions {
                min_wait: self.crawl.min_wait,
                screenshot,
            },
            obey_robots: !self.crawl.ignore_robots_txt,
        }
    }
}

/// The page as the model reads it and as `page.md` is saved: title, URL,
/// metadata, then the main content (its links inline).
pub(crate) fn page_document(content: &ExtractedPage, url: &url::Url) -> String {
    let mut document = String::new();
    if let Some(title) = content.title.as_deref().filter(|t| !t.trim().is_empty()) {
        document.push_str(&format!("# {}\n\n", title.trim()));
    }
    document.push_str(&format!("URL: {url}\n"));
    for (name, value) in &content.metadata {
        document.push_str(&format!("{name}: {}\n", value.trim()));
    }
    document.push('\n');
    document.push_str(content.markdown.trim());
    document.push('\n');
    document
}

/// A page-load failure as the job's error: the caller's URL or the site is
/// at fault (a clear message), except a browser crash (internal).
pub(crate) fn web_failure(error: WebError) -> EngineError {
    match error {
        WebError::Internal(detail) => EngineError::Internal(format!("browser: {detail}")),
        other => EngineError::Invalid(other.to_string()),
    }
}

/// A saved reference as an output datum (its URL is the value).
pub(crate) fn reference_datum(
    key: &str,
    description: &str,
    content_type: &str,
    reference: &SavedReference,
) -> AgentDatum {
    AgentDatum {
        key: key.into(),
        description: description.into(),
        data_type: content_type.into(),
        value: reference.url.clone(),
        cost: None,
    }
}

/// The model for a run; vision mode needs one that takes images.
pub(crate) fn resolve_model(
    context: &EngineContext<'_>,
    model: Option<&str>,
    needs_images: bool,
) -> Result<ResolvedModel, EngineError> {
    let model = context
        .models
        .resolve(context.models.model_or_default(model))?;
    if needs_images && !model.spec.supports(Capability::Image) {
        return Err(EngineError::Invalid(format!(
            "vision_mode: model '{}' does not take images",
            model.spec.id
        )));
    }
    Ok(model)
}

/// Asks `model` for the answer from the page's document (and screenshot).
pub(crate) async fn extract_answer(
    model: &ResolvedModel,
    instruction: &str,
    document: &str,
    screenshot: Option<&[u8]>,
    schema: &OutputSchema,
    usage: &mut Usage,
) -> Result<Value, EngineError> {
    let mut parts = vec![ContentPart::Text(document.to_owned())];
    if let Some(png) = screenshot {
        parts.push(ContentPart::Image {
            mime_type: "image/png".into(),
            data: png.to_vec(),
        });
    }
    let messages = vec![
        Message::text(
            Role::System,
            format!("{SYSTEM_PROMPT}\n\nInstruction: {instruction}"),
        ),
        Message {
            role: Role::User,
            parts,
        },
    ];
    ask_for_json(model, messages, schema, AnswerOptions::default(), usage).await
}

/// Saves what `crawl` asks for; returns the data listing them.
async fn save_page(
    context: &EngineContext<'_>,
    crawl: &CrawlConfig,
    page: &LoadedPage,
    document: &str,
) -> Result<Vec<AgentDatum>, EngineError> {
    let mut saved = Vec::new();
    if crawl.save_html {
        let content_type = "text/html; charset=utf-8";
        let reference = context
            .references
            .save_reference("page.html", content_type, page.html.clone().into_bytes())
            .await?;
        saved.push(reference_datum(
            "html",
            "The page's HTML (a job reference)",
            content_type,
            &reference,
        ));
    }
    if crawl.save_markdown {
        let content_type = "text/markdown; charset=utf-8";
        let reference = context
            .references
            .save_reference("page.md", content_type, document.as_bytes().to_vec())
            .await?;
        saved.push(reference_datum(
            "markdown",
            "The page's main content as Markdown, as the model read it (a job reference)",
            content_type,
            &reference,
        ));
    }
    if let (true, Some(png)) = (crawl.save_screenshot, &page.screenshot_png) {
        let reference = context
            .references
            .save_reference("screenshot.png", "image/png", png.clone())
            .await?;
        saved.push(reference_datum(
            "screenshot",
            "Full-page screenshot (a job reference)",
            "image/png",
            &reference,
        ));
    }
    Ok(saved)
}

/// Where the page came from, for the caller.
fn page_datum(run: &RunConfig, page: &LoadedPage) -> AgentDatum {
    AgentDatum {
        key: "page".into(),
        description: "The page read: its final URL, title and whether it was rendered".into(),
        data_type: "application/json".into(),
        value: json!({
            "url": run.url.as_str(),
            "final_url": page.final_url.as_str(),
            "title": page.content.title,
            "rendered": page.rendered,
        })
        .to_string(),
        cost: None,
    }
}

/// Config rules the schema cannot say, shared by the web engines: a known
/// model, a parsable output schema, and a model that takes images when
/// `vision_mode` is on.
pub(crate) fn check_web_config(
    config: &Value,
    models: &ProviderRegistry,
    needs_schema: bool,
) -> FieldErrors {
    let mut errors = FieldErrors::default();
    let named = non_empty_str(config, "model");
    let model = match named {
        Some(model) if model.starts_with('$') => None,
        other => Some(models.model_or_default(other)),
    };
    let spec = match model.map(|m| models.spec(m)) {
        Some(Ok(spec)) => Some(spec),
        Some(Err(error)) => {
            if named.is_some() {
                errors.add("engine_config.model", error.to_string());
            }
            None
        }
        None => None,
    };
    if needs_schema && !is_template(&config["output_schema"]) {
        match OutputSchema::parse(&config["output_schema"]) {
            Err(message) => errors.add("engine_config.output_schema", message),
            Ok(schema) => {
                if let Some(Err(message)) = model.map(|m| models.check_schema(m, schema.as_value()))
                {
                    errors.add("engine_config.output_schema", message);
                }
            }
        }
    }
    if !is_template(&config["vision_mode"]) {
        match flag(&config["vision_mode"]) {
            Err(message) => errors.add("engine_config.vision_mode", message),
            Ok(true) => {
                if let Some(spec) = spec.filter(|s| !s.supports(Capability::Image)) {
                    errors.add(
                        "engine_config.vision_mode",
                        format!("Model '{}' does not take images.", spec.id),
                    );
                }
            }
            Ok(false) => {}
        }
    }
    if !config["crawl_config"].is_null() && !crawl_config_templated(&config["crawl_config"]) {
        if let Err(message) = CrawlConfig::read(&config["crawl_config"]) {
            let (field, message) = message
                .split_once(": ")
                .unwrap_or(("crawl_config", &message));
            errors.add(format!("engine_config.{field}"), message.to_owned());
        }
    }
    errors
}

fn crawl_config_templated(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|fields| fields.values().any(is_template))
}

/// `crawl_config`'s JSON Schema.
pub(crate) fn crawl_config_property() -> Value {
    let flag = json!({"type": ["boolean", "string"]});
    json!({
        "type": "object",
        "properties": {
            "save_html": flag,
            "save_markdown": flag,
            "save_screenshot": flag,
            "crawling_only": {"type": ["boolean", "string"], "description": "Save the references only; no model call."},
            "min_wait_time_sec": {"type": ["number", "string"], "description": "Extra wait after the page loaded, 0 to 60 s (renders in the browser)."},
            "ignore_robots_txt": {"type": ["boolean", "string"], "description": "Fetch pages the site's robots.txt disallows."}
        }
    })
}

#[async_trait]
impl Engine for WebInsightsEngine {
    fn class_id(&self) -> &'static str {
        "URLWebsiteExtractionEngine"
    }

    fn name(&self) -> &'static str {
        "Web Insights"
    }

    fn description(&self) -> &'static str {
        "Reads a web page (rendered in a browser when needed) and extracts data matching output_schema from its main content; can save its HTML, Markdown and screenshot."
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "The page's URL; usually \"${url}\"."},
                "instruction": {"type": "string"},
                "model": model_property(),
                "output_schema": output_schema_property(),
                "vision_mode": {"type": ["boolean", "string"], "description": "Send the page's screenshot to a model that takes images."},
                "crawl_config": crawl_config_property()
            },
            "required": ["url"]
        })
    }

    fn default_config(&self) -> Value {
        json!({
            "url": "${url}",
            "instruction": "Summarize the page.",
            "output_schema": summary_schema(),
            "vision_mode": false,
            "crawl_config": {
                "save_html": false,
                "save_markdown": true,
                "save_screenshot": false,
                "crawling_only": false,
                "min_wait_time_sec": 0
            }
        })
    }

    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors {
        let crawling_only = CrawlConfig::read(&config["crawl_config"])
            .map(|crawl| crawl.crawling_only)
            .unwrap_or(false);
        let mut errors = check_web_config(config, models, !crawling_only);
        if !crawling_only && config["output_schema"].is_null() {
            errors.add(
                "engine_config.output_schema",
                "Required unless crawl_config.crawling_only is true.",
            );
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
        // The model is checked before the page is loaded: a wrong model
        // fails at once.
        let model = match &run.schema {
            Some(_) => Some(resolve_model(
                context,
                run.model.as_deref(),
                run.vision_mode,
            )?),
            None => None,
        };
        context
            .progress
            .report(format!("Loading {}", run.url))
            .await;
        let page = context
            .web
            .load(&run.page_request())
            .await
            .map_err(web_failure)?;
        let document = page_document(&page.content, &page.final_url);
        let mut outputs = save_page(context, &run.crawl, &page, &document).await?;
        outputs.push(page_datum(&run, &page));
        let (Some(model), Some(schema)) = (model, &run.schema) else {
            return Ok(EngineOutput {
                outputs,
                usage: Usage::default(),
                cost: 0.0,
            });
        };
        let screenshot = page.screenshot_png.as_deref().filter(|_| run.vision_mode);
        let mut usage = Usage::default();
        let answer = extract_answer(
            &model,
            &run.instruction,
            &document,
            screenshot,
            schema,
            &mut usage,
        )
        .await;
        let cost = model.spec.cost(&usage);
        match answer {
            Ok(value) => {
                outputs.insert(
                    0,
                    AgentDatum {
                        key: "output".into(),
                        description: "Extracted data".into(),
                        data_type: "application/json".into(),
                        value: value.to_string(),
                        cost: Some(cost),
                    },
                );
                Ok(EngineOutput {
                    outputs,
                    usage,
                    cost,
                })
            }
            Err(error) => Err(EngineFailure { error, usage, cost }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawl_config_reads_roe_shapes() {
        let crawl = CrawlConfig::read(&json!({
            "save_html": "true", "save_markdown": true, "crawling_only": "0",
            "min_wait_time_sec": "2.5"
        }))
        .unwrap();
        assert!(crawl.save_html && crawl.save_markdown && !crawl.crawling_only);
        assert_eq!(crawl.min_wait, std::time::Duration::from_millis(2500));
        assert_eq!(
            CrawlConfig::read(&Value::Null).unwrap(),
            CrawlConfig::default()
        );
    }

    #[test]
    fn crawl_config_errors_name_the_field() {
        let error = CrawlConfig::read(&json!({"min_wait_time_sec": 600})).unwrap_err();
        assert!(
            error.starts_with("crawl_config.min_wait_time_sec:"),
            "{error}"
        );
        let error = CrawlConfig::read(&json!({"save_html": "maybe"})).unwrap_err();
        assert!(error.starts_with("crawl_config.save_html:"), "{error}");
    }

    #[test]
    fn options_that_need_pixels_force_the_browser() {
        let mut run = RunConfig::read(&json!({
            "url": "https://example.com/", "output_schema": summary_schema()
        }))
        .unwrap();
        assert!(!run.page_request().force_render);
        run.vision_mode = true;
        let request = run.page_request();
        assert!(request.force_render && request.render.screenshot);
        assert!(request.obey_robots);
    }

    #[test]
    fn the_document_holds_title_url_metadata_and_content() {
        let page = ExtractedPage {
            title: Some("Title".into()),
            markdown: "Body [link](https://example.com/a)".into(),
            metadata: [("author".to_owned(), "Ann".to_owned())].into(),
            links: Vec::new(),
        };
        let url = url::Url::parse("https://example.com/").unwrap();
        assert_eq!(
            page_document(&page, &url),
            "# Title\n\nURL: https://example.com/\nauthor: Ann\n\nBody [link](https://example.com/a)\n"
        );
    }

    #[test]
    fn only_http_urls_are_read() {
        for url in ["", "ftp://example.com/", "not a url"] {
            assert!(page_url(&json!({ "url": url })).is_err(), "{url}");
        }
    }
}
