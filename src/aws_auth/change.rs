//! Changing or removing existing items: the ARN token of one entry, or whole entries with their own lines.

use super::analyze::{Entry, ListAnalysis, ListKind};
use super::edit::{
    difference, normalize_arn, splice, unsafe_, usable, verify, Edit, EditError, Note,
};
use super::layout::{self, split_lines, Shape, ValueTok};
use super::node::Node;
use super::problems::Problem;
use super::scalar::{render as render_scalar, unquote, Ctx, Quote};

/// Replaces the ARN of the one entry naming `old_arn` with `new_arn` (a role's path is removed), changing no other
/// byte: the fix for an entry written with a role path.
///
/// # Errors
/// [`EditError::NotFound`] / [`EditError::Ambiguous`] when not exactly one entry names `old_arn`; a conflict when
/// another entry already maps `new_arn`; otherwise as [`add_role`](super::add_role).
pub fn replace_arn(
    kind: ListKind,
    text: &str,
    old_arn: &str,
    new_arn: &str,
) -> Result<Edit, EditError> {
    let (arn, mut notes) = normalize_arn(kind, new_arn)?;
    let (old, analysis) = usable(kind, text)?;
    let targets = named(&analysis, old_arn);
    let target = match targets.as_slice() {
        [] => {
            return Err(EditError::NotFound {
                arn: old_arn.into(),
            })
        }
        [one] => *one,
        many => {
            return Err(EditError::Ambiguous {
                arn: old_arn.into(),
                lines: many.iter().map(|e| e.line).collect(),
            })
        }
    };
    if let Some(other) = analysis.entries.iter().find(|e| {
        e.index != target.index
            && e.dropped.is_none()
            && e.arn.as_ref().is_some_and(|a| a.eq_ignore_ascii_case(&arn))
    }) {
        return Err(match difference(other, &target.username, &target.groups) {
            None => EditError::AlreadyPresent {
                arn,
                line: other.line,
            },
            Some(difference) => EditError::Conflict {
                arn,
                line: other.line,
                difference,
            },
        });
    }
    let item = located(text, old.len(), target.index)?;
    let arn_pairs: Vec<_> = item
        .pairs
        .iter()
        .filter(|p| {
            p.key
                .as_deref()
                .and_then(|k| super::analyze::field_kind(kind, k))
                == Some(super::problems::Field::Arn)
        })
        .collect();
    let [pair] = arn_pairs.as_slice() else {
        return Err(unsafe_(
            "the entry's ARN key could not be located exactly once",
        ));
    };
    let (ValueTok::Scalar(r), Some(key)) = (&pair.value, &pair.key) else {
        return Err(unsafe_("the entry's ARN is not a single-line scalar"));
    };
    let raw = &text[r.clone()];
    let quote = Quote::of_token(raw);
    let decoded = if quote == Quote::Plain {
        Some(raw.to_string())
    } else {
        unquote(raw)
    };
    if decoded.as_deref() != target.arn.as_deref() {
        return Err(unsafe_(
            "the ARN token does not read back as the entry's ARN",
        ));
    }
    let ctx = if item.flow { Ctx::Flow } else { Ctx::Block };
    let new_text = splice(text, r.clone(), &render_scalar(&arn, quote, ctx));
    let mut expected = old;
    if let Some(Node::Map(pairs)) = expected.get_mut(target.index) {
        for (k, v) in pairs.iter_mut() {
            if k == &Node::Str(key.clone()) {
                *v = Node::Str(arn.clone());
            }
        }
    }
    verify(kind, &new_text, &expected)?;
    if let Some(p) = target.problems.iter().find_map(|p| match p {
        Problem::RolePath { fixed, .. } | Problem::SsoRolePath { fixed, .. } => Some(fixed),
        _ => None,
    }) {
        if p.eq_ignore_ascii_case(&arn) {
            notes.push(Note::RolePathStripped {
                from: target.arn.clone().unwrap_or_default(),
                to: arn.clone(),
            });
        }
    }
    notes.dedup();
    Ok(Edit {
        text: new_text,
        notes,
    })
}

/// Removes every entry whose ARN is `arn` (case-insensitive), with its lines; comments and other items stay.
///
/// # Errors
/// [`EditError::NotFound`] when no entry names `arn`; [`EditError::Unparseable`] / [`EditError::Unsafe`] as for
/// [`add_role`](super::add_role).
pub fn remove(kind: ListKind, text: &str, arn: &str) -> Result<Edit, EditError> {
    let (old, analysis) = usable(kind, text)?;
    let targets = named(&analysis, arn);
    if targets.is_empty() {
        return Err(EditError::NotFound { arn: arn.into() });
    }
    let mut notes: Vec<Note> = targets
        .iter()
        .filter(|e| e.groups.iter().any(|g| g == "system:nodes"))
        .map(|e| Note::RemovedNodeMapping { line: e.line })
        .collect();
    if targets.len() > 1 {
        notes.push(Note::RemovedEntries {
            count: targets.len(),
        });
    }
    let gone: Vec<usize> = targets.iter().map(|e| e.index).collect();
    let mut current = text.to_string();
    // Last first, so earlier positions stay valid.
    for (removed, &index) in gone.iter().rev().enumerate() {
        let count = old.len() - removed;
        let range = item_range(&current, count, index)?;
        current = splice(&current, range, "");
    }
    let expected: Vec<Node> = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, n)| n)
        .collect();
    verify(kind, &current, &expected)?;
    Ok(Edit {
        text: current,
        notes,
    })
}

fn named<'a>(analysis: &'a ListAnalysis, arn: &str) -> Vec<&'a Entry> {
    let arn = arn.trim();
    analysis
        .entries
        .iter()
        .filter(|e| {
            e.arn
                .as_ref()
                .is_some_and(|a| a.to_lowercase() == arn.to_lowercase())
        })
        .collect()
}

/// The scanned item `index`, when the scanner agrees with the parser on the item count.
fn located(text: &str, count: usize, index: usize) -> Result<layout::Item, EditError> {
    let items = match layout::scan(text) {
        Shape::Block(b) => b.items,
        Shape::Flow(f) => f.items,
        _ => Vec::new(),
    };
    if items.len() != count {
        return Err(unsafe_("the scanner and the parser disagree on the items"));
    }
    items
        .into_iter()
        .nth(index)
        .ok_or_else(|| unsafe_("item not found"))
}

/// The bytes to delete to remove item `index` (of `count`) with its own lines or its separator.
fn item_range(text: &str, count: usize, index: usize) -> Result<std::ops::Range<usize>, EditError> {
    let shape = layout::scan(text);
    match &shape {
        Shape::Flow(f) if f.items.len() == count => {
            let items = &f.items;
            Ok(match index {
                0 if items.len() > 1 => items[0].start..items[1].start,
                0 => items[0].start..items[0].end,
                i => items[i - 1].end..items[i].end,
            })
        }
        Shape::Block(b) if b.items.len() == count => {
            let item = &b.items[index];
            let ls = split_lines(text);
            let first = ls
                .iter()
                .position(|l| l.start <= item.start && item.start <= l.end);
            let last = ls
                .iter()
                .position(|l| l.end == item.end && l.start <= item.end);
            let (Some(first), Some(last)) = (first, last) else {
                return Err(unsafe_("item lines not found"));
            };
            Ok(match (ls[last].next > ls[last].end, first) {
                (true, _) => ls[first].start..ls[last].next,
                (false, 0) => ls[first].start..ls[last].end,
                (false, f) => ls[f - 1].end..ls[last].end,
            })
        }
        _ => Err(unsafe_("the scanner and the parser disagree on the items")),
    }
}
