//! `MultimodalExtractionEngine` ("Multimodal Insights"): text (and, later,
//! images) plus an instruction in, JSON matching `output_schema` out.

use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{
    CompletionRequest, Message, ProviderRegistry, ReasoningEffort, ResolvedModel, Role,
};
use async_trait::async_trait;
use serde_json::{json, Value};

use crate::{is_template, Engine, EngineContext, EngineError, EngineFailure, EngineOutput};

pub struct MultimodalExtractionEngine;

const SYSTEM_PROMPT: &str = "You extract structured information. Follow the instruction, \
use only the content you are given, and answer with one JSON value that matches the \
required JSON Schema.";

/// The config of one run, read from the rendered `engine_config`.
struct RunConfig {
    model: String,
    instruction: String,
    text: Option<String>,
    schema: OutputSchema,
    temperature: Option<f64>,
    reasoning: Option<ReasoningEffort>,
    max_output_tokens: Option<u32>,
}

/// Roe configs often hold numbers as strings ("0.7").
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn non_empty_str<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config[key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl RunConfig {
    fn read(config: &Value, default_model: &str) -> Result<Self, EngineError> {
        let schema = OutputSchema::parse(&config["output_schema"]).map_err(EngineError::Invalid)?;
        let reasoning = match non_empty_str(config, "reasoning") {
            Some(text) => Some(ReasoningEffort::parse(text).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "reasoning must be low, medium or high, not '{text}'"
                ))
            })?),
            None => None,
        };
        Ok(Self {
            model: non_empty_str(config, "model")
                .unwrap_or(default_model)
                .to_owned(),
            instruction: non_empty_str(config, "instruction")
                .unwrap_or_default()
                .to_owned(),
            text: non_empty_str(config, "text").map(str::to_owned),
            schema,
            temperature: number(&config["temperature"]),
            reasoning,
            max_output_tokens: number(&config["max_output_tokens"]).map(|n| n as u32),
        })
    }

    fn first_messages(&self) -> Result<Vec<Message>, EngineError> {
        let Some(text) = &self.text else {
            return Err(EngineError::Invalid(
                "nothing to extract from: the rendered 'text' is empty".into(),
            ));
        };
        Ok(vec![
            Message::text(
                Role::System,
                format!("{SYSTEM_PROMPT}\n\nInstruction: {}", self.instruction),
            ),
            Message::text(Role::User, text.clone()),
        ])
    }
}

/// Tokens and cost across the calls of one run.
struct Spend<'a> {
    model: &'a ResolvedModel,
    usage: Usage,
}

impl Spend<'_> {
    fn cost(&self) -> f64 {
        self.model.spec.cost(&self.usage)
    }

    fn fail(&self, error: EngineError) -> EngineFailure {
        EngineFailure {
            error,
            usage: self.usage,
            cost: self.cost(),
        }
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
                "model": {"type": "string", "description": "Model id; the server default when omitted."},
                "text": {"type": "string", "description": "Text to extract from; usually \"${text}\"."},
                "images": {
                    "description": "Images: file inputs, URLs or file ids.",
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                },
                "instruction": {"type": "string", "minLength": 1},
                "output_schema": {
                    "description": "JSON Schema of the answer, as an object or a JSON string.",
                    "anyOf": [{"type": "object"}, {"type": "string"}]
                },
                "reasoning": {"type": "string"},
                "temperature": {"type": ["number", "string"]},
                "max_output_tokens": {"type": ["integer", "string"]}
            },
            "required": ["instruction", "output_schema"]
        })
    }

    fn default_config(&self) -> Value {
        json!({
            "text": "${text}",
            "instruction": "Extract the requested fields from the text.",
            "output_schema": {
                "type": "object",
                "properties": {"summary": {"type": "string"}},
                "required": ["summary"]
            }
        })
    }

    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors {
        let mut errors = FieldErrors::default();
        if !is_template(&config["output_schema"]) {
            if let Err(message) = OutputSchema::parse(&config["output_schema"]) {
                errors.add("engine_config.output_schema", message);
            }
        }
        if let Some(model) = non_empty_str(config, "model").filter(|m| !m.starts_with('$')) {
            if let Err(error) = models.spec(model) {
                errors.add("engine_config.model", error.to_string());
            }
        }
        if let Some(reasoning) = non_empty_str(config, "reasoning").filter(|r| !r.starts_with('$'))
        {
            if ReasoningEffort::parse(reasoning).is_none() {
                errors.add("engine_config.reasoning", "Must be low, medium or high.");
            }
        }
        if config.get("images").is_some_and(|v| !is_empty_images(v)) {
            errors.add(
                "engine_config.images",
                "Image inputs are not supported by this server yet.",
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
        let run = RunConfig::read(config, context.default_model)?;
        let model = context.models.resolve(&run.model)?;
        let mut messages = run.first_messages()?;
        let mut spend = Spend {
            model: &model,
            usage: Usage::default(),
        };
        // One retry with the validation error shown to the model.
        for attempt in 0..2 {
            let request = CompletionRequest {
                upstream_model: model.spec.upstream.clone(),
                messages: messages.clone(),
                schema_name: "output".into(),
                schema: run.schema.as_value().clone(),
                temperature: run.temperature.filter(|_| model.spec.supports_temperature),
                reasoning: run
                    .reasoning
                    .filter(|_| model.spec.supports_reasoning_effort),
                max_output_tokens: run.max_output_tokens,
            };
            let completion = model
                .provider
                .complete(&request)
                .await
                .map_err(|e| spend.fail(e.into()))?;
            spend.usage += completion.usage;
            match run.schema.check_answer(&completion.text) {
                Ok(value) => {
                    let cost = spend.cost();
                    return Ok(EngineOutput {
                        outputs: vec![AgentDatum {
                            key: "output".into(),
                            description: "Extracted data".into(),
                            data_type: "application/json".into(),
                            value: value.to_string(),
                            cost: Some(cost),
                        }],
                        usage: spend.usage,
                        cost,
                    });
                }
                Err(problem) if attempt == 0 => {
                    tracing::info!(%problem, "answer failed output_schema; asking again");
                    messages.push(Message::text(Role::Assistant, completion.text));
                    messages.push(Message::text(
                        Role::User,
                        format!(
                            "Your answer was rejected: {problem}. Answer again with JSON that matches the schema exactly."
                        ),
                    ));
                }
                Err(problem) => return Err(spend.fail(EngineError::InvalidAnswer(problem))),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

fn is_empty_images(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}
