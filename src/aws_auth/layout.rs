//! Where things are in a list text: items, their keys and value tokens, byte for byte.
//!
//! This is a scanner, not a YAML parser: serde_norway says what the text means, this says where it is. Callers
//! use it only when its item count agrees with the parse, and every edit built on it is verified by re-parsing.

use std::ops::Range;

use super::flow::{flow_elements, flow_end, flow_pairs, scan_flow};
use super::scalar::{quoted_len, unquote};

/// One physical line: `start..end` is its content, `end..next` its terminator (`\n`, `\r\n` or nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line {
    pub start: usize,
    pub end: usize,
    pub next: usize,
}

/// Splits `text` into lines, keeping exact byte positions.
pub(crate) fn split_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            let end = if i > start && text.as_bytes()[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            out.push(Line {
                start,
                end,
                next: i + 1,
            });
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(Line {
            start,
            end: text.len(),
            next: text.len(),
        });
    }
    out
}

/// The line terminator new lines should use: CRLF when every line uses it, else that of the last terminated line.
pub(crate) fn newline(text: &str) -> &'static str {
    let lf = text.matches('\n').count();
    let crlf = text.matches("\r\n").count();
    if crlf > 0 && (crlf == lf || text.trim_end_matches([' ', '\t']).ends_with("\r\n")) {
        "\r\n"
    } else {
        "\n"
    }
}

/// 1-based line number of byte `offset`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// What a line holds, for the block scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    Blank,
    Comment,
    /// `---` or `...`
    Marker,
    Content,
}

pub(crate) fn line_kind(text: &str, l: &Line) -> LineKind {
    let t = text[l.start..l.end].trim_matches([' ', '\t', '\r']);
    if t.is_empty() {
        LineKind::Blank
    } else if t.starts_with('#') {
        LineKind::Comment
    } else if t == "---" || t == "..." {
        LineKind::Marker
    } else {
        LineKind::Content
    }
}

pub(crate) fn indent(text: &str, l: &Line) -> usize {
    text[l.start..l.end]
        .bytes()
        .take_while(|&b| b == b' ')
        .count()
}

/// A value token after `key:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueTok {
    /// A plain or quoted scalar on the key's line (quoted ones may continue on later lines).
    Scalar(Range<usize>),
    /// `[...]`
    FlowSeq(Range<usize>),
    /// `{...}`
    FlowMap(Range<usize>),
    /// `|` or `>`
    BlockScalar,
    /// Nothing on the key's line: the value (if any) is on the following, deeper lines.
    Nested,
}

/// One `key: value` pair of an item, positions absolute in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub key_raw: Range<usize>,
    /// The key as YAML reads it, when we can decode it.
    pub key: Option<String>,
    pub value: ValueTok,
    /// For a `Nested` value: the first `-` line below it (indent of the dash, spaces after it, element token).
    pub first_elem: Option<(usize, usize, Range<usize>)>,
}

/// One top-level item of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// Byte offset of the item's `-` (block) or `{` (flow).
    pub start: usize,
    /// End of its last byte (block: end of its last content line, terminator excluded; flow: after `}`).
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// True when the item itself is a flow mapping (`{...}`), inside a JSON array or after a block `- `.
    pub flow: bool,
    /// Column of the item's keys (block items only).
    pub key_indent: Option<usize>,
    /// Spaces between `-` and the first key (block items only).
    pub dash_gap: usize,
    pub pairs: Vec<Pair>,
}

/// A block sequence (`- ...` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub dash_indent: usize,
    pub items: Vec<Item>,
}

/// A flow sequence (`[...]`, JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flow {
    pub open: usize,
    pub close: usize,
    pub items: Vec<Item>,
    /// For each item but the first: the bytes between the preceding `,` and the item.
    pub seps: Vec<Range<usize>>,
}

/// The overall shape of a list text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Nothing but whitespace, comments and document markers.
    Empty,
    Block(Block),
    Flow(Flow),
    /// Something the scanner does not follow (the parse decides whether it is valid).
    Unknown,
}

/// Scans a list text.
pub(crate) fn scan(text: &str) -> Shape {
    let lines = split_lines(text);
    let Some(first) = lines
        .iter()
        .find(|l| line_kind(text, l) == LineKind::Content)
    else {
        return Shape::Empty;
    };
    let at = first.start + indent(text, first);
    match text.as_bytes().get(at) {
        Some(b'[') => scan_flow(text, at).map_or(Shape::Unknown, Shape::Flow),
        Some(b'-') => scan_block(text, &lines).map_or(Shape::Unknown, Shape::Block),
        _ => Shape::Unknown,
    }
}

/// The raw scalar tokens of a list of scalars (`mapAccounts`), with their lines.
pub(crate) fn scalar_items(text: &str) -> Option<Vec<(String, usize)>> {
    let lines = split_lines(text);
    let Some(first) = lines
        .iter()
        .find(|l| line_kind(text, l) == LineKind::Content)
    else {
        return Some(Vec::new());
    };
    let d = indent(text, first);
    let at = first.start + d;
    if text.as_bytes().get(at) == Some(&b'[') {
        let close = flow_end(text, at)?;
        let elems = flow_elements(text, at, close);
        return Some(
            elems
                .into_iter()
                .map(|(r, _)| (text[r.clone()].to_string(), line_of(text, r.start)))
                .collect(),
        );
    }
    let mut out = Vec::new();
    for l in lines
        .iter()
        .filter(|l| line_kind(text, l) == LineKind::Content)
    {
        let ind = indent(text, l);
        if ind == d && is_dash_line(text, l, d) {
            let tok = l.start
                + d
                + 1
                + text[l.start + d + 1..l.end]
                    .bytes()
                    .take_while(|&b| b == b' ')
                    .count();
            out.push((
                text[tok..scalar_end(text, tok, l.end)].to_string(),
                line_of(text, l.start),
            ));
        } else if ind <= d {
            return None;
        }
    }
    Some(out)
}

fn is_dash_line(text: &str, l: &Line, at: usize) -> bool {
    let s = &text[l.start + at..l.end];
    s == "-" || s.starts_with("- ") || s.starts_with("-\t")
}

fn scan_block(text: &str, lines: &[Line]) -> Option<Block> {
    let content: Vec<&Line> = lines
        .iter()
        .filter(|l| line_kind(text, l) == LineKind::Content)
        .collect();
    let d = indent(text, content.first()?);
    let mut groups: Vec<Vec<&Line>> = Vec::new();
    for l in content {
        let ind = indent(text, l);
        if ind == d && is_dash_line(text, l, d) {
            groups.push(vec![l]);
        } else if ind > d {
            groups.last_mut()?.push(l);
        } else {
            return None;
        }
    }
    let items = groups
        .iter()
        .map(|g| block_item(text, g, d))
        .collect::<Option<Vec<_>>>()?;
    Some(Block {
        dash_indent: d,
        items,
    })
}

fn block_item(text: &str, lines: &[&Line], d: usize) -> Option<Item> {
    let first = lines.first()?;
    let last = lines.last()?;
    let dash = first.start + d;
    let after = &text[dash + 1..first.end];
    let gap = after.bytes().take_while(|&b| b == b' ').count();
    let rest_at = dash + 1 + gap;
    let mut item = Item {
        start: dash,
        end: last.end,
        line: line_of(text, dash),
        flow: false,
        key_indent: None,
        dash_gap: gap,
        pairs: Vec::new(),
    };
    let rest = &text[rest_at..first.end];
    if rest.starts_with('{') {
        let close = flow_end(text, rest_at)?;
        item.flow = true;
        item.pairs = flow_pairs(text, rest_at, close);
        return Some(item);
    }
    // (start of the key, end of its line, first `-` line below it)
    type Keyed = (usize, usize, Option<(usize, usize, Range<usize>)>);
    let mut keyed: Vec<Keyed> = Vec::new();
    let k = if rest.is_empty() || rest.starts_with('#') {
        // `-` alone with nothing below: a null item (the authenticator drops it).
        let Some(next) = lines.get(1) else {
            return Some(item);
        };
        indent(text, next)
    } else {
        keyed.push((rest_at, first.end, None));
        rest_at - first.start
    };
    item.key_indent = Some(k);
    for l in lines.iter().skip(1) {
        let ind = indent(text, l);
        let at = l.start + ind;
        let is_elem = is_dash_line(text, l, ind);
        if ind == k && !is_elem {
            keyed.push((at, l.end, None));
            continue;
        }
        // A deeper line, or a `- ` at the key column (compact nested list): belongs to the last key.
        if let (true, Some(last)) = (is_elem, keyed.last_mut()) {
            if last.2.is_none() {
                let gap = text[at + 1..l.end]
                    .bytes()
                    .take_while(|&b| b == b' ')
                    .count();
                let tok_at = at + 1 + gap;
                last.2 = Some((ind, gap, tok_at..scalar_end(text, tok_at, l.end)));
            }
        }
    }
    for (at, end, first_elem) in keyed {
        if let Some(mut pair) = block_pair(text, at, end) {
            if pair.value == ValueTok::Nested {
                pair.first_elem = first_elem;
            }
            item.pairs.push(pair);
        }
    }
    Some(item)
}

/// End of a scalar token starting at `at` on a line ending at `line_end` (quoted: closing quote; plain: before ` #`).
fn scalar_end(text: &str, at: usize, line_end: usize) -> usize {
    let s = &text[at..line_end];
    if s.starts_with(['"', '\'']) {
        return quoted_len(&text[at..]).map_or(line_end, |n| at + n);
    }
    let cut = s.find(" #").or_else(|| s.find("\t#")).unwrap_or(s.len());
    at + s[..cut].trim_end_matches([' ', '\t']).len()
}

pub(crate) fn block_pair(text: &str, at: usize, line_end: usize) -> Option<Pair> {
    let s = &text[at..line_end];
    let key_len = if s.starts_with(['"', '\'']) {
        quoted_len(s)?
    } else {
        let colon = s
            .match_indices(':')
            .find(|(i, _)| matches!(s.as_bytes().get(i + 1), None | Some(b' ' | b'\t')))?
            .0;
        s[..colon].trim_end().len()
    };
    let key_raw = at..at + key_len;
    let after = &s[key_len..];
    let colon_off = after.find(':')?;
    if !after[..colon_off].trim().is_empty() {
        return None;
    }
    let v_rel = key_len + colon_off + 1;
    let v_at = at
        + v_rel
        + s[v_rel..]
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
    let value = value_tok(text, v_at, line_end);
    Some(Pair {
        key: unquote(&text[key_raw.clone()]),
        key_raw,
        value,
        first_elem: None,
    })
}

fn value_tok(text: &str, at: usize, line_end: usize) -> ValueTok {
    match text.as_bytes().get(at..line_end).and_then(<[u8]>::first) {
        None | Some(b'#') => ValueTok::Nested,
        Some(b'|' | b'>') => ValueTok::BlockScalar,
        Some(b'[') => flow_end(text, at).map_or(ValueTok::Nested, |c| ValueTok::FlowSeq(at..c + 1)),
        Some(b'{') => flow_end(text, at).map_or(ValueTok::Nested, |c| ValueTok::FlowMap(at..c + 1)),
        _ => ValueTok::Scalar(at..scalar_end(text, at, line_end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str, item: &Item) -> Vec<String> {
        item.pairs
            .iter()
            .map(|p| text[p.key_raw.clone()].to_string())
            .collect()
    }

    #[test]
    fn lines_keep_terminators() {
        let t = "a\r\nb\nc";
        let ls = split_lines(t);
        assert_eq!(ls.len(), 3);
        assert_eq!(&t[ls[0].start..ls[0].end], "a");
        assert_eq!(&t[ls[0].end..ls[0].next], "\r\n");
        assert_eq!(ls[2].end, ls[2].next);
        assert_eq!(newline("a\r\nb\r\n"), "\r\n");
        assert_eq!(newline("a\nb\n"), "\n");
        assert_eq!(newline(""), "\n");
    }

    #[test]
    fn block_items_and_pairs() {
        let t = "# head\n- rolearn: arn:x # c\n  username: u\n  groups:\n    - system:nodes\n\n  - \"roleARN\": 'y'\n    groups: [a, b]\n";
        let Shape::Block(b) = scan(t) else {
            panic!("{:?}", scan(t))
        };
        assert_eq!(b.dash_indent, 0);
        assert_eq!(b.items.len(), 1, "the indented dash is not top level");
        let t = "# head\n- rolearn: arn:x # c\n  username: u\n  groups:\n    - system:nodes\n\n- \"roleARN\": 'y'\n  groups: [a, b]\n";
        let Shape::Block(b) = scan(t) else { panic!() };
        assert_eq!(b.items.len(), 2);
        let first = &b.items[0];
        assert_eq!(first.line, 2);
        assert_eq!(keys(t, first), ["rolearn", "username", "groups"]);
        let ValueTok::Scalar(r) = &first.pairs[0].value else {
            panic!()
        };
        assert_eq!(&t[r.clone()], "arn:x");
        let (ind, gap, tok) = first.pairs[2].first_elem.clone().unwrap();
        assert_eq!((ind, gap, &t[tok]), (4, 1, "system:nodes"));
        let second = &b.items[1];
        assert_eq!(second.pairs[0].key.as_deref(), Some("roleARN"));
        let ValueTok::FlowSeq(r) = &second.pairs[1].value else {
            panic!()
        };
        assert_eq!(&t[r.clone()], "[a, b]");
        assert_eq!(
            &t[first.start..first.end],
            "- rolearn: arn:x # c\n  username: u\n  groups:\n    - system:nodes"
        );
    }
}
