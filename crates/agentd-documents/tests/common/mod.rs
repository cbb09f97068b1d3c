//! What the PDF tests share: the real PDFium library, reader processes
//! started from this crate's `agentd-pdf-reader` binary, the fixtures.

#![allow(dead_code)]

use std::path::PathBuf;

use agentd_documents::{PdfReader, PdfSettings, ReaderCommand};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// From `scripts/fetch-pdfium.sh` (or AGENTD_PDFIUM_PATH).
pub fn library() -> PathBuf {
    let path = std::env::var_os("AGENTD_PDFIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("data/lib/libpdfium.so"));
    assert!(
        path.is_file(),
        "PDFium is missing at {} (run scripts/fetch-pdfium.sh)",
        path.display()
    );
    path
}

pub fn reader_command() -> ReaderCommand {
    ReaderCommand {
        program: env!("CARGO_BIN_EXE_agentd-pdf-reader").into(),
        args: Vec::new(),
    }
}

pub fn settings() -> PdfSettings {
    PdfSettings::new(library(), reader_command())
}

pub fn reader() -> PdfReader {
    PdfReader::new(settings())
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures").join(name)).unwrap()
}
