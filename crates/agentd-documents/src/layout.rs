//! Reading order from geometry: characters with boxes → words → lines →
//! blocks of columns, read column by column, top to bottom.
//!
//! PDF files store text in whatever order the producer wrote it (a
//! two-column page may hold "left line 1, right line 1, left line 2, …"), so
//! the stored order is only used to join characters into words; everything
//! after that follows the boxes. Coordinates are PDF points with the origin at
//! the bottom left (y grows upwards).
//!
//! The rules, in order:
//! 1. **Words**: consecutive characters on the same baseline with no
//!    whitespace and no wide gap between them.
//! 2. **Lines**: words whose vertical extents overlap by at least half the
//!    smaller height, sorted left to right.
//! 3. **Segments**: a line is cut where the space between two words is wider
//!    than a column gutter could be mistaken for a word space (`gutter_gap`).
//! 4. **Blocks**: consecutive lines (top to bottom) that share at least one
//!    interior vertical gap (a gutter) form a block; a line that crosses the
//!    gutter (a full-width title) or a large vertical gap starts a new block.
//! 5. A block with gutters whose segments are prose (long) is read column by
//!    column; otherwise (a table, key/value pairs) row by row, cells joined by
//!    a tab, so that a table row stays on one line.

use serde::{Deserialize, Serialize};

/// One character and its box on the page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Glyph {
    pub ch: char,
    pub rect: Rect,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    pub left: f32,
    pub bottom: f32,
    pub right: f32,
    pub top: f32,
}

impl Rect {
    /// The box of a character that has none (a generated space or line
    /// break).
    pub const EMPTY: Rect = Rect {
        left: 0.0,
        bottom: 0.0,
        right: 0.0,
        top: 0.0,
    };

    pub fn height(&self) -> f32 {
        self.top - self.bottom
    }

    fn width(&self) -> f32 {
        self.right - self.left
    }

    fn union(&self, other: &Rect) -> Rect {
        Rect {
            left: self.left.min(other.left),
            bottom: self.bottom.min(other.bottom),
            right: self.right.max(other.right),
            top: self.top.max(other.top),
        }
    }

    fn vertical_overlap(&self, other: &Rect) -> f32 {
        self.top.min(other.top) - self.bottom.max(other.bottom)
    }

    fn center_x(&self) -> f32 {
        (self.left + self.right) / 2.0
    }
}

/// A line of text in reading order, with the box around it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub text: String,
    pub rect: Rect,
}

/// Lines are joined at this fraction of the smaller height of two words.
const SAME_LINE_OVERLAP: f32 = 0.5;
/// A gap wider than this many glyph heights ends a word (PDFium also marks
/// most word breaks with a generated space).
const WORD_GAP: f32 = 0.35;
/// A gap wider than this many glyph heights separates segments (columns,
/// table cells); word spaces are about a quarter of it.
const SEGMENT_GAP: f32 = 0.8;
/// A vertical gap of more than this many line heights ends a block.
const BLOCK_BREAK: f32 = 2.0;
/// Columns whose segments have at least this many characters (median) are
/// prose, read column by column; shorter ones are table cells.
const PROSE_SEGMENT_CHARS: usize = 20;

struct Word {
    /// Where the word's text lies in the page's text buffer (one buffer per
    /// page rather than a string per word: pages hold thousands of words).
    text: std::ops::Range<usize>,
    rect: Rect,
    /// Where the word's last glyph starts.
    last_left: f32,
}

#[derive(Clone)]
struct Segment {
    text: String,
    rect: Rect,
}

struct TextLine {
    rect: Rect,
    segments: Vec<Segment>,
    /// Horizontal gaps of this line across the page's text extent.
    gaps: Gaps,
}

/// The lines of one page, in reading order.
pub fn read_page(glyphs: &[Glyph]) -> Vec<Line> {
    let mut buffer = String::with_capacity(glyphs.len());
    let words = words(glyphs, &mut buffer);
    if words.is_empty() {
        return Vec::new();
    }
    let gap = SEGMENT_GAP * median(words.iter().map(|w| w.rect.height()));
    let mut lines: Vec<TextLine> = lines(words)
        .into_iter()
        .map(|line| segments(line, gap, &buffer))
        .map(|segments| TextLine {
            rect: segments
                .iter()
                .skip(1)
                .fold(segments[0].rect, |r, s| r.union(&s.rect)),
            segments,
            gaps: Vec::new(),
        })
        .collect();
    let extent = lines
        .iter()
        .skip(1)
        .fold(lines[0].rect, |r, l| r.union(&l.rect));
    for line in &mut lines {
        line.gaps = line_gaps(&line.segments, extent.left, extent.right, gap);
    }
    let extent = Extent {
        left: extent.left,
        right: extent.right,
    };
    let mut out = Vec::new();
    for block in blocks(lines, extent) {
        read_block(block, extent, &mut out);
    }
    out
}

/// Horizontal stretches of empty space in a line: `(from, to)`.
type Gaps = Vec<(f32, f32)>;

/// The horizontal extent of a page's text.
#[derive(Clone, Copy)]
struct Extent {
    left: f32,
    right: f32,
}

impl Extent {
    /// A gap strictly inside the text (a gutter), not a margin.
    fn is_interior(&self, gap: (f32, f32)) -> bool {
        gap.0 > self.left + 0.5 && gap.1 < self.right - 0.5
    }

    fn any_interior(&self, gaps: &[(f32, f32)]) -> bool {
        gaps.iter().any(|&gap| self.is_interior(gap))
    }
}

fn words(glyphs: &[Glyph], buffer: &mut String) -> Vec<Word> {
    let mut words = Vec::with_capacity(glyphs.len() / 4);
    let mut current: Option<Word> = None;
    for glyph in glyphs {
        if glyph.ch.is_whitespace() || glyph.ch.is_control() {
            words.extend(current.take());
            continue;
        }
        let rect = glyph.rect;
        if rect.width() <= 0.0 && rect.height() <= 0.0 {
            continue;
        }
        if let Some(word) = &mut current {
            let height = word.rect.height().max(rect.height());
            let same_line = word.rect.vertical_overlap(&rect)
                >= SAME_LINE_OVERLAP * word.rect.height().min(rect.height());
            let gap = rect.left - word.rect.right;
            // The parts of a ligature ("fi") share one box, so a glyph may
            // start where the previous one started, but not before it.
            let forward = rect.left >= word.last_left - 0.1 * height;
            if same_line && forward && gap <= WORD_GAP * height {
                buffer.push(glyph.ch);
                word.text.end = buffer.len();
                word.rect = word.rect.union(&rect);
                word.last_left = rect.left;
                continue;
            }
            words.extend(current.take());
        }
        let start = buffer.len();
        buffer.push(glyph.ch);
        current = Some(Word {
            text: start..buffer.len(),
            rect,
            last_left: rect.left,
        });
    }
    words.extend(current);
    words
}

/// Groups words into lines, top to bottom, each sorted left to right.
fn lines(mut words: Vec<Word>) -> Vec<Vec<Word>> {
    // Unstable sorts need no scratch buffer; ties go left to right.
    words.sort_unstable_by(|a, b| {
        b.rect
            .top
            .total_cmp(&a.rect.top)
            .then(a.rect.left.total_cmp(&b.rect.left))
    });
    let mut lines: Vec<(Rect, Vec<Word>)> = Vec::new();
    for word in words {
        // Lines were started top to bottom, so only the last few can reach
        // down to this word: stop once they are well above it.
        let reach = word.rect.top + 3.0 * word.rect.height();
        let best = lines
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, (rect, _))| rect.top <= reach)
            .filter_map(|(i, (rect, _))| {
                let overlap = rect.vertical_overlap(&word.rect);
                let needed = SAME_LINE_OVERLAP * rect.height().min(word.rect.height());
                (overlap >= needed).then_some((i, overlap))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let word_rect = word.rect;
        match best {
            Some(i) => {
                let (rect, members) = &mut lines[i];
                // The line's band keeps its first word's height, so that a
                // tall glyph does not pull the next line in.
                rect.left = rect.left.min(word.rect.left);
                rect.right = rect.right.max(word.rect.right);
                members.push(word);
            }
            None => {
                // Room for a typical line's words without regrowing.
                let mut members = Vec::with_capacity(16);
                members.push(word);
                lines.push((word_rect, members));
            }
        }
    }
    lines.sort_by(|a, b| b.0.top.total_cmp(&a.0.top));
    lines
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable_by(|a, b| a.rect.left.total_cmp(&b.rect.left));
            members
        })
        .collect()
}

/// Cuts a line where two words are further apart than a word space.
fn segments(words: Vec<Word>, gap: f32, buffer: &str) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    for word in words {
        let text = &buffer[word.text];
        match segments.last_mut() {
            Some(last) if word.rect.left - last.rect.right <= gap => {
                last.text.push(' ');
                last.text.push_str(text);
                last.rect = last.rect.union(&word.rect);
            }
            _ => {
                // Room for a line's worth of words without regrowing.
                let mut owned = String::with_capacity(text.len().max(64));
                owned.push_str(text);
                segments.push(Segment {
                    text: owned,
                    rect: word.rect,
                })
            }
        }
    }
    segments
}

/// The empty stretches of a line between `left` and `right`, wider than `gap`.
fn line_gaps(segments: &[Segment], left: f32, right: f32, gap: f32) -> Gaps {
    let mut gaps = Vec::new();
    let mut cursor = left;
    for segment in segments {
        if segment.rect.left - cursor > gap {
            gaps.push((cursor, segment.rect.left));
        }
        cursor = cursor.max(segment.rect.right);
    }
    if right - cursor > gap {
        gaps.push((cursor, right));
    }
    gaps
}

fn intersect(a: &[(f32, f32)], b: &[(f32, f32)]) -> Gaps {
    let mut out = Vec::new();
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            let (lo, hi) = (a0.max(b0), a1.min(b1));
            if hi > lo {
                out.push((lo, hi));
            }
        }
    }
    out
}

struct Block {
    lines: Vec<TextLine>,
    gaps: Gaps,
}

fn blocks(lines: Vec<TextLine>, extent: Extent) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for line in lines {
        if let Some(block) = blocks.last_mut() {
            let previous = block.lines.last().map(|l| l.rect).unwrap_or(line.rect);
            let vertical_gap = previous.bottom - line.rect.top;
            let close = vertical_gap <= BLOCK_BREAK * previous.height().max(line.rect.height());
            let shared = intersect(&block.gaps, &line.gaps);
            let same_shape = extent.any_interior(&shared)
                || (!extent.any_interior(&block.gaps) && !extent.any_interior(&line.gaps));
            if close && same_shape {
                block.gaps = shared;
                block.lines.push(line);
                continue;
            }
        }
        blocks.push(Block {
            gaps: line.gaps.clone(),
            lines: vec![line],
        });
    }
    blocks
}

fn read_block(block: Block, extent: Extent, out: &mut Vec<Line>) {
    let mut gutters: Vec<f32> = if block.lines.len() > 1 {
        block
            .gaps
            .iter()
            .filter(|&&gap| extent.is_interior(gap))
            .map(|(a, b)| (a + b) / 2.0)
            .collect()
    } else {
        Vec::new()
    };
    gutters.sort_by(f32::total_cmp);
    let column_of = |segment: &Segment| {
        gutters
            .iter()
            .take_while(|&&g| segment.rect.center_x() > g)
            .count()
    };
    // Every column must be prose: a column of bullets or of short cells
    // beside a column of text is a list or a table, read row by row.
    let is_prose = || {
        (0..=gutters.len()).all(|column| {
            median(
                block
                    .lines
                    .iter()
                    .flat_map(|l| &l.segments)
                    .filter(|s| column_of(s) == column)
                    .map(|s| s.text.chars().count() as f32),
            ) >= PROSE_SEGMENT_CHARS as f32
        })
    };
    if gutters.is_empty() || !is_prose() {
        out.extend(
            block
                .lines
                .into_iter()
                .filter_map(|line| join(line.segments)),
        );
        return;
    }
    // Each row's segments go to their columns' lists; the columns are then
    // read one after the other.
    let mut columns: Vec<Vec<Line>> = (0..=gutters.len()).map(|_| Vec::new()).collect();
    for line in block.lines {
        let mut by_column: Vec<Vec<Segment>> = (0..=gutters.len()).map(|_| Vec::new()).collect();
        for segment in line.segments {
            by_column[column_of(&segment)].push(segment);
        }
        for (column, members) in by_column.into_iter().enumerate() {
            columns[column].extend(join(members));
        }
    }
    out.extend(columns.into_iter().flatten());
}

/// One output line from segments of one row, cells separated by a tab;
/// none from no segments.
fn join(segments: impl IntoIterator<Item = Segment>) -> Option<Line> {
    let mut segments = segments.into_iter();
    let Segment { mut text, mut rect } = segments.next()?;
    for segment in segments {
        text.push('\t');
        text.push_str(&segment.text);
        rect = rect.union(&segment.rect);
    }
    Some(Line { text, rect })
}

fn median(values: impl Iterator<Item = f32>) -> f32 {
    let mut values: Vec<f32> = values.collect();
    if values.is_empty() {
        return 0.0;
    }
    let middle = values.len() / 2;
    *values.select_nth_unstable_by(middle, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of `text` set in a 10-point monospace font (6 pt per
    /// character) starting at (`x`, `y`), then a generated line break.
    fn run(text: &str, x: f32, y: f32) -> Vec<Glyph> {
        let mut glyphs: Vec<Glyph> = text
            .chars()
            .enumerate()
            .map(|(i, ch)| Glyph {
                ch,
                rect: Rect {
                    left: x + 6.0 * i as f32,
                    bottom: y - 2.0,
                    right: x + 6.0 * (i + 1) as f32,
                    top: y + 10.0,
                },
            })
            .collect();
        glyphs.push(Glyph {
            ch: '\n',
            rect: Rect {
                left: 0.0,
                bottom: 0.0,
                right: 0.0,
                top: 0.0,
            },
        });
        glyphs
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn one_column_reads_top_to_bottom_whatever_the_stored_order() {
        let mut glyphs = run("second line of text", 50.0, 680.0);
        glyphs.extend(run("first line of text", 50.0, 700.0));
        let lines = read_page(&glyphs);
        assert_eq!(texts(&lines), ["first line of text", "second line of text"]);
    }

    #[test]
    fn two_columns_stored_row_by_row_read_column_by_column() {
        let mut glyphs = run("A title across both of the columns here", 50.0, 740.0);
        for row in 0..4 {
            let y = 700.0 - 14.0 * row as f32;
            glyphs.extend(run(&format!("left column sentence number {row}"), 50.0, y));
            glyphs.extend(run(
                &format!("right column sentence number {row}"),
                300.0,
                y,
            ));
        }
        let lines = read_page(&glyphs);
        let mut expected = vec!["A title across both of the columns here".to_string()];
        expected.extend((0..4).map(|r| format!("left column sentence number {r}")));
        expected.extend((0..4).map(|r| format!("right column sentence number {r}")));
        assert_eq!(texts(&lines), expected);
    }

    #[test]
    fn table_rows_stay_together() {
        let mut glyphs = Vec::new();
        for (row, cells) in [
            ["Item", "Qty", "Price"],
            ["Bolt", "10", "0.50"],
            ["Nut", "200", "0.05"],
        ]
        .iter()
        .enumerate()
        {
            let y = 700.0 - 16.0 * row as f32;
            // Stored column by column would also be fine: order comes from boxes.
            for (col, cell) in cells.iter().enumerate() {
                glyphs.extend(run(cell, 50.0 + 120.0 * col as f32, y));
            }
        }
        let lines = read_page(&glyphs);
        assert_eq!(
            texts(&lines),
            ["Item\tQty\tPrice", "Bolt\t10\t0.50", "Nut\t200\t0.05"]
        );
    }

    #[test]
    fn a_block_after_a_large_vertical_gap_is_read_on_its_own() {
        let mut glyphs = Vec::new();
        for (y, section) in [(700.0, "upper"), (500.0, "lower")] {
            for row in 0..2 {
                let y = y - 14.0 * row as f32;
                glyphs.extend(run(&format!("{section} left column line {row}"), 50.0, y));
                glyphs.extend(run(&format!("{section} right column line {row}"), 300.0, y));
            }
        }
        let lines = read_page(&glyphs);
        assert_eq!(
            texts(&lines),
            [
                "upper left column line 0",
                "upper left column line 1",
                "upper right column line 0",
                "upper right column line 1",
                "lower left column line 0",
                "lower left column line 1",
                "lower right column line 0",
                "lower right column line 1",
            ]
        );
    }

    #[test]
    fn words_split_on_spaces_and_gaps() {
        let mut glyphs = run("ab", 50.0, 700.0);
        glyphs.extend(run("cd", 70.0, 700.0));
        let lines = read_page(&glyphs);
        assert_eq!(texts(&lines), ["ab cd"]);
    }

    #[test]
    fn an_empty_page_has_no_lines() {
        assert!(read_page(&[]).is_empty());
    }
}
