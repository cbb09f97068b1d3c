//! Working with a PDF's pages as a whole: its outline (bookmarks) and new
//! documents made of some of its pages, done by a reader process like the
//! text (`crate::reader`).

use serde::{Deserialize, Serialize};

use crate::pdf::{unexpected_answer, PdfReader};
use crate::protocol::{Answer, Work};
use crate::DocumentError;

/// One entry of a document's outline (its bookmarks), in outline order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlineEntry {
    pub title: String,
    /// 0 for top-level entries, 1 for their children, …
    pub level: u32,
    /// The 1-based page it points at; `None` when it points nowhere in the
    /// document (an external link, a broken destination).
    pub page: Option<u32>,
}

/// Pages `first..=last`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PageRange {
    pub first: u32,
    pub last: u32,
}

impl PdfReader {
    /// The document's outline (bookmarks) in outline order, with the page
    /// count; an empty outline when it has none.
    pub async fn outline(&self, bytes: Vec<u8>) -> Result<(Vec<OutlineEntry>, u32), DocumentError> {
        match self.ask(bytes, Work::Outline).await? {
            Answer::Outline {
                entries,
                page_count,
            } => Ok((entries, page_count)),
            _ => Err(unexpected_answer()),
        }
    }

    /// A new PDF holding `ranges` of the document, in the order given (the
    /// caller sorts and merges them). A range beyond the last page is an
    /// error naming it.
    pub async fn select_pages(
        &self,
        bytes: Vec<u8>,
        ranges: Vec<PageRange>,
    ) -> Result<Vec<u8>, DocumentError> {
        match self.ask(bytes, Work::SelectPages(ranges)).await? {
            Answer::Pdf(pdf) => Ok(pdf),
            _ => Err(unexpected_answer()),
        }
    }
}
