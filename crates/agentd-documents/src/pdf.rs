//! PDF text through PDFium, on one dedicated thread.
//!
//! PDFium is not thread-safe, not even across documents, so exactly one
//! thread per process ever calls it: requests arrive on a channel and are
//! answered one at a time. The library is bound lazily at the first request
//! (so a server without it starts, and says what is missing when a PDF
//! arrives) and, as pdfium-render allows only one binding per process, the
//! thread is shared by every `PdfReader` of the process.
//!
//! A Rust panic while reading one document is caught on that thread and
//! becomes an error for that document only; the thread carries on. A hard
//! crash inside the C library (a segmentation fault) cannot be caught in
//! process: it ends the server, and the jobs it was running are picked up
//! again by a worker once their lease expires, up to the bounded number of
//! attempts, and then fail.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use pdfium_render::prelude::*;
use tokio::sync::oneshot;

use crate::layout::{self, Glyph, Line, Rect};
use crate::DocumentError;

/// The text of one page, in reading order.
#[derive(Clone, Debug)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderPages {
    None,
    /// Pages whose text layer holds no text (scans, pictures of text).
    WithoutText,
    All,
}

/// Pages `first..first + count` (1-based), read with their characters'
/// boxes and, as asked, rendered.
#[derive(Clone, Copy, Debug)]
pub struct PageBatch {
    pub first: u32,
    pub count: u32,
    pub render: RenderPages,
    /// Resolution of the renders, in dots per inch.
    pub dpi: u16,
}

/// A rendered page: a PNG image.
#[derive(Clone, Debug)]
pub struct PageImage {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// One page with what the text layer says of each character and, when
/// asked, its rendering.
#[derive(Clone, Debug)]
pub struct PageContent {
    pub page: PdfPage,
    /// Characters in the order the file stores them, each with its box
    /// (PDF points, origin at the bottom left).
    pub glyphs: Vec<Glyph>,
    pub image: Option<PageImage>,
}

impl PageContent {
    /// A page with no text in its text layer (a scan).
    pub fn has_no_text(&self) -> bool {
        self.page.lines.is_empty()
    }
}

enum Work {
    /// Opens the document and counts its pages.
    Inspect,
    /// Reads the text of every page.
    Extract,
    /// Anything else done with the open document (see
    /// [`PdfReader::with_document`]).
    Task(DocumentTask),
    /// Reads a range of pages with their boxes and renders.
    Range(PageBatch),
}

/// Work on an open document, run on the PDFium thread; its answer comes back
/// type-erased and [`PdfReader::with_document`] restores its type.
type DocumentTask =
    Box<dyn FnOnce(&Pdfium, &PdfDocument<'_>) -> Result<Box<dyn Any + Send>, DocumentError> + Send>;

enum Answer {
    PageCount(u32),
    Pages(Vec<PdfPage>),
    Task(Box<dyn Any + Send>),
    Contents(Vec<PageContent>),
}

struct Request {
    bytes: Arc<[u8]>,
    max_pages: u32,
    work: Work,
    reply: oneshot::Sender<Result<Answer, DocumentError>>,
    /// The asker's span (a job's), entered while the request is handled,
    /// so that what the PDFium thread logs names the job.
    span: tracing::Span,
}

/// A handle to the process's PDFium thread.
#[derive(Clone, Debug)]
pub struct PdfReader {
    requests: mpsc::Sender<Request>,
    max_pages: u32,
}

/// The sender of the one PDFium thread, created by the first reader.
static THREAD: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

impl PdfReader {
    /// `library`: the path of `libpdfium.so`. The first reader of a process
    /// starts the PDFium thread with its path; later readers share it.
    pub fn new(library: PathBuf, max_pages: u32) -> Self {
        let sender = THREAD.get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("pdfium".into())
                .spawn(move || serve(&library, receiver))
                .expect("the PDFium thread could not be started");
            Mutex::new(sender)
        });
        let requests = sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Self {
            requests,
            max_pages,
        }
    }

    /// The number of pages; fails like `extract` for encrypted, corrupt or
    /// oversized documents, without reading their text.
    pub async fn page_count(&self, bytes: Vec<u8>) -> Result<u32, DocumentError> {
        self.count(bytes.into()).await
    }

    /// `page_count` for a document held by several readers of its pages.
    pub async fn count(&self, bytes: Arc<[u8]>) -> Result<u32, DocumentError> {
        match self.ask(bytes, Work::Inspect).await? {
            Answer::PageCount(count) => Ok(count),
            Answer::Pages(pages) => Ok(pages.len() as u32),
            Answer::Task(_) => Err(unexpected_answer()),
            Answer::Contents(pages) => Ok(pages.len() as u32),
        }
    }

    /// A range of pages with their characters' boxes and renders: what an
    /// engine reads a few pages at a time, so that memory follows the pages
    /// in flight rather than the document's size. A range past the end is
    /// cut at the last page.
    pub async fn pages(
        &self,
        bytes: Arc<[u8]>,
        range: PageBatch,
    ) -> Result<Vec<PageContent>, DocumentError> {
        match self.ask(bytes, Work::Range(range)).await? {
            Answer::Contents(pages) => Ok(pages),
            _ => Err(unexpected_answer()),
        }
    }

    /// Every page's lines in reading order.
    pub async fn extract(&self, bytes: Vec<u8>) -> Result<Vec<PdfPage>, DocumentError> {
        match self.ask(bytes.into(), Work::Extract).await? {
            Answer::Pages(pages) => Ok(pages),
            _ => Err(unexpected_answer()),
        }
    }

    /// Runs `task` on the PDFium thread with the document open (after the
    /// same checks as `extract`: encrypted, corrupt, too many pages). For
    /// work on documents other than reading text: outlines, new documents
    /// made of some pages (`crate::pdf_pages`).
    pub(crate) async fn with_document<R: Send + 'static>(
        &self,
        bytes: Vec<u8>,
        task: impl FnOnce(&Pdfium, &PdfDocument<'_>) -> Result<R, DocumentError> + Send + 'static,
    ) -> Result<R, DocumentError> {
        let task: DocumentTask = Box::new(move |pdfium, document| {
            task(pdfium, document).map(|answer| Box::new(answer) as Box<dyn Any + Send>)
        });
        match self.ask(bytes.into(), Work::Task(task)).await? {
            Answer::Task(answer) => answer
                .downcast::<R>()
                .map(|answer| *answer)
                .map_err(|_| unexpected_answer()),
            _ => Err(unexpected_answer()),
        }
    }

    async fn ask(&self, bytes: Arc<[u8]>, work: Work) -> Result<Answer, DocumentError> {
        check_header(&bytes)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            bytes,
            max_pages: self.max_pages,
            work,
            reply,
            span: tracing::Span::current(),
        };
        self.requests
            .send(request)
            .map_err(|_| DocumentError::Failed("the PDF reader has stopped".into()))?;
        answer
            .await
            .map_err(|_| DocumentError::Failed("the PDF reader stopped while reading".into()))?
    }
}

fn unexpected_answer() -> DocumentError {
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

/// The PDFium thread: binds the library on first use, then answers requests
/// one by one, each inside `catch_unwind`.
fn serve(library: &Path, requests: mpsc::Receiver<Request>) {
    let mut pdfium: Option<Pdfium> = None;
    for request in requests {
        let _in_askers_span = request.span.enter();
        let answer = catch_unwind(AssertUnwindSafe(|| {
            let pdfium = match &pdfium {
                Some(pdfium) => pdfium,
                None => pdfium.insert(bind(library)?),
            };
            handle(pdfium, &request.bytes, request.max_pages, request.work)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "the PDF reader panicked on a document");
            Err(DocumentError::Failed(
                "the PDF library failed on this document".into(),
            ))
        });
        // The asker may have gone (a cancelled job); nothing to do then.
        let _ = request.reply.send(answer);
    }
}

fn bind(library: &Path) -> Result<Pdfium, DocumentError> {
    if !library.is_file() {
        return Err(DocumentError::PdfLibraryMissing(library.to_path_buf()));
    }
    let bindings = Pdfium::bind_to_library(library).map_err(|error| {
        tracing::error!(path = %library.display(), %error, "PDFium could not be loaded");
        DocumentError::PdfLibraryUnusable(library.to_path_buf())
    })?;
    Ok(Pdfium::new(bindings))
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
    let count = u32::try_from(document.pages().len()).unwrap_or(0);
    if count > max_pages {
        return Err(DocumentError::TooManyPages {
            pages: count,
            max: max_pages,
        });
    }
    match work {
        Work::Inspect => Ok(Answer::PageCount(count)),
        Work::Extract => {
            let mut pages = Vec::with_capacity(count as usize);
            for (index, page) in document.pages().iter().enumerate() {
                pages.push(read_page(index as u32 + 1, &page)?);
            }
            Ok(Answer::Pages(pages))
        }
        Work::Task(task) => task(pdfium, &document).map(Answer::Task),
        Work::Range(range) => {
            let last = range.first.saturating_add(range.count).min(count + 1);
            let mut pages = Vec::with_capacity(last.saturating_sub(range.first) as usize);
            for number in range.first.max(1)..last {
                let page = document.pages().get((number - 1) as i32).map_err(|error| {
                    DocumentError::CorruptPdf(format!("page {number} cannot be read ({error:?})"))
                })?;
                pages.push(read_content(number, &page, range)?);
            }
            Ok(Answer::Contents(pages))
        }
    }
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

/// pdfium-render's page type, renamed so it does not clash with ours.
type PdfiumPage<'a> = pdfium_render::prelude::PdfPage<'a>;
