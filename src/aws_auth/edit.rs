//! Minimal-diff edits of one list text: add an item, fix an item's ARN, remove an item.
//!
//! Every edit keeps all other bytes, and is verified before it is returned: the result must parse (serde_norway)
//! to exactly the expected items, and the authenticator must keep the whole list.

use std::fmt;

use serde::Serialize;

use super::analyze::{analyze_list, Entry, ListAnalysis, ListKind};
use super::layout::{self, line_kind, split_lines, LineKind, Shape};
use super::lookup::{find_mapping, MatchKind};
use super::node::{parse_items, Node};
use super::problems::{
    fold_structure, is_placeholder, Problem, RESERVED_USERNAME_PREFIXES, TEMPLATES,
};
use super::render::{self, Values};
use crate::arn::{Arn, PrincipalKind};

/// A mapping to add: who (`arn`) becomes which Kubernetes user (`username`) in which `groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMapping {
    pub arn: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// The result of an edit: the whole new list text, and what the caller should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    pub notes: Vec<Note>,
}

/// Something worth telling about an edit that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    /// The role ARN was written without its path (aws-auth never matches a path).
    RolePathStripped { from: String, to: String },
    /// An `sts` assumed-role ARN was written as its role ARN.
    AssumedRoleConverted { from: String, to: String },
    /// The mapping grants `system:masters`.
    GrantsSystemMasters,
    /// The username starts with a prefix EKS reserves.
    ReservedUsername { prefix: String },
    /// A wildcard entry (which never matches on EKS) names a pattern covering the ARN.
    WildcardCovers { line: Option<usize> },
    /// An `sso:` matcher entry already covers the ARN where its alpha feature gate is on.
    SsoMatcherCovers { line: Option<usize> },
    /// The removed entry mapped nodes (`system:nodes`): nodes using it can no longer join.
    RemovedNodeMapping { line: Option<usize> },
    /// Several entries named the ARN; all were removed.
    RemovedEntries { count: usize },
    /// A conflicting entry for the ARN was removed so the new one could be added (`--replace`).
    Replaced { arn: String, line: Option<usize> },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::RolePathStripped { from, to } => {
                write!(f, "role path stripped: {from} written as {to}")
            }
            Note::AssumedRoleConverted { from, to } => {
                write!(f, "assumed-role ARN {from} written as {to}")
            }
            Note::GrantsSystemMasters => f.write_str("grants system:masters (superuser)"),
            Note::ReservedUsername { prefix } => {
                write!(f, "username uses reserved prefix '{prefix}'")
            }
            Note::WildcardCovers { line } => {
                write!(
                    f,
                    "a wildcard entry{} covers this ARN but never matches",
                    at(*line)
                )
            }
            Note::SsoMatcherCovers { line } => {
                write!(f, "an sso matcher{} already covers this role", at(*line))
            }
            Note::RemovedNodeMapping { line } => {
                write!(f, "removed a node mapping{}", at(*line))
            }
            Note::RemovedEntries { count } => write!(f, "removed {count} entries for the same ARN"),
            Note::Replaced { arn, line } => {
                write!(f, "replaced the earlier mapping of {arn}{}", at(*line))
            }
        }
    }
}

/// Why an edit was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The existing text does not parse, or the authenticator drops it whole: nothing we add would take effect.
    #[error("the existing list is unusable{}: {message}", at(*.line))]
    Unparseable {
        line: Option<usize>,
        message: String,
    },
    /// The requested mapping is not something aws-auth can hold.
    #[error("invalid mapping: {0}")]
    InvalidMapping(String),
    /// The same mapping is already there.
    #[error("{arn} is already mapped with the same username and groups{}", at(*.line))]
    AlreadyPresent { arn: String, line: Option<usize> },
    /// Another mapping for the same ARN exists.
    #[error("{arn} already has a different mapping{}: {difference}", at(*.line))]
    Conflict {
        arn: String,
        line: Option<usize>,
        difference: String,
    },
    /// No entry names the ARN.
    #[error("no entry names {arn}")]
    NotFound { arn: String },
    /// Several entries name the ARN and the edit would have to pick one.
    #[error("{} entries name {arn}; refusing to pick one", .lines.len())]
    Ambiguous {
        arn: String,
        lines: Vec<Option<usize>>,
    },
    /// The edit could not be made or verified byte-exactly.
    #[error("refusing an edit that could not be verified: {reason}")]
    Unsafe { reason: String },
}

pub(crate) fn invalid<T>(reason: String) -> Result<T, EditError> {
    Err(EditError::InvalidMapping(reason))
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

pub(crate) fn unsafe_(reason: impl Into<String>) -> EditError {
    EditError::Unsafe {
        reason: reason.into(),
    }
}

/// Appends a `mapRoles` item for `m`, its role ARN written without path, keeping every other byte.
///
/// # Errors
/// See [`EditError`]: unusable text, invalid mapping, an existing mapping for the role, or a result that does not
/// verify.
pub fn add_role(text: &str, m: &NewMapping) -> Result<Edit, EditError> {
    add(ListKind::Roles, text, m)
}

/// Appends a `mapUsers` item for `m`, keeping every other byte.
///
/// # Errors
/// As [`add_role`].
pub fn add_user(text: &str, m: &NewMapping) -> Result<Edit, EditError> {
    add(ListKind::Users, text, m)
}

/// Appends an item to a list of the given kind; see [`add_role`].
///
/// # Errors
/// As [`add_role`].
pub fn add(kind: ListKind, text: &str, m: &NewMapping) -> Result<Edit, EditError> {
    let (arn, mut notes) = normalize(kind, m)?;
    let (old, analysis) = usable(kind, text)?;
    match find_mapping(&analysis, &arn) {
        MatchKind::Exact(e)
        | MatchKind::CaseDiffers(e)
        | MatchKind::Duplicate { winner: e, .. } => {
            return Err(match difference(e, &m.username, &m.groups) {
                None => EditError::AlreadyPresent { arn, line: e.line },
                Some(difference) => EditError::Conflict {
                    arn,
                    line: e.line,
                    difference,
                },
            });
        }
        MatchKind::WithPath(e) => {
            return Err(EditError::Conflict {
                arn,
                line: e.line,
                difference: format!(
                    "the entry names the role with its path ({}); fix that entry's ARN instead",
                    e.arn.as_deref().unwrap_or_default()
                ),
            })
        }
        // A wildcard covering the ARN matches nothing on EKS: the concrete entry is the fix.
        MatchKind::Invalid(e) if e.problems.contains(&Problem::Wildcard) => {
            notes.push(Note::WildcardCovers { line: e.line });
        }
        MatchKind::Invalid(e) => {
            let why = e
                .dropped
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| e.problems.first().map(ToString::to_string))
                .unwrap_or_default();
            return Err(EditError::Conflict {
                arn,
                line: e.line,
                difference: format!(
                    "an entry for it exists but can never match ({why}); fix or remove it first"
                ),
            });
        }
        MatchKind::Sso(e) => notes.push(Note::SsoMatcherCovers { line: e.line }),
        MatchKind::Account(_) | MatchKind::Unparseable { .. } | MatchKind::None => {}
    }
    let nl = layout::newline(text);
    let shape = match layout::scan(text) {
        // A block list the scanner does not follow: append in the default style; verification decides.
        Shape::Unknown if text.trim_start().starts_with('-') => Shape::Empty,
        Shape::Unknown => return Err(unsafe_("the list's layout is not one this editor follows")),
        s => s,
    };
    let style = render::detect(kind, text, &shape, nl);
    let values = Values {
        arn: &arn,
        username: &m.username,
        groups: &m.groups,
    };
    let new_text = match &shape {
        Shape::Flow(f) => {
            let item = match &style.item {
                render::ItemStyle::Flow(fs) => render::flow_item(&style, fs, &values),
                _ => return Err(unsafe_("flow list without flow style")),
            };
            match f.items.last() {
                None => splice(text, f.open + 1..f.open + 1, &item),
                Some(last) => {
                    let sep = match f.seps.last() {
                        Some(r) if !text[r.clone()].contains('#') => text[r.clone()].to_string(),
                        _ => {
                            let ws = &text[f.open + 1..f.items[0].start];
                            match &style.item {
                                _ if ws.contains('\n') && !ws.contains('#') => ws.to_string(),
                                render::ItemStyle::Flow(fs) if fs.comma_space || !ws.is_empty() => {
                                    " ".into()
                                }
                                _ => String::new(),
                            }
                        }
                    };
                    splice(text, last.end..last.end, &format!(",{sep}{item}"))
                }
            }
        }
        _ => append_lines(text, &render::block_lines(&style, &values), nl),
    };
    let mut expected = old;
    expected.push(render::expected_node(&style, &values));
    verify(kind, &new_text, &expected)?;
    let after = analyze_list(kind, &new_text);
    let ok = matches!(find_mapping(&after, &arn), MatchKind::Exact(e) if difference(e, &m.username, &m.groups).is_none());
    if !ok {
        return Err(unsafe_(
            "the authenticator would not map the new entry as requested",
        ));
    }
    Ok(Edit {
        text: new_text,
        notes,
    })
}

/// Validates the request and returns the ARN to write.
pub(crate) fn normalize(kind: ListKind, m: &NewMapping) -> Result<(String, Vec<Note>), EditError> {
    let (arn, mut notes) = normalize_arn(kind, &m.arn)?;
    check_text(&m.username, "username")?;
    for g in &m.groups {
        check_text(g, "group")?;
    }
    if m.groups.iter().any(|g| g == "system:masters") {
        notes.push(Note::GrantsSystemMasters);
    }
    if !m.username.starts_with("system:node:") {
        if let Some(p) = RESERVED_USERNAME_PREFIXES
            .iter()
            .find(|p| m.username.starts_with(**p))
        {
            notes.push(Note::ReservedUsername {
                prefix: (*p).into(),
            });
        }
    }
    Ok((arn, notes))
}

/// The ARN aws-auth needs for a caller: canonical, and for roles without the path.
pub(crate) fn normalize_arn(kind: ListKind, arn: &str) -> Result<(String, Vec<Note>), EditError> {
    let raw = arn.trim();
    if is_placeholder(raw, false) || raw.contains(['*', '?']) {
        return invalid(format!(
            "'{raw}' is a placeholder or wildcard, which never matches"
        ));
    }
    let parsed = Arn::parse(&fold_structure(raw))
        .map_err(|e| EditError::InvalidMapping(format!("'{raw}': {e}")))?;
    let canonical = parsed.canonical();
    let mut notes = Vec::new();
    if parsed.kind() == PrincipalKind::AssumedRole {
        notes.push(Note::AssumedRoleConverted {
            from: raw.into(),
            to: canonical.to_string(),
        });
    }
    let arn = match (kind, canonical.kind()) {
        (ListKind::Roles, PrincipalKind::Role) => {
            let stripped = canonical.without_path().to_string();
            if stripped != canonical.to_string() {
                notes.push(Note::RolePathStripped {
                    from: canonical.to_string(),
                    to: stripped.clone(),
                });
            }
            stripped
        }
        (ListKind::Users, PrincipalKind::User | PrincipalKind::Root) => canonical.to_string(),
        (_, k) => return invalid(format!("{} cannot hold a {k:?} ARN", kind.data_key())),
    };
    Ok((arn, notes))
}

/// A username or group must be non-empty, printable, no placeholder, and use only known templates.
fn check_text(s: &str, what: &str) -> Result<(), EditError> {
    if s.is_empty() || s.chars().any(char::is_control) {
        return invalid(format!("{what} '{s}' is empty or holds control characters"));
    }
    if is_placeholder(s, true) {
        return invalid(format!("{what} '{s}' looks like an unexpanded placeholder"));
    }
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..].find("}}").ok_or_else(|| {
            EditError::InvalidMapping(format!("{what} '{s}' has an unclosed {{{{"))
        })?;
        let name = &rest[open + 2..open + close];
        if !TEMPLATES.contains(&name) {
            return invalid(format!("{what} '{s}' uses unknown template {{{{{name}}}}}"));
        }
        rest = &rest[open + close + 2..];
    }
    Ok(())
}

/// Parses the text and refuses when the authenticator would not use it.
pub(crate) fn usable(kind: ListKind, text: &str) -> Result<(Vec<Node>, ListAnalysis), EditError> {
    let old = parse_items(text).map_err(|f| EditError::Unparseable {
        line: f.line,
        message: f.message,
    })?;
    let analysis = analyze_list(kind, text);
    if let Some(e) = &analysis.error {
        return Err(EditError::Unparseable {
            line: e.line,
            message: e.message.clone(),
        });
    }
    Ok((old, analysis))
}

/// `None` when `e` maps to the same username and the same set of groups.
pub(crate) fn difference(e: &Entry, username: &str, groups: &[String]) -> Option<String> {
    let mut diffs = Vec::new();
    if e.username != username {
        diffs.push(format!("username '{}' instead of '{username}'", e.username));
    }
    let (mut have, mut want) = (e.groups.clone(), groups.to_vec());
    have.sort();
    have.dedup();
    want.sort();
    want.dedup();
    if have != want {
        diffs.push(format!(
            "groups [{}] instead of [{}]",
            have.join(", "),
            want.join(", ")
        ));
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

pub(crate) fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// Inserts whole lines after the last line that is not blank or `...`, keeping the text's final-newline state.
fn append_lines(text: &str, lines: &[String], nl: &str) -> String {
    let ls = split_lines(text);
    let last = ls.iter().rposition(|l| {
        let k = line_kind(text, l);
        !(k == LineKind::Blank || (k == LineKind::Marker && text[l.start..l.end].trim() == "..."))
    });
    match last.map(|i| ls[i]) {
        None => {
            let chunk: String = lines.iter().map(|l| format!("{l}{nl}")).collect();
            splice(text, 0..0, &chunk)
        }
        Some(l) if l.next > l.end => {
            let chunk: String = lines.iter().map(|l| format!("{l}{nl}")).collect();
            splice(text, l.next..l.next, &chunk)
        }
        Some(l) => splice(text, l.end..l.end, &format!("{nl}{}", lines.join(nl))),
    }
}

/// Checks that `text` parses to exactly `expected` and that the authenticator keeps the whole list.
pub(crate) fn verify(kind: ListKind, text: &str, expected: &[Node]) -> Result<(), EditError> {
    let got = parse_items(text)
        .map_err(|f| unsafe_(format!("the result does not parse: {}", f.message)))?;
    if got != expected {
        return Err(unsafe_(
            "the result does not read back as the expected items",
        ));
    }
    if let Some(e) = analyze_list(kind, text).error {
        return Err(unsafe_(format!(
            "the authenticator would drop the result: {}",
            e.message
        )));
    }
    Ok(())
}
