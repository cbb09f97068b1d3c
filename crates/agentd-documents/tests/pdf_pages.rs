//! A PDF's outline and new PDFs made of some of its pages, through the real
//! PDFium library, on `tests/fixtures/outlined-report.pdf`
//! (`tests/e2e/pdf_factory.py`: ten pages, sections in the outline).

mod common;

use agentd_documents::{DocumentError, OutlineEntry, PageRange};
use common::{fixture, reader};

fn report() -> Vec<u8> {
    fixture("outlined-report.pdf")
}

fn entry(title: &str, level: u32, page: u32) -> OutlineEntry {
    OutlineEntry {
        title: title.into(),
        level,
        page: Some(page),
    }
}

#[tokio::test]
async fn the_outline_lists_sections_with_their_levels_and_pages() {
    let (outline, pages) = reader().outline(report()).await.unwrap();
    assert_eq!(pages, 10);
    assert_eq!(
        outline,
        vec![
            entry("Introduction", 0, 2),
            entry("Financial Statements", 0, 3),
            entry("Balance Sheet", 1, 4),
            entry("Income Statement", 1, 6),
            entry("Notes", 0, 8),
        ]
    );
}

#[tokio::test]
async fn a_document_without_bookmarks_has_an_empty_outline() {
    let three = fixture("three-pages.pdf");
    let (outline, pages) = reader().outline(three).await.unwrap();
    assert!(outline.is_empty());
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn selected_pages_become_a_new_pdf_in_order() {
    let reader = reader();
    let ranges = vec![
        PageRange { first: 2, last: 2 },
        PageRange { first: 4, last: 6 },
    ];
    let selected = reader.select_pages(report(), ranges).await.unwrap();
    let pages = reader.extract(selected).await.unwrap();
    let firsts: Vec<String> = pages.iter().map(|p| p.lines[0].text.clone()).collect();
    assert_eq!(
        firsts,
        [
            "Annual report page 2",
            "Annual report page 4",
            "Annual report page 5",
            "Annual report page 6"
        ]
    );
}

#[tokio::test]
async fn pages_beyond_the_document_are_refused() {
    let beyond = vec![PageRange { first: 9, last: 11 }];
    match reader().select_pages(report(), beyond).await {
        Err(DocumentError::Malformed { reason, .. }) => {
            assert!(
                reason.contains("9-11") && reason.contains("10 pages"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {:?}", other.map(|b| b.len())),
    }
}
