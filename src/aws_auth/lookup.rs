//! Which aws-auth entry, if any, maps a caller, and why one that looks right does not.
//!
//! The authenticator lower-cases the caller's canonical ARN and looks it up among the kept `mapRoles` entries, then
//! `mapUsers`, then accepts any caller whose account is in `mapAccounts`. Entries compare as exact strings apart
//! from case; the last of several entries for one ARN wins.

use serde::Serialize;

use super::analyze::{Account, ConfigAnalysis, Entry, KeyError, ListAnalysis, ListKind};
use super::problems::{sso_arn_like, Problem};
use crate::arn::{canonicalize, Arn};

/// How a list (or the whole ConfigMap) maps one canonical ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "match", rename_all = "snake_case")]
pub enum MatchKind<'a> {
    /// One kept entry names the ARN, spelled the same.
    Exact(&'a Entry),
    /// One kept entry names the ARN in another case (it still matches).
    CaseDiffers(&'a Entry),
    /// Several kept entries name the ARN; the last one (`winner`) is the one used.
    Duplicate {
        winner: &'a Entry,
        shadowed: Vec<&'a Entry>,
    },
    /// Only the alpha `sso:` matcher covers the ARN (works only where its feature gate is on).
    Sso(&'a Entry),
    /// No entry, but the account is listed in `mapAccounts` (username = the ARN, no groups).
    Account(&'a Account),
    /// No entry matches, but this one would without its role path.
    WithPath(&'a Entry),
    /// An entry meant for this ARN that can never match it: dropped by validation, written as an assumed-role
    /// ARN, padded with whitespace, or a wildcard covering it. The entry's `dropped`/`problems` say which.
    Invalid(&'a Entry),
    /// The whole list is ignored by the authenticator.
    Unparseable { kind: ListKind, error: &'a KeyError },
    /// Nothing maps the ARN.
    None,
}

impl MatchKind<'_> {
    /// True when the authenticator would map the caller (the alpha SSO matcher aside).
    pub fn is_mapped(&self) -> bool {
        matches!(
            self,
            MatchKind::Exact(_)
                | MatchKind::CaseDiffers(_)
                | MatchKind::Duplicate { .. }
                | MatchKind::Account(_)
        )
    }

    /// The entry the authenticator uses, or the one the diagnosis is about.
    pub fn entry(&self) -> Option<&Entry> {
        match self {
            MatchKind::Exact(e)
            | MatchKind::CaseDiffers(e)
            | MatchKind::Sso(e)
            | MatchKind::WithPath(e)
            | MatchKind::Invalid(e) => Some(e),
            MatchKind::Duplicate { winner, .. } => Some(winner),
            MatchKind::Account(_) | MatchKind::Unparseable { .. } | MatchKind::None => None,
        }
    }
}

/// Finds how one list maps `arn` (canonicalised first, so an assumed-role ARN works too).
pub fn find_mapping<'a>(list: &'a ListAnalysis, arn: &str) -> MatchKind<'a> {
    if let Some(error) = &list.error {
        return MatchKind::Unparseable {
            kind: list.kind,
            error,
        };
    }
    let target = canonicalize(arn);
    let lower = target.to_lowercase();
    let same = |a: &Option<String>| a.as_ref().is_some_and(|a| a.to_lowercase() == lower);
    let kept: Vec<&Entry> = list
        .entries
        .iter()
        .filter(|e| e.dropped.is_none() && same(&e.arn))
        .collect();
    if let Some((winner, shadowed)) = kept.split_last() {
        return match (
            shadowed.is_empty(),
            winner.arn.as_deref() == Some(target.as_str()),
        ) {
            (false, _) => MatchKind::Duplicate {
                winner,
                shadowed: shadowed.to_vec(),
            },
            (true, true) => MatchKind::Exact(winner),
            (true, false) => MatchKind::CaseDiffers(winner),
        };
    }
    let invalid = list.entries.iter().rev().find(|e| {
        let assumed_or_padded = e
            .problems
            .iter()
            .any(|p| matches!(p, Problem::AssumedRoleArn { .. } | Problem::Whitespace))
            && same(&e.canonical_arn);
        let wildcard = e.problems.contains(&Problem::Wildcard)
            && e.arn
                .as_ref()
                .is_some_and(|a| glob(&a.to_lowercase(), &lower));
        (e.dropped.is_some() && same(&e.arn)) || assumed_or_padded || wildcard
    });
    if let Some(e) = invalid {
        return MatchKind::Invalid(e);
    }
    let with_path = list.entries.iter().rev().find(|e| {
        e.dropped.is_none()
            && same(&e.canonical_arn)
            && e.problems
                .iter()
                .any(|p| matches!(p, Problem::RolePath { .. } | Problem::SsoRolePath { .. }))
    });
    if let Some(e) = with_path {
        return MatchKind::WithPath(e);
    }
    let sso = list.entries.iter().rev().find(|e| {
        e.dropped.is_none()
            && e.sso
                .as_ref()
                .is_some_and(|s| glob(&sso_arn_like(s), &lower))
    });
    sso.map_or(MatchKind::None, MatchKind::Sso)
}

impl ConfigAnalysis {
    /// Finds how the whole ConfigMap maps `arn`: `mapRoles`, then `mapUsers`, then `mapAccounts`; when nothing
    /// maps it, the first diagnosis found (roles first) explains why.
    pub fn find(&self, arn: &str) -> MatchKind<'_> {
        let roles = self
            .roles
            .as_ref()
            .map_or(MatchKind::None, |l| find_mapping(l, arn));
        if roles.is_mapped() {
            return roles;
        }
        let users = self
            .users
            .as_ref()
            .map_or(MatchKind::None, |l| find_mapping(l, arn));
        if users.is_mapped() {
            return users;
        }
        let account = Arn::parse(arn).ok().map(|a| a.account);
        if let (Some(accts), Some(id)) = (&self.accounts, account) {
            if accts.error.is_none() {
                if let Some(a) = accts.accounts.iter().find(|a| a.value == id) {
                    return MatchKind::Account(a);
                }
            }
        }
        match roles {
            MatchKind::None => users,
            other => other,
        }
    }
}

/// Case-sensitive glob with `*` and `?` (callers lower-case both sides).
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_auth::analyze::analyze_roles;

    const ROLE: &str = "arn:aws:iam::111122223333:role/Admin";

    #[test]
    fn exact_case_and_duplicates() {
        let a = analyze_roles(&format!("- rolearn: {ROLE}\n  username: a\n"));
        assert!(matches!(find_mapping(&a, ROLE), MatchKind::Exact(e) if e.username == "a"));
        assert!(matches!(
            find_mapping(&a, "arn:aws:sts::111122223333:assumed-role/Admin/alice"),
            MatchKind::Exact(_)
        ));
        let a = analyze_roles("- rolearn: arn:aws:iam::111122223333:role/ADMIN\n  username: a\n");
        assert!(matches!(find_mapping(&a, ROLE), MatchKind::CaseDiffers(_)));
        let a = analyze_roles(&format!(
            "- rolearn: {ROLE}\n  username: first\n- rolearn: {ROLE}\n  username: second\n"
        ));
        let MatchKind::Duplicate { winner, shadowed } = find_mapping(&a, ROLE) else {
            panic!()
        };
        assert_eq!(winner.username, "second");
        assert_eq!(winner.line, Some(3));
        assert_eq!(shadowed.len(), 1);
    }

    #[test]
    fn path_wildcard_dropped_and_sso() {
        let a =
            analyze_roles("- rolearn: arn:aws:iam::111122223333:role/team/Admin\n  username: a\n");
        assert!(matches!(find_mapping(&a, ROLE), MatchKind::WithPath(e) if e.line == Some(1)));
        let a = analyze_roles("- rolearn: arn:aws:iam::111122223333:role/*\n  username: a\n");
        assert!(matches!(find_mapping(&a, ROLE), MatchKind::Invalid(_)));
        let a = analyze_roles(&format!(
            "- rolearn: {ROLE}\n  sso: {{permissionSetName: Admin, accountID: \"111122223333\"}}\n  username: a\n"
        ));
        assert!(matches!(find_mapping(&a, ROLE), MatchKind::Invalid(e) if e.dropped.is_some()));
        let a = analyze_roles("- sso:\n    permissionSetName: Admin\n    accountID: \"111122223333\"\n  username: a\n");
        let sso = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef";
        assert!(matches!(find_mapping(&a, sso), MatchKind::Sso(_)));
        assert_eq!(find_mapping(&a, ROLE), MatchKind::None);
        let a = analyze_roles("- rolearn: a\n\tusername: b\n");
        assert!(matches!(
            find_mapping(&a, ROLE),
            MatchKind::Unparseable { .. }
        ));
    }

    #[test]
    fn config_order_roles_users_accounts() {
        let mut data = std::collections::BTreeMap::new();
        data.insert(
            "mapUsers".to_string(),
            format!("- userarn: {ROLE}\n  username: via-users\n"),
        );
        data.insert(
            "mapRoles".to_string(),
            "- rolearn: arn:aws:iam::111122223333:role/x/Admin\n  username: r\n".to_string(),
        );
        data.insert(
            "mapAccounts".to_string(),
            "- \"111122223333\"\n".to_string(),
        );
        let cfg = crate::aws_auth::analyze(&data);
        assert!(matches!(cfg.find(ROLE), MatchKind::Exact(e) if e.username == "via-users"));
        assert!(matches!(
            cfg.find("arn:aws:iam::111122223333:role/Other"),
            MatchKind::Account(_)
        ));
        assert_eq!(
            cfg.find("arn:aws:iam::444455556666:role/Other"),
            MatchKind::None
        );
        assert!(glob("arn:aws:iam::1:role/a*", "arn:aws:iam::1:role/abc"));
        assert!(!glob("arn:aws:iam::1:role/a?", "arn:aws:iam::1:role/abc"));
    }
}
