//! PDF text through the real PDFium library (in reader processes), on
//! reportlab-made fixtures (`tests/e2e/pdf_factory.py`) and on real manuals
//! from Debian packages. The library comes from `scripts/fetch-pdfium.sh`
//! (or AGENTD_PDFIUM_PATH).

mod common;

use agentd_documents::{
    pdf_text, DocumentError, Documents, PageBatch, PdfReader, PdfSettings, RenderPages,
};
use common::{fixture, reader, settings};

/// Real manuals shipped by Debian packages (see scripts/install-deps.sh).
const TASN1_MANUAL: &str = "/usr/share/doc/libtasn1-doc/libtasn1.pdf";
const MIME_SPEC: &str = "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf";

#[tokio::test]
async fn pages_come_in_order_with_their_numbers() {
    let pages = reader().extract(fixture("three-pages.pdf")).await.unwrap();
    assert_eq!(pages.len(), 3);
    for (i, page) in pages.iter().enumerate() {
        let n = i + 1;
        assert_eq!(page.number as usize, n);
        assert_eq!(
            page.text(),
            format!("This is page {n}.\nSecond line of page {n}.\n")
        );
    }
    let text = pdf_text(&pages);
    let first = text.find("--- Page 1 ---").unwrap();
    let second = text.find("--- Page 2 ---").unwrap();
    let third = text.find("--- Page 3 ---").unwrap();
    assert!(first < second && second < third);
}

#[tokio::test]
async fn a_page_range_comes_with_boxes_and_renders_cut_at_the_last_page() {
    let range = PageBatch {
        first: 2,
        count: 5,
        render: RenderPages::All,
        dpi: 72,
    };
    let pages = reader()
        .pages(fixture("three-pages.pdf"), range)
        .await
        .unwrap();
    let numbers: Vec<u32> = pages.iter().map(|p| p.page.number).collect();
    assert_eq!(numbers, [2, 3]);
    for content in &pages {
        let n = content.page.number;
        assert_eq!(
            content.page.text(),
            format!("This is page {n}.\nSecond line of page {n}.\n")
        );
        // "T" of the first line: reportlab wrote it at x = 72, baseline 780.
        let first = content.glyphs.iter().find(|g| g.ch == 'T').unwrap();
        assert!((first.rect.left - 72.0).abs() < 1.0, "{:?}", first.rect);
        assert!(
            first.rect.bottom < 781.0 && first.rect.top > 786.0,
            "{:?}",
            first.rect
        );
        let image = content.image.as_ref().expect("every page rendered");
        assert!(image.png.starts_with(b"\x89PNG\r\n\x1a\n"));
        // A4 at 72 DPI: one pixel a point.
        assert_eq!((image.width, image.height), (595, 842));
    }
    let text_only = PageBatch {
        render: RenderPages::WithoutText,
        ..range
    };
    let pages = reader()
        .pages(fixture("three-pages.pdf"), text_only)
        .await
        .unwrap();
    assert!(pages.iter().all(|p| p.image.is_none() && !p.has_no_text()));
}

#[tokio::test]
async fn two_columns_written_row_by_row_read_column_by_column() {
    let pages = reader().extract(fixture("two-column.pdf")).await.unwrap();
    let lines: Vec<String> = pages[0].lines.iter().map(|l| l.text.clone()).collect();
    let mut expected = vec!["A Two Column Report".to_string()];
    expected.extend((0..6).map(|i| format!("Left column sentence {i} about apples and pears.")));
    expected.extend((0..6).map(|i| format!("Right column sentence {i} about rivers and hills.")));
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn table_rows_stay_on_one_line() {
    let pages = reader().extract(fixture("table.pdf")).await.unwrap();
    let text = pages[0].text();
    assert_eq!(
        text,
        "Invoice 2024-117\nItem\tQuantity\tUnit price\nBolt M6\t120\t0.15\n\
         Nut M6\t240\t0.05\nWasher\t500\t0.01\n"
    );
}

#[tokio::test]
async fn an_encrypted_pdf_is_password_protected() {
    let error = reader()
        .extract(fixture("encrypted.pdf"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DocumentError::PasswordProtected),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "the PDF is password-protected");
}

#[tokio::test]
async fn a_truncated_pdf_is_corrupt() {
    let error = reader()
        .extract(fixture("truncated.pdf"))
        .await
        .unwrap_err();
    assert!(matches!(error, DocumentError::CorruptPdf(_)), "{error:?}");
}

#[tokio::test]
async fn bytes_that_are_not_a_pdf_say_so() {
    let error = reader()
        .extract(b"hello, world".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(error, DocumentError::NotAPdf), "{error:?}");
}

#[tokio::test]
async fn documents_over_the_page_limit_are_refused() {
    let small = PdfReader::new(PdfSettings {
        max_pages: 2,
        ..settings()
    });
    let error = small
        .page_count(fixture("three-pages.pdf"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DocumentError::TooManyPages { pages: 3, max: 2 }),
        "{error:?}"
    );
    assert_eq!(
        reader()
            .page_count(fixture("three-pages.pdf"))
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn the_reader_survives_bad_documents_between_good_ones() {
    let reader = reader();
    for bad in ["truncated.pdf", "encrypted.pdf"] {
        assert!(reader.extract(fixture(bad)).await.is_err());
        assert_eq!(reader.extract(fixture("table.pdf")).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn concurrent_requests_are_all_answered_by_at_most_the_pools_readers() {
    let reader = reader();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move { reader.extract(fixture("three-pages.pdf")).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 3);
    }
    let readers = reader.readers();
    assert!(
        (1..=PdfSettings::DEFAULT_READERS).contains(&readers.len()),
        "{readers:?}"
    );
    assert!(readers.iter().all(|r| !r.busy), "{readers:?}");
}

#[tokio::test]
async fn real_manuals_have_all_their_pages_and_text() {
    let reader = reader();
    for (path, pages, phrase) in [
        (TASN1_MANUAL, 36, "ASN.1"),
        (MIME_SPEC, 17, "Shared MIME-info Database"),
    ] {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("{path}: {e} (install the Debian package that ships it)"));
        let read = reader.extract(bytes).await.unwrap();
        assert_eq!(read.len(), pages, "{path}");
        let text = pdf_text(&read);
        assert!(text.contains(phrase), "{path} lacks {phrase}");
        assert!(text.contains(&format!("--- Page {pages} ---")));
        // Every page of these manuals has a text layer.
        assert!(read.iter().all(|p| !p.lines.is_empty()), "{path}");
    }
}

/// A long document is read by several readers at once, each a share of
/// its pages: the pages come back in order, as one reader reads them.
#[tokio::test]
async fn a_document_read_by_several_readers_reads_as_by_one() {
    let one = PdfReader::new(PdfSettings {
        readers: 1,
        ..settings()
    });
    let three = PdfReader::new(PdfSettings {
        readers: 3,
        ..settings()
    });
    let bytes = std::fs::read(TASN1_MANUAL).unwrap();
    let alone = one.extract(bytes.clone()).await.unwrap();
    let shared = three.extract(bytes).await.unwrap();
    let numbers: Vec<u32> = shared.iter().map(|page| page.number).collect();
    assert_eq!(numbers, (1..=36).collect::<Vec<_>>());
    assert_eq!(pdf_text(&shared), pdf_text(&alone));
    assert_eq!(three.readers().len(), 3, "every reader took a share");
}

#[tokio::test]
async fn documents_turn_pdfs_into_marked_text() {
    let documents = Documents::new(settings());
    let text = documents
        .to_text(
            "application/octet-stream",
            "x.bin",
            fixture("three-pages.pdf"),
        )
        .await
        .unwrap();
    assert!(text.starts_with("--- Page 1 ---\nThis is page 1.\n"));
    assert!(text.contains("\n--- Page 3 ---\nThis is page 3.\n"));
}
