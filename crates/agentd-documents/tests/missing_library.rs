//! Without a usable PDFium library, reading a PDF fails with a message that
//! says how to get it, and no reader process keeps running.

mod common;

use agentd_documents::{DocumentError, Documents, PdfSettings};
use common::reader_command;

#[tokio::test]
async fn a_missing_library_names_the_fetch_script() {
    let settings = PdfSettings::new("/nonexistent/libpdfium.so".into(), reader_command());
    let documents = Documents::new(settings);
    let pdf = b"%PDF-1.4\n%%EOF\n".to_vec();
    let error = documents
        .to_text("application/pdf", "a.pdf", pdf.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DocumentError::PdfLibraryMissing(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("scripts/fetch-pdfium.sh"));
    assert!(!error.is_caller_fault());
    // Uploads are accepted then: the job reports the missing library.
    documents.check_pdf(pdf).await.unwrap();
}

#[tokio::test]
async fn a_file_that_is_not_the_library_is_unusable_and_no_reader_stays() {
    // A file that exists but is no shared library: the reader starts, fails
    // to load it, says so and exits.
    let not_a_library = std::env::temp_dir().join(format!("not-pdfium-{}.so", std::process::id()));
    std::fs::write(&not_a_library, b"not an ELF file").unwrap();
    let documents = Documents::new(PdfSettings::new(not_a_library.clone(), reader_command()));
    let pdf = b"%PDF-1.4\n%%EOF\n".to_vec();
    let error = documents
        .to_text("application/pdf", "a.pdf", pdf)
        .await
        .unwrap_err();
    std::fs::remove_file(&not_a_library).unwrap();
    assert!(
        matches!(error, DocumentError::PdfLibraryUnusable(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("scripts/fetch-pdfium.sh"));
    assert!(!error.is_caller_fault());
    assert_eq!(documents.pdf().readers(), []);
}
