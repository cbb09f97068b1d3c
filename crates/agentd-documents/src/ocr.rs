//! Text of a rendered page by OCR: the `tesseract` command (Debian packages
//! `tesseract-ocr` and `tesseract-ocr-eng`), one subprocess per page, a few
//! at a time, each with a time limit.
//!
//! Only pages without a text layer come here: the text layer is faster and
//! keeps tables intact.
//!
//! Tesseract's TSV output gives each word with its box in image pixels
//! (origin top left). Those boxes are turned into characters with boxes in
//! PDF points (origin bottom left, as the text layer gives them; a word's
//! box is shared evenly among its characters), so that a scanned page is
//! searched for `use_source` exactly like a page with a text layer.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::layout::{Glyph, Rect};
use crate::DocumentError;

/// Pages read by OCR at once, in the whole process (each takes a core).
const PAGES_AT_ONCE: usize = 2;
/// One page's OCR may take this long before it is given up.
const PAGE_TIME_LIMIT: Duration = Duration::from_secs(120);

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(PAGES_AT_ONCE))
}

/// What OCR read on a page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OcrPage {
    /// Lines in Tesseract's reading order, a blank line between paragraphs.
    pub text: String,
    /// The text's characters with their boxes (PDF points, origin at the
    /// bottom left); whitespace between words and lines has an empty box.
    pub glyphs: Vec<Glyph>,
}

/// Where a page image lies: the page's size in points and the image's in
/// pixels (renders may be capped, so the scale is measured, not assumed).
#[derive(Clone, Copy, Debug)]
pub struct PageGeometry {
    pub page_width: f32,
    pub page_height: f32,
    pub image_width: u32,
    pub image_height: u32,
}

/// The text of a page image (PNG), in English, with character boxes.
pub async fn read_page(png: &[u8], geometry: PageGeometry) -> Result<OcrPage, DocumentError> {
    let tsv = run_tesseract(png).await?;
    Ok(page_from_tsv(&tsv, geometry))
}

async fn run_tesseract(png: &[u8]) -> Result<String, DocumentError> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|_| DocumentError::Failed("the OCR queue has closed".into()))?;
    let mut child = Command::new(program())
        .args(["stdin", "stdout", "-l", "eng", "--psm", "3", "tsv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => DocumentError::OcrMissing,
            _ => DocumentError::Failed(format!("OCR could not start: {error}")),
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| DocumentError::Failed("OCR has no input".into()))?;
    let image = png.to_vec();
    // Written on its own task: tesseract reads the whole image before it
    // writes, but a large image must not block waiting for the pipe.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&image).await;
    });
    let output = tokio::time::timeout(PAGE_TIME_LIMIT, child.wait_with_output())
        .await
        .map_err(|_| {
            DocumentError::Failed(format!(
                "OCR of a page took more than {} s",
                PAGE_TIME_LIMIT.as_secs()
            ))
        })?
        .map_err(|error| DocumentError::Failed(format!("OCR failed: {error}")))?;
    let _ = writer.await;
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr);
        tracing::warn!(%reason, "tesseract failed on a page");
        return Err(DocumentError::Failed(
            "OCR failed on a page (tesseract exited with an error)".into(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One word of Tesseract's TSV (level 5), with the line it belongs to.
struct TsvWord<'a> {
    /// (block, paragraph, line) numbers.
    line: (u32, u32, u32),
    left: f32,
    top: f32,
    width: f32,
    height: f32,
    text: &'a str,
}

/// Columns: level, page_num, block_num, par_num, line_num, word_num, left,
/// top, width, height, conf, text.
fn tsv_word(row: &str) -> Option<TsvWord<'_>> {
    let columns: Vec<&str> = row.splitn(12, '\t').collect();
    if columns.len() != 12 || columns[0] != "5" {
        return None;
    }
    let int = |i: usize| columns[i].trim().parse::<u32>().ok();
    let text = columns[11].trim();
    if text.is_empty() {
        return None;
    }
    Some(TsvWord {
        line: (int(2)?, int(3)?, int(4)?),
        left: int(6)? as f32,
        top: int(7)? as f32,
        width: int(8)? as f32,
        height: int(9)? as f32,
        text,
    })
}

fn page_from_tsv(tsv: &str, geometry: PageGeometry) -> OcrPage {
    let x_scale = geometry.page_width / geometry.image_width.max(1) as f32;
    let y_scale = geometry.page_height / geometry.image_height.max(1) as f32;
    let mut page = OcrPage::default();
    let push = |page: &mut OcrPage, ch: char, rect: Rect| {
        page.text.push(ch);
        page.glyphs.push(Glyph { ch, rect });
    };
    let mut previous: Option<(u32, u32, u32)> = None;
    for word in tsv.lines().skip(1).filter_map(tsv_word) {
        match previous {
            Some(line) if line == word.line => push(&mut page, ' ', Rect::EMPTY),
            Some((block, paragraph, _)) => {
                push(&mut page, '\n', Rect::EMPTY);
                if (block, paragraph) != (word.line.0, word.line.1) {
                    push(&mut page, '\n', Rect::EMPTY);
                }
            }
            None => {}
        }
        previous = Some(word.line);
        let count = word.text.chars().count() as f32;
        let top = geometry.page_height - word.top * y_scale;
        let bottom = geometry.page_height - (word.top + word.height) * y_scale;
        for (index, ch) in word.text.chars().enumerate() {
            let left = (word.left + word.width * index as f32 / count) * x_scale;
            let right = (word.left + word.width * (index + 1) as f32 / count) * x_scale;
            push(
                &mut page,
                ch,
                Rect {
                    left,
                    bottom,
                    right,
                    top,
                },
            );
        }
    }
    if previous.is_some() {
        push(&mut page, '\n', Rect::EMPTY);
    }
    page
}

/// `AGENTD_TESSERACT` (a path), or `tesseract` from the PATH.
fn program() -> String {
    std::env::var("AGENTD_TESSERACT")
        .ok()
        .filter(|path| !path.trim().is_empty())
        .unwrap_or_else(|| "tesseract".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t1000\t2000\t-1\t
4\t1\t1\t1\t1\t0\t100\t200\t500\t40\t-1\t
5\t1\t1\t1\t1\t1\t100\t200\t200\t40\t96.5\tItem
5\t1\t1\t1\t1\t2\t320\t200\t100\t40\t95.1\t42
5\t1\t1\t1\t2\t1\t100\t260\t300\t40\t91.0\tnext
5\t1\t2\t1\t1\t1\t100\t400\t100\t40\t90.0\tnew
";

    /// A 500 × 1000 point page rendered at 2 pixels a point.
    const GEOMETRY: PageGeometry = PageGeometry {
        page_width: 500.0,
        page_height: 1000.0,
        image_width: 1000,
        image_height: 2000,
    };

    #[test]
    fn words_become_lines_and_paragraphs() {
        assert_eq!(page_from_tsv(TSV, GEOMETRY).text, "Item 42\nnext\n\nnew\n");
    }

    #[test]
    fn word_boxes_become_character_boxes_in_points_from_the_bottom() {
        let page = page_from_tsv(TSV, GEOMETRY);
        let four = page.glyphs.iter().find(|g| g.ch == '4').unwrap();
        // "42" spans pixels 320-420, top 200, 40 high: points 160-210,
        // 100-120 from the top of a 1000-point page.
        assert_eq!(
            four.rect,
            Rect {
                left: 160.0,
                right: 185.0,
                top: 900.0,
                bottom: 880.0
            }
        );
        let letters = page.glyphs.iter().filter(|g| !g.ch.is_whitespace()).count();
        assert_eq!(letters, "Item42nextnew".len());
    }

    #[test]
    fn an_empty_page_reads_as_nothing() {
        let header = TSV.lines().next().unwrap();
        assert_eq!(page_from_tsv(header, GEOMETRY), OcrPage::default());
    }
}
