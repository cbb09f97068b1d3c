//! PDF text through PDFium, in a small pool of reader processes.
//!
//! PDFium is not thread-safe, and a crash inside it (a segmentation fault
//! on a malformed file) cannot be caught in process. So the server never
//! calls it: each request goes to a reader process ([`crate::reader`],
//! `agentd pdf-reader`) over pipes, one request per reader at a time, a few
//! readers for several cores ([`crate::pool`]). A reader that crashes fails
//! only the request it was serving, which is retried once on another reader;
//! a document that crashes a reader twice fails with
//! [`DocumentError::ReaderCrashed`]. The readers start at the first PDF, so
//! a server without the library starts, and says what is missing when a
//! PDF arrives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::{Glyph, Line};
use crate::pool::{Pool, ReaderCommand, ReaderInfo};
use crate::protocol::{Answer, DocumentHash, Work};
use crate::DocumentError;

/// The text of one page, in reading order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PdfPage {
    /// 1-based.
    pub number: u32,
    pub width: f32,
    pub height: f32,
    pub lines: Vec<Line>,
}

impl PdfPage {
    pub fn text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(&line.text);
            text.push('\n');
        }
        text
    }
}

/// Which pages of a range are rendered to images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenderPages {
    None,
    /// Pages whose text layer holds no text (scans, pictures of text).
    WithoutText,
    All,
}

/// Pages `first..first + count` (1-based), read with their characters'
/// boxes and, as asked, rendered.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PageBatch {
    pub first: u32,
    pub count: u32,
    pub render: RenderPages,
    /// Resolution of the renders, in dots per inch.
    pub dpi: u16,
}

/// A rendered page: a PNG image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageImage {
    #[serde(with = "serde_bytes")]
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// One page with what the text layer says of each character and, when
/// asked, its rendering.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageContent {
    pub page: PdfPage,
    /// Characters in the order the file stores them, each with its box
    /// (PDF points, origin at the bottom left).
    #[serde(with = "crate::protocol::packed_glyphs")]
    pub glyphs: Vec<Glyph>,
    pub image: Option<PageImage>,
}

impl PageContent {
    /// A page with no text in its text layer (a scan).
    pub fn has_no_text(&self) -> bool {
        self.page.lines.is_empty()
    }
}

/// A PDF's bytes with their content hash, by which reader processes keep
/// the documents they were sent. Hashed once: an engine that reads a
/// document batch by batch passes clones of one `PdfBytes` (a multi-MB
/// document hashed again for every batch would cost more than a batch).
#[derive(Clone)]
pub struct PdfBytes {
    bytes: Arc<[u8]>,
    hash: DocumentHash,
}

impl PdfBytes {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<Arc<[u8]>> for PdfBytes {
    fn from(bytes: Arc<[u8]>) -> Self {
        let hash = Sha256::digest(&bytes).into();
        Self { bytes, hash }
    }
}

impl From<Vec<u8>> for PdfBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Arc::<[u8]>::from(bytes).into()
    }
}

impl std::fmt::Debug for PdfBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PdfBytes({} bytes)", self.bytes.len())
    }
}

/// How PDFs are read: the library, the limits, the reader processes.
#[derive(Clone, Debug)]
pub struct PdfSettings {
    /// The path of `libpdfium.so`.
    pub library: PathBuf,
    /// Documents with more pages are refused.
    pub max_pages: u32,
    /// Reader processes run at most (requests beyond wait for one).
    pub readers: usize,
    /// One request's deadline; a reader past it is killed.
    pub timeout: Duration,
    /// How a reader process is started.
    pub command: ReaderCommand,
}

impl PdfSettings {
    /// Readers by default: see README "The PDF library (PDFium)".
    pub const DEFAULT_READERS: usize = 2;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// The defaults, with readers started by `command`.
    pub fn new(library: PathBuf, command: ReaderCommand) -> Self {
        Self {
            library,
            max_pages: 2000,
            readers: Self::DEFAULT_READERS,
            timeout: Self::DEFAULT_TIMEOUT,
            command,
        }
    }
}

/// Reads PDFs through a pool of reader processes; clones share the pool.
#[derive(Clone)]
pub struct PdfReader {
    pool: Arc<Pool>,
    max_pages: u32,
    /// The pool's size: how many shares a long document is read in.
    readers: usize,
}

/// A document is split between readers only where each gets this many
/// pages: below it, opening the document in another reader costs more than
/// the pages it would read.
const MIN_PAGES_A_SHARE: u32 = 8;

impl std::fmt::Debug for PdfReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfReader")
            .field("readers", &self.readers())
            .field("max_pages", &self.max_pages)
            .finish()
    }
}

impl PdfReader {
    /// No process starts here: the first request starts a reader.
    pub fn new(settings: PdfSettings) -> Self {
        let pool = Pool::new(
            settings.command,
            settings.library,
            settings.readers,
            settings.timeout,
        );
        Self {
            pool: Arc::new(pool),
            max_pages: settings.max_pages,
            readers: settings.readers.max(1),
        }
    }

    /// The reader processes running now (for monitoring and tests).
    pub fn readers(&self) -> Vec<ReaderInfo> {
        self.pool.readers()
    }

    /// The number of pages; fails like `extract` for encrypted, corrupt or
    /// oversized documents, without reading their text.
    pub async fn page_count(&self, bytes: Vec<u8>) -> Result<u32, DocumentError> {
        self.count(bytes).await
    }

    /// `page_count` for a document read again later (its pages in batches).
    pub async fn count(&self, bytes: impl Into<PdfBytes>) -> Result<u32, DocumentError> {
        match self.ask(bytes, Work::Inspect).await? {
            Answer::PageCount(count) => Ok(count),
            _ => Err(unexpected_answer()),
        }
    }

    /// A range of pages with their characters' boxes and renders: what an
    /// engine reads a few pages at a time, so that memory follows the pages
    /// in flight rather than the document's size. A range past the end is
    /// cut at the last page.
    pub async fn pages(
        &self,
        bytes: impl Into<PdfBytes>,
        range: PageBatch,
    ) -> Result<Vec<PageContent>, DocumentError> {
        match self.ask(bytes, Work::Range(range)).await? {
            Answer::Contents(pages) => Ok(pages),
            _ => Err(unexpected_answer()),
        }
    }

    /// Every page's lines in reading order. A document of many pages is
    /// read by every reader of the pool at once, each a contiguous share
    /// of its pages (PDFium is single-threaded, the readers are not).
    pub async fn extract(&self, bytes: Vec<u8>) -> Result<Vec<PdfPage>, DocumentError> {
        let document = PdfBytes::from(bytes);
        if self.readers < 2 {
            return self.extract_range(document, 1, u32::MAX).await;
        }
        let count = self.count(document.clone()).await?;
        let share = count.div_ceil(self.readers as u32).max(MIN_PAGES_A_SHARE);
        let reads: Vec<_> = (1..=count)
            .step_by(share as usize)
            .map(|first| {
                let reader = self.clone();
                let document = document.clone();
                tokio::spawn(async move { reader.extract_range(document, first, share).await })
            })
            .collect();
        let mut pages = Vec::with_capacity(count as usize);
        for read in reads {
            let share = read.await.map_err(|error| {
                tracing::error!(%error, "reading a share of a PDF's pages failed");
                DocumentError::Failed("the PDF reader failed".into())
            })?;
            pages.extend(share?);
        }
        Ok(pages)
    }

    /// The lines of pages `first..first + count`, from one reader.
    async fn extract_range(
        &self,
        document: PdfBytes,
        first: u32,
        count: u32,
    ) -> Result<Vec<PdfPage>, DocumentError> {
        match self.ask(document, Work::Extract { first, count }).await? {
            Answer::Pages(pages) => Ok(pages),
            _ => Err(unexpected_answer()),
        }
    }

    /// `work` done by a reader, after the checks every request makes
    /// (not a PDF, encrypted, corrupt, too many pages).
    pub(crate) async fn ask(
        &self,
        bytes: impl Into<PdfBytes>,
        work: Work,
    ) -> Result<Answer, DocumentError> {
        let document = bytes.into();
        check_header(document.bytes())?;
        self.pool
            .ask(document.bytes, document.hash, self.max_pages, work)
            .await
    }
}

pub(crate) fn unexpected_answer() -> DocumentError {
    DocumentError::Failed("the PDF reader answered another question".into())
}

/// `%PDF-` must appear near the start (PDF readers allow up to 1 KiB of junk).
fn check_header(bytes: &[u8]) -> Result<(), DocumentError> {
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        Ok(())
    } else {
        Err(DocumentError::NotAPdf)
    }
}
