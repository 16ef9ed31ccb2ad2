//! What can be wrong with one aws-auth entry: the authenticator's own validation, and what the remediator cares about.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::analyze::{Entry, ListKind, SsoMatcher};
use crate::arn::{Arn, PrincipalKind, PARTITIONS};

/// Why the authenticator's validation drops an item (the rest of the list is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "value", rename_all = "snake_case")]
pub enum DropReason {
    /// mapRoles item with neither `rolearn` nor `sso`.
    MissingRoleArn,
    /// mapRoles item with both `rolearn` and `sso`.
    RoleArnAndSso,
    /// mapUsers item without `userarn`.
    MissingUserArn,
    /// `sso.accountID` is not 12 digits.
    SsoAccountId(String),
    /// `sso.permissionSetName` is not a valid permission set name.
    SsoPermissionSet(String),
    /// `sso.partition` is not a known partition.
    SsoPartition(String),
    /// The item is a scalar or list, not a mapping (this also drops the whole key).
    NotAMapping,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first five mirror the authenticator's own messages (pkg/config/mapper.go).
        match self {
            DropReason::MissingRoleArn => f.write_str("one of rolearn or SSO must be supplied"),
            DropReason::RoleArnAndSso => f.write_str("only one of rolearn or SSO can be supplied"),
            DropReason::MissingUserArn => f.write_str("value for userarn must be supplied"),
            DropReason::SsoAccountId(a) => {
                write!(f, "AccountID '{a}' is not a valid AWS Account ID")
            }
            DropReason::SsoPermissionSet(p) => {
                write!(
                    f,
                    "PermissionSetName '{p}' is not a valid AWS SSO PermissionSet Name"
                )
            }
            DropReason::SsoPartition(p) => {
                write!(f, "partition '{p}' is not a valid AWS partition")
            }
            DropReason::NotAMapping => f.write_str("item is not a mapping"),
        }
    }
}

/// Which value of an entry a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Arn,
    Username,
    Group,
}

/// Something about an entry that makes it not do what its author meant, or that deserves a look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Not an ARN the authenticator could ever produce; the entry never matches.
    InvalidArn { reason: String },
    /// An unexpanded template or prose (`${var}`, `$VAR`, `<ARN of instance role>`); never matches.
    Placeholder { field: Field, value: String },
    /// `*` or `?`: EKS compares exact strings, so the entry never matches.
    Wildcard,
    /// Leading or trailing whitespace inside quotes; never matches.
    Whitespace,
    /// A role ARN with a path never matches an assumed role; `fixed` does.
    RolePath { path: String, fixed: String },
    /// An IAM Identity Center role written with its `aws-reserved/sso.amazonaws.com/<region>/` path.
    SsoRolePath {
        region: Option<String>,
        fixed: String,
    },
    /// An `sts` assumed-role ARN never matches; the role ARN `fixed` does.
    AssumedRoleArn { fixed: String },
    /// No username or an empty one.
    EmptyUsername,
    /// The username starts with a prefix EKS reserves for its own identities.
    ReservedUsername { prefix: String },
    /// A `{{...}}` template the authenticator does not know; it stays literal.
    UnknownTemplate { field: Field, name: String },
    /// Grants `system:masters`: cluster-wide superuser that RBAC cannot limit.
    SystemMasters,
    /// A later entry maps the same ARN and wins; this one is ignored.
    ShadowedBy { index: usize, line: Option<usize> },
    /// This entry wins over earlier entries for the same ARN.
    Overrides { indexes: Vec<usize> },
    /// Several spellings of one key; the authenticator uses the value of `used`.
    AmbiguousKey {
        field: String,
        spellings: Vec<String>,
        used: String,
    },
    /// A key the authenticator ignores (a typo of a real key explains a missing value).
    UnknownKey { key: String },
    /// The alpha `sso:` matcher: only matches where its feature gate is on.
    SsoMatcher { pattern: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::InvalidArn { reason } => write!(f, "invalid ARN ({reason}): never matches"),
            Problem::Placeholder { field, value } => {
                write!(f, "{field:?} '{value}' is a placeholder left unexpanded")
            }
            Problem::Wildcard => f.write_str("wildcard ARN: EKS compares exact ARNs, so it matches nothing"),
            Problem::Whitespace => f.write_str("ARN has surrounding whitespace: never matches"),
            Problem::RolePath { path, fixed } => {
                write!(f, "role ARN has path '{path}': never matches an assumed role; use {fixed}")
            }
            Problem::SsoRolePath { region, fixed } => write!(
                f,
                "IAM Identity Center role written with its aws-reserved/sso.amazonaws.com/{}/ path: never matches; use {fixed}",
                region.as_deref().unwrap_or("<region>")
            ),
            Problem::AssumedRoleArn { fixed } => {
                write!(f, "assumed-role (sts) ARN never matches; use the role ARN {fixed}")
            }
            Problem::EmptyUsername => f.write_str("username is missing or empty"),
            Problem::ReservedUsername { prefix } => write!(f, "username starts with reserved prefix '{prefix}'"),
            Problem::UnknownTemplate { field, name } => {
                write!(f, "{field:?} uses unknown template {{{{{name}}}}}, left literal")
            }
            Problem::SystemMasters => f.write_str("grants system:masters (superuser, not limited by RBAC)"),
            Problem::ShadowedBy { index, line } => match line {
                Some(l) => write!(f, "ignored: entry {} at line {l} maps the same ARN and wins", index + 1),
                None => write!(f, "ignored: entry {} maps the same ARN and wins", index + 1),
            },
            Problem::Overrides { indexes } => {
                write!(f, "wins over {} earlier entr{} for the same ARN", indexes.len(), if indexes.len() == 1 { "y" } else { "ies" })
            }
            Problem::AmbiguousKey { field, spellings, used } => {
                write!(f, "{field} given as {}: the value of '{used}' is used", spellings.join(", "))
            }
            Problem::UnknownKey { key } => write!(f, "unknown key '{key}' is ignored"),
            Problem::SsoMatcher { pattern } => write!(f, "sso matcher ({pattern}) only works where its alpha feature gate is on"),
        }
    }
}

/// Templates the authenticator renders in usernames and groups.
pub const TEMPLATES: &[&str] = &[
    "AccountID",
    "SessionName",
    "SessionNameRaw",
    "AccessKeyID",
    "EC2PrivateDNSName",
];

/// Username prefixes EKS keeps for its own identities (access entries refuse them).
pub const RESERVED_USERNAME_PREFIXES: &[&str] = &["system:", "eks:", "aws:", "amazon:", "iam:"];

/// The authenticator's item validation (`RoleMapping.Validate`, `UserMapping.Validate`).
pub(crate) fn validate(
    kind: ListKind,
    arn: Option<&str>,
    sso: Option<&SsoMatcher>,
) -> Option<DropReason> {
    let has_arn = arn.is_some_and(|a| !a.is_empty());
    match kind {
        ListKind::Users => (!has_arn).then_some(DropReason::MissingUserArn),
        ListKind::Roles => match (has_arn, sso) {
            (false, None) => Some(DropReason::MissingRoleArn),
            (true, Some(_)) => Some(DropReason::RoleArnAndSso),
            (true, None) => None,
            (false, Some(s)) => validate_sso(s),
        },
    }
}

fn validate_sso(s: &SsoMatcher) -> Option<DropReason> {
    if s.account_id.len() != 12 || !s.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Some(DropReason::SsoAccountId(s.account_id.clone()));
    }
    let name_ok = (1..=32).contains(&s.permission_set_name.chars().count())
        && s.permission_set_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !name_ok {
        return Some(DropReason::SsoPermissionSet(s.permission_set_name.clone()));
    }
    if !s.partition.is_empty() && !PARTITIONS.contains(&s.partition.as_str()) {
        return Some(DropReason::SsoPartition(s.partition.clone()));
    }
    None
}

/// The lower-case pattern the authenticator matches an `sso:` entry with.
pub(crate) fn sso_arn_like(s: &SsoMatcher) -> String {
    let partition = if s.partition.is_empty() {
        "aws"
    } else {
        &s.partition
    };
    format!(
        "arn:{partition}:iam::{}:role/AWSReservedSSO_{}_*",
        s.account_id, s.permission_set_name
    )
    .to_ascii_lowercase()
}

/// True for values nobody filled in: `${x}`, `$(x)`, `$VAR`, `<...>`, `{{ .Values.x }}`, prose with blanks.
pub(crate) fn is_placeholder(s: &str, templates_ok: bool) -> bool {
    let t = s.trim();
    let dollar_var = t.match_indices('$').any(|(i, _)| {
        matches!(
            t.as_bytes().get(i + 1),
            Some(b'{' | b'(' | b'_' | b'A'..=b'Z' | b'a'..=b'z')
        )
    });
    let braces = t.contains("{{") && !(templates_ok && templates_only(t));
    dollar_var || braces || t.contains(['<', '>']) || t.contains(char::is_whitespace)
}

fn templates_only(s: &str) -> bool {
    template_names(s)
        .iter()
        .all(|n| !n.contains(char::is_whitespace))
}

fn template_names(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push(&rest[open + 2..open + close]);
        rest = &rest[open + close + 2..];
    }
    out
}

/// Adds the ARN's problems and returns the form that would match a caller (canonical, role path removed).
pub(crate) fn arn_problems(raw: &str, out: &mut Vec<Problem>) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let trimmed = raw.trim();
    if is_placeholder(trimmed, false) || placeholder_account(trimmed) {
        out.push(Problem::Placeholder {
            field: Field::Arn,
            value: raw.to_string(),
        });
        return None;
    }
    if trimmed.contains(['*', '?']) {
        out.push(Problem::Wildcard);
        return None;
    }
    if trimmed != raw {
        out.push(Problem::Whitespace);
    }
    let arn = match Arn::parse(&fold_structure(trimmed)) {
        Ok(a) => a,
        Err(e) => {
            out.push(Problem::InvalidArn {
                reason: e.to_string(),
            });
            return None;
        }
    };
    let canonical = arn.canonical();
    match arn.kind() {
        PrincipalKind::AssumedRole => out.push(Problem::AssumedRoleArn {
            fixed: canonical.to_string(),
        }),
        PrincipalKind::Other => {
            out.push(Problem::InvalidArn {
                reason: format!("'{}' is not an IAM role or user", arn.resource),
            });
            return None;
        }
        PrincipalKind::Role => {
            if let Some(path) = arn.path() {
                let fixed = arn.without_path().to_string();
                if path.starts_with("aws-reserved/sso.amazonaws.com/") {
                    let region = path
                        .split('/')
                        .nth(2)
                        .filter(|r| !r.is_empty())
                        .map(str::to_string);
                    out.push(Problem::SsoRolePath { region, fixed });
                } else {
                    out.push(Problem::RolePath {
                        path: path.to_string(),
                        fixed,
                    });
                }
                return Some(arn.without_path().to_string());
            }
        }
        _ => {}
    }
    Some(canonical.to_string())
}

/// Lower-cases an ARN's partition, service, region and resource type (`arn:AWS:IAM::1:Role/X` becomes
/// `arn:aws:iam::1:role/X`): the authenticator compares case-insensitively, so these still match.
pub(crate) fn fold_structure(s: &str) -> String {
    let mut parts: Vec<String> = s.splitn(6, ':').map(str::to_string).collect();
    let n = parts.len();
    for p in parts.iter_mut().take(n.saturating_sub(1).min(5)) {
        *p = p.to_ascii_lowercase();
    }
    if let Some(resource) = parts.get_mut(5) {
        let cut = resource.find('/').unwrap_or(resource.len());
        let (kind, rest) = resource.split_at(cut);
        *resource = format!("{}{rest}", kind.to_ascii_lowercase());
    }
    parts.join(":")
}

/// `arn:aws:iam::ACCOUNT_ID:role/x`, `arn:aws:iam::XXXXXXXXXXXX:role/x`: letters where the 12 digits go.
fn placeholder_account(s: &str) -> bool {
    let account = s.split(':').nth(4).unwrap_or("");
    account != "aws"
        && account.bytes().any(|b| b.is_ascii_alphabetic())
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn username_problems(username: &str, out: &mut Vec<Problem>) {
    if username.is_empty() {
        out.push(Problem::EmptyUsername);
        return;
    }
    if is_placeholder(username, true) {
        out.push(Problem::Placeholder {
            field: Field::Username,
            value: username.to_string(),
        });
    }
    if !username.starts_with("system:node:") {
        if let Some(p) = RESERVED_USERNAME_PREFIXES
            .iter()
            .find(|p| username.starts_with(**p))
        {
            out.push(Problem::ReservedUsername {
                prefix: (*p).to_string(),
            });
        }
    }
    unknown_templates(Field::Username, username, out);
}

pub(crate) fn group_problems(groups: &[String], out: &mut Vec<Problem>) {
    for g in groups {
        if g == "system:masters" {
            out.push(Problem::SystemMasters);
        } else if is_placeholder(g, true) {
            out.push(Problem::Placeholder {
                field: Field::Group,
                value: g.clone(),
            });
        }
        unknown_templates(Field::Group, g, out);
    }
}

fn unknown_templates(field: Field, s: &str, out: &mut Vec<Problem>) {
    for name in template_names(s) {
        if !TEMPLATES.contains(&name) && !name.contains(char::is_whitespace) {
            out.push(Problem::UnknownTemplate {
                field,
                name: name.to_string(),
            });
        }
    }
}

/// Marks entries that map the same ARN (case-insensitive) or the same SSO pattern: the last one wins.
pub(crate) fn mark_duplicates(entries: &mut [Entry]) {
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.dropped.is_none()) {
        let key = match (&e.arn, &e.sso) {
            (Some(a), _) => a.to_lowercase(),
            (None, Some(s)) => sso_arn_like(s),
            (None, None) => continue,
        };
        by_key.entry(key).or_default().push(e.index);
    }
    for idxs in by_key.values().filter(|v| v.len() > 1) {
        let Some((&winner, earlier)) = idxs.split_last() else {
            continue;
        };
        let line = entries[winner].line;
        for &i in earlier {
            entries[i].problems.push(Problem::ShadowedBy {
                index: winner,
                line,
            });
        }
        entries[winner].problems.push(Problem::Overrides {
            indexes: earlier.to_vec(),
        });
    }
}
