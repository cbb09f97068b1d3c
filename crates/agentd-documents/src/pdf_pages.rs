//! Working with a PDF's pages as a whole: its outline (bookmarks) and new
//! documents made of some of its pages. Runs on the PDFium thread like the
//! text reader ([`PdfReader::with_document`]).

use pdfium_render::prelude::*;

use crate::pdf::PdfReader;
use crate::DocumentError;

/// One entry of a document's outline (its bookmarks), in outline order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlineEntry {
    pub title: String,
    /// 0 for top-level entries, 1 for their children, …
    pub level: u32,
    /// The 1-based page it points at; `None` when it points nowhere in the
    /// document (an external link, a broken destination).
    pub page: Option<u32>,
}

/// Pages `first..=last`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageRange {
    pub first: u32,
    pub last: u32,
}

/// Outline entries read at most; an outline with a cycle or an enormous
/// one stops here.
const MAX_OUTLINE_ENTRIES: usize = 10_000;

impl PdfReader {
    /// The document's outline (bookmarks) in outline order, with the page
    /// count; an empty outline when it has none.
    pub async fn outline(&self, bytes: Vec<u8>) -> Result<(Vec<OutlineEntry>, u32), DocumentError> {
        self.with_document(bytes, |_, document| {
            let entries = document
                .bookmarks()
                .iter()
                .take(MAX_OUTLINE_ENTRIES)
                .map(|bookmark| OutlineEntry {
                    title: bookmark.title().unwrap_or_default().trim().to_owned(),
                    level: depth(&bookmark),
                    page: target_page(&bookmark),
                })
                .collect();
            Ok((entries, page_count(document)))
        })
        .await
    }

    /// A new PDF holding `ranges` of the document, in the order given (the
    /// caller sorts and merges them). A range beyond the last page is an
    /// error naming it.
    pub async fn select_pages(
        &self,
        bytes: Vec<u8>,
        ranges: Vec<PageRange>,
    ) -> Result<Vec<u8>, DocumentError> {
        self.with_document(bytes, move |pdfium, source| {
            let count = page_count(source);
            let mut selected = pdfium.create_new_pdf().map_err(|error| {
                DocumentError::Failed(format!("a new PDF could not be made ({error:?})"))
            })?;
            for range in &ranges {
                if range.first == 0 || range.first > range.last || range.last > count {
                    return Err(DocumentError::Malformed {
                        format: "PDF",
                        reason: format!(
                            "pages {}-{} are not within its {count} pages",
                            range.first, range.last
                        ),
                    });
                }
                let at = selected.pages().len();
                selected
                    .pages_mut()
                    .copy_page_range_from_document(
                        source,
                        (range.first - 1) as PdfPageIndex..=(range.last - 1) as PdfPageIndex,
                        at,
                    )
                    .map_err(|error| {
                        DocumentError::CorruptPdf(format!(
                            "pages {}-{} could not be copied ({error:?})",
                            range.first, range.last
                        ))
                    })?;
            }
            selected.save_to_bytes().map_err(|error| {
                DocumentError::Failed(format!("the new PDF could not be written ({error:?})"))
            })
        })
        .await
    }
}

fn page_count(document: &PdfDocument<'_>) -> u32 {
    u32::try_from(document.pages().len()).unwrap_or(0)
}

/// How many ancestors a bookmark has (bounded, in case of a cycle).
fn depth(bookmark: &PdfBookmark<'_>) -> u32 {
    let mut level = 0;
    let mut parent = bookmark.parent();
    while let Some(up) = parent {
        level += 1;
        if level > 64 {
            break;
        }
        parent = up.parent();
    }
    level
}

/// The page a bookmark opens: its destination, or its go-to action's.
fn target_page(bookmark: &PdfBookmark<'_>) -> Option<u32> {
    let index = match bookmark.destination() {
        Some(destination) => destination.page_index().ok(),
        None => bookmark.action().and_then(|action| {
            action
                .as_local_destination_action()
                .and_then(|local| local.destination().ok())
                .and_then(|destination| destination.page_index().ok())
        }),
    }?;
    u32::try_from(index).ok().map(|index| index + 1)
}
