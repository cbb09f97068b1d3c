//! A PDF reader process: the only code that calls PDFium.
//!
//! The server starts a few of these (the same `agentd` binary, `agentd
//! pdf-reader`; see [`crate::pool`]) and talks to each over its stdin and
//! stdout ([`crate::protocol`]), so that a crash inside the C library ends
//! one reader, not the server. PDFium is not thread-safe, so each reader
//! calls it from one thread and answers one request at a time.
//!
//! A reader exits when its stdin ends (the server closed it or went away),
//! and, should it be stuck inside PDFium then, when it sees it has been
//! orphaned. It keeps the last few documents it was sent, so that the
//! batches of one document do not carry its bytes again.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use pdfium_render::prelude::*;

use crate::layout::{self, Glyph, Rect};
use crate::pdf::{PageBatch, PageContent, PageImage, PdfPage, RenderPages};
use crate::pdf_pages::{OutlineEntry, PageRange};
use crate::protocol::{
    self, Answer, DocumentHash, DocumentRef, Hello, ReadError, Reply, Request, Work,
};
use crate::DocumentError;

/// Runs a reader on this process's stdin and stdout until stdin ends;
/// `library` is the path of `libpdfium.so`. What goes wrong is written to
/// stderr (the server's log).
pub fn run_reader(library: &Path) -> ExitCode {
    exit_when_orphaned();
    // A crashed reader is restarted by the pool; a core file of each would
    // only fill the server's working directory.
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::CORE) {
        let _ = rlimit::setrlimit(rlimit::Resource::CORE, 0, hard);
    }
    match serve_stdio(library) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentd pdf-reader: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve_stdio(library: &Path) -> io::Result<()> {
    // Raw files rather than `Stdout`, which flushes at every newline byte.
    let mut input = BufReader::with_capacity(
        1 << 16,
        File::from(io::stdin().as_fd().try_clone_to_owned()?),
    );
    let mut output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let pdfium = match bind(library) {
        Ok(pdfium) => pdfium,
        Err(why) => return protocol::write_message(&mut output, &Hello::Unusable(why)),
    };
    protocol::write_message(&mut output, &Hello::Ready)?;
    let mut documents = DocumentCache::default();
    let mut frame = Vec::new();
    while protocol::read_frame(&mut input, &mut frame)? {
        let reply = match protocol::decode::<Request>(&frame) {
            Ok(request) => answer(&pdfium, &mut documents, request),
            Err(error) => Reply::Failed(ReadError::Failed(format!("unreadable request: {error}"))),
        };
        protocol::write_message(&mut output, &reply)?;
    }
    Ok(())
}

/// The pid of the process that started the reader, set by the pool: a
/// reader whose parent died before it could look sees it has another one.
pub(crate) const PARENT_VAR: &str = "AGENTD_PDF_READER_PARENT";

/// Ends the process once its parent has gone (it is then re-parented),
/// even while the main thread is stuck inside PDFium.
fn exit_when_orphaned() {
    let parent = std::env::var(PARENT_VAR)
        .ok()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(std::os::unix::process::parent_id);
    let watch = move || loop {
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if let Err(error) = std::thread::Builder::new()
        .name("orphan-watch".into())
        .spawn(watch)
    {
        eprintln!("agentd pdf-reader: no orphan watch ({error}); stdin's end still stops it");
    }
}

fn bind(library: &Path) -> Result<Pdfium, String> {
    Pdfium::bind_to_library(library)
        .map(Pdfium::new)
        .map_err(|error| {
            format!(
                "PDFium at {} could not be loaded: {error}",
                library.display()
            )
        })
}

/// Documents are kept up to this many …
const CACHED_DOCUMENTS: usize = 4;
/// … and this many bytes together (the latest one is kept whatever its size).
const CACHED_BYTES: usize = 256 << 20;

/// The last documents sent, most recently used last.
#[derive(Default)]
struct DocumentCache {
    documents: VecDeque<(DocumentHash, Vec<u8>)>,
}

impl DocumentCache {
    /// The document's bytes, now the most recently used; `None` when a
    /// cached document was asked for and is not (or no longer) here.
    fn get(&mut self, document: DocumentRef<'_>) -> Option<&[u8]> {
        let (hash, sent) = match document {
            DocumentRef::Cached(hash) => (hash, None),
            DocumentRef::Sent { hash, bytes } => (hash, Some(bytes)),
        };
        let entry = match self.documents.iter().position(|(h, _)| *h == hash) {
            Some(at) => self.documents.remove(at)?,
            None => (hash, sent?.to_vec()),
        };
        self.documents.push_back(entry);
        self.evict();
        self.documents.back().map(|(_, bytes)| bytes.as_slice())
    }

    fn evict(&mut self) {
        let mut total: usize = self.documents.iter().map(|(_, bytes)| bytes.len()).sum();
        while self.documents.len() > 1
            && (self.documents.len() > CACHED_DOCUMENTS || total > CACHED_BYTES)
        {
            if let Some((_, bytes)) = self.documents.pop_front() {
                total -= bytes.len();
            }
        }
    }
}

/// One request answered; a Rust panic while reading a document fails that
/// document only.
fn answer(pdfium: &Pdfium, documents: &mut DocumentCache, request: Request<'_>) -> Reply {
    let Some(bytes) = documents.get(request.document) else {
        return Reply::UnknownDocument;
    };
    let work = request.work;
    let max_pages = request.max_pages;
    catch_unwind(AssertUnwindSafe(|| handle(pdfium, bytes, max_pages, work)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            eprintln!("agentd pdf-reader: panicked on a document: {what}");
            Err(DocumentError::Failed(
                "the PDF library failed on this document".into(),
            ))
        })
        .map_or_else(|error| Reply::Failed(error.into()), Reply::Done)
}

fn handle(
    pdfium: &Pdfium,
    bytes: &[u8],
    max_pages: u32,
    work: Work,
) -> Result<Answer, DocumentError> {
    let document = pdfium
        .load_pdf_from_byte_slice(bytes, None)
        .map_err(open_error)?;
    let count = page_count(&document);
    if count > max_pages {
        return Err(DocumentError::TooManyPages {
            pages: count,
            max: max_pages,
        });
    }
    match work {
        Work::Inspect => Ok(Answer::PageCount(count)),
        Work::Extract {
            first,
            count: wanted,
        } => {
            let last = first.saturating_add(wanted).min(count + 1);
            let mut pages = Vec::with_capacity(last.saturating_sub(first) as usize);
            for number in first.max(1)..last {
                let page = document.pages().get((number - 1) as i32).map_err(|error| {
                    DocumentError::CorruptPdf(format!("page {number} cannot be read ({error:?})"))
                })?;
                pages.push(read_page(number, &page)?);
            }
            Ok(Answer::Pages(pages))
        }
        Work::Range(range) => read_range(&document, count, range).map(Answer::Contents),
        Work::Outline => Ok(Answer::Outline {
            entries: outline(&document),
            page_count: count,
        }),
        Work::SelectPages(ranges) => select_pages(pdfium, &document, &ranges).map(Answer::Pdf),
    }
}

fn page_count(document: &PdfDocument<'_>) -> u32 {
    u32::try_from(document.pages().len()).unwrap_or(0)
}

fn open_error(error: PdfiumError) -> DocumentError {
    match error {
        PdfiumError::PdfiumLibraryInternalError(
            PdfiumInternalError::PasswordError | PdfiumInternalError::SecurityError,
        ) => DocumentError::PasswordProtected,
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            DocumentError::CorruptPdf("its structure could not be parsed".into())
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FileError) => {
            DocumentError::CorruptPdf("it is truncated or unreadable".into())
        }
        other => DocumentError::CorruptPdf(format!("it could not be opened ({other:?})")),
    }
}

/// Pages `range.first..range.first + range.count`, cut at the last page.
fn read_range(
    document: &PdfDocument<'_>,
    count: u32,
    range: PageBatch,
) -> Result<Vec<PageContent>, DocumentError> {
    let last = range.first.saturating_add(range.count).min(count + 1);
    let mut pages = Vec::with_capacity(last.saturating_sub(range.first) as usize);
    for number in range.first.max(1)..last {
        let page = document.pages().get((number - 1) as i32).map_err(|error| {
            DocumentError::CorruptPdf(format!("page {number} cannot be read ({error:?})"))
        })?;
        pages.push(read_content(number, &page, range)?);
    }
    Ok(pages)
}

fn read_content(
    number: u32,
    page: &PdfiumPage<'_>,
    range: PageBatch,
) -> Result<PageContent, DocumentError> {
    let glyphs = glyphs(number, page)?;
    let page_text = PdfPage {
        number,
        width: page.width().value,
        height: page.height().value,
        lines: layout::read_page(&glyphs),
    };
    let wanted = match range.render {
        RenderPages::None => false,
        RenderPages::WithoutText => page_text.lines.is_empty(),
        RenderPages::All => true,
    };
    let image = if wanted {
        Some(render(number, page, range.dpi)?)
    } else {
        None
    };
    Ok(PageContent {
        page: page_text,
        glyphs,
        image,
    })
}

/// Renders don't grow past this many pixels a side, whatever the page size.
const MAX_RENDER_SIDE: i32 = 4000;

/// Renders a page at `dpi` on white and encodes it as a PNG (RGBA: the
/// opaque alpha channel costs little once compressed, and saves a copy).
fn render(number: u32, page: &PdfiumPage<'_>, dpi: u16) -> Result<PageImage, DocumentError> {
    let scale = f32::from(dpi) / 72.0;
    let config = PdfRenderConfig::new()
        .scale_page_by_factor(scale)
        .set_maximum_width(MAX_RENDER_SIDE)
        .set_maximum_height(MAX_RENDER_SIDE)
        .set_clear_color(PdfColor::WHITE)
        // RGBA straight from PDFium: no channel swap afterwards.
        .set_reverse_byte_order(true);
    let bitmap = page.render_with_config(&config).map_err(|error| {
        DocumentError::CorruptPdf(format!("page {number} cannot be rendered ({error:?})"))
    })?;
    let (width, height) = (bitmap.width() as u32, bitmap.height() as u32);
    let rgba = bitmap.as_rgba_bytes();
    drop(bitmap);
    let png = encode_png(&rgba, width, height)
        .map_err(|error| DocumentError::Failed(format!("page {number}: PNG encoding: {error}")))?;
    Ok(PageImage { png, width, height })
}

fn encode_png(rgba: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgba)?;
    writer.finish()?;
    Ok(out)
}

fn read_page(number: u32, page: &PdfiumPage<'_>) -> Result<PdfPage, DocumentError> {
    let glyphs = glyphs(number, page)?;
    Ok(PdfPage {
        number,
        width: page.width().value,
        height: page.height().value,
        lines: layout::read_page(&glyphs),
    })
}

/// The characters of a page's text layer, in stored order, with boxes.
fn glyphs(number: u32, page: &PdfiumPage<'_>) -> Result<Vec<Glyph>, DocumentError> {
    let text = page.text().map_err(|error| {
        DocumentError::CorruptPdf(format!("page {number} has unreadable text ({error:?})"))
    })?;
    let chars = text.chars();
    // Sized once: a page holds thousands of characters.
    let mut glyphs = Vec::with_capacity(chars.len());
    for c in chars.iter() {
        let Some(ch) = c.unicode_char() else {
            continue;
        };
        let rect = c.loose_bounds().map_or(Rect::EMPTY, |b| Rect {
            left: b.left().value,
            bottom: b.bottom().value,
            right: b.right().value,
            top: b.top().value,
        });
        glyphs.push(Glyph { ch, rect });
    }
    Ok(glyphs)
}

/// Outline entries read at most; an outline with a cycle or an enormous
/// one stops here.
const MAX_OUTLINE_ENTRIES: usize = 10_000;

fn outline(document: &PdfDocument<'_>) -> Vec<OutlineEntry> {
    document
        .bookmarks()
        .iter()
        .take(MAX_OUTLINE_ENTRIES)
        .map(|bookmark| OutlineEntry {
            title: bookmark.title().unwrap_or_default().trim().to_owned(),
            level: depth(&bookmark),
            page: target_page(&bookmark),
        })
        .collect()
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

/// A new PDF of `ranges` of `source`, in the order given; a range beyond
/// the last page is an error naming it.
fn select_pages(
    pdfium: &Pdfium,
    source: &PdfDocument<'_>,
    ranges: &[PageRange],
) -> Result<Vec<u8>, DocumentError> {
    let count = page_count(source);
    let mut selected = pdfium.create_new_pdf().map_err(|error| {
        DocumentError::Failed(format!("a new PDF could not be made ({error:?})"))
    })?;
    for range in ranges {
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
}

/// pdfium-render's page type, renamed so it does not clash with ours.
type PdfiumPage<'a> = pdfium_render::prelude::PdfPage<'a>;

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(hash: u8, bytes: &[u8]) -> DocumentRef<'_> {
        DocumentRef::Sent {
            hash: [hash; 32],
            bytes,
        }
    }

    #[test]
    fn the_cache_keeps_the_last_documents_and_forgets_the_oldest() {
        let mut cache = DocumentCache::default();
        for n in 0..CACHED_DOCUMENTS as u8 {
            assert_eq!(cache.get(sent(n, &[n])), Some([n].as_slice()));
        }
        // Document 0, used again, is now the most recent.
        assert_eq!(
            cache.get(DocumentRef::Cached([0; 32])),
            Some([0].as_slice())
        );
        cache.get(sent(9, &[9]));
        assert_eq!(
            cache.get(DocumentRef::Cached([1; 32])),
            None,
            "1 was the oldest"
        );
        assert_eq!(
            cache.get(DocumentRef::Cached([0; 32])),
            Some([0].as_slice())
        );
    }

    #[test]
    fn a_document_over_the_byte_budget_stays_alone() {
        let mut cache = DocumentCache::default();
        cache.get(sent(1, b"small"));
        let large = vec![0; CACHED_BYTES + 1];
        assert_eq!(
            cache.get(sent(2, &large)).map(<[u8]>::len),
            Some(large.len())
        );
        assert_eq!(cache.get(DocumentRef::Cached([1; 32])), None);
        assert!(cache.get(DocumentRef::Cached([2; 32])).is_some());
    }
}
