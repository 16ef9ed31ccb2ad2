//! Writing an edited list back into its manifest file: only the bytes that encode what changed are touched, in the
//! list's own encoding, and the whole file is re-parsed before the result is returned.

use std::ops::Range;

use serde_norway::Value;

use super::analyze::ListKind;
use super::edit::{unsafe_, Edit, EditError, Note};
use super::layout::Line;
use super::manifest::{parse_manifest, DocKind, Document, Enc, Located, Manifest};

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
