//! aws-auth manifests as files: find the lists inside the YAML documents, map their lines back to the file, and
//! write an edited list back in the same encoding, keeping every other byte.
//!
//! serde_norway says what each document means; a line scanner says where `data.mapRoles` (and its siblings) sit
//! and how they are written (`|` block scalar, quoted string, or the whole document being the list). A value is
//! only mapped and edited when decoding it ourselves gives exactly the string serde_norway reads, and every edited
//! file is re-parsed: all documents must read back the same, but for the one list that changed.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;
use serde_norway::Value;

use super::analyze::ListKind;
use super::edit::{unsafe_, Edit, EditError, Note};
use super::layout::{
    block_pair, indent, line_kind, line_of, split_lines, Line, LineKind, ValueTok,
};
use super::scalar::quoted_len;

/// What one YAML document of a manifest file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocKind {
    /// A ConfigMap named `aws-auth`, or one holding `mapRoles`/`mapUsers`/`mapAccounts`.
    ConfigMap {
        name: Option<String>,
        namespace: Option<String>,
    },
    /// The `data` block alone: top-level `mapRoles`/`mapUsers`/`mapAccounts` keys.
    Bare,
    /// The document is itself a `mapRoles` or `mapUsers` list.
    List { list: ListKind },
    /// Anything else (other kinds, empty documents): ignored.
    Other,
}

/// A document that does not parse as YAML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxError {
    /// 1-based line in the file.
    pub line: usize,
    pub message: String,
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based position in the file.
    pub index: usize,
    /// Bytes of the document in the file, markers excluded.
    pub range: Range<usize>,
    /// 1-based line where the document's content starts.
    pub first_line: usize,
    pub kind: DocKind,
    /// String values of `data` (or of the bare keys; the list text for a `List` document).
    pub data: BTreeMap<String, String>,
    /// Data keys whose value is not a string (a YAML list or map: the API server refuses the ConfigMap).
    pub not_strings: Vec<String>,
    /// Where each string value is, when the scanner could place it.
    pub values: BTreeMap<String, Located>,
    /// 1-based line of the `data:` key (ConfigMaps).
    pub data_line: Option<usize>,
    pub error: Option<SyntaxError>,
    value: Option<Value>,
    container: Option<Container>,
}

/// Where the data keys live, for adding a key that is not there yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    /// Column of the keys.
    indent: usize,
    /// Byte offset after which a new key's lines go (the start of a line, or the file's end).
    insert_at: usize,
    /// Spaces from a key to its block scalar content, as its siblings do it.
    step: usize,
}

/// One located data value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// 1-based line of the key in the file.
    pub key_line: usize,
    enc: Enc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Enc {
    /// A `|` block scalar: the lines after its header (blank ones included) and the content indentation.
    Literal {
        after_header: usize,
        lines: Vec<Line>,
        indent: usize,
    },
    /// A quoted or plain scalar: the file offset of each byte of the decoded value, plus one for its end.
    Scalar {
        quote: u8,
        starts: Vec<usize>,
        /// File offset of each decoded line's first byte.
        line_starts: Vec<usize>,
    },
    /// The whole document is the list, starting at this offset.
    Whole { offset: usize },
    /// Not followed (folded `>`, multi-line plain, a decoding that disagrees with the parser).
    Unmapped,
}

impl Located {
    /// The 1-based file line of 1-based line `inner` of the value.
    pub fn file_line(&self, text: &str, inner: usize) -> usize {
        match &self.enc {
            Enc::Literal { lines, .. } => lines
                .get(inner.saturating_sub(1))
                .map_or(self.key_line + inner, |l| line_of(text, l.start)),
            Enc::Scalar { line_starts, .. } => line_starts
                .get(inner.saturating_sub(1))
                .map_or(self.key_line, |&o| line_of(text, o)),
            Enc::Whole { offset } => line_of(text, *offset) + inner - 1,
            Enc::Unmapped => self.key_line,
        }
    }
}

/// A whole manifest file, split into documents.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub docs: Vec<Document>,
}

impl Manifest {
    /// The documents that hold aws-auth data.
    pub fn targets(&self) -> impl Iterator<Item = &Document> {
        self.docs
            .iter()
            .filter(|d| !matches!(d.kind, DocKind::Other))
    }
}

/// Splits `text` into YAML documents and reads each one.
pub fn parse_manifest(text: &str) -> Manifest {
    let docs = split_docs(text)
        .into_iter()
        .enumerate()
        .map(|(index, range)| read_doc(text, index, range))
        .collect();
    Manifest { docs }
}

/// Document ranges: `---` lines (optionally followed by a comment or content) start one, `...` ends one.
fn split_docs(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for l in split_lines(text) {
        let s = &text[l.start..l.end];
        let marker = s == "---" || s.starts_with("--- ") || s.starts_with("---\t");
        if marker || s == "..." || s.starts_with("... ") {
            out.push(start..l.start);
            start = if marker && s.len() > 3 && !s[3..].trim_start().starts_with('#') {
                // `--- |` or `--- {...}`: the content starts on the marker line.
                l.start + 4
            } else {
                l.next
            };
        }
    }
    out.push(start..text.len());
    out.retain(|r| {
        split_lines(&text[r.clone()])
            .iter()
            .any(|l| line_kind(&text[r.clone()], l) == LineKind::Content)
    });
    out
}

fn read_doc(text: &str, index: usize, range: Range<usize>) -> Document {
    let body = &text[range.clone()];
    let first_line = line_of(text, range.start);
    let mut doc = Document {
        index,
        range: range.clone(),
        first_line,
        kind: DocKind::Other,
        data: BTreeMap::new(),
        not_strings: Vec::new(),
        values: BTreeMap::new(),
        data_line: None,
        error: None,
        value: None,
        container: None,
    };
    let value: Value = match serde_norway::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            let line = e
                .location()
                .map_or(first_line, |l| first_line + l.line() - 1);
            doc.error = Some(SyntaxError {
                line,
                message: e.to_string(),
            });
            // A file that looks like aws-auth still counts, so the error is reported against it.
            let lower = body.to_ascii_lowercase();
            if ["maproles", "mapusers", "aws-auth", "rolearn", "userarn"]
                .iter()
                .any(|k| lower.contains(k))
            {
                doc.kind = DocKind::Bare;
            }
            return doc;
        }
    };
    let is_map_key = |k: &str| {
        ["mapRoles", "mapUsers", "mapAccounts"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(k))
    };
    match &value {
        Value::Mapping(m) if m.get("kind").and_then(Value::as_str) == Some("ConfigMap") => {
            let meta = m.get("metadata");
            let name = meta
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let namespace = meta
                .and_then(|v| v.get("namespace"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let data = m.get("data").and_then(Value::as_mapping);
            let has_keys =
                data.is_some_and(|d| d.keys().any(|k| k.as_str().is_some_and(is_map_key)));
            if name.as_deref() == Some("aws-auth") || has_keys {
                doc.kind = DocKind::ConfigMap { name, namespace };
                if let Some(d) = data {
                    read_data(&mut doc, d);
                }
                locate(text, &mut doc, true);
            }
        }
        Value::Mapping(m) if m.keys().any(|k| k.as_str().is_some_and(is_map_key)) => {
            doc.kind = DocKind::Bare;
            read_data(&mut doc, m);
            locate(text, &mut doc, false);
        }
        Value::Mapping(m)
            if m.get("data")
                .and_then(Value::as_mapping)
                .is_some_and(|d| d.keys().any(|k| k.as_str().is_some_and(is_map_key))) =>
        {
            doc.kind = DocKind::ConfigMap {
                name: None,
                namespace: None,
            };
            if let Some(d) = m.get("data").and_then(Value::as_mapping) {
                read_data(&mut doc, d);
            }
            locate(text, &mut doc, true);
        }
        Value::Sequence(items) => {
            let key_of = |i: &Value| {
                i.as_mapping().and_then(|m| {
                    m.keys().filter_map(Value::as_str).find_map(|k| {
                        if k.eq_ignore_ascii_case("userarn") {
                            Some(ListKind::Users)
                        } else if k.eq_ignore_ascii_case("rolearn") || k == "sso" {
                            Some(ListKind::Roles)
                        } else {
                            None
                        }
                    })
                })
            };
            if let Some(list) = items.iter().find_map(key_of) {
                doc.kind = DocKind::List { list };
                doc.data.insert(list.data_key().into(), body.to_string());
                doc.values.insert(
                    list.data_key().into(),
                    Located {
                        key_line: first_line,
                        enc: Enc::Whole {
                            offset: range.start,
                        },
                    },
                );
            }
        }
        _ => {}
    }
    doc.value = Some(value);
    doc
}

fn read_data(doc: &mut Document, data: &serde_norway::Mapping) {
    for (k, v) in data {
        let Some(k) = k.as_str() else { continue };
        match v {
            Value::String(s) => {
                doc.data.insert(k.to_string(), s.clone());
            }
            Value::Null => {
                doc.data.insert(k.to_string(), String::new());
            }
            _ => doc.not_strings.push(k.to_string()),
        }
    }
}

/// Finds the lines of the data keys (under `data:` when `nested`, else at the top level).
fn locate(text: &str, doc: &mut Document, nested: bool) {
    let r = doc.range.clone();
    let lines: Vec<Line> = split_lines(&text[r.clone()])
        .into_iter()
        .map(|l| Line {
            start: l.start + r.start,
            end: l.end + r.start,
            next: l.next + r.start,
        })
        .collect();
    let content = |l: &Line| line_kind(text, l) == LineKind::Content;
    let Some(root) = lines.iter().find(|l| content(l)).map(|l| indent(text, l)) else {
        return;
    };
    // (first line index, end line index, key column) of the block holding the keys.
    let (from, to, key_col, data_line_idx) = if nested {
        let Some(d) = lines.iter().position(|l| {
            content(l)
                && indent(text, l) == root
                && block_pair(text, l.start + root, l.end).is_some_and(|p| {
                    p.key.as_deref() == Some("data") && p.value == ValueTok::Nested
                })
        }) else {
            return;
        };
        doc.data_line = Some(line_of(text, lines[d].start));
        let end = (d + 1..lines.len())
            .find(|&i| content(&lines[i]) && indent(text, &lines[i]) <= root)
            .unwrap_or(lines.len());
        let col = (d + 1..end)
            .find(|&i| content(&lines[i]))
            .map_or(root + 2, |i| indent(text, &lines[i]));
        (d + 1, end, col, Some(d))
    } else {
        (0, lines.len(), root, None)
    };
    let keys: Vec<usize> = (from..to)
        .filter(|&i| content(&lines[i]) && indent(text, &lines[i]) == key_col)
        .collect();
    let mut step = None;
    for (n, &i) in keys.iter().enumerate() {
        let l = &lines[i];
        let Some(pair) = block_pair(text, l.start + key_col, l.end) else {
            continue;
        };
        let Some(key) = pair.key.clone() else {
            continue;
        };
        let Some(decoded) = doc.data.get(&key) else {
            continue;
        };
        let end_idx = keys.get(n + 1).copied().unwrap_or(to);
        let key_line = line_of(text, l.start);
        let enc = match &pair.value {
            ValueTok::BlockScalar => {
                literal(text, l, &lines[i + 1..end_idx], key_col, decoded).unwrap_or(Enc::Unmapped)
            }
            ValueTok::Scalar(range) => {
                let continued = lines[i + 1..end_idx].iter().any(&content);
                scalar(text, range.start, r.end, continued, decoded).unwrap_or(Enc::Unmapped)
            }
            _ => Enc::Unmapped,
        };
        if let Enc::Literal { indent: ind, .. } = &enc {
            step.get_or_insert(ind.saturating_sub(key_col).max(1));
        }
        doc.values.insert(key, Located { key_line, enc });
    }
    // New keys go after the last line that belongs to the block (trailing blank and comment lines stay after).
    let last = (from..to).rev().find(|&i| content(&lines[i]));
    let insert_at = match (last, data_line_idx) {
        (Some(i), _) => {
            // The last value may be a block scalar whose deeper lines are blank-separated: take the block's last
            // non-blank line at or beyond the key column.
            let i = (i..to)
                .rev()
                .find(|&j| {
                    line_kind(text, &lines[j]) != LineKind::Blank
                        && indent(text, &lines[j]) >= key_col
                })
                .unwrap_or(i);
            lines[i].next
        }
        (None, Some(d)) => lines[d].next,
        (None, None) => r.end,
    };
    doc.container = Some(Container {
        indent: key_col,
        insert_at,
        step: step.unwrap_or(2),
    });
}

/// A `|` block scalar whose header is on `key` and whose candidate lines follow.
fn literal(text: &str, key: &Line, after: &[Line], key_col: usize, decoded: &str) -> Option<Enc> {
    let head = &text[key.start..key.end];
    let bar = head
        .rfind(": |")
        .map(|i| i + 2)
        .or_else(|| head.rfind(":|").map(|i| i + 1))?;
    let indicators: String = head[bar + 1..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '#')
        .collect();
    let explicit = indicators
        .chars()
        .find_map(|c| c.to_digit(10))
        .map(|d| d as usize);
    let chomp = if indicators.contains('-') {
        '-'
    } else if indicators.contains('+') {
        '+'
    } else {
        ' '
    };
    let ind = match explicit {
        Some(d) => key_col + d,
        None => after
            .iter()
            .find(|l| line_kind(text, l) != LineKind::Blank || indent(text, l) < l.end - l.start)
            .map_or(key_col + 2, |l| indent(text, l)),
    };
    if ind <= key_col {
        return None;
    }
    let mut lines = Vec::new();
    for l in after {
        let blank = text[l.start..l.end].bytes().all(|b| b == b' ');
        if blank || indent(text, l) >= ind {
            lines.push(*l);
        } else {
            break;
        }
    }
    // Decode like YAML and insist on agreeing with the parser.
    let mut value = String::new();
    for l in &lines {
        let s = &text[l.start..l.end];
        value.push_str(s.get(ind..).unwrap_or(""));
        // The file's last line may have no line break: then neither has the value.
        if l.next > l.end {
            value.push('\n');
        }
    }
    let body_end = value.trim_end_matches('\n').len();
    match chomp {
        '-' => value.truncate(body_end),
        ' ' => {
            let had_break = value.len() > body_end;
            value.truncate(body_end);
            if body_end > 0 && had_break {
                value.push('\n');
            }
        }
        _ => {}
    }
    (value == decoded).then_some(Enc::Literal {
        after_header: key.next,
        lines,
        indent: ind,
    })
}

/// A quoted (or single-line plain) scalar starting at `at`.
fn scalar(text: &str, at: usize, doc_end: usize, continued: bool, decoded: &str) -> Option<Enc> {
    let q = *text.as_bytes().get(at)?;
    let (value, starts) = if q == b'"' || q == b'\'' {
        let len = quoted_len(&text[at..doc_end])?;
        decode_quoted(text, at, at + len - 1)?
    } else {
        if continued {
            return None;
        }
        let line_end = text[at..].find(['\r', '\n']).map_or(text.len(), |i| at + i);
        let raw = &text[at..line_end];
        let cut = raw.find(" #").unwrap_or(raw.len());
        let tok = raw[..cut].trim_end();
        (tok.to_string(), (at..=at + tok.len()).collect())
    };
    if value != decoded {
        return None;
    }
    let line_starts = std::iter::once(0)
        .chain(value.match_indices('\n').map(|(i, _)| i + 1))
        .filter_map(|i| starts.get(i).copied())
        .collect();
    Some(Enc::Scalar {
        quote: q,
        starts,
        line_starts,
    })
}

/// Decodes a quoted scalar (`open` and `close` are its quotes), with the file offset of each decoded byte.
fn decode_quoted(text: &str, open: usize, close: usize) -> Option<(String, Vec<usize>)> {
    let b = text.as_bytes();
    let double = b[open] == b'"';
    let mut out = String::new();
    let mut starts = Vec::new();
    let mut pending: Vec<(char, usize)> = Vec::new();
    fn push(out: &mut String, starts: &mut Vec<usize>, c: char, at: usize) {
        out.push(c);
        starts.extend(std::iter::repeat_n(at, c.len_utf8()));
    }
    let skip_break = |i: usize| {
        if b.get(i) == Some(&b'\r') && b.get(i + 1) == Some(&b'\n') {
            i + 2
        } else {
            i + 1
        }
    };
    // After a line break: counts the empty lines that follow and skips the next line's leading white space.
    let fold = |mut i: usize| -> (usize, usize) {
        let mut empties = 0;
        loop {
            let ws = b[i..close]
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t'))
                .count();
            if i + ws < close && matches!(b[i + ws], b'\n' | b'\r') {
                empties += 1;
                i = skip_break(i + ws);
            } else {
                return (i + ws, empties);
            }
        }
    };
    let mut i = open + 1;
    while i < close {
        let c = text[i..].chars().next()?;
        match c {
            ' ' | '\t' => {
                pending.push((c, i));
                i += 1;
            }
            '\r' | '\n' => {
                let at = pending.first().map_or(i, |p| p.1);
                pending.clear();
                let (next, empties) = fold(skip_break(i));
                if empties == 0 {
                    push(&mut out, &mut starts, ' ', at);
                }
                for _ in 0..empties {
                    push(&mut out, &mut starts, '\n', at);
                }
                i = next;
            }
            '\\' if double => {
                for (p, at) in pending.drain(..) {
                    push(&mut out, &mut starts, p, at);
                }
                let e = *b.get(i + 1)?;
                if matches!(e, b'\n' | b'\r') {
                    let (next, empties) = fold(skip_break(i + 1));
                    for _ in 0..empties {
                        push(&mut out, &mut starts, '\n', i);
                    }
                    i = next;
                    continue;
                }
                let hex = |n: usize| -> Option<char> {
                    char::from_u32(u32::from_str_radix(text.get(i + 2..i + 2 + n)?, 16).ok()?)
                };
                let (ch, len) = match e {
                    b'0' => ('\0', 2),
                    b'a' => ('\x07', 2),
                    b'b' => ('\x08', 2),
                    b't' | b'\t' => ('\t', 2),
                    b'n' => ('\n', 2),
                    b'v' => ('\x0b', 2),
                    b'f' => ('\x0c', 2),
                    b'r' => ('\r', 2),
                    b'e' => ('\x1b', 2),
                    b' ' => (' ', 2),
                    b'"' => ('"', 2),
                    b'/' => ('/', 2),
                    b'\\' => ('\\', 2),
                    b'N' => ('\u{85}', 2),
                    b'_' => ('\u{a0}', 2),
                    b'L' => ('\u{2028}', 2),
                    b'P' => ('\u{2029}', 2),
                    b'x' => (hex(2)?, 4),
                    b'u' => (hex(4)?, 6),
                    b'U' => (hex(8)?, 10),
                    _ => return None,
                };
                push(&mut out, &mut starts, ch, i);
                i += len;
            }
            '\'' if !double => {
                for (p, at) in pending.drain(..) {
                    push(&mut out, &mut starts, p, at);
                }
                push(&mut out, &mut starts, '\'', i);
                i += 2;
            }
            _ => {
                for (p, at) in pending.drain(..) {
                    push(&mut out, &mut starts, p, at);
                }
                push(&mut out, &mut starts, c, i);
                i += c.len_utf8();
            }
        }
    }
    for (p, at) in pending.drain(..) {
        push(&mut out, &mut starts, p, at);
    }
    starts.push(close);
    Some((out, starts))
}

/// Why a manifest was not edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The document holding aws-auth does not parse.
    #[error("line {line}: the manifest does not parse: {message}")]
    Syntax { line: usize, message: String },
    /// No document holds aws-auth data.
    #[error("no aws-auth ConfigMap, data block or mapRoles/mapUsers list in the file")]
    NoAwsAuth,
    /// Several documents do, and the edit would have to pick one.
    #[error("{} aws-auth documents (lines {}); refusing to pick one", .lines.len(), join(.lines))]
    Several { lines: Vec<usize> },
    /// The list cannot be extended or changed without touching other bytes.
    #[error("cannot edit {key} safely: {reason}")]
    Layout { key: String, reason: String },
    /// No entry names the ARN.
    #[error("no entry names {arn}{}", .hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    NotFound { arn: String, hint: Option<String> },
    /// The removal would take away the last node-role or `system:masters` mapping.
    #[error("refusing to remove {what} (use --force to remove it anyway)")]
    LastMapping { what: String },
    /// The list-level edit refused (its lines are lines of the file).
    #[error(transparent)]
    Edit(#[from] EditError),
}

fn join(lines: &[usize]) -> String {
    lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An edited manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEdit {
    /// The whole new file.
    pub text: String,
    /// The list that changed.
    pub kind: ListKind,
    pub notes: Vec<Note>,
}

/// The one document an edit applies to: a ConfigMap named aws-auth first, else the only aws-auth-like document.
pub fn target(m: &Manifest) -> Result<&Document, ManifestError> {
    let all: Vec<&Document> = m.targets().collect();
    let named: Vec<&Document> = all
        .iter()
        .copied()
        .filter(|d| matches!(&d.kind, DocKind::ConfigMap { name: Some(n), .. } if n == "aws-auth"))
        .collect();
    let pick = if named.is_empty() { all } else { named };
    match pick.as_slice() {
        [] => Err(ManifestError::NoAwsAuth),
        [one] => match &one.error {
            Some(e) => Err(ManifestError::Syntax {
                line: e.line,
                message: e.message.clone(),
            }),
            None => Ok(one),
        },
        many => Err(ManifestError::Several {
            lines: many.iter().map(|d| d.first_line).collect(),
        }),
    }
}

/// Applies a list-level edit (`add`, `remove`, ...) to `kind`'s list in the file's aws-auth document and writes the
/// result back in the list's own encoding; a missing list is added as a `|` block after the other data keys.
///
/// # Errors
/// [`ManifestError`]: no (or several) aws-auth documents, a syntax error, a list encoding this editor does not
/// extend, the list edit's own refusal, or a result that does not re-parse as exactly the intended change.
pub fn edit_list(
    text: &str,
    kind: ListKind,
    f: impl FnOnce(&str) -> Result<Edit, EditError>,
) -> Result<ManifestEdit, ManifestError> {
    let m = parse_manifest(text);
    let doc = target(&m)?;
    let key = kind.data_key();
    let layout = |reason: &str| ManifestError::Layout {
        key: key.into(),
        reason: reason.into(),
    };
    if doc.not_strings.iter().any(|k| k == key) {
        return Err(layout(
            "its value is not a string (a ConfigMap's data values must be strings)",
        ));
    }
    if let DocKind::List { list } = doc.kind {
        if list != kind {
            return Err(layout(&format!("the file is a {} list", list.data_key())));
        }
    }
    let old = doc.data.get(key);
    let loc = doc.values.get(key);
    let mut edit = f(old.map_or("", String::as_str)).map_err(|e| translate(e, text, loc))?;
    let new_text = match (old, loc) {
        (Some(old), Some(loc)) => {
            splice_value(text, loc, old, &edit.text).map_err(|r| layout(&r))?
        }
        (Some(_), None) => return Err(layout("its position in the file could not be followed")),
        (None, _) => {
            let (new_text, inner) = new_key(text, doc, key, &edit.text).map_err(|r| layout(&r))?;
            edit.text = inner;
            new_text
        }
    };
    verify_manifest(text, &new_text, doc.index, key, &edit.text).map_err(|r| {
        ManifestError::Edit(unsafe_(format!(
            "the edited file does not read back as intended: {r}"
        )))
    })?;
    let map = |l: &mut Option<usize>| {
        if let (Some(n), Some(loc)) = (l.as_mut(), loc) {
            *n = loc.file_line(text, *n);
        }
    };
    let mut notes = edit.notes;
    for n in &mut notes {
        match n {
            Note::WildcardCovers { line }
            | Note::SsoMatcherCovers { line }
            | Note::RemovedNodeMapping { line } => map(line),
            _ => {}
        }
    }
    Ok(ManifestEdit {
        text: new_text,
        kind,
        notes,
    })
}

/// Rewrites the list lines in an [`EditError`] as file lines.
fn translate(e: EditError, text: &str, loc: Option<&Located>) -> EditError {
    let map = |l: Option<usize>| match (l, loc) {
        (Some(l), Some(loc)) => Some(loc.file_line(text, l)),
        (l, None) => l,
        (None, _) => None,
    };
    match e {
        EditError::Unparseable { line, message } => EditError::Unparseable {
            line: map(line),
            message,
        },
        EditError::AlreadyPresent { arn, line } => EditError::AlreadyPresent {
            arn,
            line: map(line),
        },
        EditError::Conflict {
            arn,
            line,
            difference,
        } => EditError::Conflict {
            arn,
            line: map(line),
            difference,
        },
        EditError::Ambiguous { arn, lines } => EditError::Ambiguous {
            arn,
            lines: lines.into_iter().map(map).collect(),
        },
        other => other,
    }
}

/// Byte positions of the common prefix and suffix of `old` and `new`, on character boundaries.
fn diff_span(old: &str, new: &str) -> (usize, usize) {
    let mut p = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !(old.is_char_boundary(p) && new.is_char_boundary(p)) {
        p -= 1;
    }
    let max = old.len().min(new.len()) - p;
    let mut s = old
        .bytes()
        .rev()
        .zip(new.bytes().rev())
        .take(max)
        .take_while(|(a, b)| a == b)
        .count();
    while !(old.is_char_boundary(old.len() - s) && new.is_char_boundary(new.len() - s)) {
        s -= 1;
    }
    (p, s)
}

fn splice(text: &str, r: Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..r.start]);
    out.push_str(with);
    out.push_str(&text[r.end..]);
    out
}

/// Writes `new` where `old` is, changing only the bytes that encode what differs.
fn splice_value(text: &str, loc: &Located, old: &str, new: &str) -> Result<String, String> {
    let nl = super::layout::newline(text);
    match &loc.enc {
        Enc::Whole { offset } => Ok(splice(text, *offset..offset + old.len(), new)),
        Enc::Literal {
            after_header,
            lines,
            indent,
        } => literal_splice(text, *after_header, lines, *indent, old, new, nl),
        Enc::Scalar { quote, starts, .. } => {
            let (p, s) = diff_span(old, new);
            let (a, b) = (starts[p], starts[old.len() - s]);
            let ins = &new[p..new.len() - s];
            let enc = match quote {
                b'"' => escape_double(ins),
                b'\'' if !ins.contains(|c: char| c.is_control()) => ins.replace('\'', "''"),
                b'\'' => return Err("a line break inside a single-quoted string".into()),
                _ if ins.contains(['\n', '#']) => return Err("the list is a plain (unquoted) string".into()),
                _ => ins.to_string(),
            };
            Ok(splice(text, a..b, &enc))
        }
        Enc::Unmapped => Err("the list is written in a form this editor does not extend (folded `>`, multi-line plain, or flow)".into()),
    }
}

/// A double-quoted encoding of `s` (JSON escapes are YAML escapes), with edge blanks escaped so no fold eats them.
fn escape_double(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_default();
    let mut inner = json[1..json.len() - 1].to_string();
    if inner.starts_with(' ') {
        inner.replace_range(0..1, "\\ ");
    }
    if inner.ends_with(' ') && !inner.ends_with("\\ ") {
        let n = inner.len();
        inner.replace_range(n - 1..n, "\\ ");
    }
    inner
}

fn literal_splice(
    text: &str,
    after_header: usize,
    lines: &[Line],
    indent: usize,
    old: &str,
    new: &str,
    nl: &str,
) -> Result<String, String> {
    let pad = " ".repeat(indent);
    let end = lines.last().map_or(after_header, |l| l.next);
    let ol: Vec<&str> = old.split_inclusive('\n').collect();
    let nw: Vec<&str> = new.split_inclusive('\n').collect();
    let lp = ol.iter().zip(&nw).take_while(|(a, b)| a == b).count();
    let max = ol.len().min(nw.len()) - lp;
    let ls = ol
        .iter()
        .rev()
        .zip(nw.iter().rev())
        .take(max)
        .take_while(|(a, b)| a == b)
        .count();
    let (old_mid, new_mid) = (&ol[lp..ol.len() - ls], &nw[lp..nw.len() - ls]);
    let unterminated_end =
        |at: usize| at == text.len() && !text.is_empty() && !text.ends_with('\n');
    if old_mid.iter().chain(new_mid).all(|l| l.ends_with('\n')) {
        // Whole lines changed: replace the file lines that encode them.
        let at = |k: usize| lines.get(k).map_or(end, |l| l.start);
        let (a, b) = (at(lp), at(ol.len() - ls));
        let mut chunk = String::new();
        for l in new_mid {
            let c = l.trim_end_matches('\n');
            if !c.is_empty() {
                chunk.push_str(&pad);
                chunk.push_str(c);
            }
            chunk.push_str(nl);
        }
        if unterminated_end(a) && !chunk.is_empty() {
            chunk = format!("{nl}{}", chunk.strip_suffix(nl).unwrap_or(&chunk));
        }
        return Ok(splice(text, a..b, &chunk));
    }
    // Within lines (a flow list, or a list without its final line break).
    let (p, s) = diff_span(old, new);
    let pos = |q: usize| -> Option<usize> {
        let k = old[..q].matches('\n').count();
        let col = q - old[..q].rfind('\n').map_or(0, |i| i + 1);
        match lines.get(k) {
            Some(l) if col == 0 => Some(l.start + indent.min(l.end - l.start)),
            Some(l) if l.start + indent + col <= l.end => Some(l.start + indent + col),
            Some(_) => None,
            None if col == 0 => Some(end),
            None => None,
        }
    };
    let (Some(a), Some(b)) = (pos(p), pos(old.len() - s)) else {
        return Err("the change could not be placed in the file".into());
    };
    let ins = &new[p..new.len() - s];
    let rest_blank = text[b..]
        .split(['\n', '\r'])
        .next()
        .is_none_or(|r| r.trim().is_empty());
    let segs: Vec<&str> = ins.split('\n').collect();
    let mut chunk = String::new();
    for (i, seg) in segs.iter().enumerate() {
        if i > 0 {
            chunk.push_str(nl);
            if !seg.is_empty() || (i + 1 == segs.len() && !rest_blank) {
                chunk.push_str(&pad);
            }
        }
        chunk.push_str(seg);
    }
    Ok(splice(text, a..b, &chunk))
}

/// Adds `key: |` with the list under it, after the document's last data key; returns the new file and the list
/// as it reads back (without its final line break when the file has none).
fn new_key(text: &str, doc: &Document, key: &str, inner: &str) -> Result<(String, String), String> {
    let c = doc
        .container
        .as_ref()
        .ok_or("the ConfigMap has no block-style `data:` section to add it to")?;
    let nl = super::layout::newline(text);
    let body_pad = " ".repeat(c.indent + c.step);
    let mut chunk = format!("{}{key}: |{nl}", " ".repeat(c.indent));
    for l in inner.split_inclusive('\n') {
        let l = l.trim_end_matches('\n');
        if !l.is_empty() {
            chunk.push_str(&body_pad);
            chunk.push_str(l);
        }
        chunk.push_str(nl);
    }
    let mut inner = inner.to_string();
    if c.insert_at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        chunk = format!("{nl}{}", chunk.strip_suffix(nl).unwrap_or(&chunk));
        inner.truncate(inner.trim_end_matches('\n').len());
    }
    Ok((splice(text, c.insert_at..c.insert_at, &chunk), inner))
}

/// Every document reads back the same, but `key` of document `index`, which reads back as `inner`.
fn verify_manifest(
    old: &str,
    new: &str,
    index: usize,
    key: &str,
    inner: &str,
) -> Result<(), String> {
    let (o, n) = (parse_manifest(old), parse_manifest(new));
    if o.docs.len() != n.docs.len() {
        return Err("the number of documents changed".into());
    }
    for (a, b) in o.docs.iter().zip(&n.docs) {
        if let Some(e) = &b.error {
            return Err(format!("line {}: {}", e.line, e.message));
        }
        let mut expected = a.value.clone();
        if a.index == index {
            match (&a.kind, expected.as_mut()) {
                (DocKind::List { .. }, _) => {
                    expected = serde_norway::from_str(inner).ok();
                }
                (DocKind::ConfigMap { .. }, Some(Value::Mapping(m))) => {
                    if let Some(Value::Mapping(d)) = m.get_mut("data") {
                        d.insert(key.into(), Value::String(inner.into()));
                    }
                }
                (DocKind::Bare, Some(Value::Mapping(m))) => {
                    m.insert(key.into(), Value::String(inner.into()));
                }
                _ => return Err("unexpected document shape".into()),
            }
            if b.data.get(key).map(String::as_str) != Some(inner) {
                return Err(format!("{key} does not read back as the edited list"));
            }
            // A key added after a last block scalar that had no line break gives that scalar one: the same list.
            for (k, v) in &a.data {
                let now = b.data.get(k);
                if k != key && now.is_some_and(|n| n != v && n.trim_end_matches('\n') == v) {
                    let fixed = Value::String(now.cloned().unwrap_or_default());
                    match expected.as_mut() {
                        Some(Value::Mapping(m)) if matches!(a.kind, DocKind::Bare) => {
                            m.insert(k.as_str().into(), fixed);
                        }
                        Some(Value::Mapping(m)) => {
                            if let Some(Value::Mapping(d)) = m.get_mut("data") {
                                d.insert(k.as_str().into(), fixed);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if expected != b.value {
            return Err(format!("document {} changed", a.index + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our decoding of quoted scalars agrees with serde_norway's, folds and escapes included.
    #[test]
    fn quoted_scalars_decode_like_the_parser() {
        for doc in [
            "k: \"a\\nb\\\n  \\ c\"\n",
            "k: \"fold\n  this  \n\n  line\"\n",
            "k: 'it''s\n  folded'\n",
            "k: \"\\x41\\u00e9\\t\\\"q\\\"\"\n",
            "k: \"trailing \\\n    \"\n",
        ] {
            let want: BTreeMap<String, String> = serde_norway::from_str(doc).unwrap();
            let at = doc.find(['"', '\'']).unwrap();
            let len = quoted_len(&doc[at..]).unwrap();
            let (got, starts) = decode_quoted(doc, at, at + len - 1).unwrap();
            assert_eq!(got, want["k"], "{doc:?}");
            assert_eq!(starts.len(), got.len() + 1);
        }
    }

    #[test]
    fn documents_and_their_kinds() {
        let text = "# c\n---\nkind: Namespace\n--- # aws-auth\nmapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/a\n    username: a\n...\n---\n- userarn: arn:aws:iam::111122223333:user/u\n  username: u\n";
        let m = parse_manifest(text);
        let kinds: Vec<&DocKind> = m.docs.iter().map(|d| &d.kind).collect();
        assert_eq!(
            kinds,
            [
                &DocKind::Other,
                &DocKind::Bare,
                &DocKind::List {
                    list: ListKind::Users
                }
            ]
        );
        assert_eq!(m.docs[1].values["mapRoles"].key_line, 5);
        assert_eq!(m.docs[1].values["mapRoles"].file_line(text, 2), 7);
        assert_eq!(m.docs[2].values["mapUsers"].file_line(text, 2), 11);
    }
}
