//! Findings + facts + approval policy -> one action per finding (pure).
//!
//! A change is planned only when every condition holds: a policy is configured, the cluster is
//! in its scope, the principal exists in the cluster's account, a rule approves it and no `never`
//! pattern matches, the grant is not cluster-admin without `allow_cluster_admin` (checked when
//! the policy loads), aws-auth is intact when it is the target, the acting identity may write,
//! and the change budget is not spent. Anything else becomes a ticket saying which condition
//! failed. The plan is the same in dry-run and enforce; only enforce applies it.

use serde::Serialize;

use crate::arn::{Arn, PrincipalKind};
use crate::diagnosis::{Cause, Finding, Outcome};
use crate::facts::{Facts, Mapping, Refinement};
use crate::policy::{AccessScope, Decision, Policy};
use crate::ticket;

/// What to do about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    AccessEntry,
    AwsAuthMapping,
    FixMappingPath,
    Ticket,
    None,
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Would be applied in enforce mode.
    Planned,
    Applied,
    /// The change was already in place: nothing written.
    Unchanged,
    /// The ticket payload is in the response and the log.
    Emitted,
    Skipped,
    Failed,
}

/// Exactly what a change action writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    AccessEntry {
        /// The IAM ARN with its path.
        principal_arn: String,
        policy_arn: String,
        /// `cluster` or `namespace`.
        scope: String,
        namespaces: Vec<String>,
        client_request_token: String,
    },
    AwsAuthMapping {
        /// `mapRoles` or `mapUsers`.
        list: String,
        /// The ARN without its path.
        arn: String,
        username: String,
        groups: Vec<String>,
    },
    FixMappingPath {
        list: String,
        old_arn: String,
        new_arn: String,
    },
}

/// One action, tied to its finding (and to the ticket that carries it when it is not applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub kind: ActionKind,
    pub status: ActionStatus,
    pub finding_id: String,
    pub ticket_id: Option<String>,
    pub reason: String,
    /// The approval rule behind a change.
    pub rule: Option<String>,
    pub change: Option<Change>,
}

impl Action {
    fn ticket(f: &Finding, reason: impl Into<String>) -> Action {
        Action {
            kind: ActionKind::Ticket,
            status: ActionStatus::Emitted,
            finding_id: f.id.clone(),
            ticket_id: Some(ticket::ticket_id(&f.id)),
            reason: reason.into(),
            rule: None,
            change: None,
        }
    }

    fn none(f: &Finding, reason: impl Into<String>) -> Action {
        Action {
            kind: ActionKind::None,
            status: ActionStatus::Skipped,
            finding_id: f.id.clone(),
            ticket_id: None,
            reason: reason.into(),
            rule: None,
            change: None,
        }
    }

    /// True for actions that change a cluster.
    pub fn is_change(&self) -> bool {
        self.change.is_some()
    }
}

/// Everything the planner looks at for one finding.
pub struct Input<'a> {
    pub finding: &'a Finding,
    pub facts: &'a Facts,
    pub refinement: Option<&'a Refinement>,
    pub policy: Option<&'a Policy>,
    /// Changes still allowed in this invocation (and hour).
    pub budget: u32,
}

/// Decides the action for one finding.
pub fn plan(input: &Input<'_>) -> Action {
    let f = input.finding;
    match (f.outcome, f.cause) {
        (Outcome::Denied, Some(Cause::StsThrottled)) => {
            return Action::none(
                f,
                "STS throttling is transient and clients retry; no ticket",
            )
        }
        (Outcome::ConfigError, _) => {
            return Action::ticket(
                f,
                "aws-auth holds entries the authenticator drops; a human must restore it",
            )
        }
        (_, Some(Cause::NotMapped)) => {}
        (_, cause) => {
            return Action::ticket(
                f,
                format!(
                    "{}: not something a mapping fixes",
                    cause.unwrap_or(Cause::Unknown)
                ),
            )
        }
    }
    if input.refinement == Some(&Refinement::AlreadyMapped) {
        return Action::none(f, "the principal is mapped now (fixed after the denial)");
    }
    let Some(policy) = input.policy else {
        return Action::ticket(
            f,
            "no approval policy configured: nothing is remediated automatically",
        );
    };
    let (Some(principal), Some(cluster)) = (f.principal.as_deref(), f.cluster.as_deref()) else {
        return Action::ticket(f, "the denial names no principal or cluster");
    };
    if !policy.cluster_in_scope(cluster) {
        return Action::ticket(
            f,
            format!("cluster {cluster} is not in the policy's clusters"),
        );
    }
    let facts = input.facts;
    if facts.same_account == Some(false) {
        return Action::ticket(
            f,
            "the principal belongs to another account than the cluster",
        );
    }
    match facts.principal_exists {
        Some(true) => {}
        Some(false) => return Action::ticket(f, "the IAM entity does not exist (deleted?)"),
        None => return Action::ticket(f, "could not confirm the IAM entity exists"),
    }
    let Some(mode) = facts.authentication_mode.as_deref() else {
        return Action::ticket(f, "the cluster's authentication mode is unknown");
    };
    let path_arn = facts.principal_path_arn.as_deref();
    let (rule, grant) = match policy.decide(principal, path_arn) {
        Decision::Allowed {
            rule_name, grant, ..
        } => (rule_name.to_string(), grant),
        Decision::Never { pattern } => {
            return Action::ticket(
                f,
                format!("the principal matches the policy's never pattern {pattern}"),
            )
        }
        Decision::NoRule => return Action::ticket(f, "no approval rule matches the principal"),
        Decision::PathRequired { pattern } => {
            return Action::ticket(
                f,
                format!("the role's path is unknown and pattern {pattern} depends on it"),
            )
        }
        Decision::InvalidPrincipal { reason } => {
            return Action::ticket(f, format!("invalid principal: {reason}"))
        }
    };
    if matches!(input.refinement, Some(Refinement::StaleAccessEntry)) {
        return Action::ticket(f, "an access entry exists for a deleted-and-recreated entity: recreating it is left to a human");
    }
    if input.budget == 0 {
        return Action::ticket(f, "the policy's change limit is reached");
    }
    let Ok(arn) = Arn::parse(principal) else {
        return Action::ticket(f, "the principal is not a valid ARN");
    };
    let list = if arn.kind() == PrincipalKind::User {
        "mapUsers"
    } else {
        "mapRoles"
    };
    let planned = |kind, change, reason: String| Action {
        kind,
        status: ActionStatus::Planned,
        finding_id: f.id.clone(),
        ticket_id: Some(ticket::ticket_id(&f.id)),
        reason,
        rule: Some(rule.clone()),
        change: Some(change),
    };
    // Access entries where the cluster reads them.
    if mode != "CONFIG_MAP" {
        if let Some(ae) = &grant.access_entry {
            let (scope, namespaces) = match &ae.scope {
                AccessScope::Cluster => ("cluster".to_string(), Vec::new()),
                AccessScope::Namespaces(ns) => ("namespace".to_string(), ns.clone()),
            };
            return planned(
                ActionKind::AccessEntry,
                Change::AccessEntry {
                    principal_arn: path_arn.unwrap_or(principal).to_string(),
                    policy_arn: ae.policy.arn(&arn.partition),
                    scope,
                    namespaces,
                    client_request_token: format!("ear-{}", f.id),
                },
                format!(
                    "rule {rule} approves an access entry with {}",
                    ae.policy.name()
                ),
            );
        }
        if mode == "API" {
            return Action::ticket(
                f,
                format!("rule {rule} grants no access entry and the cluster is in API mode"),
            );
        }
    }
    // aws-auth (CONFIG_MAP, or API_AND_CONFIG_MAP when the rule grants only a mapping).
    let Some(aa) = &grant.aws_auth else {
        return Action::ticket(
            f,
            format!("rule {rule} grants no aws-auth mapping and the cluster reads only aws-auth"),
        );
    };
    if facts.actor.as_ref().and_then(|a| a.may_update_aws_auth) != Some(true) {
        return Action::ticket(
            f,
            "the function's identity may not update kube-system/aws-auth (see facts.notes)",
        );
    }
    let Some(auth) = facts.aws_auth.as_ref() else {
        return Action::ticket(f, "could not read kube-system/aws-auth");
    };
    if !auth.present {
        return Action::ticket(
            f,
            "kube-system/aws-auth does not exist: creating it is left to a human",
        );
    }
    match auth.mapping {
        Mapping::Unparseable => Action::ticket(f, "aws-auth does not parse: never written over"),
        Mapping::Invalid => Action::ticket(
            f,
            "aws-auth holds an invalid entry for the principal: a human must fix it",
        ),
        Mapping::Mapped => Action::none(f, "aws-auth maps the principal now"),
        Mapping::WithPath => {
            let old = auth.entry_arn.clone().unwrap_or_default();
            // Fixing the path activates the entry's existing groups: they must be approved too.
            let extra: Vec<&String> = auth
                .entry_groups
                .iter()
                .filter(|g| !aa.groups.contains(g))
                .collect();
            if !extra.is_empty() {
                return Action::ticket(f, format!("the mapping with a path grants groups rule {rule} does not approve: {extra:?}"));
            }
            planned(
                ActionKind::FixMappingPath,
                Change::FixMappingPath {
                    list: list.into(),
                    old_arn: old,
                    new_arn: arn.without_path().to_string(),
                },
                format!("rule {rule} approves the principal; its mapping has a role path that never matches"),
            )
        }
        Mapping::Absent => planned(
            ActionKind::AwsAuthMapping,
            Change::AwsAuthMapping {
                list: list.into(),
                arn: arn.without_path().to_string(),
                username: aa.username.clone(),
                groups: aa.groups.clone(),
            },
            format!("rule {rule} approves an aws-auth mapping"),
        ),
    }
}
