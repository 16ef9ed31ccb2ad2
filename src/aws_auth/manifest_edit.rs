//! Adding and removing one mapping in an aws-auth manifest file (`eks-auth aws-auth add` / `remove`).

use super::analyze::{analyze, analyze_list, ConfigAnalysis, ListKind};
use super::edit::{add, difference, normalize_arn, EditError, NewMapping, Note};
use super::lookup::{find_mapping, MatchKind};
use super::manifest::{parse_manifest, Located};
use super::problems::fold_structure;
use super::write::{edit_list, target, ManifestEdit, ManifestError};
use crate::arn::{Arn, PrincipalKind};

/// The list an ARN belongs in: roles (and assumed roles) in `mapRoles`, users and root in `mapUsers`.
///
/// # Errors
/// [`EditError::InvalidMapping`] for anything else.
pub fn list_for(arn: &str) -> Result<ListKind, EditError> {
    let parsed = Arn::parse(&fold_structure(arn.trim()))
        .map_err(|e| EditError::InvalidMapping(format!("'{}': {e}", arn.trim())))?;
    match parsed.kind() {
        PrincipalKind::Role | PrincipalKind::AssumedRole => Ok(ListKind::Roles),
        PrincipalKind::User | PrincipalKind::Root => Ok(ListKind::Users),
        k => Err(EditError::InvalidMapping(format!(
            "a {k:?} ARN cannot be mapped in aws-auth"
        ))),
    }
}

/// Appends one mapping to the right list of the file's aws-auth document, keeping every other byte.
///
/// With `replace`, entries that map the same ARN differently (or with its role path) are removed first.
///
/// # Errors
/// [`ManifestError`]; an identical mapping is [`EditError::AlreadyPresent`], a different one
/// [`EditError::Conflict`] (without `replace`).
pub fn add_mapping(
    text: &str,
    m: &NewMapping,
    replace: bool,
) -> Result<ManifestEdit, ManifestError> {
    let kind = list_for(&m.arn)?;
    let (arn, _) = normalize_arn(kind, &m.arn)?;
    let mut current = text.to_string();
    let mut notes = Vec::new();
    // Each round removes one conflicting entry; a list has finitely many.
    for _ in 0..64 {
        match edit_list(&current, kind, |t| add(kind, t, m)) {
            Err(ManifestError::Edit(EditError::Conflict { .. })) if replace => {
                let doc_text = current.clone();
                let manifest = parse_manifest(&doc_text);
                let doc = target(&manifest)?;
                let list = analyze_list(
                    kind,
                    doc.data.get(kind.data_key()).map_or("", String::as_str),
                );
                let found = find_mapping(&list, &arn);
                let Some(old) = found
                    .entry()
                    .and_then(|e| e.arn.clone().map(|a| (a, e.line)))
                else {
                    return Err(EditError::Unsafe {
                        reason: "the conflicting entry could not be found".into(),
                    }
                    .into());
                };
                let line = old
                    .1
                    .map(|l| file_line(&doc_text, doc.values.get(kind.data_key()), l));
                // The same mapping written with the role path: fix the ARN where it is.
                if let MatchKind::WithPath(e) = &found {
                    if difference(e, &m.username, &m.groups).is_none() {
                        let mut fixed = edit_list(&current, kind, |t| {
                            super::replace_arn(kind, t, &old.0, &arn)
                        })?;
                        notes.push(Note::Replaced { arn: old.0, line });
                        notes.append(&mut fixed.notes);
                        fixed.notes = notes;
                        return Ok(fixed);
                    }
                }
                let removed = edit_list(&current, kind, |t| super::remove(kind, t, &old.0))?;
                notes.push(Note::Replaced { arn: old.0, line });
                current = removed.text;
            }
            Ok(mut e) => {
                notes.append(&mut e.notes);
                e.notes = notes;
                return Ok(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(EditError::Unsafe {
        reason: "too many conflicting entries".into(),
    }
    .into())
}

fn file_line(text: &str, loc: Option<&Located>, inner: usize) -> usize {
    loc.map_or(inner, |l| l.file_line(text, inner))
}

/// Removes every entry naming `arn` (as written, case-insensitive) from `mapRoles` and `mapUsers`.
///
/// Refuses to remove the last node-role mapping or the last `system:masters` mapping unless `force`.
///
/// # Errors
/// [`ManifestError::NotFound`] when nothing names the ARN (with a hint when an entry maps it differently),
/// [`ManifestError::LastMapping`], and the errors of [`edit_list`].
pub fn remove_mapping(text: &str, arn: &str, force: bool) -> Result<ManifestEdit, ManifestError> {
    let manifest = parse_manifest(text);
    let doc = target(&manifest)?;
    let before = analyze(&doc.data);
    let wanted = arn.trim().to_lowercase();
    let names = |kind: ListKind| {
        doc.data.get(kind.data_key()).is_some_and(|t| {
            analyze_list(kind, t)
                .entries
                .iter()
                .any(|e| e.arn.as_ref().is_some_and(|a| a.to_lowercase() == wanted))
        })
    };
    let kinds: Vec<ListKind> = [ListKind::Roles, ListKind::Users]
        .into_iter()
        .filter(|k| names(*k))
        .collect();
    if kinds.is_empty() {
        return Err(ManifestError::NotFound {
            arn: arn.trim().into(),
            hint: hint(text, doc, &before, arn),
        });
    }
    let mut current = text.to_string();
    let mut result = None;
    for kind in kinds {
        let e = edit_list(&current, kind, |t| super::remove(kind, t, arn.trim()))?;
        current = e.text.clone();
        result = Some(e);
    }
    let Some(mut result) = result else {
        return Err(ManifestError::NotFound {
            arn: arn.into(),
            hint: None,
        });
    };
    if !force {
        let after_manifest = parse_manifest(&current);
        let after = analyze(&target(&after_manifest)?.data);
        let loc = |k: ListKind| doc.values.get(k.data_key());
        if let (Some(line), 0) = (first_node(&before), node_count(&after)) {
            return Err(ManifestError::LastMapping {
                what: format!(
                    "the last node-role mapping (line {}): nodes using it could no longer join",
                    file_line(text, loc(ListKind::Roles), line)
                ),
            });
        }
        if let (Some((kind, line)), 0) = (first_masters(&before), masters_count(&after)) {
            return Err(ManifestError::LastMapping {
                what: format!(
                    "the last system:masters mapping (line {})",
                    file_line(text, loc(kind), line)
                ),
            });
        }
    }
    result.notes.retain(|n| !matches!(n, Note::Replaced { .. }));
    Ok(result)
}

fn hint(
    text: &str,
    doc: &super::manifest::Document,
    cfg: &ConfigAnalysis,
    arn: &str,
) -> Option<String> {
    let found = cfg.find(arn);
    let e = found.entry()?;
    let kind = if cfg.roles.as_ref().is_some_and(|r| r.entries.contains(e)) {
        ListKind::Roles
    } else {
        ListKind::Users
    };
    let line = e
        .line
        .map(|l| file_line(text, doc.values.get(kind.data_key()), l));
    let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
    let written = e.arn.clone().unwrap_or_default();
    Some(match found {
        MatchKind::WithPath(_) => format!("the entry{at} names it with its path: --arn {written}"),
        _ => format!("the entry{at} is written {written}: pass that to --arn"),
    })
}

fn is_node(e: &super::Entry) -> bool {
    e.groups.iter().any(|g| g == "system:nodes")
}

fn first_node(c: &ConfigAnalysis) -> Option<usize> {
    c.roles
        .as_ref()?
        .effective()
        .find(|e| is_node(e))
        .map(|e| e.line.unwrap_or(0))
}

fn node_count(c: &ConfigAnalysis) -> usize {
    c.roles
        .as_ref()
        .map_or(0, |r| r.effective().filter(|e| is_node(e)).count())
}

fn masters(e: &super::Entry) -> bool {
    e.groups.iter().any(|g| g == "system:masters")
}

fn first_masters(c: &ConfigAnalysis) -> Option<(ListKind, usize)> {
    [&c.roles, &c.users].into_iter().flatten().find_map(|l| {
        l.effective()
            .find(|e| masters(e))
            .map(|e| (l.kind, e.line.unwrap_or(0)))
    })
}

fn masters_count(c: &ConfigAnalysis) -> usize {
    [&c.roles, &c.users]
        .into_iter()
        .flatten()
        .map(|l| l.effective().filter(|e| masters(e)).count())
        .sum()
}
