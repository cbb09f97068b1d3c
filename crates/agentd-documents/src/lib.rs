//! Documents read as text, for wherever an engine expects text: PDF (PDFium
//! in reader processes, lines in layout reading order, page markers),
//! DOCX, XLSX, CSV, HTML (as Markdown), EML, Markdown and plain text.
//!
//! Everything that touches the PDF library (FFI) lives in this crate, in
//! [`reader`], which only runs in a reader process (`agentd pdf-reader`).

pub mod layout;
pub mod ocr;
mod office;
pub mod pdf;
pub mod pdf_pages;
mod pool;
mod protocol;
mod reader;

use std::path::PathBuf;

pub use pdf::{
    PageBatch, PageContent, PageImage, PdfBytes, PdfPage, PdfReader, PdfSettings, RenderPages,
};
pub use pdf_pages::{OutlineEntry, PageRange};
pub use pool::{ReaderCommand, ReaderInfo};
pub use reader::run_reader;

/// What a file can be read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    Pdf,
    Docx,
    Xlsx,
    Csv,
    Html,
    Email,
    /// Markdown, plain text, JSON, XML: used as they are.
    PlainText,
    /// Has no text to read (the caller names the field in its error).
    Image,
}

/// What `kind_of_type` says about a declared MIME type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeVerdict {
    Readable(DocumentKind),
    /// `*/*`, `application/octet-stream`: decided by the file's bytes.
    Undecided,
    Unreadable,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the PDF is password-protected")]
    PasswordProtected,
    #[error("the PDF is corrupt: {0}")]
    CorruptPdf(String),
    #[error("the file is not a PDF")]
    NotAPdf,
    #[error("the PDF has {pages} pages, more than the {max} allowed (AGENTD_MAX_PDF_PAGES)")]
    TooManyPages { pages: u32, max: u32 },
    #[error(
        "PDF reading is not available on this server: the PDFium library is missing at {0} \
         (run scripts/fetch-pdfium.sh or set AGENTD_PDFIUM_PATH)"
    )]
    PdfLibraryMissing(PathBuf),
    #[error(
        "PDF reading is not available on this server: the PDFium library at {0} could not be \
         loaded (run scripts/fetch-pdfium.sh or set AGENTD_PDFIUM_PATH)"
    )]
    PdfLibraryUnusable(PathBuf),
    #[error("the {format} file could not be read: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("files of type {0} cannot be read as text")]
    Unreadable(String),
    #[error("the file is an image ({0}), which has no text to read")]
    Image(String),
    #[error(
        "this PDF has pages without text, which need OCR, but tesseract is not installed on \
         this server (install the Debian packages tesseract-ocr and tesseract-ocr-eng, or use \
         a model that takes images)"
    )]
    OcrMissing,
    /// A reader process died on this document, and again on a retry.
    #[error("the PDF library crashed reading this PDF")]
    ReaderCrashed,
    /// A reader took longer than the deadline (`AGENTD_PDF_TIMEOUT_SECS`)
    /// and was stopped.
    #[error("reading the PDF took longer than {0} s")]
    ReadTimedOut(u64),
    /// The reader itself failed (a panic caught, a reader not started).
    #[error("{0}")]
    Failed(String),
}

impl DocumentError {
    /// Errors that are the document's (or the caller's) fault, as opposed to
    /// the server's: a missing library or a failed reader. A document that
    /// crashed two readers, or kept one busy past the deadline, is blamed.
    pub fn is_caller_fault(&self) -> bool {
        !matches!(
            self,
            Self::PdfLibraryMissing(_)
                | Self::PdfLibraryUnusable(_)
                | Self::OcrMissing
                | Self::Failed(_)
        )
    }
}

/// Reads documents as text.
#[derive(Clone, Debug)]
pub struct Documents {
    pdf: PdfReader,
}

impl Documents {
    pub fn new(pdf: PdfSettings) -> Self {
        Self {
            pdf: PdfReader::new(pdf),
        }
    }

    pub fn pdf(&self) -> &PdfReader {
        &self.pdf
    }

    /// The text of a file. `content_type` is what the file was stored as
    /// (its upload's type or the input's declared type).
    pub async fn to_text(
        &self,
        content_type: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<String, DocumentError> {
        match detect(content_type, file_name, &bytes)? {
            DocumentKind::Pdf => Ok(pdf_text(&self.pdf.extract(bytes).await?)),
            DocumentKind::Docx => office::docx_text(&bytes),
            DocumentKind::Xlsx => office::xlsx_text(bytes),
            DocumentKind::Html => Ok(office::html_text(&String::from_utf8_lossy(&bytes))),
            DocumentKind::Email => office::email_text(&bytes),
            DocumentKind::Csv | DocumentKind::PlainText => office::plain_text(&bytes),
            DocumentKind::Image => Err(DocumentError::Image(
                infer::get(&bytes)
                    .map(|k| k.mime_type().to_owned())
                    .unwrap_or_else(|| content_type.to_owned()),
            )),
        }
    }

    /// Checks a PDF upload when it arrives: encrypted, corrupt and oversized
    /// files are refused before a job exists. A server without the library
    /// accepts the file (the job then fails, naming the fetch script).
    pub async fn check_pdf(&self, bytes: Vec<u8>) -> Result<(), DocumentError> {
        match self.pdf.page_count(bytes).await {
            Ok(_)
            | Err(DocumentError::PdfLibraryMissing(_) | DocumentError::PdfLibraryUnusable(_)) => {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

/// HTML as Markdown (inputs declared `text/html` are text inputs; they reach
/// a model as Markdown, like HTML files do).
pub fn html_to_markdown(html: &str) -> String {
    office::html_text(html)
}

/// Pages joined with `--- Page N ---` markers, so a model can cite pages.
pub fn pdf_text(pages: &[PdfPage]) -> String {
    let mut text = String::new();
    for page in pages {
        if page.number > 1 {
            text.push('\n');
        }
        text.push_str(&format!("--- Page {} ---\n", page.number));
        text.push_str(&page.text());
    }
    text
}

fn normalized(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or(mime)
        .trim()
        .to_ascii_lowercase()
}

/// What a declared MIME type can be read as, before any bytes are seen.
pub fn kind_of_type(mime: &str) -> TypeVerdict {
    let mime = normalized(mime);
    let kind = match mime.as_str() {
        "" | "*/*" | "application/octet-stream" => return TypeVerdict::Undecided,
        "application/pdf" => DocumentKind::Pdf,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            DocumentKind::Docx
        }
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => DocumentKind::Xlsx,
        "text/csv" | "application/csv" => DocumentKind::Csv,
        "text/html" | "application/xhtml+xml" => DocumentKind::Html,
        "message/rfc822" => DocumentKind::Email,
        "application/json" | "application/xml" | "application/x-ndjson" => DocumentKind::PlainText,
        m if m.starts_with("text/") => DocumentKind::PlainText,
        m if m.starts_with("image/") => DocumentKind::Image,
        _ => return TypeVerdict::Unreadable,
    };
    TypeVerdict::Readable(kind)
}

fn kind_of_name(file_name: &str) -> Option<DocumentKind> {
    let extension = file_name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "pdf" => DocumentKind::Pdf,
        "docx" => DocumentKind::Docx,
        "xlsx" => DocumentKind::Xlsx,
        "csv" => DocumentKind::Csv,
        "html" | "htm" => DocumentKind::Html,
        "eml" => DocumentKind::Email,
        "md" | "markdown" | "txt" | "text" | "json" | "xml" | "log" => DocumentKind::PlainText,
        _ => return None,
    })
}

/// What a stored file is: its bytes decide where they are recognisable
/// (PDF, images, office zips), then its stored type, then its name, then
/// whether it is UTF-8 text.
pub fn detect(
    content_type: &str,
    file_name: &str,
    bytes: &[u8],
) -> Result<DocumentKind, DocumentError> {
    let sniffed = infer::get(bytes).map(|kind| kind.mime_type());
    match sniffed {
        Some("application/pdf") => return Ok(DocumentKind::Pdf),
        Some(mime) if mime.starts_with("image/") => return Ok(DocumentKind::Image),
        Some(mime) => {
            if let TypeVerdict::Readable(kind) = kind_of_type(mime) {
                return Ok(kind);
            }
        }
        None => {}
    }
    let declared = kind_of_type(content_type);
    match declared {
        TypeVerdict::Readable(kind) => return Ok(kind),
        TypeVerdict::Unreadable => return Err(DocumentError::Unreadable(normalized(content_type))),
        TypeVerdict::Undecided => {}
    }
    if let Some(kind) = kind_of_name(file_name) {
        return Ok(kind);
    }
    if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        return Ok(DocumentKind::PlainText);
    }
    Err(DocumentError::Unreadable(
        sniffed.unwrap_or("application/octet-stream").to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_say_what_can_be_read() {
        assert_eq!(
            kind_of_type("application/pdf"),
            TypeVerdict::Readable(DocumentKind::Pdf)
        );
        assert_eq!(
            kind_of_type("text/csv; charset=utf-8"),
            TypeVerdict::Readable(DocumentKind::Csv)
        );
        assert_eq!(
            kind_of_type("image/png"),
            TypeVerdict::Readable(DocumentKind::Image)
        );
        assert_eq!(kind_of_type("*/*"), TypeVerdict::Undecided);
        assert_eq!(kind_of_type("application/zip"), TypeVerdict::Unreadable);
        assert_eq!(kind_of_type("video/mp4"), TypeVerdict::Unreadable);
    }

    #[test]
    fn bytes_win_over_names_and_generic_types() {
        let pdf = b"%PDF-1.4\n...";
        assert_eq!(
            detect("application/octet-stream", "x.txt", pdf).unwrap(),
            DocumentKind::Pdf
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(
            detect("text/plain", "a.txt", png).unwrap(),
            DocumentKind::Image
        );
        assert_eq!(
            detect("*/*", "notes.md", b"# hi").unwrap(),
            DocumentKind::PlainText
        );
        assert_eq!(
            detect("*/*", "page.htm", b"<p>hi</p>").unwrap(),
            DocumentKind::Html
        );
        assert_eq!(
            detect("", "blob", b"plain words").unwrap(),
            DocumentKind::PlainText
        );
        assert!(matches!(
            detect("application/octet-stream", "blob", b"\0\x01\x02binary"),
            Err(DocumentError::Unreadable(_))
        ));
        assert!(matches!(
            detect("application/zip", "a.zip", b"not really"),
            Err(DocumentError::Unreadable(t)) if t == "application/zip"
        ));
    }

    #[test]
    fn page_markers_number_every_page() {
        let page = |number| PdfPage {
            number,
            width: 1.0,
            height: 1.0,
            lines: vec![layout::Line {
                text: format!("text {number}"),
                rect: layout::Rect {
                    left: 0.0,
                    bottom: 0.0,
                    right: 1.0,
                    top: 1.0,
                },
            }],
        };
        assert_eq!(
            pdf_text(&[page(1), page(2)]),
            "--- Page 1 ---\ntext 1\n\n--- Page 2 ---\ntext 2\n"
        );
    }
}
