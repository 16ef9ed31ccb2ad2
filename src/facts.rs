//! What the remediator knows about a finding beyond the log lines, and the deeper diagnosis it
//! allows.
//!
//! The [`FactsProvider`] trait is the seam between the pure core and AWS: [`OfflineFacts`] knows
//! nothing and makes no network call; `crate::facts_aws::AwsFacts` asks IAM, EKS, STS and the
//! cluster. [`refine`] is pure: facts in, refined diagnosis out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::arn::{Arn, PrincipalKind};
use crate::diagnosis::{Cause, Finding, Outcome};
use crate::remedy::access_entry::Entry;

/// How aws-auth maps the finding's principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mapping {
    /// An effective entry maps it (exact, other case, last of duplicates, or mapAccounts).
    Mapped,
    /// An entry would map it without its role path.
    WithPath,
    /// An entry meant for it is dropped by the authenticator or can never match.
    Invalid,
    /// The whole list is ignored (YAML error).
    Unparseable,
    Absent,
}

/// What aws-auth says about the principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsAuthFacts {
    /// False when kube-system/aws-auth does not exist.
    pub present: bool,
    pub mapping: Mapping,
    /// The ARN as written in the entry concerned.
    pub entry_arn: Option<String>,
    pub entry_line: Option<usize>,
    pub entry_username: Option<String>,
    pub entry_groups: Vec<String>,
    /// Why the entry or list is ignored.
    pub detail: Option<String>,
    #[serde(skip)]
    pub data: BTreeMap<String, String>,
}

/// Who the function acts as, and whether it may change the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorFacts {
    pub arn: Option<String>,
    /// True when `remediation_role_arn` was assumed (and verified with GetCallerIdentity).
    pub role_assumed: bool,
    /// CONFIG_MAP mode: the SelfSubjectAccessReview answer; API modes: unknown until tried.
    pub may_update_aws_auth: Option<bool>,
    pub reason: Option<String>,
}

/// Facts about one finding's principal and cluster. `None` means "not known".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Which provider answered (`offline`, `aws`).
    pub source: &'static str,
    pub principal_exists: Option<bool>,
    /// The IAM ARN with its path, as access entries need it.
    pub principal_path_arn: Option<String>,
    pub principal_unique_id: Option<String>,
    /// False when the principal belongs to another account than the cluster (not looked up).
    pub same_account: Option<bool>,
    pub authentication_mode: Option<String>,
    /// The principal's access entry (None: unknown or not looked up; see `access_entry_exists`).
    pub access_entry: Option<Entry>,
    pub access_entry_exists: Option<bool>,
    pub aws_auth: Option<AwsAuthFacts>,
    pub actor: Option<ActorFacts>,
    /// Facts that could not be gathered, and why.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub cluster_endpoint: Option<String>,
    #[serde(skip)]
    pub cluster_ca_pem: Option<String>,
}

/// Gathers facts for findings; each provider caches per principal and cluster.
pub trait FactsProvider {
    /// Facts for one finding.
    fn gather(&self, finding: &Finding) -> impl std::future::Future<Output = Facts> + Send;
}

/// The provider used with `--offline` and when no AWS access is configured: knows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineFacts;

impl FactsProvider for OfflineFacts {
    async fn gather(&self, _finding: &Finding) -> Facts {
        Facts {
            source: "offline",
            ..Facts::default()
        }
    }
}

/// A deeper diagnosis of a finding, from facts. Each has its own recommended fix in the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refinement {
    /// aws-auth maps the role with its path, which never matches an assumed role.
    MappingHasPath { entry_arn: String, sso: bool },
    /// aws-auth has an entry for the principal that the authenticator drops.
    MappingInvalid {
        entry_arn: Option<String>,
        detail: String,
    },
    /// The aws-auth list is not valid YAML: every mapping in it is ignored.
    AwsAuthBroken { detail: String },
    /// The IAM user or role no longer exists.
    EntityDeleted,
    /// The principal belongs to another account than the cluster.
    CrossAccount {
        principal_account: String,
        cluster_account: String,
    },
    /// The cluster is in API mode: aws-auth is not read, yet the mapping is there.
    ApiModeMappingInAwsAuth,
    /// An access entry exists but names the unique ID of a deleted-and-recreated entity.
    StaleAccessEntry,
    /// Nothing maps the principal.
    NoMapping,
    /// The principal is mapped now (someone fixed it after the denial).
    AlreadyMapped,
}

/// Refines a finding with facts (pure). `None` when the facts say nothing new.
pub fn refine(f: &Finding, facts: &Facts) -> Option<Refinement> {
    if f.outcome != Outcome::Denied {
        return None;
    }
    let principal = Arn::parse(f.principal.as_deref()?).ok()?;
    if let (Some(acc), Some(false)) = (&f.account, facts.same_account) {
        return Some(Refinement::CrossAccount {
            principal_account: principal.account.clone(),
            cluster_account: acc.clone(),
        });
    }
    if matches!(f.cause, Some(Cause::StalePrincipal)) {
        return Some(Refinement::StaleAccessEntry);
    }
    if !matches!(f.cause, Some(Cause::NotMapped)) {
        return None;
    }
    if facts.principal_exists == Some(false) {
        return Some(Refinement::EntityDeleted);
    }
    // An access entry that exists now (created after the denial, or by a run that stopped
    // half-way) is not a diagnosis: the planner completes it.
    let mode = facts.authentication_mode.as_deref();
    let aws_auth = facts.aws_auth.as_ref();
    match (mode, aws_auth.map(|a| a.mapping)) {
        (Some("API"), Some(Mapping::Mapped | Mapping::WithPath)) => {
            Some(Refinement::ApiModeMappingInAwsAuth)
        }
        (_, Some(Mapping::WithPath)) => {
            let a = aws_auth?;
            let entry_arn = a.entry_arn.clone().unwrap_or_default();
            let sso = Arn::parse(&entry_arn).is_ok_and(|x| x.is_sso_role());
            Some(Refinement::MappingHasPath { entry_arn, sso })
        }
        (_, Some(Mapping::Invalid)) => {
            let a = aws_auth?;
            Some(Refinement::MappingInvalid {
                entry_arn: a.entry_arn.clone(),
                detail: a.detail.clone().unwrap_or_default(),
            })
        }
        (_, Some(Mapping::Unparseable)) => Some(Refinement::AwsAuthBroken {
            detail: aws_auth.and_then(|a| a.detail.clone()).unwrap_or_default(),
        }),
        (_, Some(Mapping::Mapped)) => Some(Refinement::AlreadyMapped),
        (Some(_), _) if principal.kind() != PrincipalKind::Other => Some(Refinement::NoMapping),
        _ => None,
    }
}

/// aws-auth facts for a principal from the ConfigMap's data (pure).
pub fn aws_auth_facts(data: Option<&BTreeMap<String, String>>, principal: &str) -> AwsAuthFacts {
    use crate::aws_auth::{analyze, find_mapping, MatchKind};
    let Some(data) = data else {
        return AwsAuthFacts {
            present: false,
            mapping: Mapping::Absent,
            entry_arn: None,
            entry_line: None,
            entry_username: None,
            entry_groups: Vec::new(),
            detail: None,
            data: BTreeMap::new(),
        };
    };
    let analysis = analyze(data);
    let is_user = principal.contains(":user/");
    let list = if is_user {
        &analysis.users
    } else {
        &analysis.roles
    };
    let m = match list {
        Some(list) => find_mapping(list, principal),
        None => MatchKind::None,
    };
    let (mapping, detail) = match &m {
        MatchKind::Exact(_)
        | MatchKind::CaseDiffers(_)
        | MatchKind::Duplicate { .. }
        | MatchKind::Account(_) => (Mapping::Mapped, None),
        MatchKind::WithPath(_) => (Mapping::WithPath, None),
        MatchKind::Invalid(e) => (
            Mapping::Invalid,
            Some(
                e.dropped
                    .as_ref()
                    .map(|d| format!("{d:?}"))
                    .or_else(|| e.problems.first().map(|p| format!("{p:?}")))
                    .unwrap_or_else(|| "the entry can never match".into()),
            ),
        ),
        MatchKind::Unparseable { error, .. } => (Mapping::Unparseable, Some(error.message.clone())),
        MatchKind::Sso(_) | MatchKind::None => (Mapping::Absent, None),
    };
    let entry = m.entry();
    AwsAuthFacts {
        present: true,
        mapping,
        entry_arn: entry.and_then(|e| e.arn.clone()),
        entry_line: entry.and_then(|e| e.line),
        entry_username: entry.map(|e| e.username.clone()),
        entry_groups: entry.map(|e| e.groups.clone()).unwrap_or_default(),
        detail,
        data: data.clone(),
    }
}
