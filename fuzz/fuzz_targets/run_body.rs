//! A run request's body, as the server reads it: arbitrary bytes as a JSON
//! body and as an urlencoded form, split into inputs, `metadata` and
//! `organization_id`, then checked against realistic input definitions.
#![no_main]

use agentd_domain::run_body::{parse_json_object, parse_urlencoded, RunBody};
use agentd_domain::{InputDefinition, RawInput};
use agentd_fuzz::{check_and_assert, fixed_definitions};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let definition_sets = fixed_definitions();
    match parse_json_object(data) {
        Ok(map) => {
            for definitions in &definition_sets {
                read_and_check(RunBody::Json(map.clone()), definitions);
                assert_form_reads_like_flat_json(&map, definitions);
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
    match parse_urlencoded(data) {
        Ok(body) => {
            assert_form_round_trips(&body);
            for definitions in &definition_sets {
                read_and_check(body.clone(), definitions);
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
});

fn read_and_check(body: RunBody, definitions: &[InputDefinition]) {
    match body.into_request(definitions) {
        Ok(request) => {
            assert!(request.metadata.is_object(), "metadata is always an object");
            let organization_is_input = definitions.iter().any(|d| d.key == "organization_id");
            for (key, _) in &request.inputs {
                assert_ne!(key, "metadata", "metadata is never an input");
                assert!(
                    organization_is_input || key != "organization_id",
                    "organization_id is taken out unless it is an input"
                );
            }
            check_and_assert(definitions, request.inputs);
        }
        Err(errors) => {
            let fields: Vec<_> = errors.fields().map(|(field, _)| field.as_str()).collect();
            assert_eq!(fields, ["metadata"], "only metadata can be malformed");
        }
    }
}

/// A flat JSON object of strings and the same fields sent as a form are one
/// request.
fn assert_form_reads_like_flat_json(
    map: &serde_json::Map<String, Value>,
    definitions: &[InputDefinition],
) {
    let wraps = matches!(map.get("inputs"), Some(Value::Object(_)));
    let Some(fields) = map
        .iter()
        .map(|(k, v)| Some((k.clone(), RawInput::Text(v.as_str()?.to_owned()))))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    if wraps {
        return;
    }
    let from_json = RunBody::Json(map.clone()).into_request(definitions);
    let from_form = RunBody::Form(fields).into_request(definitions);
    assert_eq!(from_json, from_form);
}

/// Encoding the fields of a form body again reads back the same fields.
fn assert_form_round_trips(body: &RunBody) {
    let RunBody::Form(fields) = body else { return };
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(key, value)| match value {
            RawInput::Text(text) => (key.as_str(), text.as_str()),
            other => panic!("a urlencoded field read as {other:?}"),
        })
        .collect();
    let encoded = serde_urlencoded::to_string(&pairs).expect("strings always encode");
    assert_eq!(&parse_urlencoded(encoded.as_bytes()).unwrap(), body);
}
