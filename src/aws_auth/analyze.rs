//! Reading `mapRoles` / `mapUsers` the way the authenticator does, and saying what is wrong with each entry.
//!
//! The authenticator turns the YAML into JSON (keys sorted) and decodes it with Go's `encoding/json`: keys match
//! case-insensitively, unknown keys are ignored, a repeated key keeps its last value, and a value of the wrong type
//! (`groups: system:masters`, `username: 123`) or a syntax error makes it drop the whole key. Each decoded item is then
//! validated (`RoleMapping.Validate`, `UserMapping.Validate`) and dropped alone when invalid.

use std::collections::BTreeMap;

use serde::Serialize;

use super::layout::{self, Shape};
use super::node::{parse_items, Node};
use super::problems::{self, DropReason, Field, Problem};

/// Which list a text holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// `mapRoles`: items keyed by `rolearn` (or `sso`).
    Roles,
    /// `mapUsers`: items keyed by `userarn`.
    Users,
}

impl ListKind {
    /// The ConfigMap data key holding this list.
    pub fn data_key(self) -> &'static str {
        match self {
            ListKind::Roles => "mapRoles",
            ListKind::Users => "mapUsers",
        }
    }

    /// The item key naming the ARN, as the authenticator spells it.
    pub fn arn_key(self) -> &'static str {
        match self {
            ListKind::Roles => "rolearn",
            ListKind::Users => "userarn",
        }
    }
}

/// The alpha `sso:` matcher of a mapRoles item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SsoMatcher {
    pub permission_set_name: String,
    pub account_id: String,
    pub partition: String,
}

/// One item of a list, as the authenticator reads it, with our findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// 0-based position in the list.
    pub index: usize,
    /// 1-based line of the item within the list text, when the scanner could place it.
    pub line: Option<usize>,
    /// The `rolearn`/`userarn` value exactly as written (the authenticator compares it case-insensitively).
    pub arn: Option<String>,
    /// The form that would match a caller: canonical, role path removed. `None` when the ARN does not parse.
    pub canonical_arn: Option<String>,
    pub sso: Option<SsoMatcher>,
    pub username: String,
    pub groups: Vec<String>,
    pub userid: Option<String>,
    /// Keys the authenticator ignores, as written.
    pub other_keys: Vec<String>,
    /// Why the authenticator's validation drops this item, if it does.
    pub dropped: Option<DropReason>,
    pub problems: Vec<Problem>,
}

impl Entry {
    /// True when the authenticator keeps this entry and could match a caller with it.
    pub fn is_effective(&self) -> bool {
        self.dropped.is_none()
            && !self
                .problems
                .iter()
                .any(|p| matches!(p, Problem::ShadowedBy { .. }))
    }
}

/// Why a whole key is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyErrorKind {
    /// The text is not valid YAML.
    Syntax,
    /// Valid YAML, but a value has the wrong type for the authenticator's decoder.
    Type,
}

/// A failure that makes the authenticator ignore a whole key (newer builds keep the previously loaded value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyError {
    pub kind: KeyErrorKind,
    /// 1-based line within the list text.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// The analysis of one `mapRoles` or `mapUsers` text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListAnalysis {
    pub kind: ListKind,
    /// Items as read (empty after a syntax error).
    pub entries: Vec<Entry>,
    /// Set when the authenticator drops the whole key.
    pub error: Option<KeyError>,
}

impl ListAnalysis {
    /// Entries the authenticator keeps and uses (not dropped, not shadowed by a later duplicate).
    pub fn effective(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| self.error.is_none() && e.is_effective())
    }
}

/// One `mapAccounts` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub index: usize,
    pub line: Option<usize>,
    /// The value as the authenticator reads it (raw text for numbers, so leading zeros survive).
    pub value: String,
    /// True for a 12-digit account ID; anything else never matches.
    pub valid: bool,
}

/// The analysis of a `mapAccounts` text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountsAnalysis {
    pub accounts: Vec<Account>,
    pub error: Option<KeyError>,
}

/// The analysis of a whole aws-auth `data` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigAnalysis {
    pub roles: Option<ListAnalysis>,
    pub users: Option<ListAnalysis>,
    pub accounts: Option<AccountsAnalysis>,
    /// Data keys the authenticator ignores (`maproles`, `mapRole`, anything else).
    pub ignored_keys: Vec<String>,
}

/// Analyses a `mapRoles` text.
pub fn analyze_roles(text: &str) -> ListAnalysis {
    analyze_list(ListKind::Roles, text)
}

/// Analyses a `mapUsers` text.
pub fn analyze_users(text: &str) -> ListAnalysis {
    analyze_list(ListKind::Users, text)
}

/// Analyses the aws-auth ConfigMap's `data`: `mapRoles`, `mapUsers`, `mapAccounts` (exact, case-sensitive keys).
pub fn analyze(data: &BTreeMap<String, String>) -> ConfigAnalysis {
    ConfigAnalysis {
        roles: data.get("mapRoles").map(|t| analyze_roles(t)),
        users: data.get("mapUsers").map(|t| analyze_users(t)),
        accounts: data.get("mapAccounts").map(|t| analyze_accounts(t)),
        ignored_keys: data
            .keys()
            .filter(|k| !matches!(k.as_str(), "mapRoles" | "mapUsers" | "mapAccounts"))
            .cloned()
            .collect(),
    }
}

/// Analyses a list text of the given kind.
pub fn analyze_list(kind: ListKind, text: &str) -> ListAnalysis {
    let items = match parse_items(text) {
        Ok(items) => items,
        Err(f) => {
            return ListAnalysis {
                kind,
                entries: Vec::new(),
                error: Some(KeyError {
                    kind: if f.not_a_list {
                        KeyErrorKind::Type
                    } else {
                        KeyErrorKind::Syntax
                    },
                    line: f.line,
                    column: f.column,
                    message: f.message,
                }),
            }
        }
    };
    let lines = item_lines(text, items.len());
    let mut error = None;
    let mut entries = Vec::with_capacity(items.len());
    for (index, node) in items.iter().enumerate() {
        let line = lines.as_ref().and_then(|l| l.get(index).copied());
        let (entry, type_error) = read_entry(kind, index, line, node);
        if let (None, Some(message)) = (&error, type_error) {
            error = Some(KeyError {
                kind: KeyErrorKind::Type,
                line,
                column: None,
                message,
            });
        }
        entries.push(entry);
    }
    problems::mark_duplicates(&mut entries);
    ListAnalysis {
        kind,
        entries,
        error,
    }
}

/// Lines of the list's items, when the scanner finds as many items as the parser.
pub(crate) fn item_lines(text: &str, count: usize) -> Option<Vec<usize>> {
    let lines: Vec<usize> = match layout::scan(text) {
        Shape::Block(b) => b.items.iter().map(|i| i.line).collect(),
        Shape::Flow(f) => f.items.iter().map(|i| i.line).collect(),
        Shape::Empty => Vec::new(),
        Shape::Unknown => return None,
    };
    (lines.len() == count).then_some(lines)
}

#[derive(Default)]
struct Raw {
    arn: Option<String>,
    sso: Option<SsoMatcher>,
    username: String,
    groups: Vec<String>,
    userid: Option<String>,
}

/// Decodes one item like Go's `encoding/json` into `RoleMapping`/`UserMapping`; the second value is the first type
/// error, which makes the authenticator drop the whole key.
fn read_entry(
    kind: ListKind,
    index: usize,
    line: Option<usize>,
    node: &Node,
) -> (Entry, Option<String>) {
    let mut raw = Raw::default();
    let mut other_keys = Vec::new();
    let mut problems = Vec::new();
    let mut type_error = None;
    let mut not_mapping = false;
    match node {
        Node::Null => {}
        Node::Map(pairs) => {
            // yaml.v2 keeps the last of repeated keys; the JSON step then sorts keys, and Go assigns them in order.
            let mut by_key: BTreeMap<String, &Node> = BTreeMap::new();
            let mut spellings: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
            for (k, v) in pairs {
                let key = k.key_string();
                match field_of(kind, &key) {
                    Some(f) => spellings.entry(f).or_default().push(key.clone()),
                    None => other_keys.push(key.clone()),
                }
                by_key.insert(key, v);
            }
            for (field, names) in &spellings {
                if names.len() > 1 {
                    let mut sorted = names.clone();
                    sorted.sort();
                    problems.push(Problem::AmbiguousKey {
                        field: (*field).to_string(),
                        used: sorted.last().cloned().unwrap_or_default(),
                        spellings: names.clone(),
                    });
                }
            }
            for (key, value) in by_key {
                let Some(field) = field_of(kind, &key) else {
                    continue;
                };
                if let Err(msg) = assign(&mut raw, field, value) {
                    type_error.get_or_insert(format!("item {}: {key}: {msg}", index + 1));
                }
            }
        }
        other => {
            not_mapping = true;
            type_error = Some(format!(
                "item {} is {}, not a mapping",
                index + 1,
                other.kind_name()
            ));
        }
    }
    for key in &other_keys {
        problems.push(Problem::UnknownKey { key: key.clone() });
    }
    let dropped = if not_mapping {
        Some(DropReason::NotAMapping)
    } else {
        problems::validate(kind, raw.arn.as_deref(), raw.sso.as_ref())
    };
    let canonical_arn = raw
        .arn
        .as_deref()
        .and_then(|a| problems::arn_problems(a, &mut problems));
    if let Some(sso) = &raw.sso {
        if dropped.is_none() {
            problems.push(Problem::SsoMatcher {
                pattern: problems::sso_arn_like(sso),
            });
        }
    }
    problems::username_problems(&raw.username, &mut problems);
    problems::group_problems(&raw.groups, &mut problems);
    let entry = Entry {
        index,
        line,
        arn: raw.arn,
        canonical_arn,
        sso: raw.sso,
        username: raw.username,
        groups: raw.groups,
        userid: raw.userid,
        other_keys,
        dropped,
        problems,
    };
    (entry, type_error)
}

/// The Go struct field a JSON key lands in (`encoding/json` matches case-insensitively).
fn field_of(kind: ListKind, key: &str) -> Option<&'static str> {
    let fields: &[&'static str] = match kind {
        ListKind::Roles => &["rolearn", "sso", "username", "groups", "userid"],
        ListKind::Users => &["userarn", "username", "groups", "userid"],
    };
    fields.iter().copied().find(|f| f.eq_ignore_ascii_case(key))
}

fn as_string(v: &Node) -> Result<Option<String>, String> {
    match v {
        Node::Null => Ok(None),
        Node::Str(s) => Ok(Some(s.clone())),
        other => Err(format!("is {}, not a string", other.kind_name())),
    }
}

fn assign(raw: &mut Raw, field: &str, v: &Node) -> Result<(), String> {
    match field {
        "rolearn" | "userarn" => {
            if let Some(s) = as_string(v)? {
                raw.arn = Some(s);
            }
        }
        "username" => {
            if let Some(s) = as_string(v)? {
                raw.username = s;
            }
        }
        "userid" => {
            if let Some(s) = as_string(v)? {
                raw.userid = Some(s);
            }
        }
        "groups" => match v {
            Node::Null => {}
            Node::Seq(items) => {
                raw.groups = items
                    .iter()
                    .map(|g| as_string(g).map(Option::unwrap_or_default))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("a group {e}"))?;
            }
            other => return Err(format!("is {}, not a list of strings", other.kind_name())),
        },
        "sso" => match v {
            Node::Null => {}
            Node::Map(pairs) => {
                let mut sso = SsoMatcher {
                    permission_set_name: String::new(),
                    account_id: String::new(),
                    partition: String::new(),
                };
                let mut sorted: Vec<(String, &Node)> =
                    pairs.iter().map(|(k, v)| (k.key_string(), v)).collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, v) in sorted {
                    let slot = match k.to_ascii_lowercase().as_str() {
                        "permissionsetname" => &mut sso.permission_set_name,
                        "accountid" => &mut sso.account_id,
                        "partition" => &mut sso.partition,
                        _ => continue,
                    };
                    if let Some(s) = as_string(v).map_err(|e| format!("sso.{k} {e}"))? {
                        *slot = s;
                    }
                }
                raw.sso = Some(sso);
            }
            other => return Err(format!("is {}, not a mapping", other.kind_name())),
        },
        _ => {}
    }
    Ok(())
}

/// Analyses a `mapAccounts` text (decoded by yaml.v2 straight into `[]string`: numbers keep their raw text).
pub fn analyze_accounts(text: &str) -> AccountsAnalysis {
    let items = match parse_items(text) {
        Ok(items) => items,
        Err(f) => {
            return AccountsAnalysis {
                accounts: Vec::new(),
                error: Some(KeyError {
                    kind: if f.not_a_list {
                        KeyErrorKind::Type
                    } else {
                        KeyErrorKind::Syntax
                    },
                    line: f.line,
                    column: f.column,
                    message: f.message,
                }),
            }
        }
    };
    let raws = layout::scalar_items(text).filter(|r| r.len() == items.len());
    let mut error = None;
    let mut accounts = Vec::new();
    for (index, node) in items.iter().enumerate() {
        let raw = raws.as_ref().and_then(|r| r.get(index));
        let line = raw.map(|(_, line)| *line);
        let value = match node {
            Node::Str(s) => s.clone(),
            Node::Null => String::new(),
            Node::Int(_) | Node::Float(_) | Node::Bool(_) => raw
                .map(|(s, _)| s.clone())
                .unwrap_or_else(|| node.key_string()),
            other => {
                error.get_or_insert(KeyError {
                    kind: KeyErrorKind::Type,
                    line,
                    column: None,
                    message: format!(
                        "item {} is {}, not an account ID",
                        index + 1,
                        other.kind_name()
                    ),
                });
                continue;
            }
        };
        let valid = value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit());
        accounts.push(Account {
            index,
            line,
            value,
            valid,
        });
    }
    AccountsAnalysis { accounts, error }
}

/// Whether a field is one the edit functions write.
pub(crate) fn field_kind(kind: ListKind, key: &str) -> Option<Field> {
    match field_of(kind, key)? {
        "rolearn" | "userarn" => Some(Field::Arn),
        "username" => Some(Field::Username),
        "groups" => Some(Field::Group),
        _ => None,
    }
}
