//! Input checking: arbitrary definitions and values through `check_inputs`
//! and `InputDefinition::validate_all`, and the input bytes as a file's
//! content through `sniff_mime_type` and `check_file_content` for every
//! usual data type.
#![no_main]

use agentd_domain::input::{check_file_content, sniff_mime_type};
use agentd_domain::InputDefinition;
use agentd_fuzz::{
    check_and_assert, data_type, ArbitraryDefinition, ArbitraryRawInput, DATA_TYPES,
};
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Run {
    definitions: Vec<ArbitraryDefinition>,
    raw: Vec<(Key, ArbitraryRawInput)>,
}

#[derive(Debug)]
struct Key(String);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        agentd_fuzz::key(u).map(Key)
    }
}

fuzz_target!(|data: &[u8]| {
    assert_content_check_is_sound(data);
    let mut u = Unstructured::new(data);
    if let Ok(declared) = data_type(&mut u) {
        assert_content_check_is_sound_for(&declared, data);
    }
    if let Ok(run) = Run::arbitrary(&mut u) {
        let definitions: Vec<InputDefinition> = run.definitions.into_iter().map(|d| d.0).collect();
        assert_validation_is_sound(&definitions);
        check_and_assert(
            &definitions,
            run.raw.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
        );
    }
});

/// A file is accepted as the type its bytes reveal, and as that family.
fn assert_content_check_is_sound(bytes: &[u8]) {
    let sniffed = sniff_mime_type(bytes);
    assert_eq!(sniffed, sniff_mime_type(bytes), "sniffing is deterministic");
    if let Some(mime) = sniffed {
        assert_eq!(check_file_content(mime, bytes), Ok(()), "{mime}");
        let family = mime.split('/').next().unwrap();
        assert_eq!(check_file_content(&format!("{family}/*"), bytes), Ok(()));
    }
    for declared in DATA_TYPES {
        assert_content_check_is_sound_for(declared, bytes);
    }
}

fn assert_content_check_is_sound_for(declared: &str, bytes: &[u8]) {
    let normalized = declared.trim().to_ascii_lowercase();
    match check_file_content(declared, bytes) {
        Ok(()) => {
            if normalized == "application/pdf" || normalized == "image/png" {
                assert_eq!(sniff_mime_type(bytes), Some(normalized.as_str()));
            }
        }
        Err(message) => {
            assert!(message.contains(declared), "{message:?} names {declared:?}");
            assert!(
                !matches!(normalized.as_str(), "" | "*/*" | "application/octet-stream"),
                "{declared:?} accepts any content"
            );
        }
    }
}

/// Definitions that pass validation have distinct, non-blank keys, none
/// of them `metadata`, and a data type.
fn assert_validation_is_sound(definitions: &[InputDefinition]) {
    if InputDefinition::validate_all(definitions).is_ok() {
        let mut keys: Vec<&str> = definitions.iter().map(|d| d.key.trim()).collect();
        assert!(keys.iter().all(|k| !k.is_empty() && *k != "metadata"));
        assert!(definitions.iter().all(|d| !d.data_type.trim().is_empty()));
        keys.sort_unstable();
        assert!(
            keys.windows(2).all(|w| w[0] != w[1]),
            "duplicate keys accepted"
        );
    }
}
