//! The pipe protocol between the server's pool of PDF readers
//! ([`crate::pool`]) and each reader process ([`crate::reader`]).
//!
//! Every message is a frame: its length (u32, little-endian), then the
//! message in postcard (serde, compact: varint integers, raw bytes for
//! documents and images). The reader first writes a [`Hello`], then answers
//! each [`Request`] with one [`Reply`], in order.
//!
//! Documents are sent once: a request names its document by content hash
//! and carries the bytes only when the reader may not have them; the reader
//! keeps the last few it was sent and answers [`Reply::UnknownDocument`]
//! when it no longer has one, and the pool then sends it again.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::pdf::{PageBatch, PageContent, PdfPage};
use crate::pdf_pages::{OutlineEntry, PageRange};
use crate::DocumentError;

/// Frames larger than this are refused (a reply of a batch of rendered
/// pages is tens of MiB; a larger length is a broken stream).
const MAX_FRAME_BYTES: usize = 1 << 30;

/// SHA-256 of a document's bytes.
pub type DocumentHash = [u8; 32];

/// What a reader says once it has started.
#[derive(Debug, Serialize, Deserialize)]
pub enum Hello {
    Ready,
    /// The library could not be loaded; why, for the server's log.
    Unusable(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request<'a> {
    #[serde(borrow)]
    pub document: DocumentRef<'a>,
    /// Documents with more pages are refused.
    pub max_pages: u32,
    pub work: Work,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DocumentRef<'a> {
    /// A document this reader was sent before.
    Cached(DocumentHash),
    Sent {
        hash: DocumentHash,
        #[serde(with = "serde_bytes", borrow)]
        bytes: &'a [u8],
    },
}

/// What is done with the open document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Work {
    /// Counts the pages (after the checks every request makes: encrypted,
    /// corrupt, too many pages).
    Inspect,
    /// The lines in reading order of pages `first..first + count`
    /// (1-based; a range past the end is cut at the last page).
    Extract { first: u32, count: u32 },
    /// A range of pages with their characters' boxes and renders.
    Range(PageBatch),
    /// The outline (bookmarks) and the page count.
    Outline,
    /// A new PDF made of these pages, in this order.
    SelectPages(Vec<PageRange>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Done(Answer),
    Failed(ReadError),
    /// The request named a cached document the reader no longer has.
    UnknownDocument,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    PageCount(u32),
    Pages(Vec<PdfPage>),
    Contents(Vec<PageContent>),
    Outline {
        entries: Vec<OutlineEntry>,
        page_count: u32,
    },
    Pdf(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// The [`DocumentError`]s a reader can answer with.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReadError {
    PasswordProtected,
    CorruptPdf(String),
    TooManyPages {
        pages: u32,
        max: u32,
    },
    /// Pages asked for that the document does not have.
    PagesOutside(String),
    /// The reader's own failure (a panic caught, a PNG not encoded).
    Failed(String),
}

impl From<DocumentError> for ReadError {
    fn from(error: DocumentError) -> Self {
        match error {
            DocumentError::PasswordProtected => Self::PasswordProtected,
            DocumentError::CorruptPdf(reason) => Self::CorruptPdf(reason),
            DocumentError::TooManyPages { pages, max } => Self::TooManyPages { pages, max },
            DocumentError::Malformed { reason, .. } => Self::PagesOutside(reason),
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<ReadError> for DocumentError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::PasswordProtected => Self::PasswordProtected,
            ReadError::CorruptPdf(reason) => Self::CorruptPdf(reason),
            ReadError::TooManyPages { pages, max } => Self::TooManyPages { pages, max },
            ReadError::PagesOutside(reason) => Self::Malformed {
                format: "PDF",
                reason,
            },
            ReadError::Failed(reason) => Self::Failed(reason),
        }
    }
}

/// A message as one frame, ready to be written at once.
pub fn encode(message: &impl Serialize) -> io::Result<Vec<u8>> {
    let frame = postcard::to_extend(message, vec![0; 4]).map_err(invalid_data)?;
    let length = u32::try_from(frame.len() - 4)
        .ok()
        .filter(|&length| length as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| invalid_data("the message is too large for a frame"))?;
    let mut frame = frame;
    frame[..4].copy_from_slice(&length.to_le_bytes());
    Ok(frame)
}

pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> io::Result<T> {
    postcard::from_bytes(frame).map_err(invalid_data)
}

fn frame_length(header: [u8; 4]) -> io::Result<usize> {
    let length = u32::from_le_bytes(header) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(invalid_data(format!("a frame of {length} bytes")));
    }
    Ok(length)
}

/// Reads one frame's message into `frame`; `false` at a clean end of the
/// stream (before a frame starts).
pub fn read_frame(input: &mut impl Read, frame: &mut Vec<u8>) -> io::Result<bool> {
    let mut header = [0; 4];
    match input.read_exact(&mut header) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(error) => return Err(error),
    }
    read_message(input, frame_length(header)?, frame)?;
    Ok(true)
}

/// Room made for a message before its bytes arrive: a broken stream's
/// length does not allocate more than it sends.
const RESERVED_BYTES: usize = 16 << 20;

/// The message of `length` bytes, into `frame` without zeroing it first
/// (replies carry MiBs of page images).
fn read_message(input: &mut impl Read, length: usize, frame: &mut Vec<u8>) -> io::Result<()> {
    frame.clear();
    frame.reserve(length.min(RESERVED_BYTES));
    input.take(length as u64).read_to_end(frame)?;
    if frame.len() < length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

pub fn write_message(output: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    output.write_all(&encode(message)?)?;
    output.flush()
}

/// The async twin of [`read_frame`]; the end of the stream is an error
/// (the pool reads only when it expects an answer).
pub async fn read_frame_async(
    input: &mut (impl AsyncRead + Unpin),
    frame: &mut Vec<u8>,
) -> io::Result<()> {
    let mut header = [0; 4];
    input.read_exact(&mut header).await?;
    let length = frame_length(header)?;
    frame.clear();
    frame.reserve(length.min(RESERVED_BYTES));
    input.take(length as u64).read_to_end(frame).await?;
    if frame.len() < length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

pub async fn write_message_async(
    output: &mut (impl AsyncWrite + Unpin),
    message: &impl Serialize,
) -> io::Result<()> {
    output.write_all(&encode(message)?).await?;
    output.flush().await
}

/// Glyphs as one byte string of 20 bytes each (the character as a u32,
/// then its box's left, bottom, right and top as f32, little-endian): a
/// page has thousands, and a copy per glyph is much cheaper than a
/// serializer call per field. For `#[serde(with = "…")]`.
pub mod packed_glyphs {
    use std::borrow::Cow;

    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    use crate::layout::{Glyph, Rect};

    const GLYPH_BYTES: usize = 20;

    pub fn serialize<S: Serializer>(glyphs: &[Glyph], serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(glyphs.len() * GLYPH_BYTES);
        for glyph in glyphs {
            let Rect {
                left,
                bottom,
                right,
                top,
            } = glyph.rect;
            bytes.extend_from_slice(&u32::from(glyph.ch).to_le_bytes());
            for side in [left, bottom, right, top] {
                bytes.extend_from_slice(&side.to_le_bytes());
            }
        }
        serde_bytes::serialize(bytes.as_slice(), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Glyph>, D::Error> {
        let bytes: Cow<'de, [u8]> = serde_bytes::deserialize(deserializer)?;
        if !bytes.len().is_multiple_of(GLYPH_BYTES) {
            return Err(D::Error::custom("glyphs of a partial length"));
        }
        bytes
            .chunks_exact(GLYPH_BYTES)
            .map(|packed| {
                let word = |at: usize| {
                    let mut four = [0; 4];
                    four.copy_from_slice(&packed[at..at + 4]);
                    four
                };
                let ch = char::from_u32(u32::from_le_bytes(word(0)))
                    .ok_or_else(|| D::Error::custom("a glyph that is not a character"))?;
                let side = |at| f32::from_le_bytes(word(at));
                Ok(Glyph {
                    ch,
                    rect: Rect {
                        left: side(4),
                        bottom: side(8),
                        right: side(12),
                        top: side(16),
                    },
                })
            })
            .collect()
    }
}

fn invalid_data(error: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Glyph, Line, Rect};
    use crate::pdf::{PageImage, RenderPages};

    #[test]
    fn requests_carry_their_document_and_work() {
        let bytes = b"%PDF-1.7 ...".as_slice();
        let request = Request {
            document: DocumentRef::Sent {
                hash: [7; 32],
                bytes,
            },
            max_pages: 2000,
            work: Work::Range(PageBatch {
                first: 3,
                count: 10,
                render: RenderPages::WithoutText,
                dpi: 100,
            }),
        };
        let frame = encode(&request).unwrap();
        let mut reader = frame.as_slice();
        let mut body = Vec::new();
        assert!(read_frame(&mut reader, &mut body).unwrap());
        assert!(!read_frame(&mut reader, &mut body).unwrap(), "clean end");
        let back: Request = decode(&body).unwrap();
        match back.document {
            DocumentRef::Sent { hash, bytes: sent } => {
                assert_eq!(hash, [7; 32]);
                assert_eq!(sent, bytes);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            back.work,
            Work::Range(PageBatch {
                first: 3,
                count: 10,
                render: RenderPages::WithoutText,
                dpi: 100
            })
        ));
    }

    #[test]
    fn page_contents_come_back_whole() {
        let rect = Rect {
            left: 72.0,
            bottom: 780.5,
            right: 79.25,
            top: 790.0,
        };
        let content = PageContent {
            page: PdfPage {
                number: 4,
                width: 595.0,
                height: 842.0,
                lines: vec![Line {
                    text: "Tä".into(),
                    rect,
                }],
            },
            glyphs: vec![Glyph { ch: 'T', rect }, Glyph { ch: 'ä', rect }],
            image: Some(PageImage {
                png: vec![0x89, b'P', b'N', b'G'],
                width: 827,
                height: 1169,
            }),
        };
        let frame = encode(&Reply::Done(Answer::Contents(vec![content.clone()]))).unwrap();
        match decode(&frame[4..]).unwrap() {
            Reply::Done(Answer::Contents(pages)) => {
                assert_eq!(pages.len(), 1);
                assert_eq!(pages[0].page.lines, content.page.lines);
                assert_eq!(pages[0].glyphs, content.glyphs);
                assert_eq!(pages[0].image.as_ref().unwrap().png, b"\x89PNG");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_truncated_stream_is_an_error_and_a_huge_length_is_refused() {
        let frame = encode(&Hello::Ready).unwrap();
        let mut cut = &frame[..frame.len() - 1];
        assert!(read_frame(&mut cut, &mut Vec::new()).is_err());
        let mut huge = [0xff_u8, 0xff, 0xff, 0xff].as_slice();
        assert!(read_frame(&mut huge, &mut Vec::new()).is_err());
    }
}
