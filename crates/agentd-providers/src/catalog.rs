//! The model table: which provider serves a model id, under which upstream
//! name, with what limits, capabilities and prices.

use agentd_domain::Usage;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Text,
    Image,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The id users put in `engine_config.model`.
    pub id: String,
    /// The provider that serves it (`openai`, `anthropic`, `gemini`, ...).
    pub provider: String,
    /// The provider's own name for it.
    pub upstream: String,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub capabilities: Vec<Capability>,
    pub supports_system_message: bool,
    pub supports_temperature: bool,
    pub supports_reasoning_effort: bool,
    pub supports_json_output: bool,
    pub supports_json_schema: bool,
    /// US dollars per million input tokens.
    pub input_price: f64,
    /// US dollars per million output tokens.
    pub output_price: f64,
    /// US dollars per million input tokens served from the provider's cache.
    pub cached_input_price: Option<f64>,
}

impl ModelSpec {
    pub fn supports(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Cost in dollars of the tokens a call used.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.clamp(0, usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        let cached_price = self.cached_input_price.unwrap_or(self.input_price);
        (uncached as f64 * self.input_price
            + cached as f64 * cached_price
            + usage.output_tokens as f64 * self.output_price)
            / 1_000_000.0
    }
}

#[derive(Clone, Debug, Default)]
pub struct ModelCatalog {
    models: Vec<ModelSpec>,
}

/// Shorthand for the built-in table.
#[allow(clippy::too_many_arguments)]
fn spec(
    id: &str,
    provider: &str,
    context_window: u32,
    max_output_tokens: u32,
    reasoning: bool,
    input_price: f64,
    output_price: f64,
    cached_input_price: Option<f64>,
) -> ModelSpec {
    ModelSpec {
        id: id.into(),
        provider: provider.into(),
        upstream: id.into(),
        context_window,
        max_output_tokens,
        capabilities: vec![Capability::Text, Capability::Image],
        supports_system_message: true,
        // Reasoning models of OpenAI take no temperature.
        supports_temperature: !(reasoning && provider == "openai"),
        supports_reasoning_effort: reasoning,
        supports_json_output: true,
        supports_json_schema: true,
        input_price,
        output_price,
        cached_input_price,
    }
}

impl ModelCatalog {
    /// The models of the Roe SDK's "Supported Models" list and their
    /// near relatives, with list prices per million tokens.
    pub fn builtin() -> Self {
        let models = vec![
            spec(
                "gpt-5.5-pro-2026-04-23",
                "openai",
                400_000,
                128_000,
                true,
                15.0,
                120.0,
                None,
            ),
            spec(
                "gpt-5.5-2026-04-23",
                "openai",
                400_000,
                128_000,
                true,
                1.75,
                14.0,
                Some(0.175),
            ),
            spec(
                "gpt-5.4-pro-2026-03-05",
                "openai",
                400_000,
                128_000,
                true,
                15.0,
                120.0,
                None,
            ),
            spec(
                "gpt-5.4-2026-03-05",
                "openai",
                400_000,
                128_000,
                true,
                1.75,
                14.0,
                Some(0.175),
            ),
            spec(
                "gpt-5.4-mini-2026-03-17",
                "openai",
                400_000,
                128_000,
                true,
                0.25,
                2.0,
                Some(0.025),
            ),
            spec(
                "gpt-5.4-nano-2026-03-17",
                "openai",
                400_000,
                128_000,
                true,
                0.05,
                0.4,
                Some(0.005),
            ),
            spec(
                "gpt-5.2-2025-12-11",
                "openai",
                400_000,
                128_000,
                true,
                1.75,
                14.0,
                Some(0.175),
            ),
            spec(
                "gpt-5-2025-08-07",
                "openai",
                400_000,
                128_000,
                true,
                1.25,
                10.0,
                Some(0.125),
            ),
            spec(
                "gpt-5-mini-2025-08-07",
                "openai",
                400_000,
                128_000,
                true,
                0.25,
                2.0,
                Some(0.025),
            ),
            spec(
                "gpt-4.1-2025-04-14",
                "openai",
                1_047_576,
                32_768,
                false,
                2.0,
                8.0,
                Some(0.5),
            ),
            spec(
                "gpt-4.1-mini-2025-04-14",
                "openai",
                1_047_576,
                32_768,
                false,
                0.4,
                1.6,
                Some(0.1),
            ),
            spec(
                "gpt-4.1-nano-2025-04-14",
                "openai",
                1_047_576,
                32_768,
                false,
                0.1,
                0.4,
                Some(0.025),
            ),
            spec(
                "gpt-4o-2024-08-06",
                "openai",
                128_000,
                16_384,
                false,
                2.5,
                10.0,
                Some(1.25),
            ),
            spec(
                "gpt-4o-mini-2024-07-18",
                "openai",
                128_000,
                16_384,
                false,
                0.15,
                0.6,
                Some(0.075),
            ),
            spec(
                "claude-opus-4-8",
                "anthropic",
                200_000,
                64_000,
                true,
                5.0,
                25.0,
                Some(0.5),
            ),
            spec(
                "claude-opus-4-7",
                "anthropic",
                200_000,
                64_000,
                true,
                5.0,
                25.0,
                Some(0.5),
            ),
            spec(
                "claude-opus-4-6",
                "anthropic",
                200_000,
                64_000,
                true,
                5.0,
                25.0,
                Some(0.5),
            ),
            spec(
                "claude-sonnet-4-6",
                "anthropic",
                200_000,
                64_000,
                true,
                3.0,
                15.0,
                Some(0.3),
            ),
            spec(
                "claude-sonnet-4-5",
                "anthropic",
                200_000,
                64_000,
                true,
                3.0,
                15.0,
                Some(0.3),
            ),
            spec(
                "claude-haiku-4-5-20251001",
                "anthropic",
                200_000,
                64_000,
                true,
                1.0,
                5.0,
                Some(0.1),
            ),
            spec(
                "gemini-3.1-pro-preview",
                "gemini",
                1_048_576,
                65_536,
                true,
                2.0,
                12.0,
                Some(0.2),
            ),
            spec(
                "gemini-3-flash-preview",
                "gemini",
                1_048_576,
                65_536,
                true,
                0.5,
                3.0,
                Some(0.05),
            ),
            spec(
                "gemini-2.5-pro",
                "gemini",
                1_048_576,
                65_536,
                true,
                1.25,
                10.0,
                Some(0.125),
            ),
            spec(
                "gemini-2.5-flash",
                "gemini",
                1_048_576,
                65_536,
                true,
                0.3,
                2.5,
                Some(0.03),
            ),
        ];
        Self { models }
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Adds a model, or replaces the one with the same id.
    pub fn upsert(&mut self, model: ModelSpec) {
        match self.models.iter_mut().find(|m| m.id == model.id) {
            Some(existing) => *existing = model,
            None => self.models.push(model),
        }
    }

    /// The known ids most like `id`, best first, for "did you mean".
    pub fn closest(&self, id: &str, count: usize) -> Vec<&str> {
        let mut scored: Vec<(f64, &str)> = self
            .models
            .iter()
            .map(|m| (strsim::jaro_winkler(id, &m.id), m.id.as_str()))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(count).map(|(_, id)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_uses_input_output_and_cached_prices() {
        let catalog = ModelCatalog::builtin();
        let model = catalog.get("gpt-4.1-2025-04-14").unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cached_input_tokens: 0,
        };
        assert!((model.cost(&usage) - 6.0).abs() < 1e-9);
        let cached = Usage {
            cached_input_tokens: 1_000_000,
            ..usage
        };
        assert!((model.cost(&cached) - 4.5).abs() < 1e-9);
    }

    #[test]
    fn closest_suggests_near_ids() {
        let catalog = ModelCatalog::builtin();
        let suggestions = catalog.closest("gpt-4.1-2025-04-15", 3);
        assert_eq!(suggestions[0], "gpt-4.1-2025-04-14");
    }

    #[test]
    fn upsert_overrides_by_id() {
        let mut catalog = ModelCatalog::builtin();
        let mut model = catalog.get("gpt-4.1-2025-04-14").unwrap().clone();
        model.input_price = 1.0;
        catalog.upsert(model);
        assert_eq!(catalog.get("gpt-4.1-2025-04-14").unwrap().input_price, 1.0);
    }
}
