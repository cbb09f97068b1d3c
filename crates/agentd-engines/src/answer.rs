//! One structured answer from a model: the request, the schema check, and
//! one retry with the validation error shown to the model.

use agentd_domain::{OutputSchema, Usage};
use agentd_providers::{CompletionRequest, Message, ReasoningEffort, ResolvedModel, Role};
use serde_json::Value;

use crate::EngineError;

#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerOptions {
    pub temperature: Option<f64>,
    pub reasoning: Option<ReasoningEffort>,
    pub max_output_tokens: Option<u32>,
}

/// Asks `model` for JSON matching `schema`; tokens spent are added to
/// `usage` whether or not an answer comes.
pub async fn ask_for_json(
    model: &ResolvedModel,
    mut messages: Vec<Message>,
    schema: &OutputSchema,
    options: AnswerOptions,
    usage: &mut Usage,
) -> Result<Value, EngineError> {
    for attempt in 0..2 {
        let request = CompletionRequest {
            upstream_model: model.spec.upstream.clone(),
            messages: messages.clone(),
            schema_name: "output".into(),
            schema: schema.as_value().clone(),
            temperature: options
                .temperature
                .filter(|_| model.spec.supports_temperature),
            reasoning: options
                .reasoning
                .filter(|_| model.spec.supports_reasoning_effort),
            max_output_tokens: options.max_output_tokens,
        };
        let completion = model.provider.complete(&request).await?;
        *usage += completion.usage;
        match schema.check_answer(&completion.text) {
            Ok(value) => return Ok(value),
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
            Err(problem) => return Err(EngineError::InvalidAnswer(problem)),
        }
    }
    unreachable!("the loop returns on its second attempt")
}
