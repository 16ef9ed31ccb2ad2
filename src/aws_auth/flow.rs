//! Scanning flow (`[...]`, `{...}`, JSON) text: token boundaries that respect quotes, comments and nesting.

use std::ops::Range;

use super::layout::{line_of, split_lines, Flow, Item, Pair, ValueTok};
use super::scalar::{quoted_len, unquote};

/// Walks flow text from `from`, calling `f(token, byte, depth)` for each token outside comments: a quoted scalar as
/// one token (`byte` is its quote), any other byte on its own; stops when `f` returns false. `depth` counts the
/// brackets open before the token. `None` when the text ends first (or a quote is never closed).
fn walk_flow(
    text: &str,
    from: usize,
    mut f: impl FnMut(Range<usize>, u8, usize) -> bool,
) -> Option<()> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut prev_sig = b'[';
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let len = if matches!(c, b'"' | b'\'') && matches!(prev_sig, b'[' | b'{' | b',' | b':') {
            quoted_len(&text[i..])?
        } else {
            1
        };
        if !f(i..i + len, c, depth) {
            return Some(());
        }
        match c {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.checked_sub(1)?,
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            prev_sig = c;
        }
        i += len;
    }
    None
}

/// Position of the bracket closing the flow collection that opens at `open`.
pub(crate) fn flow_end(text: &str, open: usize) -> Option<usize> {
    let mut end = None;
    walk_flow(text, open, |r, c, depth| {
        if matches!(c, b']' | b'}') && depth == 1 {
            end = Some(r.start);
            return false;
        }
        true
    })?;
    end
}

/// The element ranges (trimmed of whitespace and comments) of the flow collection `open..=close`, each with the
/// position of the comma after it.
pub(crate) fn flow_elements(
    text: &str,
    open: usize,
    close: usize,
) -> Vec<(Range<usize>, Option<usize>)> {
    let mut out = Vec::new();
    let mut seg: Option<Range<usize>> = None;
    let _ = walk_flow(text, open, |r, c, depth| {
        if r.start == open {
            return true;
        }
        if r.start >= close {
            out.extend(seg.take().map(|s| (s, None)));
            return false;
        }
        if depth == 1 && c == b',' {
            out.extend(seg.take().map(|s| (s, Some(r.start))));
            return true;
        }
        if !c.is_ascii_whitespace() {
            seg = Some(seg.as_ref().map_or(r.start, |s| s.start)..r.end);
        }
        true
    });
    out
}

pub(crate) fn flow_pairs(text: &str, open: usize, close: usize) -> Vec<Pair> {
    flow_elements(text, open, close)
        .into_iter()
        .filter_map(|(r, _)| flow_pair(text, r))
        .collect()
}

fn flow_pair(text: &str, r: Range<usize>) -> Option<Pair> {
    let s = &text[r.clone()];
    let (key_len, colon) = if s.starts_with(['"', '\'']) {
        let n = quoted_len(s)?;
        (n, n + s[n..].find(':')?)
    } else {
        let c = s
            .match_indices(':')
            .find(|(i, _)| {
                matches!(
                    s.as_bytes().get(i + 1),
                    None | Some(b' ' | b'\t' | b'\r' | b'\n')
                )
            })?
            .0;
        (s[..c].trim_end().len(), c)
    };
    let key_raw = r.start..r.start + key_len;
    let v_rel = colon
        + 1
        + s[colon + 1..]
            .bytes()
            .take_while(u8::is_ascii_whitespace)
            .count();
    let v_at = r.start + v_rel;
    let value = match s.as_bytes().get(v_rel) {
        None => ValueTok::Nested,
        Some(b'[') => ValueTok::FlowSeq(v_at..r.end),
        Some(b'{') => ValueTok::FlowMap(v_at..r.end),
        _ => ValueTok::Scalar(v_at..r.end),
    };
    Some(Pair {
        key: unquote(&text[key_raw.clone()]),
        key_raw,
        value,
        first_elem: None,
    })
}

pub(crate) fn scan_flow(text: &str, open: usize) -> Option<Flow> {
    let close = flow_end(text, open)?;
    // Nothing but whitespace, comments and an end marker may follow the closing bracket.
    for l in split_lines(&text[close + 1..]) {
        let line = &text[close + 1 + l.start..close + 1 + l.end];
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#') || t == "...") {
            return None;
        }
    }
    let elems = flow_elements(text, open, close);
    let mut items = Vec::new();
    let mut seps = Vec::new();
    let mut prev_comma: Option<usize> = None;
    for (r, comma) in elems {
        if text.as_bytes()[r.start] != b'{' {
            return None;
        }
        if let Some(c) = prev_comma {
            seps.push(c + 1..r.start);
        }
        let item_close = flow_end(text, r.start)?;
        items.push(Item {
            start: r.start,
            end: item_close + 1,
            line: line_of(text, r.start),
            flow: true,
            key_indent: None,
            dash_gap: 0,
            pairs: flow_pairs(text, r.start, item_close),
        });
        prev_comma = comma;
    }
    Some(Flow {
        open,
        close,
        items,
        seps,
    })
}

#[cfg(test)]
mod tests {
    use super::super::layout::{scan, Shape};
    use super::*;

    #[test]
    fn flow_items_and_separators() {
        let t = "[{\"rolearn\":\"a\",\"groups\":[\"x\",\"y\"]}, {\"rolearn\":\"b\"}]\n";
        let Shape::Flow(f) = scan(t) else {
            panic!("{:?}", scan(t))
        };
        assert_eq!(f.items.len(), 2);
        assert_eq!(&t[f.seps[0].clone()], " ");
        assert_eq!(&t[f.items[1].start..f.items[1].end], "{\"rolearn\":\"b\"}");
        let ValueTok::Scalar(r) = &f.items[0].pairs[0].value else {
            panic!()
        };
        assert_eq!(&t[r.clone()], "\"a\"");
        assert_eq!(f.items[0].pairs[1].key.as_deref(), Some("groups"));
        assert!(matches!(scan("[ ]"), Shape::Flow(Flow { ref items, .. }) if items.is_empty()));
        assert_eq!(scan("[a, b]"), Shape::Unknown);
        assert_eq!(scan("  \n# c\n"), Shape::Empty);
    }

    #[test]
    fn flow_with_quotes_and_comments() {
        let t =
            "[\n  # first\n  {rolearn: 'it''s]', username: \"a,}b\"},\n  {rolearn: c} # tail\n]\n";
        let Shape::Flow(f) = scan(t) else {
            panic!("{:?}", scan(t))
        };
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[0].line, 3);
        let ValueTok::Scalar(r) = &f.items[0].pairs[1].value else {
            panic!()
        };
        assert_eq!(&t[r.clone()], "\"a,}b\"");
    }
}
