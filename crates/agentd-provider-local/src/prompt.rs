//! Request messages → chat turns → prompt tokens that fit the context window.

use agentd_providers::{CompletionRequest, ContentPart, ProviderError, Role};
use serde_json::Value;

/// Put where user text was cut so the model sees that something is missing.
const CUT_MARKER: &str = "\n\n[... truncated ...]\n\n";

/// Around user text (see [`fenced`]).
const INPUT_OPEN: &str = "Document:\n\"\"\"\n";
const INPUT_CLOSE: &str = "\n\"\"\"";

/// Share of a cut text kept from its start; the rest comes from its end
/// (documents tend to end with totals, signatures and dates).
const HEAD_SHARE: (usize, usize) = (2, 3);

/// Rounds of "cut, render, measure" before giving up; the pieces' token
/// counts and the whole prompt's differ by a few tokens at the seams, so one
/// or two rounds are usually enough.
const FIT_ROUNDS: usize = 4;

/// More bytes than any one token spans: user text longer than the budget
/// times this cannot fit, so it is cut before tokenizing (a 50 MiB upload
/// would otherwise hold a sequence slot for seconds in the tokenizer).
const MAX_TOKEN_BYTES: usize = 64;

/// One message as the chat template sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Turn {
    pub role: &'static str,
    pub text: String,
    /// User text may be shortened to fit the window; instructions may not.
    pub truncatable: bool,
}

/// What prompt building needs from a model: its chat template and tokenizer.
pub(crate) trait PromptModel {
    /// The template applied to `turns`, ending with the assistant's cue.
    fn render(&self, turns: &[Turn]) -> Result<String, String>;
    /// Tokens of a whole rendered prompt (special tokens parsed, BOS added
    /// when the model wants one).
    fn tokenize_prompt(&self, text: &str) -> Vec<i32>;
    /// Tokens of plain text, special-token syntax left as text.
    fn tokenize_text(&self, text: &str) -> Vec<i32>;
    fn detokenize(&self, tokens: &[i32]) -> String;
}

/// The prompt to decode from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FittedPrompt {
    pub tokens: Vec<i32>,
    /// Tokens cut from user text, 0 when everything fitted.
    pub cut_tokens: usize,
}

/// Chat turns for a request: its messages in order, with the answer's fields
/// (names, types, descriptions) appended to the (first) system message. They
/// are in the prompt as well as in the grammar because the grammar only says
/// what the model may write, not what the fields mean.
pub(crate) fn turns_for(request: &CompletionRequest) -> Result<Vec<Turn>, ProviderError> {
    let mut turns = Vec::with_capacity(request.messages.len() + 1);
    for message in &request.messages {
        let (role, truncatable) = match message.role {
            Role::System => ("system", false),
            Role::User => ("user", true),
            Role::Assistant => ("assistant", false),
        };
        turns.push(Turn {
            role,
            text: message_text(&message.parts)?,
            truncatable,
        });
    }
    let hint = schema_hint(&request.schema);
    match turns.iter_mut().find(|t| t.role == "system") {
        Some(system) => {
            system.text.push_str("\n\n");
            system.text.push_str(&hint);
        }
        None => turns.insert(
            0,
            Turn {
                role: "system",
                text: hint,
                truncatable: false,
            },
        ),
    }
    Ok(turns)
}

/// What the answer holds. Small models follow a list of field names and
/// meanings better than a raw JSON Schema (measured with
/// `scripts/bench-local-accuracy.sh`; the grammar enforces the schema
/// itself). A schema without properties to list is shown as it is.
fn schema_hint(schema: &Value) -> String {
    let mut lines = Vec::new();
    field_lines(schema, 0, &mut lines);
    if lines.is_empty() {
        return format!("Answer with one JSON value that matches this JSON Schema:\n{schema}");
    }
    format!(
        "Answer with one JSON object with these fields:\n{}",
        lines.join("\n")
    )
}

/// `- name (type): description` for each property, nested objects' (and
/// arrays of objects') properties indented below their field.
fn field_lines(schema: &Value, depth: usize, lines: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, field) in properties {
        let kind = field.get("type").and_then(Value::as_str).unwrap_or("any");
        let mut line = format!("{}- {name} ({kind})", "  ".repeat(depth));
        if let Some(description) = field.get("description").and_then(Value::as_str) {
            line.push_str(": ");
            line.push_str(description);
        }
        lines.push(line);
        field_lines(field, depth + 1, lines);
        if let Some(items) = field.get("items") {
            field_lines(items, depth + 1, lines);
        }
    }
}

/// The user's text between fences, so that the model tells the material to
/// extract from the instructions around it.
fn fenced(text: &str) -> String {
    format!("{INPUT_OPEN}{text}{INPUT_CLOSE}")
}

/// The text parts of a message; images are refused because the model reads
/// text only.
fn message_text(parts: &[ContentPart]) -> Result<String, ProviderError> {
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            ContentPart::Text(text) => texts.push(text.replace('\0', "")),
            ContentPart::Image { mime_type, .. } => {
                return Err(ProviderError::Rejected {
                    status: 400,
                    message: format!(
                        "the local model takes text only; it cannot read the {mime_type} image \
                         in this request"
                    ),
                })
            }
        }
    }
    Ok(texts.join("\n\n"))
}

/// Renders and tokenizes `turns`, shortening user text from the middle when
/// the prompt exceeds `budget` tokens. Fails when even the turns that may not
/// be shortened do not fit.
pub(crate) fn fit(
    model: &impl PromptModel,
    mut turns: Vec<Turn>,
    budget: usize,
) -> Result<FittedPrompt, ProviderError> {
    let limit = budget.saturating_mul(MAX_TOKEN_BYTES);
    for turn in turns.iter_mut().filter(|t| t.truncatable) {
        turn.text = cut_bytes(&turn.text, limit);
    }
    let tokens = model.tokenize_prompt(&render(model, &turns)?);
    if tokens.len() <= budget {
        return Ok(FittedPrompt {
            tokens,
            cut_tokens: 0,
        });
    }
    let full_len = tokens.len();
    let fixed = fixed_tokens(model, &turns)?;
    if fixed >= budget {
        return Err(too_long(fixed, budget));
    }
    let pieces: Vec<Vec<i32>> = turns
        .iter()
        .map(|t| {
            if t.truncatable {
                model.tokenize_text(&t.text)
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut available = budget - fixed;
    for _ in 0..FIT_ROUNDS {
        let lengths: Vec<usize> = pieces.iter().map(Vec::len).collect();
        let cap = water_level(
            &lengths,
            available.saturating_sub(marker_room(model, &lengths)),
        );
        for (turn, piece) in turns.iter_mut().zip(&pieces) {
            if turn.truncatable && piece.len() > cap {
                turn.text = cut_middle(model, piece, cap);
            }
        }
        let tokens = model.tokenize_prompt(&render(model, &turns)?);
        if tokens.len() <= budget {
            let cut_tokens = full_len.saturating_sub(tokens.len());
            return Ok(FittedPrompt { tokens, cut_tokens });
        }
        available = available.saturating_sub(tokens.len() - budget);
        if available == 0 {
            break;
        }
    }
    Err(too_long(fixed, budget))
}

fn render(model: &impl PromptModel, turns: &[Turn]) -> Result<String, ProviderError> {
    let turns: Vec<Turn> = turns
        .iter()
        .map(|t| Turn {
            text: if t.truncatable {
                fenced(&t.text)
            } else {
                t.text.clone()
            },
            ..t.clone()
        })
        .collect();
    model.render(&turns).map_err(|e| ProviderError::Rejected {
        status: 400,
        message: format!("the local model's chat template failed on this request: {e}"),
    })
}

/// Tokens of the prompt with every shortenable text removed.
fn fixed_tokens(model: &impl PromptModel, turns: &[Turn]) -> Result<usize, ProviderError> {
    let bare: Vec<Turn> = turns
        .iter()
        .map(|t| Turn {
            text: if t.truncatable {
                String::new()
            } else {
                t.text.clone()
            },
            ..t.clone()
        })
        .collect();
    Ok(model.tokenize_prompt(&render(model, &bare)?).len())
}

/// Room for one cut marker per non-empty piece.
fn marker_room(model: &impl PromptModel, lengths: &[usize]) -> usize {
    let pieces = lengths.iter().filter(|&&l| l > 0).count();
    pieces * model.tokenize_text(CUT_MARKER).len()
}

/// The largest per-piece length `cap` with `Σ min(len, cap) ≤ available`:
/// short pieces stay whole and long ones are cut to the same length.
fn water_level(lengths: &[usize], available: usize) -> usize {
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let mut remaining = available;
    for (index, &len) in sorted.iter().enumerate() {
        let share = remaining / (sorted.len() - index);
        if len > share {
            return share;
        }
        remaining -= len;
    }
    usize::MAX
}

/// The first and last tokens of `piece`, `keep` in all, around a marker.
fn cut_middle(model: &impl PromptModel, piece: &[i32], keep: usize) -> String {
    if keep == 0 {
        return CUT_MARKER.trim().to_string();
    }
    let head = keep * HEAD_SHARE.0 / HEAD_SHARE.1;
    let tail = keep - head;
    let head_text = model.detokenize(&piece[..head]);
    let tail_text = model.detokenize(&piece[piece.len() - tail..]);
    // Cutting between the tokens of one multi-byte character leaves
    // replacement characters at the seams.
    format!(
        "{}{CUT_MARKER}{}",
        head_text.trim_end_matches('\u{FFFD}'),
        tail_text.trim_start_matches('\u{FFFD}')
    )
}

/// `text` cut in the middle to about `limit` bytes, on character bounds.
fn cut_bytes(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let head = floor_char_boundary(text, limit * HEAD_SHARE.0 / HEAD_SHARE.1);
    let tail = ceil_char_boundary(text, text.len() - (limit - head));
    format!("{}{CUT_MARKER}{}", &text[..head], &text[tail..])
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

fn too_long(tokens: usize, budget: usize) -> ProviderError {
    ProviderError::Rejected {
        status: 400,
        message: format!(
            "input too long for the local model's context window ({tokens} tokens > {budget}): \
             the instructions and schema alone leave no room for the answer"
        ),
    }
}

#[cfg(test)]
mod tests {
    use agentd_providers::Message;
    use serde_json::json;

    use super::*;

    /// One token per whitespace-separated word; the template adds two
    /// tokens per turn.
    struct Words;

    impl PromptModel for Words {
        fn render(&self, turns: &[Turn]) -> Result<String, String> {
            Ok(turns
                .iter()
                .map(|t| format!("<{}> {} </>", t.role, t.text))
                .collect::<Vec<_>>()
                .join(" "))
        }
        fn tokenize_prompt(&self, text: &str) -> Vec<i32> {
            self.tokenize_text(text)
        }
        fn tokenize_text(&self, text: &str) -> Vec<i32> {
            text.split_whitespace().map(|w| w.len() as i32).collect()
        }
        fn detokenize(&self, tokens: &[i32]) -> String {
            tokens
                .iter()
                .map(|&n| "w".repeat(n as usize))
                .collect::<Vec<_>>()
                .join(" ")
        }
    }

    fn request(messages: Vec<Message>) -> CompletionRequest {
        CompletionRequest {
            upstream_model: "local".into(),
            messages,
            schema_name: "output".into(),
            schema: json!({"type": "object"}),
            temperature: None,
            reasoning: None,
            max_output_tokens: None,
        }
    }

    fn turn(role: &'static str, text: &str, truncatable: bool) -> Turn {
        Turn {
            role,
            text: text.into(),
            truncatable,
        }
    }

    #[test]
    fn schema_joins_the_system_message() {
        let turns = turns_for(&request(vec![
            Message::text(Role::System, "Extract."),
            Message::text(Role::User, "Alice"),
        ]))
        .unwrap();
        assert_eq!(turns.len(), 2);
        assert!(turns[0]
            .text
            .starts_with("Extract.\n\nAnswer with one JSON value"));
        assert!(turns[0].text.ends_with(r#"{"type":"object"}"#));
        assert_eq!(turns[1], turn("user", "Alice", true));
    }

    #[test]
    fn schema_gets_its_own_system_message() {
        let turns = turns_for(&request(vec![Message::text(Role::User, "Alice")])).unwrap();
        assert_eq!(turns[0].role, "system");
        assert!(!turns[0].truncatable);
    }

    #[test]
    fn fields_are_listed_with_their_descriptions() {
        let mut with_fields = request(vec![Message::text(Role::User, "Alice")]);
        with_fields.schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "full name"},
                "lines": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"total": {"type": "number"}},
                }},
            },
        });
        let turns = turns_for(&with_fields).unwrap();
        assert_eq!(
            turns[0].text,
            "Answer with one JSON object with these fields:\n\
             - name (string): full name\n\
             - lines (array)\n  \
             - total (number)"
        );
    }

    #[test]
    fn user_text_is_fenced() {
        let turns = vec![
            turn("system", "Extract.", false),
            turn("user", "Alice", true),
        ];
        let rendered = render(&Words, &turns).unwrap();
        assert_eq!(
            rendered,
            "<system> Extract. </> <user> Document:\n\"\"\"\nAlice\n\"\"\" </>"
        );
    }

    #[test]
    fn images_are_refused() {
        let message = Message {
            role: Role::User,
            parts: vec![ContentPart::Image {
                mime_type: "image/png".into(),
                data: vec![1, 2, 3],
            }],
        };
        let error = turns_for(&request(vec![message])).unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected { status: 400, message } if message.contains("text only")),
            "{error:?}"
        );
    }

    #[test]
    fn short_prompts_are_untouched() {
        let turns = vec![turn("system", "a b", false), turn("user", "c d e", true)];
        let fitted = fit(&Words, turns, 100).unwrap();
        // 5 words, 4 template tokens and 3 of the fences.
        assert_eq!(fitted.tokens.len(), 12);
        assert_eq!(fitted.cut_tokens, 0);
    }

    #[test]
    fn long_user_text_is_cut_in_the_middle() {
        let text = (1..=200).map(|n| "x".repeat(n % 7 + 1)).collect::<Vec<_>>();
        let turns = vec![
            turn("system", "keep me", false),
            turn("user", &text.join(" "), true),
        ];
        let fitted = fit(&Words, turns, 60).unwrap();
        assert!(fitted.tokens.len() <= 60, "{}", fitted.tokens.len());
        assert!(fitted.tokens.len() >= 50, "{}", fitted.tokens.len());
        assert!(fitted.cut_tokens > 100);
    }

    #[test]
    fn fixed_text_that_cannot_fit_is_an_error() {
        let system = vec!["w"; 80].join(" ");
        let turns = vec![turn("system", &system, false), turn("user", "hi", true)];
        let error = fit(&Words, turns, 60).unwrap_err();
        let ProviderError::Rejected { status, message } = error else {
            panic!("{error:?}")
        };
        assert_eq!(status, 400);
        assert!(
            message.starts_with(
                "input too long for the local model's context window (87 tokens > 60)"
            ),
            "{message}"
        );
    }

    #[test]
    fn huge_text_is_cut_before_tokenizing() {
        let text = "é".repeat(1000);
        let cut = cut_bytes(&text, 101);
        assert!(cut.starts_with(&"é".repeat(33)), "{cut}");
        assert!(cut.contains("[... truncated ...]"));
        assert!(cut.len() <= 101 + CUT_MARKER.len() + 1);
        assert_eq!(cut_bytes("short", 101), "short");
    }

    #[test]
    fn water_level_cuts_the_longest_first() {
        assert_eq!(water_level(&[10, 100, 1000], 210), 100);
        assert_eq!(water_level(&[10, 100, 1000], 5000), usize::MAX);
        assert_eq!(water_level(&[10, 10], 10), 5);
    }
}
