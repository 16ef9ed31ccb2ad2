//! The one entry both binaries call: decode -> parse -> diagnose -> facts -> plan -> response.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::audit;
use crate::creator::CreatorLookup;
use crate::diagnosis::{Aggregator, Finding, Grant, Origin, Stats};
use crate::event::{self, DecodeError, Decoded, Limits, Source};
use crate::facts::{self, Facts, FactsProvider, Refinement};
use crate::incident::{self, PauseStore};
use crate::plan::{self, Action, ActionStatus};
use crate::policy::{Mode, Policy};
use crate::remedy::Remediator;
use crate::sinks::{Delivery, DeliveryReport};
use crate::ticket::{self, Ticket};

/// Runtime configuration, read once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub limits: Limits,
    /// The function's region (Lambda's `AWS_REGION`), used when the event does not carry one.
    pub region: Option<String>,
    /// Incident thresholds and the pause (`EKS_AUTH_INCIDENT_*`, `EKS_AUTH_SUPPRESSION_TABLE`).
    pub incident: crate::incident::IncidentConfig,
    /// The cluster creator lookup (`EKS_AUTH_CREATOR_*`).
    pub creator: crate::creator::CreatorConfig,
}

/// A configuration value that cannot be used: a startup error, never a silent default.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Config {
    /// Reads `EKS_AUTH_MAX_DECOMPRESSED_BYTES`, `EKS_AUTH_MAX_EVENT_BYTES`, `EKS_AUTH_MAX_EVENTS`
    /// and `AWS_REGION`/`AWS_DEFAULT_REGION`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that does not parse.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Config::from_env`], from any key lookup (tests pass a map).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that does not parse.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let positive = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(ConfigError {
                            name,
                            value: v,
                            reason: "expected a positive integer",
                        })
                })
                .transpose()
        };
        let mut limits = Limits::default();
        for (name, slot) in [
            (
                "EKS_AUTH_MAX_DECOMPRESSED_BYTES",
                &mut limits.max_decompressed_bytes,
            ),
            ("EKS_AUTH_MAX_EVENT_BYTES", &mut limits.max_event_bytes),
            ("EKS_AUTH_MAX_EVENTS", &mut limits.max_events),
        ] {
            if let Some(n) = positive(name)? {
                *slot = usize::try_from(n).unwrap_or(usize::MAX);
            }
        }
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .filter(|r| !r.is_empty());
        let mut incident = crate::incident::IncidentConfig::default();
        let mut creator = crate::creator::CreatorConfig::default();
        if let Some(n) = positive("EKS_AUTH_INCIDENT_MIN_PRINCIPALS")? {
            incident.min_principals = n as usize;
        }
        if let Some(n) = positive("EKS_AUTH_INCIDENT_PAUSE_SECONDS")? {
            incident.pause_secs = n;
        }
        if let Some(n) = positive("EKS_AUTH_INCIDENT_GRANT_LOOKBACK_HOURS")? {
            incident.grant_lookback_hours = n;
        }
        if let Some(n) = positive("EKS_AUTH_CREATOR_LOOKBACK_DAYS")? {
            creator.lookback_days = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = positive("EKS_AUTH_CREATOR_TIMEOUT_SECONDS")? {
            creator.timeout_secs = n;
        }
        if let Some(v) = get("EKS_AUTH_INCIDENT_NODE_ROLES") {
            incident.node_roles_trigger = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError {
                        name: "EKS_AUTH_INCIDENT_NODE_ROLES",
                        value: v,
                        reason: "expected true or false",
                    })
                }
            };
        }
        incident.table = get("EKS_AUTH_SUPPRESSION_TABLE").filter(|t| !t.trim().is_empty());
        Ok(Config {
            limits,
            region,
            incident,
            creator,
        })
    }
}

/// A finding with the facts it was planned on.
#[derive(Debug, Clone, Serialize)]
pub struct FindingReport {
    #[serde(flatten)]
    pub finding: Finding,
    pub facts: Facts,
    /// The deeper diagnosis the facts allow.
    pub refinement: Option<Refinement>,
}

/// The invocation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    pub version: &'static str,
    /// `dry-run` until an approval policy enables enforcement.
    pub mode: &'static str,
    pub source: Source,
    /// True when the event was a CloudWatch Logs CONTROL_MESSAGE (reachability probe).
    pub control_message: bool,
    pub clusters: Vec<String>,
    pub findings: Vec<FindingReport>,
    pub actions: Vec<Action>,
    pub tickets: Vec<Ticket>,
    /// One record per change applied, planned (dry-run) or refused after planning.
    pub audit: Vec<audit::Record>,
    /// Cluster-wide incidents found in this batch (each has one critical ticket).
    pub incidents: Vec<crate::incident::Incident>,
    /// Clusters whose automatic remediation is paused, and why (detected now or stored).
    pub pauses: Vec<crate::incident::Pause>,
    pub stats: Stats,
    /// Which tickets were opened or suppressed, and what each sink did with them.
    pub delivery: DeliveryReport,
}

/// Why an invocation failed. Decode errors will fail again on retry: they are `NonRetryable`,
/// and after Lambda's own retries the event lands in the on-failure destination.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("cannot decode event")]
    Decode(#[from] DecodeError),
    /// A sink or the suppression store failed: a retry delivers only what failed. The response
    /// (with every ticket) is kept for the caller; the log has the tickets too.
    #[error("ticket delivery failed: {summary}")]
    TicketDelivery {
        summary: String,
        response: Box<Response>,
    },
}

impl HandlerError {
    /// The Lambda error type: tells whether a retry can help.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Decode(_) => "NonRetryable.DecodeError",
            HandlerError::TicketDelivery { .. } => "Retryable.TicketDelivery",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: format_chain(&e),
        }
    }
}

/// `outer: inner: innermost`, as `{:#}` prints an anyhow chain.
pub fn format_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// What one invocation runs with: configuration, the AWS edge (facts + remediation; or the
/// offline one), the approval policy, and the hourly change budget shared by warm invocations.
pub struct Deps<E> {
    pub config: Config,
    pub edge: E,
    pub policy: Option<Policy>,
    pub budget: Budget,
    /// Plan only, whatever the policy's mode (`eks-auth plan`): never delivers tickets either.
    pub dry_run_only: bool,
    /// Where tickets go (sinks and suppression store), or why nowhere.
    pub delivery: Delivery,
}

impl<E> Deps<E> {
    /// Dependencies without a policy (nothing is remediated).
    pub fn new(config: Config, edge: E) -> Self {
        Deps {
            config,
            edge,
            policy: None,
            budget: Budget::default(),
            dry_run_only: false,
            delivery: Delivery::default(),
        }
    }
}

/// `EKS_AUTH_OFFLINE=true` (or `1`): make no AWS call at all.
pub fn offline_from_env() -> bool {
    std::env::var("EKS_AUTH_OFFLINE").is_ok_and(|v| v == "true" || v == "1")
}

/// The variable naming the role remediation acts as when the policy names none.
pub const ENV_REMEDIATION_ROLE: &str = "EKS_AUTH_REMEDIATION_ROLE_ARN";

/// The role remediation acts as: the policy's `remediation_role_arn`, else
/// `EKS_AUTH_REMEDIATION_ROLE_ARN`; none (the process's own identity) when neither is set. The
/// Lambda function and `eks-auth invoke`/`plan` both take it from here.
///
/// # Errors
/// [`ConfigError`] when the variable is set to something other than an IAM role ARN.
pub fn remediation_role(policy: Option<&Policy>) -> Result<Option<String>, ConfigError> {
    remediation_role_with(policy, std::env::var(ENV_REMEDIATION_ROLE).ok())
}

fn remediation_role_with(
    policy: Option<&Policy>,
    env: Option<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(role) = policy.and_then(Policy::remediation_role_arn) {
        return Ok(Some(role.to_string()));
    }
    let Some(value) = env else {
        return Ok(None);
    };
    let role = value.trim();
    if role.is_empty() {
        return Ok(None);
    }
    if crate::arn::is_role_arn(role) {
        return Ok(Some(role.to_string()));
    }
    Err(ConfigError {
        name: ENV_REMEDIATION_ROLE,
        value,
        reason: "expected an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)",
    })
}

/// The approval policy from `EKS_AUTH_POLICY` / `EKS_AUTH_POLICY_FILE`; none when neither is set.
///
/// # Errors
/// An invalid policy (with the line at fault), or both variables set.
pub fn policy_from_env() -> Result<Option<Policy>, crate::policy::PolicyError> {
    use crate::policy::{PolicyError, PolicySource};
    match PolicySource::from_env() {
        Ok(src) => Policy::load(&src).map(Some),
        Err(PolicyError::NotConfigured) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Changes made in the last hour by this process (warm Lambda container). The per-hour limit is
/// enforced per container; the per-invocation limit exactly.
#[derive(Debug, Default)]
pub struct Budget {
    recent: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
}

impl Budget {
    fn available(&self, per_hour: u32) -> u32 {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let hour = std::time::Duration::from_secs(3600);
        while recent.front().is_some_and(|t| t.elapsed() > hour) {
            recent.pop_front();
        }
        per_hour.saturating_sub(recent.len() as u32)
    }

    fn spend(&self) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(std::time::Instant::now());
    }
}

/// Decodes and handles an event given as JSON.
///
/// # Errors
/// [`HandlerError::Decode`] when the event cannot be decoded (unparsable lines are counted, not
/// fatal); [`HandlerError::TicketDelivery`] when a sink or the suppression store failed.
pub async fn handle_value<E: FactsProvider + Remediator + CreatorLookup + PauseStore>(
    event: &serde_json::Value,
    deps: &Deps<E>,
) -> Result<Response, HandlerError> {
    let (decoded, diagnosis) = decode_and_diagnose(event, &deps.config)?;
    delivered(handle_diagnosed(&decoded, diagnosis, deps).await)
}

/// Handles raw event bytes (CLI and tests).
///
/// # Errors
/// As [`handle_value`].
pub async fn handle_bytes<E: FactsProvider + Remediator + CreatorLookup + PauseStore>(
    raw: &[u8],
    deps: &Deps<E>,
) -> Result<Response, HandlerError> {
    let event = event::parse_event(raw, &deps.config.limits)?;
    handle_value(&event, deps).await
}

/// The response, or [`HandlerError::TicketDelivery`] (holding it) when a delivery failed.
fn delivered(response: Response) -> Result<Response, HandlerError> {
    if response.delivery.failed() {
        return Err(HandlerError::TicketDelivery {
            summary: response.delivery.failure_summary(),
            response: Box::new(response),
        });
    }
    Ok(response)
}

/// Batches at least this large are diagnosed on up to [`MAX_THREADS`] threads when the machine
/// has the cores (a Lambda function with 1,769 MB or more has two vCPUs).
pub const PARALLEL_MIN_EVENTS: usize = 2_000;
pub const MAX_THREADS: usize = 4;

/// Groups a decoded event into findings (pure). Large batches are split into consecutive parts
/// diagnosed on their own threads and merged; the result is exactly the single-threaded one.
pub fn diagnose_decoded(decoded: &Decoded, config: &Config) -> (Vec<Finding>, Stats) {
    let (f, s, _) = diagnose_decoded_with_grants(decoded, config);
    (f, s)
}

/// As [`diagnose_decoded`], with the principals the batch granted (for incident detection).
pub fn diagnose_decoded_with_grants(decoded: &Decoded, config: &Config) -> Diagnosis {
    let total: usize = decoded.batches.iter().map(|b| b.events.len()).sum();
    diagnose_with(decoded, config, threads_for(total))
}

/// The threads `lines` lines are diagnosed on: one below [`PARALLEL_MIN_EVENTS`].
fn threads_for(lines: usize) -> usize {
    if lines >= PARALLEL_MIN_EVENTS {
        event::cores().min(MAX_THREADS)
    } else {
        1
    }
}

/// Findings, counts and grants of a batch (see [`diagnose_decoded_with_grants`]).
pub type Diagnosis = (Vec<Finding>, Stats, Vec<Grant>);

/// [`diagnose_decoded_with_grants`] split into `threads` parts (one part per thread).
pub fn diagnose_with(decoded: &Decoded, config: &Config, threads: usize) -> Diagnosis {
    let batches: Vec<(Origin, &event::Events)> = decoded
        .batches
        .iter()
        .filter(|b| b.message_type != event::MessageType::ControlMessage)
        .map(|b| (effective_origin(&b.origin, config), &b.events))
        .collect();
    continue_with(&batches, Aggregator::new(), 0, threads)
}

/// The origin lines are diagnosed with: the batch's, with the function's region when it names
/// none.
fn effective_origin(origin: &Origin, config: &Config) -> Origin {
    let mut origin = origin.clone();
    if origin.region.is_none() {
        origin.region.clone_from(&config.region);
    }
    origin
}

/// Feeds events `from..` of the concatenated batches into `agg` (fed the events before `from`),
/// in `threads` consecutive parts, each on its own thread, merged in order: exactly what one
/// aggregator fed every event in order gives.
fn continue_with(
    batches: &[(Origin, &event::Events)],
    mut agg: Aggregator,
    from: usize,
    threads: usize,
) -> Diagnosis {
    let total: usize = batches.iter().map(|(_, e)| e.len()).sum();
    let threads = threads.clamp(1, total.saturating_sub(from).max(1));
    if threads > 1 {
        // This thread's part is a tenth larger: a new thread starts with cold caches and an
        // empty allocator arena, and runs the same number of lines about that much slower.
        let weights = 10 * threads + 1;
        let bounds: Vec<usize> = std::iter::once(from)
            .chain((1..=threads).map(|i| from + (total - from) * (10 * i + 1) / weights))
            .collect();
        let parts = std::thread::scope(|s| {
            let handles: Vec<_> = bounds[1..]
                .windows(2)
                .map(|w| {
                    let (start, end) = (w[0], w[1]);
                    s.spawn(move || {
                        let mut part = Aggregator::new();
                        part.reserve(end - start);
                        feed(&mut part, batches, start, end);
                        part
                    })
                })
                .collect();
            agg.reserve(bounds[1] - from);
            feed(&mut agg, batches, from, bounds[1]);
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        let mut merged = true;
        for part in parts {
            if !agg.can_absorb(&part) {
                merged = false;
                break;
            }
            agg.absorb(part);
        }
        if merged {
            return agg.finish_with_grants();
        }
        // Ids out of order (a redelivery crossing parts): one pass over everything.
        let mut all = Aggregator::new();
        feed(&mut all, batches, 0, total);
        return all.finish_with_grants();
    }
    agg.reserve(total - from);
    feed(&mut agg, batches, from, total);
    agg.finish_with_grants()
}

/// Feeds events `from..to` of the concatenated batches into `agg`.
fn feed(agg: &mut Aggregator, batches: &[(Origin, &event::Events)], from: usize, to: usize) {
    let mut offset = 0;
    for (origin, events) in batches {
        let (start, end) = (from.max(offset), to.min(offset + events.len()));
        if start < end {
            for ev in events.slice(start - offset..end - offset) {
                agg.add_line(origin, ev.id, ev.timestamp, ev.line);
            }
        }
        offset += events.len();
    }
}

/// Events diagnosed per [`event::Early::step`]: small, so a chunk that arrives meanwhile waits
/// little.
const EARLY_STEP: usize = 16;

/// Diagnoses a subscription batch's first events while the rest is still being decompressed.
struct EarlyDiagnosis<'c> {
    config: &'c Config,
    agg: Aggregator,
    /// The effective origin the events were diagnosed with.
    origin: Option<Origin>,
    done: usize,
}

impl<'c> EarlyDiagnosis<'c> {
    fn new(config: &'c Config) -> Self {
        EarlyDiagnosis {
            config,
            agg: Aggregator::new(),
            origin: None,
            done: 0,
        }
    }
}

impl event::Early for EarlyDiagnosis<'_> {
    fn step(&mut self, origin: &Origin, events: event::EventsRef<'_>) -> bool {
        let n = events.len();
        if self.done >= n {
            return false;
        }
        let config = self.config;
        let origin = self
            .origin
            .get_or_insert_with(|| effective_origin(origin, config));
        if self.done == 0 {
            // The buffer was sized for the whole payload (from the gzip trailer).
            self.agg.reserve(events.capacity());
        }
        let to = n.min(self.done + EARLY_STEP);
        for ev in events.slice(self.done..to) {
            self.agg.add_line(origin, ev.id, ev.timestamp, ev.line);
        }
        self.done = to;
        true
    }
}

/// Decodes and diagnoses an event: what [`event::decode_value`] then
/// [`diagnose_decoded_with_grants`] give. A large subscription payload's first events are
/// diagnosed while the rest is still being decompressed, and the remaining ones on
/// [`diagnose_decoded_with_grants`]'s threads.
///
/// # Errors
/// As [`event::decode_value`].
pub fn decode_and_diagnose(
    value: &serde_json::Value,
    config: &Config,
) -> Result<(Decoded, Diagnosis), DecodeError> {
    let mut early = EarlyDiagnosis::new(config);
    let decoded = event::decode_value_early(value, &config.limits, Some(&mut early))?;
    let diagnosis = match (&decoded.batches[..], early.origin) {
        // The early work holds when the batch is the one it forecast.
        ([batch], Some(origin))
            if batch.message_type == event::MessageType::DataMessage
                && effective_origin(&batch.origin, config) == origin =>
        {
            let threads = threads_for(batch.events.len().saturating_sub(early.done));
            continue_with(&[(origin, &batch.events)], early.agg, early.done, threads)
        }
        _ => diagnose_decoded_with_grants(&decoded, config),
    };
    Ok((decoded, diagnosis))
}

fn audit_result(status: ActionStatus) -> &'static str {
    match status {
        ActionStatus::Planned => "dry_run",
        ActionStatus::Applied => "applied",
        ActionStatus::Unchanged => "unchanged",
        ActionStatus::Failed => "failed",
        _ => "refused",
    }
}

/// Diagnoses, gathers facts, plans, applies (enforce mode) and builds tickets for a decoded event.
pub async fn handle_decoded<E: FactsProvider + Remediator + CreatorLookup + PauseStore>(
    decoded: &Decoded,
    deps: &Deps<E>,
) -> Response {
    let diagnosis = diagnose_decoded_with_grants(decoded, &deps.config);
    handle_diagnosed(decoded, diagnosis, deps).await
}

/// [`handle_decoded`] for an event already diagnosed (see [`decode_and_diagnose`]).
async fn handle_diagnosed<E: FactsProvider + Remediator + CreatorLookup + PauseStore>(
    decoded: &Decoded,
    (findings, stats, mut grants): Diagnosis,
    deps: &Deps<E>,
) -> Response {
    // Earlier grants the batch does not show, from the cluster's log group (AWS edge only).
    let lookback_ms = deps.config.incident.grant_lookback_hours as i64 * 3_600_000;
    for (cluster, principals) in incident::grant_lookups(&findings, &grants, &deps.config.incident)
    {
        let since = audit_now_s() * 1000 - lookback_ms;
        match deps
            .edge
            .log_lines(&cluster, &incident::grant_pattern(&principals), since)
            .await
        {
            Ok(lines) => grants.extend(incident::grants_from_lines(&cluster, &lines, &principals)),
            Err(e) => tracing::warn!(cluster, error = %e, "cannot look up earlier grants"),
        }
    }
    let incidents = incident::detect(&findings, &grants, &deps.config.incident);
    let finding_clusters: BTreeSet<String> =
        findings.iter().filter_map(|f| f.cluster.clone()).collect();
    let pauses = incident::resolve_pauses(
        &deps.edge,
        &finding_clusters,
        &incidents,
        &deps.config.incident,
        audit_now_s(),
    )
    .await;
    let policy = deps.policy.as_ref();
    let enforce = !deps.dry_run_only && policy.is_some_and(|p| p.mode() == Mode::Enforce);
    let limits = policy.map(|p| p.limits());
    let mut changes_left = limits.map_or(0, |l| l.max_changes_per_invocation);
    let mut reports = Vec::with_capacity(findings.len());
    let mut actions = Vec::with_capacity(findings.len());
    let mut tickets = Vec::new();
    let mut audit = Vec::new();
    for f in findings {
        let fx = deps.edge.gather(&f).await;
        let refinement = facts::refine(&f, &fx);
        let budget = limits.map_or(0, |l| {
            changes_left.min(deps.budget.available(l.max_changes_per_hour))
        });
        let mut action = plan::plan(&plan::Input {
            finding: &f,
            facts: &fx,
            refinement: refinement.as_ref(),
            policy,
            budget,
        });
        // While a cluster's incident lasts, changes there become tickets.
        let covering = incidents.iter().find(|i| i.finding_ids.contains(&f.id));
        if let Some(inc) = covering {
            incident::cover_action(&mut action, inc);
        } else if let Some(p) = f.cluster.as_ref().and_then(|c| pauses.get(c)) {
            incident::pause_action(&mut action, p);
        }
        let mut before_after = (None, None);
        if let Some(change) = action.change.clone() {
            changes_left = changes_left.saturating_sub(1);
            before_after.1 = serde_json::to_value(&change).ok();
            if enforce {
                let ticket_id = action.ticket_id.clone().unwrap_or_default();
                match deps.edge.apply(&f, &fx, &change, &ticket_id).await {
                    Ok(applied) => {
                        deps.budget.spend();
                        action.status = if applied.unchanged {
                            ActionStatus::Unchanged
                        } else {
                            ActionStatus::Applied
                        };
                        before_after = (applied.before, applied.after.or(before_after.1));
                    }
                    Err(e) => {
                        action.status = ActionStatus::Failed;
                        action.reason = format!("{}; applying failed: {e}", action.reason);
                    }
                }
            }
        }
        // Every change (planned, applied or failed) is audited, and so is a remediation the
        // policy or the facts refused.
        let refused = policy.is_some()
            && action.change.is_none()
            && action.kind == plan::ActionKind::Ticket
            && f.cause == Some(crate::diagnosis::Cause::NotMapped);
        if action.change.is_some() || refused {
            let record = audit::Record {
                time: audit::now(),
                actor: fx.actor.as_ref().and_then(|a| a.arn.clone()),
                cluster: f.cluster.clone(),
                action: if refused {
                    "refused".to_string()
                } else {
                    serde_json::to_value(action.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                },
                principal: f.principal.clone(),
                finding_id: f.id.clone(),
                ticket_id: action.ticket_id.clone(),
                rule: action.rule.clone(),
                result: audit_result(action.status).to_string(),
                reason: action.reason.clone(),
                before: before_after.0,
                after: before_after.1,
            };
            record.log();
            audit.push(record);
        }
        // Every denial that is not remediated ends in a ticket.
        let needs_ticket = matches!(
            action.status,
            ActionStatus::Emitted | ActionStatus::Failed | ActionStatus::Planned
        );
        if needs_ticket && action.ticket_id.is_some() && covering.is_none() {
            let mut t = ticket::build_with(&f, refinement.as_ref(), Some(&action));
            if let (true, Some(c)) = (
                crate::creator::needed(&f, refinement.as_ref(), &fx),
                f.cluster.as_deref(),
            ) {
                ticket::add_creator(&mut t, deps.edge.creator(c).await);
            }
            tracing::info!(
                ticket_id = %t.id,
                cause = t.cause.map(|c| c.as_str()).unwrap_or("config_error"),
                severity = ticket::severity_str(t.severity),
                cluster = t.cluster.as_deref().unwrap_or(""),
                count = t.evidence.count,
                ticket = %serde_json::to_string(&t).unwrap_or_default(),
                "ticket"
            );
            tickets.push(t);
        }
        actions.push(action);
        reports.push(FindingReport {
            finding: f,
            facts: fx,
            refinement,
        });
    }
    for inc in &incidents {
        let first = reports
            .iter()
            .find(|r| r.finding.cluster.as_deref() == Some(inc.cluster.as_str()));
        let creator = deps.edge.creator(&inc.cluster).await;
        let t = ticket::incident_ticket(
            inc,
            first.and_then(|r| r.finding.region.as_deref()),
            first.and_then(|r| r.finding.account.as_deref()),
            first.and_then(|r| r.facts.authentication_mode.as_deref()),
            Some(creator),
        );
        tracing::warn!(
            incident_id = %inc.id,
            kind = inc.kind.as_str(),
            cluster = %inc.cluster,
            principals = inc.principals.len(),
            node_roles = inc.node_roles.len(),
            ticket = %serde_json::to_string(&t).unwrap_or_default(),
            "incident"
        );
        tickets.push(t);
    }
    let clusters: BTreeSet<String> = decoded
        .batches
        .iter()
        .filter_map(|b| b.origin.cluster.clone())
        .collect();
    tracing::info!(
        source = ?decoded.source,
        events = stats.events,
        duplicates = stats.duplicates,
        parsed = stats.parsed,
        unparsed = stats.unparsed,
        findings = reports.len(),
        tickets = tickets.len(),
        "handled event"
    );
    if stats.unparsed > 0 {
        tracing::warn!(unparsed = stats.unparsed, "lines that are not authenticator records were counted and sampled in stats.unparsed_samples");
    }
    let delivery = if deps.dry_run_only {
        DeliveryReport::disabled("eks-auth plan never delivers tickets")
    } else {
        deps.delivery.run(decoded, &tickets).await
    };
    Response {
        version: env!("CARGO_PKG_VERSION"),
        mode: if enforce { "enforce" } else { "dry-run" },
        source: decoded.source,
        control_message: decoded.is_control_only(),
        clusters: clusters.into_iter().collect(),
        findings: reports,
        actions,
        tickets,
        audit,
        incidents,
        pauses: pauses.into_values().collect(),
        stats,
        delivery,
    }
}

fn audit_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A subscription event holding `wire` (the decoded JSON), as CloudWatch Logs sends it.
    fn subscription(wire: &str) -> serde_json::Value {
        let data = crate::eventgen::b64(&crate::eventgen::gzip(wire.as_bytes()));
        serde_json::json!({"awslogs": {"data": data}})
    }

    /// The policy's role wins; the variable is used when the policy names none, and must be a
    /// role ARN.
    #[test]
    fn remediation_role_from_policy_then_variable() {
        let policy_role = "arn:aws:iam::111122223333:role/from-policy";
        let env_role = "arn:aws:iam::111122223333:role/ops/from-env";
        let with_role = Policy::parse(
            &format!("clusters: []\nremediation_role_arn: {policy_role}\nrules: []\n"),
            "test",
        )
        .unwrap();
        let without = Policy::parse("clusters: []\nrules: []\n", "test").unwrap();
        let role = |p: Option<&Policy>, env: Option<&str>| {
            remediation_role_with(p, env.map(str::to_string))
        };
        assert_eq!(
            role(Some(&with_role), Some(env_role)).unwrap().as_deref(),
            Some(policy_role)
        );
        assert_eq!(
            role(Some(&without), Some(env_role)).unwrap().as_deref(),
            Some(env_role)
        );
        assert_eq!(
            role(None, Some(&format!(" {env_role}\n")))
                .unwrap()
                .as_deref(),
            Some(env_role)
        );
        assert_eq!(role(None, None).unwrap(), None);
        assert_eq!(role(Some(&without), Some("  ")).unwrap(), None);
        for bad in [
            "my-role",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:sts::111122223333:assumed-role/r/s",
            "arn:aws:iam::111122223333:role/*",
        ] {
            let e = role(None, Some(bad)).unwrap_err();
            assert_eq!(e.name, ENV_REMEDIATION_ROLE);
            assert_eq!(e.value, bad);
        }
    }

    #[test]
    fn early_diagnosis_gives_the_sequential_result() {
        let config = Config {
            region: Some("eu-west-1".into()),
            ..Config::default()
        };
        let lines = crate::benchdata::realistic_lines(6_000).join("\n");
        let wire = crate::eventgen::wire(&lines, &crate::benchdata::options());
        let check = |ev: &serde_json::Value| {
            let decoded = event::decode_value(ev, &config.limits).unwrap();
            let one = diagnose_with(&decoded, &config, 1);
            let (fused, diagnosis) = decode_and_diagnose(ev, &config).unwrap();
            assert_eq!(fused, decoded);
            assert_eq!(diagnosis, one);
            one
        };
        // As CloudWatch Logs writes it (the early path, however far it got before the end).
        let plain = check(&subscription(&wire));
        assert_eq!(plain.1.parsed, 6_000);
        // A region key after the events: the forecast origin was wrong, the work is redone.
        let late_region = format!(
            "{}{}",
            &wire[..wire.len() - 2],
            r#"],"region":"us-west-2"}"#
        );
        let moved = check(&subscription(&late_region));
        assert!(moved
            .0
            .iter()
            .all(|f| f.region.as_deref() == Some("us-west-2")));
        // A redelivered id near the end: parts cannot be merged, counts stay exact.
        let first_id = &wire[wire.find(r#""id":""#).unwrap() + 6..][..56];
        let last_id_at = wire.rfind(r#""id":""#).unwrap() + 6;
        let redelivered = format!(
            "{}{first_id}{}",
            &wire[..last_id_at],
            &wire[last_id_at + 56..]
        );
        assert_eq!(check(&subscription(&redelivered)).1.duplicates, 1);
        // Keys in another order (logEvents first): no forecast, no early work.
        let sorted = crate::eventgen::decoded(&lines, &crate::benchdata::options()).to_string();
        assert_eq!(check(&subscription(&sorted)), plain);
    }

    #[test]
    fn early_steps_then_parts_equal_one_pass() {
        // Drives the early work by hand (the decoder calls it only while it waits, which
        // depends on timing) at several points, then finishes as decode_and_diagnose does.
        let config = Config::default();
        let (ev, _) = crate::benchdata::subscription_event(4_000);
        let decoded = event::decode_value(&ev, &config.limits).unwrap();
        let one = diagnose_with(&decoded, &config, 1);
        let batch = &decoded.batches[0];
        for stop in [1, EARLY_STEP, 1_000, 3_999, 4_000] {
            for threads in [1, 2, 3] {
                let mut early = EarlyDiagnosis::new(&config);
                while early.done < stop {
                    assert!(event::Early::step(
                        &mut early,
                        &batch.origin,
                        batch.events.view()
                    ));
                }
                let origin = early.origin.clone().unwrap();
                assert_eq!(origin, effective_origin(&batch.origin, &config));
                let events = [(origin, &batch.events)];
                let rest = continue_with(&events, early.agg, early.done, threads);
                assert_eq!(rest, one, "stop {stop}, {threads} threads");
            }
        }
        // Nothing left to do: the step says so.
        let mut early = EarlyDiagnosis {
            done: 4_000,
            ..EarlyDiagnosis::new(&config)
        };
        assert!(!event::Early::step(
            &mut early,
            &batch.origin,
            batch.events.view()
        ));
    }

    /// Splitting a batch across threads gives exactly the single-threaded result, also when
    /// redeliveries cross the parts (the merge is refused and one pass runs instead).
    #[test]
    fn parallel_diagnosis_equals_sequential() {
        let config = Config::default();
        let (ev, _) = crate::benchdata::subscription_event(3_000);
        let decoded = event::decode_value(&ev, &config.limits).unwrap();
        let one = diagnose_with(&decoded, &config, 1);
        assert_eq!(one.1.parsed, 3_000);
        assert!(!one.2.is_empty(), "the batch grants some principals");
        for threads in [2, 3, 4, 7] {
            assert_eq!(
                diagnose_with(&decoded, &config, threads),
                one,
                "{threads} threads"
            );
        }
        assert_eq!(diagnose_decoded_with_grants(&decoded, &config), one);

        // The same lines delivered twice, as two Kinesis records: every id repeats in the
        // second half, so the parts cannot be merged; counts stay those of one delivery.
        let mut twice = decoded.clone();
        twice.batches.push(decoded.batches[0].clone());
        let seq = diagnose_with(&twice, &config, 1);
        assert_eq!(seq.1.duplicates, 3_000);
        assert_eq!(seq.0, one.0);
        for threads in [2, 3] {
            assert_eq!(
                diagnose_with(&twice, &config, threads),
                seq,
                "{threads} threads"
            );
        }

        // Lines without ids (manual events) and a region from the configuration.
        let lines: Vec<String> = crate::benchdata::realistic_lines(2_500);
        let manual = serde_json::json!({"cluster": "prod", "lines": lines});
        let decoded = event::decode_value(&manual, &config.limits).unwrap();
        let config = Config {
            region: Some("eu-west-1".into()),
            ..Config::default()
        };
        let one = diagnose_with(&decoded, &config, 1);
        assert_eq!(diagnose_with(&decoded, &config, 2), one);
        assert!(one.0.iter().all(|f| f.region.is_some()));
    }

    #[test]
    fn config_from_env_rejects_garbage() {
        let env: HashMap<&str, &str> = [("EKS_AUTH_MAX_DECOMPRESSED_BYTES", "lots")].into();
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(err.name, "EKS_AUTH_MAX_DECOMPRESSED_BYTES");
        let env: HashMap<&str, &str> =
            [("EKS_AUTH_MAX_EVENTS", "10"), ("AWS_REGION", "eu-west-1")].into();
        let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.limits.max_events, 10);
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
    }
}
