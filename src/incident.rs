//! Incidents: a cluster-wide loss of access rather than one principal's denial (pure).
//!
//! Two kinds, at most one incident per cluster and batch:
//! - `config_error`: the authenticator logged "Errors parsing configmap" / "There was an error
//!   parsing the config maps": aws-auth holds entries it drops (a YAML error drops a whole key,
//!   node roles included).
//! - `mass_unmapping`: `not_mapped` denials for at least `min_principals` distinct principals
//!   that were granted earlier in the batch (`access granted` lines for the same principal, the
//!   grant before the last denial), or for at least one previously granted node role (granted as
//!   `system:node:...` / `system:nodes`: its nodes are about to go NotReady) when
//!   `node_roles_trigger` is on. Someone edited aws-auth and dropped mappings that worked.
//!
//! When both show, the incident is `config_error` and lists the denied principals too. The
//! incident id is deterministic (cluster + kind), so its ticket deduplicates. While an incident
//! lasts, automatic remediation on that cluster is paused ([`pause_action`]); the pause is stored
//! across invocations by the edge's [`PauseStore`] (DynamoDB), else it holds for the invocation.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::diagnosis::{Cause, Finding, Grant, Outcome};
use crate::plan::{Action, ActionKind, ActionStatus};
use crate::timefmt;

/// Thresholds and the pause, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentConfig {
    /// Previously granted principals denied `not_mapped` in one batch that make an incident
    /// (`EKS_AUTH_INCIDENT_MIN_PRINCIPALS`, default 3).
    pub min_principals: usize,
    /// One previously granted node role denied is enough (`EKS_AUTH_INCIDENT_NODE_ROLES`,
    /// default true).
    pub node_roles_trigger: bool,
    /// How long remediation stays paused after the incident was last seen
    /// (`EKS_AUTH_INCIDENT_PAUSE_SECONDS`, default 3600).
    pub pause_secs: u64,
    /// DynamoDB table holding pauses across invocations (`EKS_AUTH_SUPPRESSION_TABLE`).
    pub table: Option<String>,
    /// How far back the cluster's log group is searched for earlier grants of denied principals
    /// that the batch shows no grant for (`EKS_AUTH_INCIDENT_GRANT_LOOKBACK_HOURS`, default 24).
    pub grant_lookback_hours: u64,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            min_principals: 3,
            node_roles_trigger: true,
            pause_secs: 3600,
            table: None,
            grant_lookback_hours: 24,
        }
    }
}

/// What kind of incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    ConfigError,
    MassUnmapping,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::ConfigError => "config_error",
            IncidentKind::MassUnmapping => "mass_unmapping",
        }
    }
}

/// One cluster-wide incident found in the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Deterministic: 16 hex digits of SHA-256 over the cluster and kind.
    pub id: String,
    pub ticket_id: String,
    pub cluster: String,
    pub kind: IncidentKind,
    /// Principals granted earlier in the batch and now denied `not_mapped`.
    pub principals: Vec<String>,
    /// Those of them that are node roles.
    pub node_roles: Vec<String>,
    /// "Errors parsing configmap" lines.
    pub config_errors: u64,
    /// Denials of the principals above.
    pub denials: u64,
    /// The findings the incident covers (their own tickets are folded into its ticket).
    pub finding_ids: Vec<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub samples: Vec<String>,
}

/// The incident id for (cluster, kind).
pub fn incident_id(cluster: &str, kind: IncidentKind) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"incident\0");
    h.update(cluster.as_bytes());
    h.update(b"\0");
    h.update(kind.as_str().as_bytes());
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Finds the incidents of a batch (at most one per cluster).
pub fn detect(findings: &[Finding], grants: &[Grant], cfg: &IncidentConfig) -> Vec<Incident> {
    let clusters: BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f.cluster.as_deref())
        .collect();
    let mut out = Vec::new();
    for cluster in clusters {
        let in_cluster = || {
            findings
                .iter()
                .filter(move |f| f.cluster.as_deref() == Some(cluster))
        };
        let config: Vec<&Finding> = in_cluster()
            .filter(|f| f.outcome == Outcome::ConfigError)
            .collect();
        let mut covered: Vec<&Finding> = Vec::new();
        let mut principals = Vec::new();
        let mut nodes = Vec::new();
        for f in in_cluster()
            .filter(|f| f.outcome == Outcome::Denied && f.cause == Some(Cause::NotMapped))
        {
            let Some(p) = f.principal.as_deref() else {
                continue;
            };
            let last_denial = f.last_seen.as_deref().and_then(timefmt::parse_ms);
            let granted = grants.iter().find(|g| {
                g.cluster.as_deref() == Some(cluster)
                    && g.principal.eq_ignore_ascii_case(p)
                    && match (g.first_ms, last_denial) {
                        (Some(g), Some(d)) => g <= d,
                        _ => true,
                    }
            });
            if let Some(g) = granted {
                principals.push(p.to_string());
                if g.is_node() {
                    nodes.push(p.to_string());
                }
                covered.push(f);
            }
        }
        let mass = principals.len() >= cfg.min_principals.max(1)
            || (cfg.node_roles_trigger && !nodes.is_empty());
        let kind = if !config.is_empty() {
            IncidentKind::ConfigError
        } else if mass {
            IncidentKind::MassUnmapping
        } else {
            continue;
        };
        covered.extend(config.iter().copied());
        let id = incident_id(cluster, kind);
        let times = |pick: fn(&Finding) -> Option<&String>| {
            covered
                .iter()
                .filter_map(|f| pick(f).and_then(|t| timefmt::parse_ms(t)))
                .collect::<Vec<i64>>()
        };
        let first = times(|f| f.first_seen.as_ref()).into_iter().min();
        let last = times(|f| f.last_seen.as_ref()).into_iter().max();
        out.push(Incident {
            ticket_id: crate::ticket::ticket_id(&id),
            id,
            cluster: cluster.to_string(),
            kind,
            principals,
            node_roles: nodes,
            config_errors: config.iter().map(|f| f.count).sum(),
            denials: covered
                .iter()
                .filter(|f| f.outcome == Outcome::Denied)
                .map(|f| f.count)
                .sum(),
            finding_ids: covered.iter().map(|f| f.id.clone()).collect(),
            first_seen: first.map(timefmt::format_ms),
            last_seen: last.map(timefmt::format_ms),
            samples: covered
                .iter()
                .filter_map(|f| f.samples.first().cloned())
                .take(5)
                .collect(),
        });
    }
    out
}

/// At most this many principals are looked up in the logs per cluster and batch.
pub const MAX_GRANT_LOOKUPS: usize = 20;

/// The denied (`not_mapped`) principals per cluster whose earlier grants are worth looking up in
/// the cluster's log group: those the batch shows no grant for, when enough of them are denied
/// that an incident is possible (at least `min_principals` distinct ones, or a node role's EC2
/// session `.../i-...` when node roles trigger).
pub fn grant_lookups(
    findings: &[Finding],
    grants: &[Grant],
    cfg: &IncidentConfig,
) -> Vec<(String, Vec<String>)> {
    let mut per: std::collections::BTreeMap<&str, (Vec<String>, usize, bool)> =
        std::collections::BTreeMap::new();
    for f in findings {
        let (Some(c), Some(p), Outcome::Denied, Some(Cause::NotMapped)) = (
            f.cluster.as_deref(),
            f.principal.as_deref(),
            f.outcome,
            f.cause,
        ) else {
            continue;
        };
        let e = per.entry(c).or_default();
        e.1 += 1;
        e.2 |= f
            .samples
            .iter()
            .any(|s| s.contains("assumed-role/") && s.contains("/i-"));
        let granted = grants
            .iter()
            .any(|g| g.cluster.as_deref() == Some(c) && g.principal.eq_ignore_ascii_case(p));
        if !granted && e.0.len() < MAX_GRANT_LOOKUPS {
            e.0.push(p.to_string());
        }
    }
    per.into_iter()
        .filter(|(_, (missing, total, node))| {
            !missing.is_empty()
                && (*total >= cfg.min_principals.max(1) || (cfg.node_roles_trigger && *node))
        })
        .map(|(c, (missing, _, _))| (c.to_string(), missing))
        .collect()
}

/// A CloudWatch Logs filter pattern matching any of the principals' ARNs (`?"a" ?"b"`).
pub fn grant_pattern(principals: &[String]) -> String {
    principals
        .iter()
        .map(|p| format!("?\"{}\"", p.replace('"', "")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The grants of `principals` among log lines (`(timestamp ms, message)`) of `cluster`.
pub fn grants_from_lines(
    cluster: &str,
    lines: &[(Option<i64>, String)],
    principals: &[String],
) -> Vec<Grant> {
    let origin = crate::diagnosis::Origin {
        cluster: Some(cluster.to_string()),
        ..Default::default()
    };
    let mut agg = crate::diagnosis::Aggregator::new();
    for (ts, m) in lines {
        agg.add(&origin, None, *ts, m);
    }
    let (_, _, grants) = agg.finish_with_grants();
    grants
        .into_iter()
        .filter(|g| {
            principals
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&g.principal))
        })
        .collect()
}

/// A pause of automatic remediation on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub cluster: String,
    pub incident_id: String,
    pub ticket_id: String,
    pub kind: IncidentKind,
    /// Epoch seconds.
    pub expires_at: i64,
    /// `detected` (in this batch) or `stored` (by an earlier invocation).
    pub origin: &'static str,
    /// `table` (stored in DynamoDB) or `invocation` (no table: this invocation only).
    pub scope: &'static str,
    /// Why the pause could not be stored or read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the store keeps (item `pk = incident#<cluster>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPause {
    pub incident_id: String,
    pub ticket_id: String,
    pub kind: IncidentKind,
    pub expires_at: i64,
}

/// Where pauses live across invocations.
pub trait PauseStore {
    /// The table's name, or None when pauses hold for one invocation only.
    fn pause_table(&self) -> Option<&str>;
    /// The unexpired pause stored for `cluster`.
    fn load_pause(
        &self,
        cluster: &str,
        now_s: i64,
    ) -> impl std::future::Future<Output = Result<Option<StoredPause>, String>> + Send;
    /// Stores (or extends) the pause for `cluster`.
    fn save_pause(
        &self,
        cluster: &str,
        pause: &StoredPause,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// The store key for a cluster.
pub fn pause_key(cluster: &str) -> String {
    format!("incident#{cluster}")
}

/// The pause an incident detected now starts (or extends).
pub fn pause_for(inc: &Incident, now_s: i64, cfg: &IncidentConfig) -> StoredPause {
    StoredPause {
        incident_id: inc.id.clone(),
        ticket_id: inc.ticket_id.clone(),
        kind: inc.kind,
        expires_at: now_s + cfg.pause_secs as i64,
    }
}

/// The pause of each cluster in the batch: incidents detected now are stored (or extended);
/// other clusters are looked up in the store. `clusters` are those with findings.
pub async fn resolve_pauses<S: PauseStore>(
    store: &S,
    clusters: &BTreeSet<String>,
    incidents: &[Incident],
    cfg: &IncidentConfig,
    now_s: i64,
) -> std::collections::BTreeMap<String, Pause> {
    let mut out = std::collections::BTreeMap::new();
    let table = store.pause_table().is_some();
    for inc in incidents {
        let p = pause_for(inc, now_s, cfg);
        let (scope, note) = if !table {
            (
                "invocation",
                Some(
                    "no EKS_AUTH_SUPPRESSION_TABLE: the pause holds for this invocation only"
                        .to_string(),
                ),
            )
        } else {
            match store.save_pause(&inc.cluster, &p).await {
                Ok(()) => ("table", None),
                Err(e) => {
                    tracing::warn!(cluster = %inc.cluster, error = %e, "cannot store the incident pause");
                    (
                        "invocation",
                        Some(format!(
                            "storing the pause failed ({e}): it holds for this invocation only"
                        )),
                    )
                }
            }
        };
        out.insert(
            inc.cluster.clone(),
            Pause {
                cluster: inc.cluster.clone(),
                incident_id: p.incident_id,
                ticket_id: p.ticket_id,
                kind: p.kind,
                expires_at: p.expires_at,
                origin: "detected",
                scope,
                note,
            },
        );
    }
    if !table {
        return out;
    }
    for c in clusters {
        if out.contains_key(c) {
            continue;
        }
        match store.load_pause(c, now_s).await {
            Ok(Some(p)) => {
                out.insert(
                    c.clone(),
                    Pause {
                        cluster: c.clone(),
                        incident_id: p.incident_id,
                        ticket_id: p.ticket_id,
                        kind: p.kind,
                        expires_at: p.expires_at,
                        origin: "stored",
                        scope: "table",
                        note: None,
                    },
                );
            }
            Ok(None) => {}
            // Fail open: remediation goes on under the policy's own limits.
            Err(e) => tracing::warn!(cluster = %c, error = %e, "cannot read the incident pause"),
        }
    }
    out
}

/// Turns a planned change into a ticket while the cluster's pause lasts; leaves other actions.
pub fn pause_action(action: &mut Action, pause: &Pause) {
    if action.change.is_none() {
        return;
    }
    action.change = None;
    action.kind = ActionKind::Ticket;
    action.status = ActionStatus::Emitted;
    action.reason = format!(
        "paused: incident {} ({}) on cluster {}; automatic remediation resumes when it has not been seen until {} (was: {})",
        pause.incident_id,
        pause.kind.as_str(),
        pause.cluster,
        timefmt::format_ms(pause.expires_at * 1000),
        action.reason
    );
}

/// Folds a finding the incident covers into the incident's ticket.
pub fn cover_action(action: &mut Action, inc: &Incident) {
    action.change = None;
    action.kind = ActionKind::Ticket;
    action.status = ActionStatus::Emitted;
    action.ticket_id = Some(inc.ticket_id.clone());
    action.reason = format!(
        "paused: incident {} ({}): covered by incident ticket {}",
        inc.id,
        inc.kind.as_str(),
        inc.ticket_id
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::{Aggregator, Origin};

    fn batch(lines: &[String]) -> (Vec<Finding>, Vec<Grant>) {
        let origin = Origin {
            cluster: Some("prod".into()),
            ..Origin::default()
        };
        let mut agg = Aggregator::new();
        for (i, l) in lines.iter().enumerate() {
            agg.add(&origin, Some(&format!("{i:04}")), Some(1_000 * i as i64), l);
        }
        let (f, _, g) = agg.finish_with_grants();
        (f, g)
    }

    fn granted(arn: &str, user: &str, groups: &str) -> String {
        format!(
            r#"level=info msg="access granted" arn="{arn}" groups="[{groups}]" username="{user}""#
        )
    }
    fn denied(arn: &str) -> String {
        format!(r#"level=warning msg="access denied" arn="{arn}" error="ARN is not mapped""#)
    }

    #[test]
    fn many_previously_granted_principals_make_one_incident() {
        let mut lines = Vec::new();
        for i in 0..3 {
            lines.push(granted(
                &format!("arn:aws:iam::111122223333:role/team{i}"),
                "u",
                "devs",
            ));
        }
        for i in 0..3 {
            lines.push(denied(&format!(
                "arn:aws:sts::111122223333:assumed-role/team{i}/s"
            )));
        }
        lines.push(denied("arn:aws:iam::111122223333:role/never-granted"));
        let (f, g) = batch(&lines);
        let inc = detect(&f, &g, &IncidentConfig::default());
        assert_eq!(inc.len(), 1);
        assert_eq!(inc[0].kind, IncidentKind::MassUnmapping);
        assert_eq!(inc[0].principals.len(), 3);
        assert!(inc[0].node_roles.is_empty());
        assert_eq!(inc[0].id, incident_id("prod", IncidentKind::MassUnmapping));
        assert_eq!(
            inc[0].finding_ids.len(),
            3,
            "the never-granted principal is not covered"
        );
        // Two are not enough, and a grant after the denial is no evidence.
        let cfg = IncidentConfig {
            min_principals: 4,
            ..IncidentConfig::default()
        };
        assert!(detect(&f, &g, &cfg).is_empty());
        let mut late = vec![denied("arn:aws:iam::111122223333:role/a")];
        late.push(granted("arn:aws:iam::111122223333:role/a", "u", "x"));
        let (f, g) = batch(&late);
        assert!(detect(
            &f,
            &g,
            &IncidentConfig {
                min_principals: 1,
                ..IncidentConfig::default()
            }
        )
        .is_empty());
    }

    #[test]
    fn one_node_role_or_a_configmap_error_is_enough() {
        let lines = vec![
            granted(
                "arn:aws:iam::111122223333:role/eks-node",
                "system:node:ip-10-0-0-1.ec2.internal",
                "system:bootstrappers system:nodes",
            ),
            denied("arn:aws:sts::111122223333:assumed-role/eks-node/i-0abc"),
        ];
        let (f, g) = batch(&lines);
        let inc = detect(&f, &g, &IncidentConfig::default());
        assert_eq!(
            inc[0].node_roles,
            vec!["arn:aws:iam::111122223333:role/eks-node"]
        );
        let off = IncidentConfig {
            node_roles_trigger: false,
            ..IncidentConfig::default()
        };
        assert!(detect(&f, &g, &off).is_empty());
        let cfg_err = vec![
            r#"level=error msg="Errors parsing configmap: [yaml: line 3: mapping values are not allowed in this context]""#.to_string(),
        ];
        let (f, g) = batch(&cfg_err);
        let inc = detect(&f, &g, &IncidentConfig::default());
        assert_eq!(inc[0].kind, IncidentKind::ConfigError);
        assert_eq!(inc[0].config_errors, 1);
    }

    #[test]
    fn earlier_grants_are_looked_up_only_when_an_incident_is_possible() {
        let lines: Vec<String> = (0..3)
            .map(|i| denied(&format!("arn:aws:iam::111122223333:role/r{i}")))
            .collect();
        let (f, g) = batch(&lines);
        let l = grant_lookups(&f, &g, &IncidentConfig::default());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].1.len(), 3);
        assert_eq!(
            grant_pattern(&l[0].1[..2]),
            r#"?"arn:aws:iam::111122223333:role/r0" ?"arn:aws:iam::111122223333:role/r1""#
        );
        let (f, g) = batch(&lines[..1]);
        assert!(grant_lookups(&f, &g, &IncidentConfig::default()).is_empty());
        let node = vec![denied("arn:aws:sts::111122223333:assumed-role/ng/i-0abc")];
        let (f, g) = batch(&node);
        assert_eq!(grant_lookups(&f, &g, &IncidentConfig::default()).len(), 1);
        let found = grants_from_lines(
            "prod",
            &[(
                Some(-60_000),
                granted(
                    "arn:aws:iam::111122223333:role/ng",
                    "system:node:ip-1",
                    "system:nodes",
                ),
            )],
            &["arn:aws:iam::111122223333:role/ng".to_string()],
        );
        assert!(found[0].is_node());
        let (f, _) = batch(&node);
        assert_eq!(detect(&f, &found, &IncidentConfig::default()).len(), 1);
    }

    #[test]
    fn paused_changes_become_tickets() {
        let mut a = Action {
            kind: ActionKind::AwsAuthMapping,
            status: ActionStatus::Planned,
            finding_id: "f".into(),
            ticket_id: Some("EAR-f".into()),
            reason: "rule x approves".into(),
            rule: Some("x".into()),
            change: Some(crate::plan::Change::FixMappingPath {
                list: "mapRoles".into(),
                old_arn: "a".into(),
                new_arn: "b".into(),
            }),
        };
        let p = Pause {
            cluster: "prod".into(),
            incident_id: "abc".into(),
            ticket_id: "EAR-abc".into(),
            kind: IncidentKind::MassUnmapping,
            expires_at: 0,
            origin: "stored",
            scope: "table",
            note: None,
        };
        pause_action(&mut a, &p);
        assert_eq!(a.kind, ActionKind::Ticket);
        assert!(a.change.is_none());
        assert!(a.reason.starts_with("paused: incident abc"), "{}", a.reason);
    }
}
