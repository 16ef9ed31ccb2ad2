//! Findings + facts -> one action per finding (pure).
//!
//! Until automatic remediation exists every finding becomes a ticket, except causes where nothing
//! useful can be done (transient STS throttling), which get an explicit `none` with its reason.

use serde::Serialize;

use crate::diagnosis::{Cause, Finding, Outcome};
use crate::facts::Facts;
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
    /// The ticket payload is in the response and the log.
    Emitted,
    Skipped,
    Failed,
}

/// One action, tied to its finding (and ticket when there is one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub kind: ActionKind,
    pub status: ActionStatus,
    pub finding_id: String,
    pub ticket_id: Option<String>,
    pub reason: String,
}

/// Decides the action for one finding.
pub fn plan(finding: &Finding, _facts: &Facts) -> Action {
    let ticket_id = Some(ticket::ticket_id(&finding.id));
    let (kind, status, ticket_id, reason) = match (finding.outcome, finding.cause) {
        (Outcome::Denied, Some(Cause::StsThrottled)) => (
            ActionKind::None,
            ActionStatus::Skipped,
            None,
            "STS throttling is transient and clients retry; no ticket".to_string(),
        ),
        (Outcome::ConfigError, _) => (
            ActionKind::Ticket,
            ActionStatus::Emitted,
            ticket_id,
            "aws-auth holds entries the authenticator drops; a human must restore it".to_string(),
        ),
        (_, cause) => (
            ActionKind::Ticket,
            ActionStatus::Emitted,
            ticket_id,
            format!(
                "{}: no automatic remediation configured (offline facts)",
                cause.unwrap_or(Cause::Unknown)
            ),
        ),
    };
    Action {
        kind,
        status,
        finding_id: finding.id.clone(),
        ticket_id,
        reason,
    }
}
