//! `data:` URLs, as file inputs carry them: arbitrary text is decoded
//! without panicking, text that is no data URL is left alone, and any bytes
//! with any media type encoded as a data URL (padded or not, with
//! whitespace) decode back to the same bytes and type.
#![no_main]

use agentd_domain::input::decode_data_url;
use agentd_domain::{InputDefinition, RawInput};
use agentd_fuzz::check_and_assert;
use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_decoding_is_sound(text);
    }
    if let Ok(encoded) = Encoded::arbitrary_take_rest(Unstructured::new(data)) {
        encoded.assert_round_trip();
    }
});

fn assert_decoding_is_sound(text: &str) {
    let result = decode_data_url(text);
    let Some(rest) = text.strip_prefix("data:") else {
        assert_eq!(result, Ok(None), "only data: URLs are decoded");
        return;
    };
    let Some((header, payload)) = rest.split_once(',') else {
        assert!(result.is_err(), "a data: URL without a comma is malformed");
        return;
    };
    if let Ok(Some(upload)) = &result {
        assert_eq!(upload.file_name, "data-url");
        assert_ne!(upload.content_type.as_deref(), Some(""));
        if !header.ends_with(";base64") {
            assert_eq!(
                upload.bytes,
                payload.as_bytes(),
                "plain data is taken as is"
            );
            assert_eq!(upload.content_type.as_deref().unwrap_or(""), header);
        }
    } else {
        assert!(
            header.ends_with(";base64"),
            "only base64 data can be malformed"
        );
    }
    // A file input given this text reads the same upload.
    let definitions = [InputDefinition {
        key: "doc".into(),
        data_type: "application/pdf".into(),
        description: String::new(),
        example: None,
        accepts_multiple_files: None,
        default: None,
    }];
    check_and_assert(
        &definitions,
        vec![("doc".into(), RawInput::Text(text.to_owned()))],
    );
}

#[derive(Arbitrary, Debug)]
struct Encoded {
    media_type: String,
    padded: bool,
    /// ASCII whitespace to insert into the base64 text: (position, which).
    whitespace: Vec<(u8, u8)>,
    bytes: Vec<u8>,
}

impl Encoded {
    fn assert_round_trip(&self) {
        // A media type ends at the first comma.
        let media_type: String = self.media_type.chars().filter(|&c| c != ',').collect();
        let mut base64 = if self.padded {
            STANDARD.encode(&self.bytes)
        } else {
            STANDARD_NO_PAD.encode(&self.bytes)
        };
        for &(position, which) in &self.whitespace {
            let at = usize::from(position).min(base64.len());
            base64.insert(at, [' ', '\n', '\r', '\t'][usize::from(which % 4)]);
        }
        let url = format!("data:{media_type};base64,{base64}");
        let upload = decode_data_url(&url)
            .unwrap_or_else(|e| panic!("{url:?} does not decode: {e}"))
            .expect("a data: URL");
        assert_eq!(upload.bytes, self.bytes);
        assert_eq!(
            upload.content_type.as_deref(),
            (!media_type.is_empty()).then_some(media_type.as_str())
        );
    }
}
