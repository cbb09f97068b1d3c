//! Office files, web pages and mail as text.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx};
use mail_parser::MimeHeaders;
use quick_xml::events::Event;

use crate::DocumentError;

/// The largest uncompressed XML part read from a DOCX (zip bombs stop here).
const MAX_XML_BYTES: u64 = 64 << 20;

fn malformed(format: &'static str) -> impl Fn(String) -> DocumentError {
    move |reason| DocumentError::Malformed { format, reason }
}

/// UTF-8 text as it is (a byte-order mark removed); other bytes are refused.
pub fn plain_text(bytes: &[u8]) -> Result<String, DocumentError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("text")("it is not UTF-8 text".into()))
}

/// Paragraphs as lines, table cells separated by tabs, rows as lines.
pub fn docx_text(bytes: &[u8]) -> Result<String, DocumentError> {
    let fail = malformed("DOCX");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| fail(e.to_string()))?;
    let mut xml = Vec::new();
    archive
        .by_name("word/document.xml")
        .map_err(|_| fail("it has no word/document.xml".into()))?
        .take(MAX_XML_BYTES)
        .read_to_end(&mut xml)
        .map_err(|e| fail(e.to_string()))?;
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut text = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| fail(e.to_string()))?;
        match event {
            Event::Start(e) if e.name().as_ref() == b"w:t" => in_text = true,
            Event::End(e) => match e.name().as_ref() {
                b"w:t" => in_text = false,
                b"w:p" => text.push('\n'),
                b"w:tc" => {
                    // A cell's last paragraph ended with a newline: the
                    // next cell of the row follows after a tab instead.
                    if text.ends_with('\n') {
                        text.pop();
                    }
                    text.push('\t');
                }
                b"w:tr" => {
                    if text.ends_with('\t') {
                        text.pop();
                    }
                    text.push('\n');
                }
                _ => {}
            },
            Event::Empty(e) => match e.name().as_ref() {
                b"w:tab" => text.push('\t'),
                b"w:br" | b"w:cr" => text.push('\n'),
                _ => {}
            },
            Event::Text(e) if in_text => {
                text.push_str(&e.decode().map_err(|e| fail(e.to_string()))?)
            }
            Event::GeneralRef(e) if in_text => {
                let resolved = match e.resolve_char_ref().map_err(|e| fail(e.to_string()))? {
                    Some(ch) => ch.to_string(),
                    None => match e.decode().map_err(|e| fail(e.to_string()))?.as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => format!("&{other};"),
                    },
                };
                text.push_str(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(text)
}

/// Each sheet under a `--- Sheet NAME ---` marker, cells separated by tabs.
pub fn xlsx_text(bytes: Vec<u8>) -> Result<String, DocumentError> {
    let fail = malformed("XLSX");
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| fail(e.to_string()))?;
    let mut text = String::new();
    for name in workbook.sheet_names() {
        let range = workbook
            .worksheet_range(&name)
            .map_err(|e| fail(e.to_string()))?;
        text.push_str(&format!("--- Sheet {name} ---\n"));
        for row in range.rows() {
            let cells: Vec<String> = row.iter().map(cell_text).collect();
            text.push_str(cells.join("\t").trim_end_matches('\t'));
            text.push('\n');
        }
    }
    Ok(text)
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// HTML as Markdown.
pub fn html_text(html: &str) -> String {
    htmd::convert(html).unwrap_or_else(|_| html.to_owned())
}

/// The headers a reader needs, then the text body (or the HTML body as
/// Markdown), then the names of attachments.
pub fn email_text(bytes: &[u8]) -> Result<String, DocumentError> {
    let message = mail_parser::MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| malformed("EML")("it is not an e-mail message".into()))?;
    let mut text = String::new();
    let addresses = |address: Option<&mail_parser::Address<'_>>| {
        address
            .map(|a| {
                a.iter()
                    .map(|addr| match (addr.name(), addr.address()) {
                        (Some(name), Some(address)) => format!("{name} <{address}>"),
                        (None, Some(address)) => address.to_owned(),
                        (Some(name), None) => name.to_owned(),
                        (None, None) => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let from = addresses(message.from());
    let to = addresses(message.to());
    if !from.is_empty() {
        text.push_str(&format!("From: {from}\n"));
    }
    if !to.is_empty() {
        text.push_str(&format!("To: {to}\n"));
    }
    if let Some(date) = message.date() {
        text.push_str(&format!("Date: {}\n", date.to_rfc3339()));
    }
    if let Some(subject) = message.subject() {
        text.push_str(&format!("Subject: {subject}\n"));
    }
    text.push('\n');
    if message.text_body_count() > 0 {
        if let Some(body) = message.body_text(0) {
            text.push_str(&body);
        }
    } else if let Some(html) = message.body_html(0) {
        text.push_str(&html_text(&html));
    }
    let attachments: Vec<String> = message
        .attachments()
        .filter_map(|part| part.attachment_name().map(str::to_owned))
        .collect();
    if !attachments.is_empty() {
        text.push_str(&format!("\n\nAttachments: {}\n", attachments.join(", ")));
    }
    Ok(text)
}
