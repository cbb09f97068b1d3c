//! `use_source`: where each extracted value came from.
//!
//! Each leaf of an answer (a string or a number) is looked for in the text
//! layer of the pages the answer was made from: case and runs of
//! whitespace are ignored, and a number is also looked for as written with
//! thousands separators and with two decimals ("1234.5" → "1,234.5",
//! "1234.50", "1,234.50"). The first match, in page order, gives the
//! value's page, the text as the page has it, and the box around the
//! matched characters: PDF points with the origin at the top left of the
//! page (`left`, `top`, `right`, `bottom`; y grows downwards).
//!
//! Sources are kept in a tree of the answer's shape ([`SourceTree`]) so that
//! they follow their values through the merge of batch answers, and are
//! written out keyed by JSON Pointer ([`pointers`]).

use std::collections::HashMap;

use agentd_documents::layout::{Glyph, Rect};
use serde_json::{json, Map, Value};

/// Where one value was found.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The PDF's file name.
    pub document: String,
    /// 1-based.
    pub page: u32,
    /// The matched characters, as the page has them.
    pub text: String,
    /// Top-left origin, PDF points.
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl Source {
    fn to_json(&self) -> Value {
        let round = |v: f32| (f64::from(v) * 100.0).round() / 100.0;
        json!({
            "document": self.document,
            "page": self.page,
            "text": self.text,
            "bbox": {
                "left": round(self.left),
                "top": round(self.top),
                "right": round(self.right),
                "bottom": round(self.bottom),
            },
        })
    }
}

/// The searchable text layer of one page.
pub struct PageGlyphs<'a> {
    pub document: &'a str,
    pub number: u32,
    pub height: f32,
    pub glyphs: &'a [Glyph],
}

/// Sources in the shape of the value they describe.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum SourceTree {
    /// No source below this point.
    #[default]
    None,
    Leaf(Source),
    List(Vec<SourceTree>),
    Map(HashMap<String, SourceTree>),
}

impl SourceTree {
    /// Finds a source for each leaf of `value` in `pages`.
    pub fn locate(value: &Value, pages: &[PageGlyphs<'_>]) -> Self {
        match value {
            Value::Array(items) => {
                Self::List(items.iter().map(|item| Self::locate(item, pages)).collect())
            }
            Value::Object(fields) => Self::Map(
                fields
                    .iter()
                    .map(|(key, field)| (key.clone(), Self::locate(field, pages)))
                    .collect(),
            ),
            leaf => needles(leaf)
                .iter()
                .find_map(|needle| find(needle, pages))
                .map_or(Self::None, Self::Leaf),
        }
    }

    /// The tree of item `index` (none when this is not a list).
    pub fn take_item(&mut self, index: usize) -> Self {
        match self {
            Self::List(items) => items.get_mut(index).map(std::mem::take).unwrap_or_default(),
            _ => Self::None,
        }
    }

    /// The tree of field `key` (none when this is not a map).
    pub fn take_field(&mut self, key: &str) -> Self {
        match self {
            Self::Map(fields) => fields.remove(key).unwrap_or_default(),
            _ => Self::None,
        }
    }
}

/// Sources keyed by the JSON Pointer of their value in `value`.
pub fn pointers(value: &Value, tree: &SourceTree) -> Map<String, Value> {
    let mut out = Map::new();
    collect(value, tree, &mut String::new(), &mut out);
    out
}

fn collect(value: &Value, tree: &SourceTree, path: &mut String, out: &mut Map<String, Value>) {
    let length = path.len();
    match (value, tree) {
        (Value::Array(items), SourceTree::List(trees)) => {
            for (index, (item, tree)) in items.iter().zip(trees).enumerate() {
                path.push_str(&format!("/{index}"));
                collect(item, tree, path, out);
                path.truncate(length);
            }
        }
        (Value::Object(fields), SourceTree::Map(trees)) => {
            for (key, field) in fields {
                if let Some(tree) = trees.get(key) {
                    path.push('/');
                    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    collect(field, tree, path, out);
                    path.truncate(length);
                }
            }
        }
        (_, SourceTree::Leaf(source)) => {
            let pointer = if path.is_empty() { "" } else { path.as_str() };
            out.insert(pointer.to_owned(), source.to_json());
        }
        _ => {}
    }
}

/// The forms a leaf value may take on a page, most literal first.
fn needles(value: &Value) -> Vec<Vec<char>> {
    let texts = match value {
        Value::String(text) => vec![text.clone()],
        Value::Number(number) => number_forms(number),
        _ => Vec::new(),
    };
    texts
        .iter()
        .map(|text| normalized(text.chars()))
        .filter(|needle| !needle.is_empty())
        .collect()
}

fn number_forms(number: &serde_json::Number) -> Vec<String> {
    let plain = number.to_string();
    let mut forms = vec![plain.clone(), grouped(&plain)];
    if let Some(value) = number
        .as_f64()
        .filter(|v| v.fract() != 0.0 || plain.contains('.'))
    {
        let two = format!("{value:.2}");
        forms.push(grouped(&two));
        forms.push(two);
    }
    forms.dedup();
    forms
}

/// "1234567.5" → "1,234,567.5".
fn grouped(number: &str) -> String {
    let (sign, rest) = number
        .strip_prefix('-')
        .map_or(("", number), |rest| ("-", rest));
    let (whole, fraction) = rest
        .split_once('.')
        .map_or((rest, None), |(w, f)| (w, Some(f)));
    let mut out = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
    format!("{sign}{out}{fraction}")
}

/// Lower case, whitespace runs as one space, trimmed.
fn normalized(chars: impl Iterator<Item = char>) -> Vec<char> {
    let mut out = Vec::new();
    for ch in chars {
        if ch.is_whitespace() || ch.is_control() {
            if out.last().is_some_and(|c: &char| *c != ' ') {
                out.push(' ');
            }
        } else {
            out.extend(ch.to_lowercase());
        }
    }
    while out.last() == Some(&' ') {
        out.pop();
    }
    out
}

/// A page's text as searched: normalised characters, each with the glyph it
/// came from.
fn haystack(glyphs: &[Glyph]) -> Vec<(char, usize)> {
    let mut out: Vec<(char, usize)> = Vec::with_capacity(glyphs.len());
    for (index, glyph) in glyphs.iter().enumerate() {
        if glyph.ch.is_whitespace() || glyph.ch.is_control() {
            if out.last().is_some_and(|(c, _)| *c != ' ') {
                out.push((' ', index));
            }
        } else {
            out.extend(glyph.ch.to_lowercase().map(|c| (c, index)));
        }
    }
    out
}

/// `needle` at `start`, not inside a longer word or number ("1,234.5" is
/// not in "1,234.50").
fn is_whole_match(hay: &[(char, usize)], start: usize, needle: &[char]) -> bool {
    let end = start + needle.len();
    let joined = |outside: Option<&(char, usize)>, inside: char| {
        inside.is_alphanumeric() && outside.is_some_and(|(c, _)| c.is_alphanumeric())
    };
    hay[start..end].iter().map(|(c, _)| c).eq(needle.iter())
        && !joined(start.checked_sub(1).map(|i| &hay[i]), needle[0])
        && !joined(hay.get(end), needle[needle.len() - 1])
}

fn find(needle: &[char], pages: &[PageGlyphs<'_>]) -> Option<Source> {
    pages.iter().find_map(|page| find_on_page(needle, page))
}

fn find_on_page(needle: &[char], page: &PageGlyphs<'_>) -> Option<Source> {
    let hay = haystack(page.glyphs);
    let start = (0..=hay.len().checked_sub(needle.len())?)
        .find(|&start| is_whole_match(&hay, start, needle))?;
    let (first, last) = (hay[start].1, hay[start + needle.len() - 1].1);
    let matched = &page.glyphs[first..=last];
    let rect = matched
        .iter()
        .map(|g| g.rect)
        .filter(|r| r.right > r.left || r.top > r.bottom)
        .reduce(|a, b| Rect {
            left: a.left.min(b.left),
            bottom: a.bottom.min(b.bottom),
            right: a.right.max(b.right),
            top: a.top.max(b.top),
        })?;
    Some(Source {
        document: page.document.to_owned(),
        page: page.number,
        text: matched
            .iter()
            .map(|g| g.ch)
            .collect::<String>()
            .trim()
            .to_owned(),
        left: rect.left,
        top: page.height - rect.top,
        right: rect.right,
        bottom: page.height - rect.bottom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of `text` on one line at `y` (bottom), 6 points a character.
    fn line(text: &str, x: f32, y: f32) -> Vec<Glyph> {
        text.chars()
            .enumerate()
            .map(|(i, ch)| Glyph {
                ch,
                rect: Rect {
                    left: x + 6.0 * i as f32,
                    bottom: y,
                    right: x + 6.0 * i as f32 + 5.0,
                    top: y + 10.0,
                },
            })
            .collect()
    }

    #[test]
    fn values_are_found_on_their_page_with_their_box() {
        let first = line("Invoice ACME Corp", 10.0, 700.0);
        let mut second = line("Total:  1,234.50 EUR", 20.0, 100.0);
        second.extend(line("\n", 140.0, 100.0));
        second.extend(line("Widget", 20.0, 80.0));
        let pages = [
            PageGlyphs {
                document: "a.pdf",
                number: 1,
                height: 792.0,
                glyphs: &first,
            },
            PageGlyphs {
                document: "a.pdf",
                number: 2,
                height: 792.0,
                glyphs: &second,
            },
        ];
        let value =
            json!({"vendor": "acme  corp", "total": 1234.5, "items": ["widget"], "paid": true});
        let tree = SourceTree::locate(&value, &pages);
        let found = pointers(&value, &tree);
        assert_eq!(found["/vendor"]["page"], 1);
        assert_eq!(found["/vendor"]["text"], "ACME Corp");
        assert_eq!(found["/vendor"]["bbox"]["left"], 58.0);
        assert_eq!(found["/vendor"]["bbox"]["top"], 82.0);
        assert_eq!(found["/total"]["page"], 2);
        assert_eq!(found["/total"]["text"], "1,234.50");
        assert_eq!(found["/items/0"]["bbox"]["bottom"], 712.0);
        assert!(found.get("/paid").is_none());
    }

    #[test]
    fn numbers_are_looked_for_in_their_usual_forms() {
        let forms = |v: Value| match v {
            Value::Number(n) => number_forms(&n),
            _ => unreachable!(),
        };
        assert_eq!(forms(json!(1234567)), ["1234567", "1,234,567"]);
        assert_eq!(
            forms(json!(-1234.5)),
            ["-1234.5", "-1,234.5", "-1,234.50", "-1234.50"]
        );
    }

    #[test]
    fn pointers_escape_keys() {
        let glyphs = line("x", 0.0, 0.0);
        let pages = [PageGlyphs {
            document: "a.pdf",
            number: 1,
            height: 10.0,
            glyphs: &glyphs,
        }];
        let value = json!({"a/b~c": "x"});
        let tree = SourceTree::locate(&value, &pages);
        assert!(pointers(&value, &tree).contains_key("/a~1b~0c"));
    }
}
