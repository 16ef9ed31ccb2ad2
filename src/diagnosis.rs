//! Classify authenticator records and group a batch into findings.
//!
//! Each record gets an [`Outcome`]; denials also get a [`Cause`] from the taxonomy in DOMAIN.md
//! section 2. A batch becomes [`Finding`]s keyed by (cluster, principal, cause), so the work that
//! follows scales with distinct principals, not with log lines.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::arn::{self, Arn, PrincipalKind};
use crate::authlog::{self, AuthRecord};
use crate::timefmt;

/// What a line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Denied,
    Granted,
    StsResponse,
    ConfigError,
    Other,
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    NotMapped,
    InvalidClientToken,
    ExpiredToken,
    SignatureMismatch,
    StsRejected,
    StsThrottled,
    StsUnreachable,
    TokenExpired,
    MalformedToken,
    TemplateError,
    ReservedUsername,
    InvalidArn,
    StalePrincipal,
    #[default]
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 14] = [
        Cause::NotMapped,
        Cause::InvalidClientToken,
        Cause::ExpiredToken,
        Cause::SignatureMismatch,
        Cause::StsRejected,
        Cause::StsThrottled,
        Cause::StsUnreachable,
        Cause::TokenExpired,
        Cause::MalformedToken,
        Cause::TemplateError,
        Cause::ReservedUsername,
        Cause::InvalidArn,
        Cause::StalePrincipal,
        Cause::Unknown,
    ];

    /// The snake_case name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NotMapped => "not_mapped",
            Cause::InvalidClientToken => "invalid_client_token",
            Cause::ExpiredToken => "expired_token",
            Cause::SignatureMismatch => "signature_mismatch",
            Cause::StsRejected => "sts_rejected",
            Cause::StsThrottled => "sts_throttled",
            Cause::StsUnreachable => "sts_unreachable",
            Cause::TokenExpired => "token_expired",
            Cause::MalformedToken => "malformed_token",
            Cause::TemplateError => "template_error",
            Cause::ReservedUsername => "reserved_username",
            Cause::InvalidArn => "invalid_arn",
            Cause::StalePrincipal => "stale_principal",
            Cause::Unknown => "unknown",
        }
    }

    /// One sentence on what the cause means.
    pub fn meaning(self) -> &'static str {
        match self {
            Cause::NotMapped => "the token is valid and the identity is known, but no aws-auth mapping or access entry matches it",
            Cause::InvalidClientToken => "STS does not recognise the access key: the user or role was deleted, the key deactivated, or it belongs to another partition",
            Cause::ExpiredToken => "the caller's session credentials had expired when the token was made",
            Cause::SignatureMismatch => "the token's signature does not verify: most often it was made for another cluster name, or the secret key is wrong",
            Cause::StsRejected => "STS rejected the presigned GetCallerIdentity request",
            Cause::StsThrottled => "STS throttled the authenticator's GetCallerIdentity call (transient)",
            Cause::StsUnreachable => "the control plane could not reach STS",
            Cause::TokenExpired => "the token is older than 15 minutes: a cached token or client clock skew",
            Cause::MalformedToken => "the bearer token is not a well-formed k8s-aws-v1 presigned URL",
            Cause::TemplateError => "a mapping's username template could not be rendered (node role whose EC2 instance lookup failed)",
            Cause::ReservedUsername => "the mapping's username starts with a prefix the authenticator reserves",
            Cause::InvalidArn => "the identity's ARN is invalid or has no recognised partition",
            Cause::StalePrincipal => "the IAM entity was deleted and recreated: its access entry still names the old unique ID",
            Cause::Unknown => "the authenticator's error is not one we recognise",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Denied => "denied",
            Outcome::Granted => "granted",
            Outcome::StsResponse => "sts_response",
            Outcome::ConfigError => "config_error",
            Outcome::Other => "other",
        })
    }
}

/// What one record tells us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub outcome: Outcome,
    pub cause: Option<Cause>,
    /// Canonical ARN (assumed-role -> role), when the line names one.
    pub principal: Option<String>,
    /// The ARN exactly as logged, when it differs from `principal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts_error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A cause-specific detail: the instance ID of a template error, the reserved username, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl Diagnosis {
    /// A one-line human summary.
    pub fn summary(&self) -> String {
        let who = self
            .principal
            .as_deref()
            .unwrap_or("an unidentified caller");
        match (self.outcome, self.cause) {
            (Outcome::Denied, Some(cause)) => {
                let mut s = format!("{who} was denied ({cause}): {}", cause.meaning());
                if let Some(code) = &self.sts_error_code {
                    s.push_str(&format!(" [STS {code}]"));
                }
                s
            }
            (Outcome::Granted, _) => format!(
                "{who} was granted access as {}",
                self.username.as_deref().unwrap_or("?")
            ),
            (Outcome::StsResponse, _) => format!("STS identified the caller as {who}"),
            (Outcome::ConfigError, _) => {
                "aws-auth holds entries the authenticator could not parse; they were dropped".into()
            }
            _ => "not an authentication decision".into(),
        }
    }
}

/// Classifies one record.
pub fn diagnose(rec: &AuthRecord<'_>) -> Diagnosis {
    let msg = rec.msg().unwrap_or("");
    let error = rec.get("error").or_else(|| rec.get("err"));
    let outcome = if msg.eq_ignore_ascii_case("access denied") {
        Outcome::Denied
    } else if msg.eq_ignore_ascii_case("access granted") {
        Outcome::Granted
    } else if msg == "STS response" {
        Outcome::StsResponse
    } else if msg.starts_with("Errors parsing configmap")
        || msg.contains("error parsing the config map")
    {
        Outcome::ConfigError
    } else {
        Outcome::Other
    };
    let raw_arn = rec.get("arn").filter(|a| !a.is_empty());
    let mut d = Diagnosis {
        outcome,
        cause: None,
        principal: raw_arn.map(arn::canonicalize),
        raw_arn: None,
        sts_error_code: None,
        region: rec
            .get("stsendpoint")
            .or_else(|| rec.get("sts"))
            .and_then(region_of_endpoint),
        client: rec.get("client").map(str::to_string),
        error: error.map(str::to_string),
        detail: None,
        username: rec.get("username").map(str::to_string),
        time: rec.time().map(str::to_string),
    };
    if let (Some(raw), Some(p)) = (raw_arn, &d.principal) {
        if raw != p {
            d.raw_arn = Some(raw.to_string());
        }
    }
    if outcome == Outcome::Denied {
        let c = classify_error(error.unwrap_or(""));
        d.cause = Some(c.cause);
        d.sts_error_code = c.sts_code;
        d.region = c.region.or(d.region);
        d.detail = c.detail;
        if d.principal.is_none() {
            d.principal = c.arn.map(|a| arn::canonicalize(&a));
        }
    }
    d
}

/// What an `error=` value means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorClass {
    pub cause: Cause,
    pub sts_code: Option<String>,
    pub region: Option<String>,
    pub arn: Option<String>,
    pub detail: Option<String>,
}

/// Maps an authenticator error string to its cause, keeping the STS code and region as evidence.
pub fn classify_error(error: &str) -> ErrorClass {
    let e = error.trim();
    let lower = e.to_ascii_lowercase();
    let mut c = ErrorClass {
        region: region_of_error(e),
        ..ErrorClass::default()
    };
    c.cause = if lower.contains("arn does not match user id") {
        Cause::StalePrincipal
    } else if lower.starts_with("arn is not mapped") || lower.starts_with("identity is not mapped")
    {
        c.arn = e
            .split_once(": ")
            .map(|(_, a)| a.trim().to_string())
            .filter(|a| a.starts_with("arn:"));
        Cause::NotMapped
    } else if lower.contains("getcalleridentity was throttled") {
        c.sts_code = sts_code(e);
        Cause::StsThrottled
    } else if lower.contains("sts getcalleridentity failed: error during get") {
        Cause::StsUnreachable
    } else if lower.contains("does not have a recognized partition")
        || (lower.contains("sts getcalleridentity failed: arn '") && lower.contains("is invalid"))
    {
        c.arn = quoted_after(e, "arn '");
        Cause::InvalidArn
    } else if lower.contains("sts getcalleridentity failed") || lower.contains("error from aws") {
        c.sts_code = sts_code(e);
        match c.sts_code.as_deref() {
            Some("InvalidClientTokenId") => Cause::InvalidClientToken,
            Some("ExpiredToken") => Cause::ExpiredToken,
            Some("SignatureDoesNotMatch") => Cause::SignatureMismatch,
            Some("Throttling") | Some("ThrottlingException") | Some("RequestLimitExceeded") => {
                Cause::StsThrottled
            }
            _ => Cause::StsRejected,
        }
    } else if lower.contains("x-amz-date parameter is expired") {
        Cause::TokenExpired
    } else if lower.starts_with("input token was not properly formatted") {
        Cause::MalformedToken
    } else if lower.contains("rendertemplates error")
        || lower.contains("error rendering username template")
        || lower.contains("failed mapping username")
        || lower.contains("failed querying private dns")
    {
        c.detail = instance_id(e);
        Cause::TemplateError
    } else if lower.contains("username must not begin with")
        || lower.starts_with("invalid username")
    {
        c.detail = quoted_after(e, "username '");
        Cause::ReservedUsername
    } else {
        Cause::Unknown
    };
    c
}

/// `Code` from an STS error body, JSON (`"Code":"X"`, possibly with escaped quotes) or XML.
fn sts_code(e: &str) -> Option<String> {
    for marker in ["\"Code\":\"", "\\\"Code\\\":\\\"", "\"Code\": \"", "<Code>"] {
        if let Some(pos) = e.find(marker) {
            let rest = &e[pos + marker.len()..];
            let code: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            if !code.is_empty() {
                return Some(code);
            }
        }
    }
    None
}

/// `us-west-2` from `... got 403) on us-west-2 endpoint ...`.
fn region_of_error(e: &str) -> Option<String> {
    let pos = e.find(" endpoint")?;
    let before = &e[..pos];
    let on = before.rfind(" on ")?;
    let region = &before[on + 4..];
    is_region(region).then(|| region.to_string())
}

/// `us-west-2` from `sts.us-west-2.amazonaws.com` (or a URL of it).
fn region_of_endpoint(ep: &str) -> Option<String> {
    let host = ep
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split(['/', ':']).next()?;
    let mut parts = host.split('.');
    if parts.next()? != "sts" {
        return None;
    }
    let region = parts.next()?;
    if region == "amazonaws" {
        return Some("us-east-1".into());
    }
    is_region(region).then(|| region.to_string())
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn quoted_after(e: &str, marker: &str) -> Option<String> {
    let pos = e.find(marker)? + marker.len();
    let rest = &e[pos..];
    let end = rest.find('\'')?;
    Some(rest[..end].to_string())
}

fn instance_id(e: &str) -> Option<String> {
    let pos = e.find("i-")?;
    let id: String = e[pos..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (id.len() > 2).then_some(id)
}

// ---------------------------------------------------------------------------------------------
// Grouping.

/// Where a batch of lines came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub cluster: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
}

/// One denial pattern (or aws-auth parse error) for one principal on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable across batches: same cluster, principal and cause give the same id.
    pub id: String,
    pub cluster: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub outcome: Outcome,
    pub cause: Option<Cause>,
    pub principal: Option<String>,
    pub principal_type: Option<PrincipalKind>,
    pub count: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub distinct_clients: usize,
    pub clients: Vec<String>,
    pub sts_error_codes: Vec<String>,
    pub sts_regions: Vec<String>,
    pub details: Vec<String>,
    pub errors: Vec<String>,
    pub log_group: Option<String>,
    pub log_streams: Vec<String>,
    pub samples: Vec<String>,
}

/// Counts over a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Log events received, redeliveries included.
    pub events: u64,
    /// Events skipped because their `logEvents[].id` was already seen.
    pub duplicates: u64,
    pub parsed: u64,
    pub unparsed: u64,
    pub blank: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub causes: BTreeMap<String, u64>,
    pub unparsed_samples: Vec<UnparsedSample>,
}

/// A line that did not parse, kept so nothing is silently lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnparsedSample {
    pub id: Option<String>,
    pub error: String,
    pub line: String,
}

/// Caps that keep a finding's evidence small however large the burst.
pub const MAX_SAMPLES: usize = 3;
pub const MAX_CLIENTS: usize = 20;
pub const MAX_EVIDENCE: usize = 10;
pub const MAX_UNPARSED_SAMPLES: usize = 5;
const MAX_SAMPLE_CHARS: usize = 2000;

#[derive(Debug)]
struct Group {
    finding: Finding,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    clients: BTreeSet<String>,
    codes: BTreeSet<String>,
    regions: BTreeSet<String>,
    details: BTreeSet<String>,
    errors: BTreeSet<String>,
    streams: BTreeSet<String>,
}

type Key = (Option<String>, Option<String>, Outcome, Option<Cause>);

/// Groups a batch into findings; feed it lines, then call [`Aggregator::finish`].
#[derive(Debug, Default)]
pub struct Aggregator {
    groups: HashMap<Key, Group>,
    order: Vec<Key>,
    seen: HashSet<String>,
    /// Regions seen anywhere in the batch, per cluster: every line of a cluster shares one.
    cluster_regions: HashMap<Option<String>, String>,
    stats: Stats,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one log line. `id` is the CloudWatch event id (redeliveries are counted once);
    /// `timestamp_ms` the event's ingestion timestamp when known.
    pub fn add(
        &mut self,
        origin: &Origin,
        id: Option<&str>,
        timestamp_ms: Option<i64>,
        line: &str,
    ) {
        self.stats.events += 1;
        if let Some(id) = id {
            if !self.seen.insert(id.to_string()) {
                self.stats.duplicates += 1;
                return;
            }
        }
        let rec = match authlog::parse_entry(line) {
            Ok(r) => r,
            Err(authlog::ParseError::Empty) => {
                self.stats.blank += 1;
                return;
            }
            Err(e) => {
                self.stats.unparsed += 1;
                if self.stats.unparsed_samples.len() < MAX_UNPARSED_SAMPLES {
                    self.stats.unparsed_samples.push(UnparsedSample {
                        id: id.map(str::to_string),
                        error: e.to_string(),
                        line: truncate(line, 300),
                    });
                }
                return;
            }
        };
        self.stats.parsed += 1;
        let d = diagnose(&rec);
        *self
            .stats
            .outcomes
            .entry(d.outcome.to_string())
            .or_default() += 1;
        if let Some(c) = d.cause {
            *self.stats.causes.entry(c.to_string()).or_default() += 1;
        }
        if let Some(r) = &d.region {
            if !self.cluster_regions.contains_key(&origin.cluster) {
                self.cluster_regions
                    .insert(origin.cluster.clone(), r.clone());
            }
        }
        if !matches!(d.outcome, Outcome::Denied | Outcome::ConfigError) {
            return;
        }
        let at = timestamp_ms.or_else(|| d.time.as_deref().and_then(timefmt::parse_ms));
        self.record(origin, &d, at, line);
    }

    fn record(&mut self, origin: &Origin, d: &Diagnosis, at: Option<i64>, line: &str) {
        // IAM names are case-insensitive and so is the authenticator's match: group that way.
        let principal_key = d.principal.as_deref().map(str::to_ascii_lowercase);
        let key: Key = (origin.cluster.clone(), principal_key, d.outcome, d.cause);
        let g = match self.groups.get_mut(&key) {
            Some(g) => g,
            None => {
                self.order.push(key.clone());
                let finding = Finding {
                    id: finding_id(
                        origin.cluster.as_deref(),
                        d.principal.as_deref(),
                        d.outcome,
                        d.cause,
                    ),
                    cluster: origin.cluster.clone(),
                    account: origin.account.clone(),
                    region: origin.region.clone(),
                    outcome: d.outcome,
                    cause: d.cause,
                    principal: d.principal.clone(),
                    principal_type: d
                        .principal
                        .as_deref()
                        .and_then(|p| Arn::parse(p).ok())
                        .map(|a| a.kind()),
                    count: 0,
                    first_seen: None,
                    last_seen: None,
                    distinct_clients: 0,
                    clients: Vec::new(),
                    sts_error_codes: Vec::new(),
                    sts_regions: Vec::new(),
                    details: Vec::new(),
                    errors: Vec::new(),
                    log_group: origin.log_group.clone(),
                    log_streams: Vec::new(),
                    samples: Vec::new(),
                };
                self.groups.entry(key).or_insert(Group {
                    finding,
                    first_ms: None,
                    last_ms: None,
                    clients: BTreeSet::new(),
                    codes: BTreeSet::new(),
                    regions: BTreeSet::new(),
                    details: BTreeSet::new(),
                    errors: BTreeSet::new(),
                    streams: BTreeSet::new(),
                })
            }
        };
        g.finding.count += 1;
        if let Some(ms) = at {
            g.first_ms = Some(g.first_ms.map_or(ms, |f| f.min(ms)));
            g.last_ms = Some(g.last_ms.map_or(ms, |l| l.max(ms)));
        }
        if let Some(c) = &d.client {
            // Count distinct hosts, not ephemeral ports.
            let host = c.rsplit_once(':').map_or(c.as_str(), |(h, _)| h);
            if g.clients.len() < MAX_CLIENTS * 50 {
                g.clients.insert(host.to_string());
            }
        }
        insert_capped(&mut g.codes, d.sts_error_code.as_deref());
        insert_capped(&mut g.regions, d.region.as_deref());
        insert_capped(&mut g.details, d.detail.as_deref());
        insert_capped(
            &mut g.errors,
            d.error.as_deref().map(|e| truncate_str(e, 500)),
        );
        insert_capped(&mut g.streams, origin.log_stream.as_deref());
        if g.finding.samples.len() < MAX_SAMPLES {
            g.finding.samples.push(truncate(line, MAX_SAMPLE_CHARS));
        }
    }

    /// The findings in first-seen order, and the batch's counts.
    pub fn finish(mut self) -> (Vec<Finding>, Stats) {
        let mut out = Vec::with_capacity(self.order.len());
        for key in &self.order {
            let Some(mut g) = self.groups.remove(key) else {
                continue;
            };
            g.finding.first_seen = g.first_ms.map(timefmt::format_ms);
            g.finding.last_seen = g.last_ms.map(timefmt::format_ms);
            g.finding.distinct_clients = g.clients.len();
            g.finding.clients = g.clients.into_iter().take(MAX_CLIENTS).collect();
            g.finding.sts_error_codes = g.codes.into_iter().collect();
            g.finding.sts_regions = g.regions.into_iter().collect();
            if g.finding.region.is_none() {
                g.finding.region = g
                    .finding
                    .sts_regions
                    .first()
                    .cloned()
                    .or_else(|| self.cluster_regions.get(&g.finding.cluster).cloned());
            }
            g.finding.details = g.details.into_iter().collect();
            g.finding.errors = g.errors.into_iter().collect();
            g.finding.log_streams = g.streams.into_iter().collect();
            out.push(g.finding);
        }
        (out, self.stats)
    }
}

fn insert_capped(set: &mut BTreeSet<String>, v: Option<&str>) {
    if let Some(v) = v {
        if set.len() < MAX_EVIDENCE && !set.contains(v) {
            set.insert(v.to_string());
        }
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate(s: &str, max: usize) -> String {
    let t = truncate_str(s, max);
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t.to_string()
    }
}

/// A deterministic id for (cluster, principal, outcome/cause): the ticket id derives from it.
pub fn finding_id(
    cluster: Option<&str>,
    principal: Option<&str>,
    outcome: Outcome,
    cause: Option<Cause>,
) -> String {
    use sha2::{Digest, Sha256};
    let what = match cause {
        Some(c) => c.to_string(),
        None => outcome.to_string(),
    };
    let mut h = Sha256::new();
    h.update(cluster.unwrap_or("").as_bytes());
    h.update([0]);
    h.update(principal.unwrap_or("").to_ascii_lowercase().as_bytes());
    h.update([0]);
    h.update(what.as_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(e: &str) -> Cause {
        classify_error(e).cause
    }

    #[test]
    fn sts_codes_from_escaped_and_plain_bodies() {
        let e = r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: {"Error":{"Code":"InvalidClientTokenId","Message":"The security token included in the request is invalid.","Type":"Sender"},"RequestId":"x"}"#;
        let c = classify_error(e);
        assert_eq!(c.cause, Cause::InvalidClientToken);
        assert_eq!(c.sts_code.as_deref(), Some("InvalidClientTokenId"));
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            class(
                r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403). Body: {\"Error\":{\"Code\":\"ExpiredToken\"}}"#
            ),
            Cause::ExpiredToken
        );
        assert_eq!(
            class("sts getCallerIdentity failed: error from AWS (expected 200, got 403). Body: <ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"),
            Cause::SignatureMismatch
        );
        assert_eq!(
            class("sts getCallerIdentity failed: error from AWS (expected 200, got 403)"),
            Cause::StsRejected
        );
        assert_eq!(
            class(
                r#"sts getCallerIdentity failed: error from AWS (expected 200, got 400). Body: {"Error":{"Code":"Throttling"}}"#
            ),
            Cause::StsThrottled
        );
    }

    #[test]
    fn grouping_counts_redeliveries_once() {
        let origin = Origin {
            cluster: Some("prod".into()),
            ..Origin::default()
        };
        let line = r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:iam::111122223333:role/Dev" client="10.0.0.1:1" error="ARN is not mapped" method=POST path=/authenticate"#;
        let lower = line
            .replace("role/Dev", "role/dev")
            .replace("10.0.0.1:1", "10.0.0.1:2");
        let mut agg = Aggregator::new();
        agg.add(&origin, Some("1"), Some(1000), line);
        agg.add(&origin, Some("1"), Some(1000), line);
        agg.add(&origin, Some("2"), Some(3000), &lower);
        agg.add(&origin, Some("3"), None, "garbage");
        agg.add(&origin, Some("4"), None, "");
        let (findings, stats) = agg.finish();
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.count, 2);
        assert_eq!(f.distinct_clients, 1);
        assert_eq!(f.first_seen.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(f.last_seen.as_deref(), Some("1970-01-01T00:00:03.000Z"));
        assert_eq!(f.principal_type, Some(PrincipalKind::Role));
        assert_eq!(stats.events, 5);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.unparsed, 1);
        assert_eq!(stats.blank, 1);
        assert_eq!(stats.unparsed_samples[0].line, "garbage");
        assert_eq!(
            f.id,
            finding_id(
                Some("prod"),
                Some("ARN:aws:iam::111122223333:role/dev"),
                Outcome::Denied,
                Some(Cause::NotMapped)
            )
        );
    }
}
