//! `InteractiveWebExtractionEngine` ("Interactive Web"): the model acts on
//! a page in the browser (click, type, select, scroll, wait) to carry out
//! `action`, one step at a time for at most [`MAX_STEPS`] steps, then the
//! page it reached is extracted as in Web Insights. Each step is a status
//! event, its screenshot a job reference.

use std::time::Duration;

use agentd_domain::{AgentDatum, FieldErrors, OutputSchema, ResolvedInputs, Usage};
use agentd_providers::{Capability, ContentPart, Message, ProviderRegistry, ResolvedModel, Role};
use agentd_web::browser::{InteractiveElement, PageAction, PageSession, RenderOptions};
use agentd_web::content;
use async_trait::async_trait;
use serde_json::{json, Value};

use crate::answer::{ask_for_json, AnswerOptions};
use crate::config_schema::{model_property, output_schema_property, summary_schema};
use crate::multimodal::non_empty_str;
use crate::web_insights::{
    check_web_config, crawl_config_property, extract_answer, page_document, page_url,
    reference_datum, resolve_model, web_failure, CrawlConfig,
};
use crate::{Engine, EngineContext, EngineError, EngineFailure, EngineOutput};

pub struct InteractiveWebEngine;

/// Steps the model may take before the page is extracted as it is.
pub const MAX_STEPS: usize = 10;

/// Longest `wait` step the model may ask for.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Page text shown to the model with each step (the elements are the
/// important part; the text says where it is).
const STEP_TEXT_CHARS: usize = 4000;

const STEP_PROMPT: &str = "You operate a web browser to carry out a task. Each turn you see \
the page's URL, its text and its interactive elements, numbered. Choose the one next step: \
click an element, type text into an element (submit: true presses Enter), select an option of \
a select element, scroll, wait, or done when the page shows what the task asks for (or the \
task cannot go further). Answer with one JSON object matching the schema.";

/// The JSON Schema of one step.
fn step_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["click", "type", "select", "scroll", "wait", "done"]},
            "index": {"type": "integer", "description": "The element's number (click, type, select)."},
            "text": {"type": "string", "description": "Text to type."},
            "submit": {"type": "boolean", "description": "Press Enter after typing."},
            "option": {"type": "string", "description": "The option to select."},
            "direction": {"type": "string", "enum": ["up", "down"]},
            "seconds": {"type": "number"},
            "reason": {"type": "string", "description": "Why this step, in a few words."}
        },
        "required": ["action"],
        "additionalProperties": false
    })
}

/// A step the model chose.
#[derive(Debug)]
enum Step {
    Act(PageAction),
    Done,
}

/// Reads the model's step; a step naming no element, or one that does not
/// exist, is refused with a message the job shows.
fn read_step(answer: &Value, elements: &[InteractiveElement]) -> Result<Step, EngineError> {
    let index = || -> Result<usize, EngineError> {
        let index = answer["index"].as_u64().ok_or_else(|| {
            EngineError::InvalidAnswer(format!("step '{}' names no element", answer["action"]))
        })? as usize;
        if elements.iter().any(|e| e.index == index) {
            Ok(index)
        } else {
            Err(EngineError::InvalidAnswer(format!(
                "step names element {index}, which the page does not have"
            )))
        }
    };
    let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
    let action = match answer["action"].as_str().unwrap_or_default() {
        "done" => return Ok(Step::Done),
        "click" => PageAction::Click { index: index()? },
        "type" => PageAction::Type {
            index: index()?,
            text: text("text"),
            submit: answer["submit"].as_bool().unwrap_or(false),
        },
        "select" => PageAction::Select {
            index: index()?,
            option: text("option"),
        },
        "scroll" => PageAction::Scroll {
            down: answer["direction"].as_str() != Some("up"),
        },
        "wait" => PageAction::Wait {
            duration: Duration::from_secs_f64(
                answer["seconds"]
                    .as_f64()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .unwrap_or(1.0),
            )
            .min(MAX_WAIT),
        },
        other => {
            return Err(EngineError::InvalidAnswer(format!(
                "'{other}' is not a step"
            )))
        }
    };
    Ok(Step::Act(action))
}

/// How a step reads in the job's status events.
fn describe(step: &Step, elements: &[InteractiveElement]) -> String {
    let element = |index: &usize| {
        elements
            .iter()
            .find(|e| e.index == *index)
            .map(|e| format!("{} \"{}\"", e.kind, e.label))
            .unwrap_or_default()
    };
    match step {
        Step::Done => "done".into(),
        Step::Act(PageAction::Click { index }) => format!("click {}", element(index)),
        Step::Act(PageAction::Type {
            index,
            text,
            submit,
        }) => format!(
            "type \"{text}\" into {}{}",
            element(index),
            if *submit { " and submit" } else { "" }
        ),
        Step::Act(PageAction::Select { index, option }) => {
            format!("select \"{option}\" in {}", element(index))
        }
        Step::Act(PageAction::Scroll { down }) => {
            format!("scroll {}", if *down { "down" } else { "up" })
        }
        Step::Act(PageAction::Wait { duration }) => {
            format!("wait {:.1} s", duration.as_secs_f64())
        }
    }
}

fn element_lines(elements: &[InteractiveElement]) -> String {
    elements
        .iter()
        .map(|e| {
            let options = if e.options.is_empty() {
                String::new()
            } else {
                format!(" options: {}", e.options.join(" | "))
            };
            format!("[{}] {} \"{}\"{options}", e.index, e.kind, e.label)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The config of one run.
struct RunConfig {
    url: url::Url,
    action: String,
    model: Option<String>,
    schema: OutputSchema,
    ignore_robots_txt: bool,
}

impl RunConfig {
    fn read(config: &Value) -> Result<Self, EngineError> {
        let crawl = CrawlConfig::read(&config["crawl_config"]).map_err(EngineError::Invalid)?;
        Ok(Self {
            url: page_url(config)?,
            action: non_empty_str(config, "action")
                .ok_or_else(|| EngineError::Invalid("action: the rendered action is empty".into()))?
                .to_owned(),
            model: non_empty_str(config, "model").map(str::to_owned),
            schema: OutputSchema::parse(&config["output_schema"]).map_err(EngineError::Invalid)?,
            ignore_robots_txt: crawl.ignore_robots_txt,
        })
    }
}

/// One run: the session, the model and what was spent and saved.
struct Run<'c, 'a> {
    context: &'c EngineContext<'a>,
    config: RunConfig,
    model: ResolvedModel,
    usage: Usage,
    /// `{step, action, screenshot}` per step, for the output.
    steps: Vec<Value>,
}

impl Run<'_, '_> {
    /// Asks the model for the next step on the page as it is now; saves
    /// the page's screenshot and reports the step.
    async fn next_step(
        &mut self,
        session: &PageSession,
        number: usize,
    ) -> Result<Step, EngineError> {
        let elements = session.elements().await.map_err(web_failure)?;
        let page = session
            .snapshot(&RenderOptions {
                min_wait: Duration::ZERO,
                screenshot: true,
            })
            .await
            .map_err(web_failure)?;
        let text = content::extract(&page.html, &page.final_url).markdown;
        let text: String = text.chars().take(STEP_TEXT_CHARS).collect();
        let history = if self.steps.is_empty() {
            "none".to_owned()
        } else {
            self.steps
                .iter()
                .map(|s| {
                    format!(
                        "{}. {}",
                        s["step"],
                        s["action"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut parts = vec![ContentPart::Text(format!(
            "Task: {}\n\nSteps so far:\n{history}\n\nStep {number} of at most {MAX_STEPS}.\nURL: {}\n\nPage text:\n{text}\n\nInteractive elements:\n{}",
            self.config.action,
            page.final_url,
            element_lines(&elements)
        ))];
        let screenshot = page.screenshot_png.clone();
        if let (Some(png), true) = (&screenshot, self.model.spec.supports(Capability::Image)) {
            parts.push(ContentPart::Image {
                mime_type: "image/png".into(),
                data: png.clone(),
            });
        }
        let messages = vec![
            Message::text(Role::System, STEP_PROMPT),
            Message {
                role: Role::User,
                parts,
            },
        ];
        let schema = OutputSchema::parse(&step_schema()).map_err(EngineError::Internal)?;
        let answer = ask_for_json(
            &self.model,
            messages,
            &schema,
            AnswerOptions::default(),
            &mut self.usage,
        )
        .await?;
        let step = read_step(&answer, &elements)?;
        let described = describe(&step, &elements);
        let screenshot_url = match screenshot {
            Some(png) => Some(
                self.context
                    .references
                    .save_reference(&format!("step-{number}.png"), "image/png", png)
                    .await?
                    .url,
            ),
            None => None,
        };
        self.context
            .progress
            .report(format!(
                "Step {number}: {described}{}",
                screenshot_url
                    .as_deref()
                    .map(|url| format!(" (screenshot: {url})"))
                    .unwrap_or_default()
            ))
            .await;
        self.steps.push(json!({
            "step": number,
            "action": described,
            "reason": answer["reason"],
            "screenshot": screenshot_url,
        }));
        Ok(step)
    }

    /// Steps until the model says done or the bound is reached, then
    /// extracts the page it got to.
    async fn run(&mut self) -> Result<Vec<AgentDatum>, EngineError> {
        let session = self
            .context
            .web
            .open(&self.config.url, !self.config.ignore_robots_txt)
            .await
            .map_err(web_failure)?;
        for number in 1..=MAX_STEPS {
            match self.next_step(&session, number).await? {
                Step::Done => break,
                Step::Act(action) => session.act(&action).await.map_err(web_failure)?,
            }
        }
        let page = session
            .snapshot(&RenderOptions::default())
            .await
            .map_err(web_failure)?;
        let extracted = content::extract(&page.html, &page.final_url);
        let document = page_document(&extracted, &page.final_url);
        let instruction = format!(
            "The task \"{}\" was carried out in a browser; this is the page it reached. \
             Extract the requested data from it.",
            self.config.action
        );
        let answer = extract_answer(
            &self.model,
            &instruction,
            &document,
            None,
            &self.config.schema,
            &mut self.usage,
        )
        .await?;
        let markdown = self
            .context
            .references
            .save_reference(
                "page.md",
                "text/markdown; charset=utf-8",
                document.into_bytes(),
            )
            .await?;
        Ok(vec![
            AgentDatum {
                key: "output".into(),
                description: "Extracted data".into(),
                data_type: "application/json".into(),
                value: answer.to_string(),
                cost: None,
            },
            AgentDatum {
                key: "steps".into(),
                description: "The browser steps taken, each with its screenshot".into(),
                data_type: "application/json".into(),
                value: json!({
                    "final_url": page.final_url.as_str(),
                    "steps": self.steps,
                })
                .to_string(),
                cost: None,
            },
            reference_datum(
                "markdown",
                "The final page's main content as Markdown, as the model read it (a job reference)",
                "text/markdown; charset=utf-8",
                &markdown,
            ),
        ])
    }
}

#[async_trait]
impl Engine for InteractiveWebEngine {
    fn class_id(&self) -> &'static str {
        "InteractiveWebExtractionEngine"
    }

    fn name(&self) -> &'static str {
        "Interactive Web"
    }

    fn description(&self) -> &'static str {
        "Carries out a task on a web page in a browser (the model clicks, types, selects and scrolls, step by step), then extracts data matching output_schema from the page it reached."
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "The page to start from; usually \"${url}\"."},
                "action": {"type": "string", "minLength": 1, "description": "The task, in natural language."},
                "model": model_property(),
                "output_schema": output_schema_property(),
                "crawl_config": crawl_config_property()
            },
            "required": ["url", "action", "output_schema"]
        })
    }

    fn default_config(&self) -> Value {
        json!({
            "url": "${url}",
            "action": "${action}",
            "output_schema": summary_schema()
        })
    }

    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors {
        check_web_config(config, models, true)
    }

    async fn run(
        &self,
        context: &EngineContext<'_>,
        config: &Value,
        _inputs: &ResolvedInputs,
    ) -> Result<EngineOutput, EngineFailure> {
        let config = RunConfig::read(config)?;
        let model = resolve_model(context, config.model.as_deref(), false)?;
        let mut run = Run {
            context,
            config,
            model,
            usage: Usage::default(),
            steps: Vec::new(),
        };
        let result = run.run().await;
        let cost = run.model.spec.cost(&run.usage);
        match result {
            Ok(mut outputs) => {
                outputs[0].cost = Some(cost);
                Ok(EngineOutput {
                    outputs,
                    usage: run.usage,
                    cost,
                })
            }
            Err(error) => Err(EngineFailure {
                error,
                usage: run.usage,
                cost,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements() -> Vec<InteractiveElement> {
        vec![
            InteractiveElement {
                index: 0,
                kind: "input[type=text]".into(),
                label: "Query".into(),
                options: vec![],
            },
            InteractiveElement {
                index: 1,
                kind: "button".into(),
                label: "Search".into(),
                options: vec![],
            },
        ]
    }

    #[test]
    fn steps_are_read_from_the_answer() {
        let step = read_step(
            &json!({"action": "type", "index": 0, "text": "rust", "submit": true}),
            &elements(),
        )
        .unwrap();
        assert!(matches!(
            &step,
            Step::Act(PageAction::Type { index: 0, text, submit: true }) if text == "rust"
        ));
        assert_eq!(
            describe(&step, &elements()),
            "type \"rust\" into input[type=text] \"Query\" and submit"
        );
        assert!(matches!(
            read_step(&json!({"action": "done"}), &elements()),
            Ok(Step::Done)
        ));
    }

    #[test]
    fn a_step_on_a_missing_element_is_refused() {
        assert!(read_step(&json!({"action": "click", "index": 7}), &elements()).is_err());
        assert!(read_step(&json!({"action": "click"}), &elements()).is_err());
        assert!(read_step(&json!({"action": "fly"}), &elements()).is_err());
    }

    #[test]
    fn waits_are_bounded() {
        let step = read_step(&json!({"action": "wait", "seconds": 3600}), &elements()).unwrap();
        assert!(matches!(step, Step::Act(PageAction::Wait { duration }) if duration == MAX_WAIT));
    }

    #[test]
    fn the_step_schema_parses() {
        assert!(OutputSchema::parse(&step_schema()).is_ok());
    }
}
