//! Without the PDFium library, reading a PDF fails with a message that says
//! how to get it (its own test binary: the PDFium thread is per process).

use agentd_documents::{DocumentError, Documents};

#[tokio::test]
async fn a_missing_library_names_the_fetch_script() {
    let documents = Documents::new("/nonexistent/libpdfium.so".into(), 2000);
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
