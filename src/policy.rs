//! The approval policy: which clusters may be changed, which principals may be granted what, and how
//! many changes a run may make. `docs/policy.md` documents every key; `infra/policy.example.yaml` is a
//! complete example.
//!
//! One YAML (or JSON) document, from `EKS_AUTH_POLICY` (inline) or `EKS_AUTH_POLICY_FILE` (a path).
//! Loading is strict: unknown keys, wrong types, bad patterns, unknown access policies and
//! cluster-admin grants without `allow_cluster_admin: true` are all errors, each with the line and
//! column at fault; nothing invalid is ever replaced by a default.
//!
//! Locations: YAML syntax and schema errors carry serde_norway's location. Semantic errors are found
//! after deserialization, so the document is read once more with a probe that walks to the offending
//! node and fails there; serde_norway stamps that failure with the node's line and column.
//!
//! ```
//! use eks_auth_remediator::policy::{Decision, Policy};
//! let policy = Policy::parse(r#"
//! clusters: ["prod-*"]
//! never: ["arn:aws:iam::*:role/break-glass-*"]
//! rules:
//!   - name: developers-view
//!     principals: ["arn:aws:iam::111122223333:role/dev-*"]
//!     access_entry: {policy: AmazonEKSViewPolicy, scope: cluster}
//! "#, "example")?;
//! assert!(policy.cluster_in_scope("prod-eu"));
//! assert!(!policy.cluster_in_scope("staging"));
//! match policy.decide("arn:aws:iam::111122223333:role/dev-alice", None) {
//!     Decision::Allowed { rule_name, grant, .. } => {
//!         assert_eq!(rule_name, "developers-view");
//!         let entry = grant.access_entry.as_ref().unwrap();
//!         assert_eq!(entry.policy.arn("aws"), "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::arn::{Arn, PrincipalKind, PARTITIONS};

/// Environment variable holding the policy document itself.
pub const ENV_INLINE: &str = "EKS_AUTH_POLICY";
/// Environment variable holding the path of the policy file.
pub const ENV_FILE: &str = "EKS_AUTH_POLICY_FILE";
/// Larger documents are refused before parsing.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// The limits when the `limits` key (or one of its keys) is absent.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_changes_per_invocation: 5,
    max_changes_per_hour: 20,
};

// ---------------------------------------------------------------------------------------------
// Validated policy

/// Whether approved changes are made or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plan and report, change nothing (the default).
    #[default]
    DryRun,
    /// Make the approved changes.
    Enforce,
}

/// How many changes the remediator may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Changes in one Lambda invocation or CLI run.
    pub max_changes_per_invocation: u32,
    /// Changes in any sliding hour, across invocations.
    pub max_changes_per_hour: u32,
}

/// The suppression window when `tickets.suppression_window` is absent.
pub const DEFAULT_SUPPRESSION_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The webhook timeout when `tickets.sinks.webhook.timeout` is absent.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// The webhook retries when `tickets.sinks.webhook.retries` is absent.
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 3;

/// Ticket delivery (`tickets`): the suppression window and the sinks. Every sink gets every
/// ticket opened; the response JSON and the log always get every ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tickets {
    /// A ticket id is opened once per window; later occurrences are counted, not re-opened.
    pub suppression_window: Duration,
    pub sns: Option<SnsSink>,
    pub eventbridge: Option<EventBridgeSink>,
    pub webhook: Option<WebhookSink>,
}

impl Default for Tickets {
    fn default() -> Self {
        Tickets {
            suppression_window: DEFAULT_SUPPRESSION_WINDOW,
            sns: None,
            eventbridge: None,
            webhook: None,
        }
    }
}

/// `tickets.sinks.sns`: publish to an SNS topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsSink {
    /// `arn:<partition>:sns:<region>:<account>:<topic>`.
    pub topic_arn: String,
}

/// `tickets.sinks.eventbridge`: PutEvents on an event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeSink {
    /// The bus name (`default`) or ARN.
    pub event_bus: String,
}

/// Where the webhook's HMAC key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSecret {
    /// An environment variable of the function, read at start.
    Env(String),
    /// A Secrets Manager secret (its `SecretString`), read once per container and cached.
    SecretsManager(String),
}

/// `tickets.sinks.webhook`: an HTTPS POST of the ticket JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSink {
    /// `https://...`; `http://` only for a loopback host (local tests).
    pub url: String,
    /// The key of the `X-EKS-Auth-Signature` HMAC; unsigned when absent.
    pub secret: Option<WebhookSecret>,
    /// Per attempt, connecting to reading the answer.
    pub timeout: Duration,
    /// Further attempts after a 5xx, 408, 429, a timeout or a connection error.
    pub retries: u32,
}

/// Parses `90s`, `15m`, `24h`, `7d` (a positive integer and one unit).
///
/// # Errors
/// A message saying what is expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let unit_at = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{s}' has no unit; write e.g. 30s, 15m, 24h or 7d"))?;
    let (n, unit) = t.split_at(unit_at);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; write e.g. 30s, 15m, 24h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("'{s}': unknown unit '{unit}'; use s, m, h or d")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// An EKS access policy a rule may associate. Only the policies meant for people are listed; the
/// ones EKS reserves for its own components (`AmazonEKSAutoNodePolicy`, ...) are not grantable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AccessPolicy {
    /// `AmazonEKSClusterAdminPolicy`: everything (gated by `allow_cluster_admin`).
    ClusterAdmin,
    /// `AmazonEKSAdminPolicy`: most permissions, usually namespace-scoped.
    Admin,
    /// `AmazonEKSAdminViewPolicy`: read everything, secrets included.
    AdminView,
    /// `AmazonEKSEditPolicy`: edit most resources.
    Edit,
    /// `AmazonEKSViewPolicy`: read most resources, not secrets.
    View,
}

impl AccessPolicy {
    /// Every grantable policy.
    pub const ALL: [AccessPolicy; 5] = [
        AccessPolicy::ClusterAdmin,
        AccessPolicy::Admin,
        AccessPolicy::AdminView,
        AccessPolicy::Edit,
        AccessPolicy::View,
    ];

    /// The policy's name, e.g. `AmazonEKSViewPolicy`.
    pub fn name(self) -> &'static str {
        match self {
            AccessPolicy::ClusterAdmin => "AmazonEKSClusterAdminPolicy",
            AccessPolicy::Admin => "AmazonEKSAdminPolicy",
            AccessPolicy::AdminView => "AmazonEKSAdminViewPolicy",
            AccessPolicy::Edit => "AmazonEKSEditPolicy",
            AccessPolicy::View => "AmazonEKSViewPolicy",
        }
    }

    /// The policy for an exact name (case matters, as in the EKS API).
    pub fn from_name(name: &str) -> Option<AccessPolicy> {
        AccessPolicy::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `arn:<partition>:eks::aws:cluster-access-policy/<Name>`.
    pub fn arn(self, partition: &str) -> String {
        format!(
            "arn:{partition}:eks::aws:cluster-access-policy/{}",
            self.name()
        )
    }

    /// True for the cluster-admin policy.
    pub fn is_cluster_admin(self) -> bool {
        self == AccessPolicy::ClusterAdmin
    }
}

/// Where an access policy applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessScope {
    /// The whole cluster.
    Cluster,
    /// These namespaces (a trailing `*` is an EKS namespace wildcard).
    Namespaces(Vec<String>),
}

/// An access entry and one associated access policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEntryGrant {
    /// The access policy to associate.
    pub policy: AccessPolicy,
    /// Cluster-wide or for some namespaces.
    pub scope: AccessScope,
}

/// An aws-auth `mapRoles`/`mapUsers` item (the ARN is the principal's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsAuthGrant {
    /// Username, possibly templated (`{{SessionName}}`, ...).
    pub username: String,
    /// Kubernetes groups, possibly templated.
    pub groups: Vec<String>,
}

/// What a rule grants: an access entry, an aws-auth mapping, or both (the planner uses whichever
/// the cluster's authentication mode accepts, preferring the access entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// For clusters whose authentication mode includes `API`.
    pub access_entry: Option<AccessEntryGrant>,
    /// For clusters whose authentication mode includes `CONFIG_MAP`.
    pub aws_auth: Option<AwsAuthGrant>,
}

impl Grant {
    /// True when the grant makes the principal a cluster admin (`AmazonEKSClusterAdminPolicy` or
    /// the `system:masters` group).
    pub fn is_cluster_admin(&self) -> bool {
        self.access_entry
            .as_ref()
            .is_some_and(|e| e.policy.is_cluster_admin())
            || self
                .aws_auth
                .as_ref()
                .is_some_and(|a| a.groups.iter().any(|g| g == SYSTEM_MASTERS))
    }
}

/// One approval rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    name: String,
    principals: Vec<ArnPattern>,
    grant: Grant,
    allow_cluster_admin: bool,
}

impl Rule {
    /// The rule's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The principal patterns the rule applies to.
    pub fn principals(&self) -> &[ArnPattern] {
        &self.principals
    }
    /// What the rule grants.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
    /// Whether the rule was allowed to grant cluster admin.
    pub fn allow_cluster_admin(&self) -> bool {
        self.allow_cluster_admin
    }
}

/// A validated approval policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    mode: Mode,
    remediation_role_arn: Option<String>,
    clusters: Vec<ClusterPattern>,
    never: Vec<ArnPattern>,
    rules: Vec<Rule>,
    limits: Limits,
    tickets: Tickets,
}

/// The policy's verdict on one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// The first rule matching the principal.
    Allowed {
        /// Position of the rule in `rules`.
        rule_index: usize,
        /// The rule's name.
        rule_name: &'a str,
        /// What the rule grants.
        grant: &'a Grant,
    },
    /// A `never` pattern matched: nothing is granted, whatever the rules say.
    Never {
        /// The `never` pattern, as written.
        pattern: &'a str,
    },
    /// No rule matches.
    NoRule,
    /// The principal is a role whose path is unknown, and this pattern (in `never` or in a rule that
    /// would be consulted first) could match the path-qualified ARN: resolve the path (iam:GetRole)
    /// and decide again.
    PathRequired {
        /// The pattern that might match, as written.
        pattern: &'a str,
    },
    /// The ARNs given are not a principal, or the path-qualified ARN names another entity.
    InvalidPrincipal {
        /// What is wrong with them.
        reason: String,
    },
}

impl Decision<'_> {
    /// True for [`Decision::Allowed`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

impl Policy {
    /// Parses and validates a policy document; `origin` names it in errors (a file name, an
    /// environment variable).
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] listing every problem found, each with its line and column.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |problems: Vec<Problem>| PolicyError::Invalid {
            origin: origin.to_string(),
            problems,
        };
        if text.len() > MAX_POLICY_BYTES {
            return Err(invalid(vec![Problem::at(
                1,
                1,
                ProblemKind::Syntax,
                format!(
                    "the document is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    text.len()
                ),
            )]));
        }
        // Pass 1: syntax, duplicate keys, a single non-empty document.
        match Walk::TOP.deserialize(serde_norway::Deserializer::from_str(text)) {
            Ok(true) => {
                return Err(invalid(vec![Problem::at(
                    1,
                    1,
                    ProblemKind::Empty,
                    "the policy document is empty".into(),
                )]))
            }
            Ok(false) => {}
            Err(e) => return Err(invalid(vec![yaml_problem(&e, text, ProblemKind::Syntax)])),
        }
        // Pass 2: the schema (unknown keys, missing keys, types).
        let raw: RawPolicy = serde_norway::from_str(text)
            .map_err(|e| invalid(vec![yaml_problem(&e, text, ProblemKind::Schema)]))?;
        // Pass 3: meaning, located by probing the text.
        validate(raw).map_err(|pending| {
            let mut problems: Vec<Problem> = pending.into_iter().map(|p| p.locate(text)).collect();
            problems.sort_by_key(|p| (p.line, p.column));
            invalid(problems)
        })
    }

    /// Reads and parses a policy file.
    ///
    /// # Errors
    /// [`PolicyError::Read`] when the file cannot be read, otherwise as [`Policy::parse`].
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// Loads the policy from `source`.
    ///
    /// # Errors
    /// As [`Policy::parse`] and [`Policy::from_file`].
    pub fn load(source: &PolicySource) -> Result<Policy, PolicyError> {
        match source {
            PolicySource::Inline(text) => Policy::parse(text, ENV_INLINE),
            PolicySource::File(path) => Policy::from_file(path),
        }
    }

    /// Loads the policy named by `EKS_AUTH_POLICY` / `EKS_AUTH_POLICY_FILE`.
    ///
    /// # Errors
    /// As [`PolicySource::from_env`] and [`Policy::load`].
    pub fn from_env() -> Result<Policy, PolicyError> {
        Policy::load(&PolicySource::from_env()?)
    }

    /// Dry-run or enforce.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The role to assume for changes, if not the function's own.
    pub fn remediation_role_arn(&self) -> Option<&str> {
        self.remediation_role_arn.as_deref()
    }

    /// The cluster-name patterns.
    pub fn clusters(&self) -> &[ClusterPattern] {
        &self.clusters
    }

    /// The principal patterns that are never granted anything.
    pub fn never(&self) -> &[ArnPattern] {
        &self.never
    }

    /// The rules, in the order they are consulted.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The change limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Where tickets are delivered and how long a ticket stays open (`tickets`).
    pub fn tickets(&self) -> &Tickets {
        &self.tickets
    }

    /// True when some `clusters` pattern matches the cluster name (case-sensitive, anchored).
    pub fn cluster_in_scope(&self, cluster: &str) -> bool {
        self.clusters.iter().any(|c| c.matches(cluster))
    }

    /// Decides what `principal_canonical_arn` may be granted.
    ///
    /// `principal_path_arn` is the IAM ARN with its path (`role/team/x`) when it has been resolved
    /// (pass it even when it equals the canonical ARN); `None` means unknown. Patterns are tried
    /// against both. `never` wins over every rule; then the first matching rule wins.
    pub fn decide(
        &self,
        principal_canonical_arn: &str,
        principal_path_arn: Option<&str>,
    ) -> Decision<'_> {
        let principal = match Arn::parse(principal_canonical_arn) {
            Ok(a) => a.canonical(),
            Err(e) => {
                return Decision::InvalidPrincipal {
                    reason: format!("'{}': {e}", principal_canonical_arn.trim()),
                }
            }
        };
        let pathed = match principal_path_arn.map(|p| path_arn_for(&principal, p)) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(reason)) => return Decision::InvalidPrincipal { reason },
        };
        let mut candidates = vec![&principal];
        if let Some(p) = pathed.as_ref().filter(|p| **p != principal) {
            candidates.push(p);
        }
        // Assumed roles canonicalise to `role/NAME`; their path is only known once resolved.
        let path_unknown = pathed.is_none() && principal.kind() == PrincipalKind::Role;

        if let Some(p) = self
            .never
            .iter()
            .find(|p| candidates.iter().any(|a| p.matches(a)))
        {
            return Decision::Never {
                pattern: p.as_str(),
            };
        }
        if path_unknown {
            if let Some(p) = self
                .never
                .iter()
                .find(|p| p.could_match_with_path(&principal))
            {
                return Decision::PathRequired {
                    pattern: p.as_str(),
                };
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule
                .principals
                .iter()
                .any(|p| candidates.iter().any(|a| p.matches(a)))
            {
                return Decision::Allowed {
                    rule_index: i,
                    rule_name: &rule.name,
                    grant: &rule.grant,
                };
            }
            if path_unknown {
                if let Some(p) = rule
                    .principals
                    .iter()
                    .find(|p| p.could_match_with_path(&principal))
                {
                    return Decision::PathRequired {
                        pattern: p.as_str(),
                    };
                }
            }
        }
        Decision::NoRule
    }
}

/// Checks that `path_arn` names the same entity as the canonical `principal`.
fn path_arn_for(principal: &Arn, path_arn: &str) -> Result<Arn, String> {
    let p = Arn::parse(path_arn).map_err(|e| format!("'{}': {e}", path_arn.trim()))?;
    let same = p.partition == principal.partition
        && p.account == principal.account
        && p.kind() == principal.kind()
        && match p.kind() {
            PrincipalKind::Role => p
                .without_path()
                .resource
                .eq_ignore_ascii_case(&principal.resource),
            _ => p.resource.eq_ignore_ascii_case(&principal.resource),
        };
    if same {
        Ok(p)
    } else {
        Err(format!(
            "path-qualified ARN '{path_arn}' does not name the same entity as '{principal}'"
        ))
    }
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The document itself (`EKS_AUTH_POLICY`).
    Inline(String),
    /// A file (`EKS_AUTH_POLICY_FILE`, or the CLI's `--policy`).
    File(PathBuf),
}

impl PolicySource {
    /// Reads `EKS_AUTH_POLICY` / `EKS_AUTH_POLICY_FILE` from the process environment.
    ///
    /// # Errors
    /// As [`PolicySource::from_lookup`].
    pub fn from_env() -> Result<PolicySource, PolicyError> {
        PolicySource::from_lookup(|k| std::env::var_os(k))
    }

    /// Chooses the source from an environment given as a lookup function: exactly one of the two
    /// variables must be set, and not empty.
    ///
    /// # Errors
    /// [`PolicyError::NotConfigured`], [`PolicyError::Ambiguous`], [`PolicyError::EmptyVar`] or
    /// [`PolicyError::NotUnicode`].
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<PolicySource, PolicyError> {
        match (lookup(ENV_INLINE), lookup(ENV_FILE)) {
            (None, None) => Err(PolicyError::NotConfigured),
            (Some(_), Some(_)) => Err(PolicyError::Ambiguous),
            (Some(v), None) => {
                let text = v
                    .into_string()
                    .map_err(|_| PolicyError::NotUnicode { var: ENV_INLINE })?;
                if text.trim().is_empty() {
                    return Err(PolicyError::EmptyVar { var: ENV_INLINE });
                }
                Ok(PolicySource::Inline(text))
            }
            (None, Some(v)) => {
                if v.is_empty() {
                    return Err(PolicyError::EmptyVar { var: ENV_FILE });
                }
                Ok(PolicySource::File(PathBuf::from(v)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why no policy could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Neither environment variable is set.
    #[error("no policy: set {ENV_INLINE} (the document) or {ENV_FILE} (a path)")]
    NotConfigured,
    /// Both environment variables are set.
    #[error("both {ENV_INLINE} and {ENV_FILE} are set; set one")]
    Ambiguous,
    /// A variable is set to nothing.
    #[error("{var} is set but empty")]
    EmptyVar {
        /// The variable.
        var: &'static str,
    },
    /// A variable holds bytes that are not UTF-8.
    #[error("{var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: &'static str,
    },
    /// The policy file cannot be read.
    #[error("cannot read policy file {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The document is not a valid policy.
    #[error("invalid policy in {origin}: {}", ProblemList(.problems))]
    Invalid {
        /// The file or variable the document came from.
        origin: String,
        /// Every problem found, in document order.
        problems: Vec<Problem>,
    },
}

impl PolicyError {
    /// The located problems of an invalid policy (empty for the other variants).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// The kinds of problem a policy can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// Not YAML/JSON, several documents, duplicate keys, too large.
    Syntax,
    /// Unknown key, missing key, wrong type, unknown `mode`/`scope` value.
    Schema,
    /// No document at all.
    Empty,
    /// A principal or cluster pattern that is not valid.
    Pattern,
    /// `remediation_role_arn` is not an IAM role ARN.
    Arn,
    /// Unknown access policy name, malformed policy ARN, or a partition that no principal can have.
    AccessPolicy,
    /// `scope`/`namespaces` missing, contradictory, or holding bad namespace names.
    Scope,
    /// Cluster admin (`system:masters`, `AmazonEKSClusterAdminPolicy`) without
    /// `allow_cluster_admin: true`, or that flag on a rule granting no cluster admin.
    ClusterAdmin,
    /// A username or group reserved by Kubernetes/EKS.
    Reserved,
    /// An unknown `{{...}}` placeholder or unbalanced braces.
    Template,
    /// An empty, malformed or duplicate rule name, username or group.
    Name,
    /// A list that must not be empty is (`principals`, `namespaces`).
    EmptyList,
    /// A rule with neither `access_entry` nor `aws_auth`.
    NoGrant,
    /// A limit of zero, or a per-invocation limit above the hourly one.
    Limit,
    /// A ticket sink or suppression setting that cannot work (bad ARN, URL, duration, secret).
    Tickets,
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Where in the document (`rules[0].access_entry.policy`); empty for the whole document.
    pub path: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What is wrong, and usually how to fix it.
    pub message: String,
}

impl Problem {
    fn at(line: usize, column: usize, kind: ProblemKind, message: String) -> Problem {
        Problem {
            line,
            column,
            path: String::new(),
            kind,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems", many.len())?;
                for p in many {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// A serde_norway error as a problem: its location, and its message without the location and path
/// serde_norway appends and prepends.
fn yaml_problem(e: &serde_norway::Error, text: &str, kind: ProblemKind) -> Problem {
    let full = e.to_string();
    let (line, column) = match e.location() {
        Some(l) => (l.line(), l.column()),
        None => (second_document_line(text).unwrap_or(1), 1),
    };
    let suffix = format!(" at line {line} column {column}");
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    let (path, msg) = match msg.split_once(": ") {
        Some((p, rest))
            if !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b)) =>
        {
            (p.to_string(), rest.to_string())
        }
        _ => (String::new(), msg.to_string()),
    };
    Problem {
        line,
        column,
        path,
        kind,
        message: msg,
    }
}

/// The line where a second YAML document starts (serde_norway reports no location for it).
fn second_document_line(text: &str) -> Option<usize> {
    let mut content = false;
    let mut ended = false;
    for (i, line) in text.lines().enumerate() {
        let marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
        };
        if marker("---") {
            if content || ended {
                return Some(i + 1);
            }
            continue;
        }
        if marker("...") {
            ended = true;
            continue;
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || (t.starts_with('%') && !content) {
            continue;
        }
        if ended {
            return Some(i + 1);
        }
        content = true;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Patterns

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**`: any run of characters.
    Any,
}

#[derive(Debug, Clone, Copy)]
enum Sym {
    Byte(u8),
    /// Some character other than `/` (for "could a path make this match").
    NonSlash,
}

/// An anchored glob, matched by simulating its automaton (no backtracking blow-up).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    toks: Vec<Tok>,
    fold_case: bool,
}

impl Glob {
    fn compile(s: &str, fold_case: bool, allow_any: bool) -> Result<Glob, String> {
        let b = s.as_bytes();
        let mut toks = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'*' => {
                    let run = b[i..].iter().take_while(|&&c| c == b'*').count();
                    match run {
                        1 => toks.push(Tok::Star),
                        2 if allow_any => toks.push(Tok::Any),
                        2 => return Err("'**' is not allowed here; use '*'".into()),
                        _ => return Err(format!("'{}' is not a wildcard", "*".repeat(run))),
                    }
                    i += run;
                }
                b'?' => {
                    toks.push(Tok::One);
                    i += 1;
                }
                c => {
                    toks.push(Tok::Lit(if fold_case { c.to_ascii_lowercase() } else { c }));
                    i += 1;
                }
            }
        }
        Ok(Glob { toks, fold_case })
    }

    fn start(&self) -> Vec<bool> {
        let mut st = vec![false; self.toks.len() + 1];
        st[0] = true;
        self.close(&mut st);
        st
    }

    // Stars match the empty string: a state before a star also stands after it.
    fn close(&self, st: &mut [bool]) {
        for i in 0..self.toks.len() {
            if st[i] && matches!(self.toks[i], Tok::Star | Tok::Any) {
                st[i + 1] = true;
            }
        }
    }

    fn step(&self, st: &[bool], sym: Sym) -> Vec<bool> {
        let mut next = vec![false; st.len()];
        let slash = matches!(sym, Sym::Byte(b'/'));
        for (i, tok) in self.toks.iter().enumerate() {
            if !st[i] {
                continue;
            }
            match (*tok, sym) {
                (Tok::Lit(l), Sym::Byte(c)) if l == c => next[i + 1] = true,
                (Tok::Lit(l), Sym::NonSlash) if l != b'/' => next[i + 1] = true,
                (Tok::One, _) if !slash => next[i + 1] = true,
                (Tok::Star, _) if !slash => next[i] = true,
                (Tok::Any, _) => next[i] = true,
                _ => {}
            }
        }
        self.close(&mut next);
        next
    }

    fn feed(&self, mut st: Vec<bool>, s: &str) -> Vec<bool> {
        for c in s.bytes() {
            if !st.iter().any(|&x| x) {
                break;
            }
            let c = if self.fold_case {
                c.to_ascii_lowercase()
            } else {
                c
            };
            st = self.step(&st, Sym::Byte(c));
        }
        st
    }

    fn matches(&self, s: &str) -> bool {
        self.feed(self.start(), s).last() == Some(&true)
    }

    /// Whether `prefix` + P + `suffix` matches for some path P of one or more `segment/`.
    fn matches_with_some_path(&self, prefix: &str, suffix: &str) -> bool {
        let union = |a: &mut Vec<bool>, b: &[bool]| {
            let mut grew = false;
            for (x, y) in a.iter_mut().zip(b) {
                if *y && !*x {
                    *x = true;
                    grew = true;
                }
            }
            grew
        };
        // One `segment/`: one or more non-slash characters, then a slash.
        let segment = |st: &[bool]| {
            let mut s = self.step(st, Sym::NonSlash);
            loop {
                let more = self.step(&s, Sym::NonSlash);
                if !union(&mut s, &more) {
                    break;
                }
            }
            self.step(&s, Sym::Byte(b'/'))
        };
        let after_prefix = self.feed(self.start(), prefix);
        let mut reach = segment(&after_prefix);
        loop {
            let more = segment(&reach);
            if !union(&mut reach, &more) {
                break;
            }
        }
        self.feed(reach, suffix).last() == Some(&true)
    }
}

/// A principal ARN pattern: `arn:<partition>:<iam|sts>::<account|*>:<resource glob>`.
///
/// Partition and service are literal; the account is 12 digits or exactly `*`; the resource starts
/// with a literal type (`role/`, `user/`, `root`, `federated-user/`) followed by a glob where `?` is
/// one character other than `/`, `*` any run of characters other than `/`, and `**` any run
/// including `/`. The resource is compared ASCII-case-insensitively (IAM names are unique regardless
/// of case, and the authenticator compares lower-cased ARNs); everything else exactly. Anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnPattern {
    text: String,
    partition: String,
    service: String,
    account: Option<String>,
    kind: PrincipalKind,
    resource: Glob,
}

impl ArnPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// A message saying what is wrong with it.
    pub fn parse(s: &str) -> Result<ArnPattern, String> {
        let fields: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = fields[..] else {
            return Err(format!(
                "'{s}' is not an ARN pattern: expected arn:PARTITION:iam::ACCOUNT:RESOURCE"
            ));
        };
        if arn != "arn" {
            return Err(format!("'{s}' does not start with 'arn:'"));
        }
        if !PARTITIONS.contains(&partition) {
            return Err(format!(
                "unknown partition '{partition}' in '{s}' (patterns name one partition literally: {})",
                PARTITIONS.join(", ")
            ));
        }
        if !matches!(service, "iam" | "sts") {
            return Err(format!(
                "service '{service}' in '{s}' is not iam or sts: principals are IAM ARNs"
            ));
        }
        if !region.is_empty() {
            return Err(format!("'{s}' has a region; IAM principal ARNs have none"));
        }
        let account = match account {
            "*" => None,
            a if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.to_string()),
            a => {
                return Err(format!(
                    "account '{a}' in '{s}' must be 12 digits, or '*' for any account"
                ))
            }
        };
        if let Some(c) = resource
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "+=,.@_-/*?".contains(c)))
        {
            return Err(format!(
                "'{c}' is not allowed in '{s}' (IAM names use A-Z a-z 0-9 + = , . @ _ - and paths /)"
            ));
        }
        let head = resource.split('/').next().unwrap_or("");
        let kind = match (service, head) {
            ("iam", "role") => PrincipalKind::Role,
            ("iam", "user") => PrincipalKind::User,
            ("iam", "root") => PrincipalKind::Root,
            ("sts", "federated-user") => PrincipalKind::FederatedUser,
            ("sts", "assumed-role") => {
                return Err(format!(
                "'{s}' names an assumed-role session; principals are matched by their canonical \
                     ARN, arn:{partition}:iam::ACCOUNT:role/NAME"
            ))
            }
            _ if head.contains(['*', '?']) => {
                return Err(format!(
                    "'{s}' must begin its resource with a literal type (role/, user/, root, \
                     federated-user/), not a wildcard"
                ))
            }
            _ => {
                return Err(format!(
                    "'{s}' names no principal type this service has (iam: role/, user/, root; \
                     sts: federated-user/)"
                ))
            }
        };
        if kind == PrincipalKind::Root {
            if resource != "root" {
                return Err(format!(
                    "'{s}': the root principal's resource is exactly 'root'"
                ));
            }
        } else {
            let rest = &resource[head.len()..];
            let rest = rest.strip_prefix('/').unwrap_or("");
            if rest.is_empty() || rest.ends_with('/') || rest.contains("//") {
                return Err(format!(
                    "'{s}' needs a name after '{head}/' and no empty path segments"
                ));
            }
        }
        Ok(ArnPattern {
            text: s.to_string(),
            partition: partition.to_string(),
            service: service.to_string(),
            account,
            kind,
            resource: Glob::compile(resource, true, true)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The partition the pattern is confined to.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The account, or `None` for `*`.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Whether the (parsed) ARN matches.
    pub fn matches(&self, arn: &Arn) -> bool {
        arn.partition == self.partition
            && arn.service == self.service
            && arn.region.is_empty()
            && self.account.as_ref().is_none_or(|a| *a == arn.account)
            && self.resource.matches(&arn.resource)
    }

    /// Whether the pattern could match the role `canonical` (`role/NAME`) once its path is known:
    /// `role/P/NAME` for some path `P`.
    fn could_match_with_path(&self, canonical: &Arn) -> bool {
        canonical.kind() == PrincipalKind::Role
            && self.kind == PrincipalKind::Role
            && canonical.partition == self.partition
            && canonical.region.is_empty()
            && self
                .account
                .as_ref()
                .is_none_or(|a| *a == canonical.account)
            && self
                .resource
                .matches_with_some_path("role/", canonical.name())
    }
}

impl fmt::Display for ArnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A cluster-name pattern: anchored, case-sensitive, `*` any run of characters, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPattern {
    text: String,
    glob: Glob,
}

impl ClusterPattern {
    /// Parses a pattern; the characters are those of EKS cluster names plus `*` and `?`.
    ///
    /// # Errors
    /// A message saying what is wrong with it.
    pub fn parse(s: &str) -> Result<ClusterPattern, String> {
        if s.is_empty() {
            return Err("a cluster pattern cannot be empty".into());
        }
        if let Some(c) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "-_*?".contains(c)))
        {
            return Err(format!(
                "'{c}' cannot appear in cluster pattern '{s}' (cluster names use A-Z a-z 0-9 - _; \
                 wildcards * and ?)"
            ));
        }
        Ok(ClusterPattern {
            text: s.to_string(),
            glob: Glob::compile(s, false, false)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the cluster name matches.
    pub fn matches(&self, cluster: &str) -> bool {
        self.glob.matches(cluster)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw document and validation

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy: a mapping with clusters and rules"
)]
struct RawPolicy {
    #[serde(default, deserialize_with = "present")]
    mode: Option<Mode>,
    #[serde(default, deserialize_with = "present")]
    remediation_role_arn: Option<String>,
    clusters: Vec<String>,
    #[serde(default)]
    never: Vec<String>,
    rules: Vec<RawRule>,
    #[serde(default, deserialize_with = "present")]
    limits: Option<RawLimits>,
    #[serde(default, deserialize_with = "present")]
    tickets: Option<RawTickets>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with suppression_window and/or sinks"
)]
struct RawTickets {
    #[serde(default, deserialize_with = "present")]
    suppression_window: Option<String>,
    #[serde(default, deserialize_with = "present")]
    sinks: Option<RawSinks>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with sns, eventbridge and/or webhook"
)]
struct RawSinks {
    #[serde(default, deserialize_with = "present")]
    sns: Option<RawSns>,
    #[serde(default, deserialize_with = "present")]
    eventbridge: Option<RawEventBridge>,
    #[serde(default, deserialize_with = "present")]
    webhook: Option<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with topic_arn")]
struct RawSns {
    topic_arn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with event_bus")]
struct RawEventBridge {
    event_bus: String,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with url and optionally secret_env or secret_arn, timeout, retries"
)]
struct RawWebhook {
    url: String,
    #[serde(default, deserialize_with = "present")]
    secret_env: Option<String>,
    #[serde(default, deserialize_with = "present")]
    secret_arn: Option<String>,
    #[serde(default, deserialize_with = "present")]
    timeout: Option<String>,
    #[serde(default, deserialize_with = "present")]
    retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule: a mapping with name, principals and access_entry and/or aws_auth"
)]
struct RawRule {
    name: String,
    principals: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    access_entry: Option<RawAccessEntry>,
    #[serde(default, deserialize_with = "present")]
    aws_auth: Option<RawAwsAuth>,
    #[serde(default)]
    allow_cluster_admin: bool,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an access entry: a mapping with policy, and scope or namespaces"
)]
struct RawAccessEntry {
    policy: String,
    #[serde(default, deserialize_with = "present")]
    scope: Option<ScopeKind>,
    #[serde(default, deserialize_with = "present")]
    namespaces: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ScopeKind {
    Cluster,
    Namespace,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an aws-auth mapping with username and groups"
)]
struct RawAwsAuth {
    username: String,
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with max_changes_per_invocation and/or max_changes_per_hour"
)]
struct RawLimits {
    #[serde(default, deserialize_with = "present")]
    max_changes_per_invocation: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    max_changes_per_hour: Option<u32>,
}

/// An optional key that, when written, must hold a value: `key: null` (or `key:`) is an error, not
/// "absent".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

const SYSTEM_MASTERS: &str = "system:masters";
/// `system:` groups a rule may grant: the node groups (for restoring node-role mappings).
const SYSTEM_GROUPS_ALLOWED: &[&str] = &[
    "system:bootstrappers",
    "system:nodes",
    "system:node-proxier",
];
/// `system:` usernames a rule may grant: nodes (EC2) and Fargate pods.
const SYSTEM_USERNAMES_ALLOWED: &[&str] = &[
    "system:node:{{EC2PrivateDNSName}}",
    "system:node:{{SessionName}}",
];
const PLACEHOLDERS: &[&str] = &[
    "AccountID",
    "SessionName",
    "SessionNameRaw",
    "AccessKeyID",
    "EC2PrivateDNSName",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

struct Pending {
    path: Vec<Seg>,
    kind: ProblemKind,
    message: String,
}

impl Pending {
    /// The problem with the line and column of its node (or of the nearest ancestor that exists).
    fn locate(self, text: &str) -> Problem {
        let mut n = self.path.len();
        let (line, column) = loop {
            if let Some(at) = probe(text, &self.path[..n]) {
                break at;
            }
            if n == 0 {
                break (1, 1);
            }
            n -= 1;
        };
        Problem {
            line,
            column,
            path: path_string(&self.path),
            kind: self.kind,
            message: self.message,
        }
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Pending>,
}

impl Checker {
    fn report(&mut self, path: &[Seg], kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Pending {
            path: path.to_vec(),
            kind,
            message: message.into(),
        });
    }
}

fn join(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    base.iter().chain(more).copied().collect()
}

fn validate(raw: RawPolicy) -> Result<Policy, Vec<Pending>> {
    let mut ck = Checker::default();

    let remediation_role_arn = raw.remediation_role_arn.and_then(|s| {
        let at = [Seg::Key("remediation_role_arn")];
        match Arn::parse(&s) {
            Ok(_) if crate::arn::is_role_arn(&s) => Some(s),
            Ok(_) => {
                ck.report(
                    &at,
                    ProblemKind::Arn,
                    format!("'{s}' is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"),
                );
                None
            }
            Err(e) => {
                ck.report(&at, ProblemKind::Arn, format!("'{s}': {e}"));
                None
            }
        }
    });

    let clusters = parse_list(
        &mut ck,
        &[Seg::Key("clusters")],
        &raw.clusters,
        ClusterPattern::parse,
    );
    let never = parse_list(&mut ck, &[Seg::Key("never")], &raw.never, ArnPattern::parse);

    let mut names: HashSet<&str> = HashSet::new();
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, r) in raw.rules.iter().enumerate() {
        let base = [Seg::Key("rules"), Seg::Index(i)];
        let name_at = join(&base, &[Seg::Key("name")]);
        if r.name.is_empty()
            || r.name.len() > 64
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            ck.report(
                &name_at,
                ProblemKind::Name,
                format!("rule name '{}' must be 1-64 of A-Z a-z 0-9 . _ -", r.name),
            );
        } else if !names.insert(&r.name) {
            ck.report(
                &name_at,
                ProblemKind::Name,
                format!("rule name '{}' is used twice", r.name),
            );
        }
        if let Some(rule) = validate_rule(&mut ck, &base, r) {
            rules.push(rule);
        }
    }

    let limits = match raw.limits {
        None => DEFAULT_LIMITS,
        Some(l) => {
            // serde_norway reads `limits:` (null) as a mapping without keys: say so rather than
            // quietly taking the defaults.
            if l.max_changes_per_invocation.is_none() && l.max_changes_per_hour.is_none() {
                ck.report(
                    &[Seg::Key("limits")],
                    ProblemKind::Limit,
                    "limits has no keys; set max_changes_per_invocation and/or \
                     max_changes_per_hour, or remove it to use the defaults (5 and 20)",
                );
            }
            let lim = Limits {
                max_changes_per_invocation: l
                    .max_changes_per_invocation
                    .unwrap_or(DEFAULT_LIMITS.max_changes_per_invocation),
                max_changes_per_hour: l
                    .max_changes_per_hour
                    .unwrap_or(DEFAULT_LIMITS.max_changes_per_hour),
            };
            for (key, v) in [
                ("max_changes_per_invocation", lim.max_changes_per_invocation),
                ("max_changes_per_hour", lim.max_changes_per_hour),
            ] {
                if v == 0 {
                    ck.report(
                        &[Seg::Key("limits"), Seg::Key(key)],
                        ProblemKind::Limit,
                        "must be at least 1 (use mode: dry-run to make no changes)",
                    );
                }
            }
            if lim.max_changes_per_invocation > lim.max_changes_per_hour {
                ck.report(
                    &[Seg::Key("limits"), Seg::Key("max_changes_per_invocation")],
                    ProblemKind::Limit,
                    format!(
                        "{}{} changes per invocation exceed the {} allowed per hour",
                        if l.max_changes_per_invocation.is_none() {
                            "the default of "
                        } else {
                            ""
                        },
                        lim.max_changes_per_invocation,
                        lim.max_changes_per_hour
                    ),
                );
            }
            lim
        }
    };

    let tickets = raw
        .tickets
        .map(|t| validate_tickets(&mut ck, &t))
        .unwrap_or_default();

    if !ck.problems.is_empty() {
        return Err(ck.problems);
    }
    Ok(Policy {
        mode: raw.mode.unwrap_or_default(),
        remediation_role_arn,
        clusters,
        never,
        rules,
        limits,
        tickets,
    })
}

fn validate_tickets(ck: &mut Checker, t: &RawTickets) -> Tickets {
    const T: Seg = Seg::Key("tickets");
    const S: Seg = Seg::Key("sinks");
    let mut out = Tickets::default();
    if t.suppression_window.is_none() && t.sinks.is_none() {
        ck.report(
            &[T],
            ProblemKind::Tickets,
            "tickets has no keys; set suppression_window and/or sinks, or remove it",
        );
    }
    if let Some(w) = &t.suppression_window {
        let at = [T, Seg::Key("suppression_window")];
        match parse_duration(w) {
            Ok(d) if (60..=30 * 86400).contains(&d.as_secs()) => out.suppression_window = d,
            Ok(_) => ck.report(&at, ProblemKind::Tickets, "must be between 1m and 30d"),
            Err(e) => ck.report(&at, ProblemKind::Tickets, e),
        }
    }
    let Some(sinks) = &t.sinks else {
        return out;
    };
    if sinks.sns.is_none() && sinks.eventbridge.is_none() && sinks.webhook.is_none() {
        ck.report(
            &[T, S],
            ProblemKind::Tickets,
            "sinks has no keys; set sns, eventbridge and/or webhook, or remove it",
        );
    }
    if let Some(sns) = &sinks.sns {
        let at = [T, S, Seg::Key("sns"), Seg::Key("topic_arn")];
        match check_service_arn(&sns.topic_arn, "sns", |r| {
            !r.is_empty()
                && r.len() <= 256
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        }) {
            Ok(()) => {
                out.sns = Some(SnsSink {
                    topic_arn: sns.topic_arn.clone(),
                })
            }
            Err(e) => ck.report(&at, ProblemKind::Tickets, e),
        }
    }
    if let Some(eb) = &sinks.eventbridge {
        let at = [T, S, Seg::Key("eventbridge"), Seg::Key("event_bus")];
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 256
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        };
        let ok = if eb.event_bus.starts_with("arn:") {
            check_service_arn(&eb.event_bus, "events", |r| {
                r.strip_prefix("event-bus/").is_some_and(name_ok)
            })
        } else if name_ok(&eb.event_bus) && !eb.event_bus.contains('/') {
            Ok(())
        } else {
            Err(format!(
                "'{}' is neither an event bus name nor an event bus ARN",
                eb.event_bus
            ))
        };
        match ok {
            Ok(()) => {
                out.eventbridge = Some(EventBridgeSink {
                    event_bus: eb.event_bus.clone(),
                })
            }
            Err(e) => ck.report(&at, ProblemKind::Tickets, e),
        }
    }
    if let Some(w) = &sinks.webhook {
        let base = [T, S, Seg::Key("webhook")];
        let mut ok = true;
        if let Err(e) = check_webhook_url(&w.url) {
            ck.report(&join(&base, &[Seg::Key("url")]), ProblemKind::Tickets, e);
            ok = false;
        }
        let secret = match (&w.secret_env, &w.secret_arn) {
            (Some(_), Some(_)) => {
                ck.report(
                    &join(&base, &[Seg::Key("secret_arn")]),
                    ProblemKind::Tickets,
                    "set secret_env or secret_arn, not both",
                );
                ok = false;
                None
            }
            (Some(var), None) => {
                if var.is_empty()
                    || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    || var.as_bytes()[0].is_ascii_digit()
                {
                    ck.report(
                        &join(&base, &[Seg::Key("secret_env")]),
                        ProblemKind::Tickets,
                        format!("'{var}' is not an environment variable name"),
                    );
                    ok = false;
                }
                Some(WebhookSecret::Env(var.clone()))
            }
            (None, Some(arn)) => {
                if let Err(e) = check_service_arn(arn, "secretsmanager", |r| {
                    r.strip_prefix("secret:").is_some_and(|n| !n.is_empty())
                }) {
                    ck.report(
                        &join(&base, &[Seg::Key("secret_arn")]),
                        ProblemKind::Tickets,
                        e,
                    );
                    ok = false;
                }
                Some(WebhookSecret::SecretsManager(arn.clone()))
            }
            (None, None) => None,
        };
        let mut timeout = DEFAULT_WEBHOOK_TIMEOUT;
        if let Some(t) = &w.timeout {
            let at = join(&base, &[Seg::Key("timeout")]);
            match parse_duration(t) {
                Ok(d) if (1..=60).contains(&d.as_secs()) => timeout = d,
                Ok(_) => {
                    ck.report(&at, ProblemKind::Tickets, "must be between 1s and 60s");
                    ok = false;
                }
                Err(e) => {
                    ck.report(&at, ProblemKind::Tickets, e);
                    ok = false;
                }
            }
        }
        let retries = w.retries.unwrap_or(DEFAULT_WEBHOOK_RETRIES);
        if retries > 10 {
            ck.report(
                &join(&base, &[Seg::Key("retries")]),
                ProblemKind::Tickets,
                "at most 10",
            );
            ok = false;
        }
        if ok {
            out.webhook = Some(WebhookSink {
                url: w.url.clone(),
                secret,
                timeout,
                retries,
            });
        }
    }
    out
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` with a known partition, a region,
/// a 12-digit account and a resource `resource_ok` accepts.
fn check_service_arn(
    s: &str,
    service: &str,
    resource_ok: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, svc, region, account, resource] => {
            PARTITIONS.contains(partition)
                && *svc == service
                && !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource_ok(resource)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{s}' is not an {service} ARN (arn:PARTITION:{service}:REGION:ACCOUNT:...)"
        ))
    }
}

/// `https://host[:port]/path`, or `http://` to a loopback host (tests): tickets carry principal
/// ARNs and must not cross a network in clear text.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("'{url}' has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") => Ok(()),
        Some("http") => Err(format!(
            "'{url}': plain http is allowed only to a loopback host; use https"
        )),
        _ => Err(format!("'{url}' must start with https://")),
    }
}

fn parse_list<T>(
    ck: &mut Checker,
    at: &[Seg],
    items: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        match parse(s) {
            Ok(p) => out.push(p),
            Err(msg) => ck.report(&join(at, &[Seg::Index(i)]), ProblemKind::Pattern, msg),
        }
    }
    out
}

fn validate_rule(ck: &mut Checker, base: &[Seg], r: &RawRule) -> Option<Rule> {
    let before = ck.problems.len();
    let principals_at = join(base, &[Seg::Key("principals")]);
    if r.principals.is_empty() {
        ck.report(
            &principals_at,
            ProblemKind::EmptyList,
            "a rule needs at least one principal pattern",
        );
    }
    let principals = parse_list(ck, &principals_at, &r.principals, ArnPattern::parse);

    if r.access_entry.is_none() && r.aws_auth.is_none() {
        ck.report(
            base,
            ProblemKind::NoGrant,
            format!(
                "rule '{}' grants nothing: give it access_entry, aws_auth or both",
                r.name
            ),
        );
    }

    let access_entry = r.access_entry.as_ref().and_then(|e| {
        let at = join(base, &[Seg::Key("access_entry")]);
        validate_access_entry(ck, &at, e, r.allow_cluster_admin, &principals)
    });
    let aws_auth = r.aws_auth.as_ref().map(|a| {
        let at = join(base, &[Seg::Key("aws_auth")]);
        validate_aws_auth(ck, &at, a, r.allow_cluster_admin);
        AwsAuthGrant {
            username: a.username.clone(),
            groups: a.groups.clone(),
        }
    });
    let grant = Grant {
        access_entry,
        aws_auth,
    };
    let grants_admin = r
        .access_entry
        .as_ref()
        .is_some_and(|e| resolve_access_policy(&e.policy).is_ok_and(|(p, _)| p.is_cluster_admin()))
        || r.aws_auth
            .as_ref()
            .is_some_and(|a| a.groups.iter().any(|g| g == SYSTEM_MASTERS));
    if r.allow_cluster_admin && !grants_admin {
        ck.report(
            &join(base, &[Seg::Key("allow_cluster_admin")]),
            ProblemKind::ClusterAdmin,
            "allow_cluster_admin is true but the rule grants no cluster admin; remove it",
        );
    }
    (ck.problems.len() == before).then(|| Rule {
        name: r.name.clone(),
        principals,
        grant,
        allow_cluster_admin: r.allow_cluster_admin,
    })
}

/// A policy name or a full policy ARN, with the partition a full ARN pins.
fn resolve_access_policy(s: &str) -> Result<(AccessPolicy, Option<&str>), String> {
    let known = || {
        AccessPolicy::ALL
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, partition) = if let Some(rest) = s.strip_prefix("arn:") {
        let Some((partition, name)) = rest
            .split_once(":eks::aws:cluster-access-policy/")
            .filter(|(p, _)| PARTITIONS.contains(p))
        else {
            return Err(format!(
                "'{s}' is not an access policy ARN (arn:PARTITION:eks::aws:cluster-access-policy/NAME)"
            ));
        };
        (name, Some(partition))
    } else {
        (s, None)
    };
    match AccessPolicy::from_name(name) {
        Some(p) => Ok((p, partition)),
        None => {
            let hint = AccessPolicy::ALL
                .iter()
                .find(|p| p.name().eq_ignore_ascii_case(name))
                .map(|p| format!(" (did you mean {}?)", p.name()))
                .unwrap_or_default();
            Err(format!(
                "unknown access policy '{name}'{hint}; grantable policies: {}",
                known()
            ))
        }
    }
}

fn validate_access_entry(
    ck: &mut Checker,
    at: &[Seg],
    e: &RawAccessEntry,
    allow_admin: bool,
    principals: &[ArnPattern],
) -> Option<AccessEntryGrant> {
    let policy_at = join(at, &[Seg::Key("policy")]);
    let policy = match resolve_access_policy(&e.policy) {
        Ok((policy, pinned)) => {
            if let Some(part) = pinned {
                if let Some(p) = principals.iter().find(|p| p.partition() != part) {
                    ck.report(
                        &policy_at,
                        ProblemKind::AccessPolicy,
                        format!(
                            "the policy ARN is in partition {part} but principal pattern '{p}' is in \
                             {}; write the policy name instead and it resolves per partition",
                            p.partition()
                        ),
                    );
                }
            }
            if policy.is_cluster_admin() && !allow_admin {
                ck.report(
                    &policy_at,
                    ProblemKind::ClusterAdmin,
                    format!(
                        "{} makes the principal a cluster admin; the rule must say allow_cluster_admin: true",
                        policy.name()
                    ),
                );
            }
            Some(policy)
        }
        Err(msg) => {
            ck.report(&policy_at, ProblemKind::AccessPolicy, msg);
            None
        }
    };

    let scope = match (e.scope, &e.namespaces) {
        (Some(ScopeKind::Cluster), None) => Some(AccessScope::Cluster),
        (Some(ScopeKind::Cluster), Some(_)) => {
            ck.report(
                &join(at, &[Seg::Key("namespaces")]),
                ProblemKind::Scope,
                "namespaces contradict scope: cluster; remove one",
            );
            None
        }
        (Some(ScopeKind::Namespace), None) => {
            ck.report(
                &join(at, &[Seg::Key("scope")]),
                ProblemKind::Scope,
                "scope: namespace needs a namespaces list",
            );
            None
        }
        (None, None) => {
            ck.report(
                at,
                ProblemKind::Scope,
                "an access entry needs scope: cluster or a namespaces list",
            );
            None
        }
        (Some(ScopeKind::Namespace) | None, Some(list)) => {
            let ns_at = join(at, &[Seg::Key("namespaces")]);
            let before = ck.problems.len();
            if list.is_empty() {
                ck.report(&ns_at, ProblemKind::EmptyList, "namespaces cannot be empty");
            }
            let mut seen = HashSet::new();
            for (i, ns) in list.iter().enumerate() {
                let item = join(&ns_at, &[Seg::Index(i)]);
                if !valid_namespace(ns) {
                    ck.report(
                        &item,
                        ProblemKind::Scope,
                        format!(
                            "'{ns}' is not a namespace name (lower-case DNS label of at most 63 \
                             characters, optionally ending in the EKS wildcard *)"
                        ),
                    );
                } else if !seen.insert(ns.as_str()) {
                    ck.report(
                        &item,
                        ProblemKind::Scope,
                        format!("namespace '{ns}' is listed twice"),
                    );
                }
            }
            (ck.problems.len() == before).then(|| AccessScope::Namespaces(list.clone()))
        }
    };
    Some(AccessEntryGrant {
        policy: policy?,
        scope: scope?,
    })
}

fn valid_namespace(ns: &str) -> bool {
    let (body, wildcard) = match ns.strip_suffix('*') {
        Some(b) => (b, true),
        None => (ns, false),
    };
    let label = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !body.is_empty()
        && ns.len() <= 63
        && body.bytes().all(|b| label(b) || b == b'-')
        && body.bytes().next().is_some_and(label)
        && (wildcard || body.bytes().last().is_some_and(label))
}

fn validate_aws_auth(ck: &mut Checker, at: &[Seg], a: &RawAwsAuth, allow_admin: bool) {
    let user_at = join(at, &[Seg::Key("username")]);
    let u = a.username.as_str();
    if u.is_empty() || u.len() > 255 || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        ck.report(
            &user_at,
            ProblemKind::Name,
            format!("username '{u}' must be 1-255 characters without spaces"),
        );
    } else if let Err(msg) = check_template(u) {
        ck.report(&user_at, ProblemKind::Template, msg);
    } else if u.starts_with("system:") && !SYSTEM_USERNAMES_ALLOWED.contains(&u) {
        ck.report(
            &user_at,
            ProblemKind::Reserved,
            format!(
                "username '{u}' impersonates a Kubernetes system identity; only {} may be granted",
                SYSTEM_USERNAMES_ALLOWED.join(" and ")
            ),
        );
    }
    let groups_at = join(at, &[Seg::Key("groups")]);
    let mut seen = HashSet::new();
    for (i, g) in a.groups.iter().enumerate() {
        let item = join(&groups_at, &[Seg::Index(i)]);
        if g.is_empty() || g.chars().any(|c| c.is_whitespace() || c.is_control()) {
            ck.report(
                &item,
                ProblemKind::Name,
                format!("group '{g}' must be non-empty without spaces"),
            );
        } else if let Err(msg) = check_template(g) {
            ck.report(&item, ProblemKind::Template, msg);
        } else if g == SYSTEM_MASTERS {
            if !allow_admin {
                ck.report(
                    &item,
                    ProblemKind::ClusterAdmin,
                    "system:masters makes the principal a cluster admin; the rule must say allow_cluster_admin: true",
                );
            }
        } else if g.starts_with("system:") && !SYSTEM_GROUPS_ALLOWED.contains(&g.as_str()) {
            ck.report(
                &item,
                ProblemKind::Reserved,
                format!(
                    "group '{g}' is reserved by Kubernetes; of the system: groups only system:masters \
                     (with allow_cluster_admin) and {} may be granted",
                    SYSTEM_GROUPS_ALLOWED.join(", ")
                ),
            );
        } else if !seen.insert(g.as_str()) {
            ck.report(
                &item,
                ProblemKind::Name,
                format!("group '{g}' is listed twice"),
            );
        }
    }
}

/// Every `{{...}}` is a placeholder the authenticator knows, and braces are balanced.
fn check_template(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if rest[..open].contains("}}") {
            return Err(format!("'{s}' has '}}}}' without '{{{{'"));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("'{s}' has '{{{{' without '}}}}'"));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder '{{{{{name}}}}}' in '{s}'; the authenticator knows {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{{{p}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(format!("'{s}' has '}}}}' without '{{{{'"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Document walks: the syntax/duplicate-key pass and the location probe

/// Walks the whole document; fails on a duplicate mapping key *while reading that key*, so the
/// error carries the key's location. The value is true when the document is empty (null).
#[derive(Clone, Copy)]
struct Walk {
    top: bool,
}

impl Walk {
    const TOP: Walk = Walk { top: true };
    const INNER: Walk = Walk { top: false };
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key_seed(Key { seen: &seen })? {
            seen.extend(key);
            map.next_value_seed(Walk::INNER)?;
        }
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(Walk::INNER)?.is_some() {}
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(self.top)
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(self.top)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
}

/// A mapping key; `None` for keys that are not scalars.
struct Key<'a> {
    seen: &'a [String],
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl Key<'_> {
    fn scalar<E: de::Error>(self, k: String) -> Result<Option<String>, E> {
        if self.seen.contains(&k) {
            Err(E::custom(format!("duplicate key `{k}`")))
        } else {
            Ok(Some(k))
        }
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.scalar(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.scalar("null".to_string())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Walk::INNER.visit_map(map).map(|_| None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Walk::INNER.visit_seq(seq).map(|_| None)
    }
}

const PROBE_HERE: &str = "\u{1}probe: here";
const PROBE_MISSING: &str = "\u{1}probe: missing";

/// The 1-based line and column of the node at `path`, found by reading the document again and
/// failing at that node: serde_norway stamps a failure with the position of the innermost node
/// being read.
fn probe(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let err = Probe(path)
        .deserialize(serde_norway::Deserializer::from_str(text))
        .err()?;
    let msg = err.to_string();
    if !msg.contains(PROBE_HERE) {
        return None;
    }
    err.location().map(|l| (l.line(), l.column()))
}

struct Probe<'a>(&'a [Seg]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Probe<'_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        Err(E::custom(if self.0.is_empty() {
            PROBE_HERE
        } else {
            PROBE_MISSING
        }))
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.0.split_first() {
            None => Err(de::Error::custom(PROBE_HERE)),
            Some((Seg::Key(want), rest)) => {
                while let Some(key) = map.next_key::<KeyName>()? {
                    if key.0.as_deref() == Some(*want) {
                        return map.next_value_seed(Probe(rest));
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Err(de::Error::custom(PROBE_MISSING))
            }
            Some((Seg::Index(_), _)) => Err(de::Error::custom(PROBE_MISSING)),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.0.split_first() {
            None => Err(de::Error::custom(PROBE_HERE)),
            Some((Seg::Index(want), rest)) => {
                for _ in 0..*want {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        return Err(de::Error::custom(PROBE_MISSING));
                    }
                }
                // Probe always fails inside the element; reaching here means no such element.
                seq.next_element_seed(Probe(rest))?;
                Err(de::Error::custom(PROBE_MISSING))
            }
            Some((Seg::Key(_), _)) => Err(de::Error::custom(PROBE_MISSING)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
}

/// A key read for its name only (non-string keys never match).
struct KeyName(Option<String>);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyName, D::Error> {
        Key { seen: &[] }.deserialize(d).map(KeyName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(s: &str) -> Arn {
        Arn::parse(s).unwrap()
    }

    #[test]
    fn globs_are_anchored_and_slash_aware() {
        let g = Glob::compile("role/dev-*", true, true).unwrap();
        assert!(g.matches("role/dev-alice"));
        assert!(g.matches("role/DEV-Alice"));
        assert!(g.matches("role/dev-"));
        assert!(!g.matches("role/dev-team/alice"), "* stops at /");
        assert!(!g.matches("xrole/dev-a"), "anchored at the start");
        let g = Glob::compile("role/dev", true, true).unwrap();
        assert!(!g.matches("role/dev-alice"), "anchored at the end");
        let g = Glob::compile("role/**/runner", true, true).unwrap();
        assert!(g.matches("role/ci/gitlab/runner"));
        assert!(g.matches("role//runner"));
        assert!(!g.matches("role/runner"));
        let g = Glob::compile("role/a?c", true, true).unwrap();
        assert!(g.matches("role/abc") && !g.matches("role/a/c") && !g.matches("role/ac"));
        let g = Glob::compile("prod-*", false, false).unwrap();
        assert!(g.matches("prod-eu") && !g.matches("Prod-eu"));
        assert!(Glob::compile("a**", false, false).is_err());
        assert!(Glob::compile("a***", true, true).is_err());
        // Pathological patterns stay linear.
        let g = Glob::compile(&"*a".repeat(30), true, true).unwrap();
        assert!(!g.matches(&"a".repeat(29)));
    }

    #[test]
    fn could_match_with_path_is_exact() {
        let p = |s: &str| ArnPattern::parse(s).unwrap();
        let role = arn("arn:aws:iam::111122223333:role/AWSReservedSSO_Developer_0123");
        let sso = p("arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Developer_*");
        assert!(sso.could_match_with_path(&role));
        assert!(!sso.matches(&role));
        assert!(!sso.could_match_with_path(&arn(
            "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123"
        )));
        assert!(!sso.could_match_with_path(&arn(
            "arn:aws:iam::444455556666:role/AWSReservedSSO_Developer_0123"
        )));
        // `*` cannot stand for a path: role/x never matches role/P/x.
        assert!(!p("arn:aws:iam::*:role/*").could_match_with_path(&role));
        assert!(p("arn:aws:iam::*:role/**").could_match_with_path(&role));
        assert!(p("arn:aws:iam::*:role/*/AWSReservedSSO_*").could_match_with_path(&role));
        assert!(!p("arn:aws:iam::*:role/*/*/x").could_match_with_path(&role));
    }

    #[test]
    fn templates() {
        assert!(check_template("{{SessionName}}").is_ok());
        assert!(check_template("ci-{{AccountID}}-{{SessionNameRaw}}").is_ok());
        assert!(check_template("plain").is_ok());
        assert!(check_template("{{Session}}").is_err());
        assert!(check_template("{{SessionName").is_err());
        assert!(check_template("x}}").is_err());
    }

    #[test]
    fn namespaces() {
        for ok in ["default", "team-a", "dev-*", "a", "a1*"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        for bad in ["", "*", "Team", "-a", "a-", "a_b", "a*b", &"a".repeat(64)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn second_document_is_found() {
        assert_eq!(second_document_line("a: 1\n---\nb: 2\n"), Some(2));
        assert_eq!(second_document_line("---\na: 1\n---\nb: 2\n"), Some(3));
        assert_eq!(second_document_line("# c\n---\na: 1\n...\nb: 2\n"), Some(5));
        assert_eq!(second_document_line("a: 1\n"), None);
    }

    #[test]
    fn probe_points_at_nodes() {
        let text = "mode: enforce\nrules:\n  - name: a\n    groups: [b, system:masters]\n  - name: b\n    groups:\n      - x\n      - y\n";
        let at = |p: &[Seg]| probe(text, p);
        use Seg::{Index as I, Key as K};
        assert_eq!(at(&[K("rules"), I(0), K("groups"), I(1)]), Some((4, 17)));
        assert_eq!(at(&[K("rules"), I(1), K("groups"), I(1)]), Some((8, 9)));
        assert_eq!(at(&[K("rules"), I(1)]), Some((5, 5)));
        assert_eq!(at(&[K("mode")]), Some((1, 7)));
        assert_eq!(at(&[K("rules"), I(2)]), None);
        assert_eq!(at(&[K("nope")]), None);
    }
}
