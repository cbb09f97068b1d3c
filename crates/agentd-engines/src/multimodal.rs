//! `MultimodalExtractionEngine` ("Multimodal Insights"): text (and, later,
//! images) plus an instruction in, JSON matching `output_schema` out.

use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{Capability, ContentPart, Message, ProviderRegistry, ReasoningEffort, Role};
use async_trait::async_trait;
use serde_json::{json, Value};

use crate::answer::{ask_for_json, AnswerOptions};
use crate::config_schema::{file_list, model_property, output_schema_property, summary_schema};
use crate::{
    is_template, load_file, Engine, EngineContext, EngineError, EngineFailure, EngineOutput,
    FileReader,
};

pub struct MultimodalExtractionEngine;

const SYSTEM_PROMPT: &str = "You extract structured information. Follow the instruction, \
use only the content you are given, and answer with one JSON value that matches the \
required JSON Schema.";

/// Images one run may send (each may be a URL the server fetches); as many
/// as the strictest provider takes in one request.
const MAX_IMAGES: usize = 100;

/// The config of one run, read from the rendered `engine_config`.
struct RunConfig {
    /// `None`: the server's default model.
    model: Option<String>,
    instruction: String,
    text: Option<String>,
    images: Vec<String>,
    schema: OutputSchema,
    temperature: Option<f64>,
    reasoning: Option<ReasoningEffort>,
    max_output_tokens: Option<u32>,
}

/// Sampling temperatures the providers accept.
const TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = 0.0..=2.0;
/// Larger answers than any model gives are a typo, not a wish.
const MAX_OUTPUT_TOKENS: u64 = 1_000_000;

/// Roe configs often hold numbers as strings ("0.7"); `null` and `""` mean
/// "not set". Anything else that is not a number is an error.
pub(crate) fn number(value: &Value) -> Result<Option<f64>, String> {
    let parsed = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed.filter(|n| n.is_finite()) {
        Some(n) => Ok(Some(n)),
        None => Err(format!("'{}' is not a number.", shorten(value))),
    }
}

fn shorten(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().take(40).collect()
}

pub(crate) fn read_temperature(value: &Value) -> Result<Option<f64>, String> {
    match number(value)? {
        Some(t) if !TEMPERATURE_RANGE.contains(&t) => Err(format!(
            "Must be between {} and {}, got {t}.",
            TEMPERATURE_RANGE.start(),
            TEMPERATURE_RANGE.end()
        )),
        other => Ok(other),
    }
}

fn read_max_output_tokens(value: &Value) -> Result<Option<u32>, String> {
    match number(value)? {
        None => Ok(None),
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= MAX_OUTPUT_TOKENS as f64 => {
            Ok(Some(n as u32))
        }
        Some(n) => Err(format!(
            "Must be a whole number from 1 to {MAX_OUTPUT_TOKENS}, got {n}."
        )),
    }
}

/// `reasoning`, or Roe's `reasoning_effort`.
fn reasoning_field(config: &Value) -> (&'static str, &Value) {
    if config["reasoning"].is_null() {
        ("reasoning_effort", &config["reasoning_effort"])
    } else {
        ("reasoning", &config["reasoning"])
    }
}

fn read_reasoning(value: &Value) -> Result<Option<ReasoningEffort>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => ReasoningEffort::parse(s)
            .map(Some)
            .ok_or_else(|| format!("Must be low, medium or high, not '{}'.", shorten(value))),
        _ => Err("Must be low, medium or high.".into()),
    }
}

pub(crate) fn non_empty_str<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config[key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl RunConfig {
    fn read(config: &Value) -> Result<Self, EngineError> {
        let schema = OutputSchema::parse(&config["output_schema"]).map_err(EngineError::Invalid)?;
        fn invalid(field: &str) -> impl Fn(String) -> EngineError + '_ {
            move |message| EngineError::Invalid(format!("{field}: {message}"))
        }
        let (reasoning_name, reasoning_value) = reasoning_field(config);
        let images = file_refs(&config["images"]);
        if images.len() > MAX_IMAGES {
            return Err(EngineError::Invalid(format!(
                "at most {MAX_IMAGES} images per run, got {}",
                images.len()
            )));
        }
        Ok(Self {
            model: non_empty_str(config, "model").map(str::to_owned),
            instruction: non_empty_str(config, "instruction")
                .unwrap_or_default()
                .to_owned(),
            text: non_empty_str(config, "text").map(str::to_owned),
            images,
            schema,
            temperature: read_temperature(&config["temperature"])
                .map_err(invalid("temperature"))?,
            reasoning: read_reasoning(reasoning_value).map_err(invalid(reasoning_name))?,
            max_output_tokens: read_max_output_tokens(&config["max_output_tokens"])
                .map_err(invalid("max_output_tokens"))?,
        })
    }

    async fn first_messages(&self, files: &dyn FileReader) -> Result<Vec<Message>, EngineError> {
        let mut parts = Vec::new();
        if let Some(text) = &self.text {
            parts.push(ContentPart::Text(text.clone()));
        }
        for reference in &self.images {
            parts.push(load_image(files, reference).await?);
        }
        if parts.is_empty() {
            return Err(EngineError::Invalid(
                "nothing to extract from: the rendered 'text' and 'images' are empty".into(),
            ));
        }
        Ok(vec![
            Message::text(
                Role::System,
                format!("{SYSTEM_PROMPT}\n\nInstruction: {}", self.instruction),
            ),
            Message {
                role: Role::User,
                parts,
            },
        ])
    }
}

#[async_trait]
impl Engine for MultimodalExtractionEngine {
    fn class_id(&self) -> &'static str {
        "MultimodalExtractionEngine"
    }

    fn name(&self) -> &'static str {
        "Multimodal Insights"
    }

    fn description(&self) -> &'static str {
        "Extracts structured data matching output_schema from text (and images) following an instruction."
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "model": model_property(),
                "text": {"type": "string", "description": "Text to extract from; usually \"${text}\"."},
                "images": file_list(Some("Images: file inputs, URLs or file ids.")),
                "instruction": {"type": "string", "minLength": 1},
                "output_schema": output_schema_property(),
                "reasoning": {"type": "string", "description": "low, medium or high."},
                "reasoning_effort": {"type": "string", "description": "Roe's name of reasoning."},
                "temperature": {"type": ["number", "string"], "description": "0 to 2."},
                "max_output_tokens": {"type": ["number", "string"], "description": "1 to 1000000."}
            },
            "required": ["instruction", "output_schema"]
        })
    }

    fn default_config(&self) -> Value {
        json!({
            "text": "${text}",
            "instruction": "Extract the requested fields from the text.",
            "output_schema": summary_schema()
        })
    }

    fn file_fields(&self) -> &'static [&'static str] {
        &["images"]
    }

    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors {
        let mut errors = FieldErrors::default();
        // A templated model is only known at run time.
        let named = non_empty_str(config, "model");
        let model = match named {
            Some(model) if model.starts_with('$') => None,
            other => Some(models.model_or_default(other)),
        };
        let spec = model.and_then(|m| models.spec(m).ok());
        if let (Some(model), None) = (named.filter(|m| !m.starts_with('$')), spec) {
            if let Err(error) = models.spec(model) {
                errors.add("engine_config.model", error.to_string());
            }
        }
        if !is_template(&config["output_schema"]) {
            match OutputSchema::parse(&config["output_schema"]) {
                Err(message) => errors.add("engine_config.output_schema", message),
                Ok(schema) => {
                    if let Some(Err(message)) =
                        model.map(|m| models.check_schema(m, schema.as_value()))
                    {
                        errors.add("engine_config.output_schema", message);
                    }
                }
            }
        }
        // Templated values are only known, and checked, at run time.
        let (reasoning_name, reasoning_value) = reasoning_field(config);
        let checks = [
            (
                "temperature",
                read_temperature(&config["temperature"]).err(),
                &config["temperature"],
            ),
            (
                "max_output_tokens",
                read_max_output_tokens(&config["max_output_tokens"]).err(),
                &config["max_output_tokens"],
            ),
            (
                reasoning_name,
                read_reasoning(reasoning_value).err(),
                reasoning_value,
            ),
        ];
        for (field, error, value) in checks {
            if let (false, Some(message)) = (is_template(value), error) {
                errors.add(format!("engine_config.{field}"), message);
            }
        }
        let has_images = !file_refs(&config["images"]).is_empty();
        if let Some(spec) = spec.filter(|s| has_images && !s.supports(Capability::Image)) {
            errors.add(
                "engine_config.images",
                format!("Model '{}' does not take images.", spec.id),
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
        let model = context
            .models
            .resolve(context.models.model_or_default(run.model.as_deref()))?;
        if !run.images.is_empty() && !model.spec.supports(Capability::Image) {
            return Err(EngineError::Invalid(format!(
                "model '{}' does not take images",
                model.spec.id
            ))
            .into());
        }
        let messages = run.first_messages(context.files).await?;
        let mut usage = Usage::default();
        let asked = ask_for_json(
            &model,
            messages,
            &run.schema,
            AnswerOptions {
                temperature: run.temperature,
                reasoning: run.reasoning,
                max_output_tokens: run.max_output_tokens,
            },
            &mut usage,
        )
        .await;
        let cost = model.spec.cost(&usage);
        match asked {
            Ok(value) => Ok(EngineOutput {
                outputs: vec![AgentDatum {
                    key: "output".into(),
                    description: "Extracted data".into(),
                    data_type: "application/json".into(),
                    value: value.to_string(),
                    cost: Some(cost),
                }],
                usage,
                cost,
            }),
            Err(error) => Err(EngineFailure { error, usage, cost }),
        }
    }
}

/// Image references: a list, or one string separated by commas, newlines
/// or spaces. Each is a file id, a `data:` URL or an http(s) URL.
pub(crate) fn file_refs(value: &Value) -> Vec<String> {
    let split = |text: &str| -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match value {
        Value::String(text) if text.trim_start().starts_with("data:") => {
            vec![text.trim().to_owned()]
        }
        Value::String(text) => split(text),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|text| {
                if text.trim_start().starts_with("data:") {
                    vec![text.trim().to_owned()]
                } else {
                    split(text)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads one image reference into an image part.
async fn load_image(files: &dyn FileReader, reference: &str) -> Result<ContentPart, EngineError> {
    let (name, bytes) = load_file(files, reference, "an image").await?;
    let mime_type = image_mime_type(&bytes).ok_or_else(|| {
        EngineError::Invalid(format!("'{name}' is not an image the model can read"))
    })?;
    Ok(ContentPart::Image {
        mime_type: mime_type.to_owned(),
        data: bytes,
    })
}

fn image_mime_type(bytes: &[u8]) -> Option<&'static str> {
    use agentd_domain::input::sniff_mime_type;
    sniff_mime_type(bytes).filter(|mime| {
        matches!(
            *mime,
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(images: Value) -> Value {
        json!({
            "instruction": "Describe.",
            "images": images,
            "output_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        })
    }

    #[test]
    fn a_run_takes_at_most_max_images() {
        let urls = |n: usize| {
            (0..n)
                .map(|i| format!("https://example.com/{i}.png"))
                .collect::<Vec<_>>()
        };
        assert!(RunConfig::read(&config(json!(urls(MAX_IMAGES)))).is_ok());
        let many = urls(MAX_IMAGES + 1).join(" ");
        match RunConfig::read(&config(json!(many))) {
            Err(EngineError::Invalid(message)) => {
                assert_eq!(
                    message,
                    format!(
                        "at most {MAX_IMAGES} images per run, got {}",
                        MAX_IMAGES + 1
                    )
                )
            }
            _ => panic!("{} images must be refused", MAX_IMAGES + 1),
        }
    }
}
