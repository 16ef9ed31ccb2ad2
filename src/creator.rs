//! The cluster creator: who it is, the log line that proves it, and whether the IAM entity still
//! exists (DOMAIN.md section 7, steps 1 and 5).
//!
//! In CONFIG_MAP mode the identity that created the cluster is mapped to `kubernetes-admin`
//! (`system:masters`) outside aws-auth, so it keeps access when aws-auth is broken. The runbook
//! finds it with a Logs Insights query on `/aws/eks/<cluster>/cluster` for
//! `username=kubernetes-admin` in the authenticator streams. [`find_creator`] runs that query
//! through the [`LogSearch`] trait (the AWS calls live in `crate::creator_aws`), checks that
//! the rows really match the query's filters (an engine that ignores a clause, as moto's does,
//! returns rows that do not), falls back to FilterLogEvents with the equivalent filter pattern
//! when the query fails, times out, returns nothing or returns rows it should have filtered out,
//! and asks IAM whether the creator still exists. Everything here but the trait calls is pure.
//!
//! Which tickets carry the creator ([`needed`]): the identity that can repair aws-auth matters
//! when aws-auth itself is at fault or nobody else can act, that is
//! - `config_error` findings (the authenticator drops aws-auth entries) and incidents;
//! - the refinements `aws_auth_broken` and `mapping_invalid` (a human must edit aws-auth);
//! - denials the function could not remediate because its own identity may not update aws-auth
//!   (`facts.actor.may_update_aws_auth == false`).

use serde::Serialize;

use crate::arn::{Arn, PrincipalKind};
use crate::authlog;
use crate::diagnosis::{self, Finding, Outcome};
use crate::facts::{Facts, Refinement};
use crate::ticket::{sh, Command};
use crate::timefmt;

/// The username EKS gives the cluster creator.
pub const CREATOR_USERNAME: &str = "kubernetes-admin";
/// The CloudWatch Logs filter pattern equivalent to the runbook query's message filter.
pub const FILTER_PATTERN: &str = "\"username=kubernetes-admin\"";
/// Authenticator streams are named `authenticator-<32 hex>`.
pub const STREAM_PREFIX: &str = "authenticator";

/// How the creator is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatorConfig {
    /// How far back to search (`EKS_AUTH_CREATOR_LOOKBACK_DAYS`, default 30; the log group's
    /// retention caps what exists anyway).
    pub lookback_days: u32,
    /// How long to wait for the Insights query and the fallback together
    /// (`EKS_AUTH_CREATOR_TIMEOUT_SECONDS`, default 20).
    pub timeout_secs: u64,
}

impl Default for CreatorConfig {
    fn default() -> Self {
        CreatorConfig {
            lookback_days: 30,
            timeout_secs: 20,
        }
    }
}

/// Whether the creator was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatorStatus {
    /// A `username=kubernetes-admin` line names it.
    Found,
    /// The logs were searched; no such line in the time range.
    NotFound,
    /// Not searched (offline) or the search failed.
    Unknown,
}

/// Which search answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatorSource {
    Insights,
    FilterLogEvents,
    None,
}

/// What the ticket says about the cluster creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatorInfo {
    pub status: CreatorStatus,
    /// The creator's canonical ARN (as the authenticator logs it).
    pub arn: Option<String>,
    /// The log line that names it.
    pub evidence: Option<String>,
    pub log_stream: Option<String>,
    pub seen_at: Option<String>,
    pub source: CreatorSource,
    /// IAM's answer (GetRole/GetUser); None when not asked or the call failed.
    pub exists: Option<bool>,
    /// What to do, in the runbook's words.
    pub advice: String,
    /// Why the search fell back or failed.
    pub notes: Vec<String>,
}

impl CreatorInfo {
    /// Offline or not looked up: "unknown".
    pub fn unknown(note: impl Into<String>) -> CreatorInfo {
        let mut c = CreatorInfo {
            status: CreatorStatus::Unknown,
            arn: None,
            evidence: None,
            log_stream: None,
            seen_at: None,
            source: CreatorSource::None,
            exists: None,
            advice: String::new(),
            notes: vec![note.into()],
        };
        c.advice = advice(&c);
        c
    }
}

/// One log event as a search returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRow {
    pub stream: Option<String>,
    pub timestamp_ms: Option<i64>,
    pub message: String,
}

/// The AWS calls the lookup needs, at the edge.
pub trait LogSearch {
    /// Runs a Logs Insights query (StartQuery, then GetQueryResults until it completes or
    /// `deadline`). `Err` for a failed, cancelled or timed-out query or a refused StartQuery.
    fn insights(
        &self,
        log_group: &str,
        query: &str,
        start_s: i64,
        end_s: i64,
        deadline: std::time::Instant,
    ) -> impl std::future::Future<Output = Result<Vec<LogRow>, String>> + Send;

    /// FilterLogEvents with a filter pattern and stream prefix, all pages until `deadline`.
    fn filter(
        &self,
        log_group: &str,
        pattern: &str,
        stream_prefix: &str,
        start_ms: i64,
        end_ms: i64,
        deadline: std::time::Instant,
    ) -> impl std::future::Future<Output = Result<Vec<LogRow>, String>> + Send;

    /// Whether the IAM user/role exists (GetUser/GetRole): Ok(None) when it is neither.
    fn entity_exists(
        &self,
        arn: &Arn,
    ) -> impl std::future::Future<Output = Result<Option<bool>, String>> + Send;
}

/// The edge's creator lookup, cached per cluster by the AWS implementation.
pub trait CreatorLookup {
    /// The creator of `cluster` (log group `/aws/eks/<cluster>/cluster`).
    fn creator(&self, cluster: &str) -> impl std::future::Future<Output = CreatorInfo> + Send;

    /// Authenticator lines of `cluster` since `since_ms` matching the filter `pattern`
    /// (`(timestamp ms, message)`), for earlier grants of denied principals. Offline: none.
    fn log_lines(
        &self,
        cluster: &str,
        pattern: &str,
        since_ms: i64,
    ) -> impl std::future::Future<Output = Result<Vec<(Option<i64>, String)>, String>> + Send;
}

/// True when the row satisfies the runbook query's filters: an authenticator stream (when the
/// stream is known) and `username=kubernetes-admin` in the message.
pub fn row_matches(row: &LogRow) -> bool {
    row.stream
        .as_deref()
        .is_none_or(|s| s.contains(STREAM_PREFIX))
        && row.message.contains("username=kubernetes-admin")
}

/// The newest `access granted` line for `kubernetes-admin` among matching rows: (arn, row).
pub fn creator_from_rows(rows: &[LogRow]) -> Option<(String, &LogRow)> {
    rows.iter()
        .filter(|r| row_matches(r))
        .filter_map(|r| {
            let rec = authlog::parse_entry(&r.message).ok()?;
            let d = diagnosis::diagnose(&rec);
            (d.outcome == Outcome::Granted && d.username.as_deref() == Some(CREATOR_USERNAME))
                .then_some(())?;
            let ts = r
                .timestamp_ms
                .or_else(|| d.time.as_deref().and_then(timefmt::parse_ms));
            Some((ts, d.principal?, r))
        })
        .max_by_key(|(ts, _, _)| *ts)
        .map(|(_, arn, r)| (arn, r))
}

/// What an Insights answer means: use it, or fall back (with the reason).
pub fn judge_insights(result: &Result<Vec<LogRow>, String>) -> Result<(), String> {
    match result {
        Err(e) => Err(format!("Logs Insights query failed: {e}")),
        Ok(rows) if rows.is_empty() => Err(
            "Logs Insights returned no rows (none in range, or the engine does not support the query)"
                .into(),
        ),
        Ok(rows) if !rows.iter().all(row_matches) => Err(format!(
            "Logs Insights returned {} row(s) that do not match the query's filters: the engine did not apply them",
            rows.iter().filter(|r| !row_matches(r)).count()
        )),
        Ok(rows) if creator_from_rows(rows).is_none() => {
            Err("Logs Insights rows name no kubernetes-admin grant".into())
        }
        Ok(_) => Ok(()),
    }
}

/// Finds the creator of `cluster`: Insights first, FilterLogEvents as fallback, then IAM.
pub async fn find_creator<S: LogSearch>(
    s: &S,
    cluster: &str,
    cfg: &CreatorConfig,
    now_ms: i64,
) -> CreatorInfo {
    let group = log_group(cluster);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(cfg.timeout_secs);
    let start_ms = now_ms - i64::from(cfg.lookback_days) * 86_400_000;
    let mut notes = Vec::new();
    let insights = s
        .insights(
            &group,
            crate::ticket::CREATOR_QUERY,
            start_ms / 1000,
            now_ms / 1000 + 1,
            deadline,
        )
        .await;
    let (rows, source) = match judge_insights(&insights) {
        Ok(()) => (insights.unwrap_or_default(), CreatorSource::Insights),
        Err(why) => {
            notes.push(format!("{why}; fell back to FilterLogEvents"));
            match s
                .filter(
                    &group,
                    FILTER_PATTERN,
                    STREAM_PREFIX,
                    start_ms,
                    now_ms + 1000,
                    deadline,
                )
                .await
            {
                Ok(rows) => (rows, CreatorSource::FilterLogEvents),
                Err(e) => {
                    notes.push(format!("FilterLogEvents failed: {e}"));
                    let mut c = CreatorInfo::unknown(String::new());
                    c.notes = notes;
                    return c;
                }
            }
        }
    };
    let Some((arn, row)) = creator_from_rows(&rows) else {
        notes.push(format!(
            "no kubernetes-admin grant in {group} in the last {} days",
            cfg.lookback_days
        ));
        let mut c = CreatorInfo {
            status: CreatorStatus::NotFound,
            source,
            ..CreatorInfo::unknown(String::new())
        };
        c.notes = notes;
        c.advice = advice(&c);
        return c;
    };
    let exists = match Arn::parse(&arn) {
        Ok(a) => match s.entity_exists(&a).await {
            Ok(x) => x,
            Err(e) => {
                notes.push(format!("IAM lookup of the creator failed: {e}"));
                None
            }
        },
        Err(_) => None,
    };
    let mut c = CreatorInfo {
        status: CreatorStatus::Found,
        arn: Some(arn),
        evidence: Some(row.message.clone()),
        log_stream: row.stream.clone(),
        seen_at: row.timestamp_ms.map(timefmt::format_ms),
        source,
        exists,
        advice: String::new(),
        notes,
    };
    c.advice = advice(&c);
    c
}

/// `/aws/eks/<cluster>/cluster`.
pub fn log_group(cluster: &str) -> String {
    format!("/aws/eks/{cluster}/cluster")
}

/// The runbook's words for the creator's situation.
pub fn advice(c: &CreatorInfo) -> String {
    let arn = c.arn.as_deref().and_then(|a| Arn::parse(a).ok());
    match (c.status, &arn, c.exists) {
        (CreatorStatus::Found, Some(a), Some(false)) if a.is_sso_role() => format!(
            "The cluster creator {a} was an IAM Identity Center (SSO) role that no longer exists: it cannot be recreated with the same identity, so only AWS Support can restore access (open a support case for cluster access)."
        ),
        (CreatorStatus::Found, Some(a), Some(false)) => format!(
            "The cluster creator {a} no longer exists in IAM: recreate the same {} with the same name and path, then use it to restore access.",
            if a.kind() == PrincipalKind::User { "user" } else { "role" }
        ),
        (CreatorStatus::Found, Some(a), _) => format!(
            "The cluster creator {a} keeps access in CONFIG_MAP mode whatever aws-auth says: act as it to restore aws-auth."
        ),
        (CreatorStatus::NotFound, _, _) => "No kubernetes-admin line in the searched range: find the creator in CloudTrail (CreateCluster) or with the Logs Insights query over a longer range.".into(),
        _ => "The cluster creator is unknown (not looked up): run the Logs Insights query below to find it.".into(),
    }
}

/// The commands that use (or recreate) the creator.
pub fn commands(c: &CreatorInfo, cluster: &str, region: &str) -> Vec<Command> {
    let cmd = |d: &str, c: String| Command {
        description: d.to_string(),
        command: c,
    };
    let Some(a) = c.arn.as_deref().and_then(|a| Arn::parse(a).ok()) else {
        return Vec::new();
    };
    let (cluster, region) = (sh(cluster), sh(region));
    match (c.exists, a.kind()) {
        (Some(false), _) if a.is_sso_role() => vec![cmd(
            "The creator was an SSO role whose user or permission set was removed: open an AWS Support case (only AWS can restore access)",
            "aws support create-case --subject 'EKS cluster access lost: creator SSO role deleted' --service-code amazon-elastic-kubernetes-service --category-code other --communication-body 'Cluster creator role deleted; aws-auth cannot be restored'".into(),
        )],
        (Some(false), PrincipalKind::User) => vec![cmd(
            "Recreate the creator user with the same name and path, give it an access key, and use it",
            format!(
                "aws iam create-user --user-name {} --path {} && aws iam create-access-key --user-name {}",
                sh(a.name()),
                sh(a.path().map_or("/".to_string(), |p| format!("/{p}/")).as_str()),
                sh(a.name())
            ),
        )],
        (Some(false), _) => vec![cmd(
            "Recreate the creator role with the same name (and the path it had: assumed-role ARNs do not show it; CloudTrail CreateRole does) and a trust policy for whoever restores access",
            format!(
                "aws iam create-role --role-name {} --path / --assume-role-policy-document file://trust.json",
                sh(a.name())
            ),
        )],
        (_, PrincipalKind::Role) => vec![cmd(
            "Act as the cluster creator: a kubeconfig that assumes its role",
            format!(
                "aws eks update-kubeconfig --name {cluster} --region {region} --role-arn {} && kubectl get svc",
                sh(&a.to_string())
            ),
        )],
        _ => vec![cmd(
            "Act as the cluster creator: use the creator user's credentials (a profile holding its access key)",
            format!(
                "aws sts get-caller-identity --profile creator && aws eks update-kubeconfig --name {cluster} --region {region} --profile creator && kubectl get svc"
            ),
        )],
    }
}

/// Whether a ticket for this finding should name the creator (see the module docs).
pub fn needed(f: &Finding, refinement: Option<&Refinement>, facts: &Facts) -> bool {
    f.cluster.is_some()
        && (f.outcome == Outcome::ConfigError
            || matches!(
                refinement,
                Some(Refinement::AwsAuthBroken { .. } | Refinement::MappingInvalid { .. })
            )
            || facts.actor.as_ref().and_then(|a| a.may_update_aws_auth) == Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const ADMIN: &str = r#"time="2024-05-01T10:00:00Z" level=info msg="access granted" arn="arn:aws:iam::111122223333:user/ops/admin" client="10.0.0.1:1" groups="[system:masters]" method=POST path=/authenticate uid="aws-iam-authenticator:111122223333:AIDAX" username=kubernetes-admin"#;
    const BOB: &str =
        r#"level=info msg="access granted" arn="arn:aws:iam::111122223333:role/bob" username=bob"#;

    fn row(stream: &str, ts: i64, m: &str) -> LogRow {
        LogRow {
            stream: Some(stream.into()),
            timestamp_ms: Some(ts),
            message: m.into(),
        }
    }

    struct Fake {
        insights: Result<Vec<LogRow>, String>,
        filter: Result<Vec<LogRow>, String>,
        exists: Option<bool>,
        calls: Mutex<Vec<&'static str>>,
    }

    impl LogSearch for Fake {
        async fn insights(
            &self,
            _: &str,
            q: &str,
            _: i64,
            _: i64,
            _: std::time::Instant,
        ) -> Result<Vec<LogRow>, String> {
            assert!(q.contains("username=kubernetes-admin"));
            self.calls.lock().unwrap().push("insights");
            self.insights.clone()
        }
        async fn filter(
            &self,
            g: &str,
            p: &str,
            _: &str,
            _: i64,
            _: i64,
            _: std::time::Instant,
        ) -> Result<Vec<LogRow>, String> {
            assert_eq!((g, p), ("/aws/eks/prod/cluster", FILTER_PATTERN));
            self.calls.lock().unwrap().push("filter");
            self.filter.clone()
        }
        async fn entity_exists(&self, _: &Arn) -> Result<Option<bool>, String> {
            Ok(self.exists)
        }
    }

    fn run(f: &Fake) -> CreatorInfo {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(find_creator(
                f,
                "prod",
                &CreatorConfig::default(),
                1_800_000_000_000,
            ))
    }

    #[test]
    fn insights_answer_is_used_when_it_matches() {
        let f = Fake {
            insights: Ok(vec![row("authenticator-abc", 5, ADMIN)]),
            filter: Err("must not be called".into()),
            exists: Some(true),
            calls: Mutex::default(),
        };
        let c = run(&f);
        assert_eq!(c.status, CreatorStatus::Found);
        assert_eq!(c.source, CreatorSource::Insights);
        assert_eq!(
            c.arn.as_deref(),
            Some("arn:aws:iam::111122223333:user/ops/admin")
        );
        assert_eq!(*f.calls.lock().unwrap(), vec!["insights"]);
        assert!(c.advice.contains("keeps access"), "{}", c.advice);
    }

    #[test]
    fn unfiltered_or_failed_insights_falls_back() {
        for insights in [
            Ok(vec![
                row("authenticator-abc", 5, ADMIN),
                row("authenticator-abc", 6, BOB),
            ]),
            Err("MalformedQueryException".to_string()),
            Ok(vec![]),
        ] {
            let f = Fake {
                insights,
                filter: Ok(vec![
                    row("kube-apiserver-1", 9, "username=kubernetes-admin elsewhere"),
                    row("authenticator-abc", 5, ADMIN),
                ]),
                exists: Some(false),
                calls: Mutex::default(),
            };
            let c = run(&f);
            assert_eq!(c.source, CreatorSource::FilterLogEvents, "{c:?}");
            assert_eq!(*f.calls.lock().unwrap(), vec!["insights", "filter"]);
            assert_eq!(c.exists, Some(false));
            assert!(c
                .advice
                .contains("recreate the same user with the same name and path"));
            let cmds = commands(&c, "prod", "eu-west-1");
            assert!(cmds[0]
                .command
                .contains("aws iam create-user --user-name admin --path /ops/"));
        }
    }

    #[test]
    fn which_tickets_need_the_creator() {
        use crate::diagnosis::{Aggregator, Origin};
        use crate::facts::ActorFacts;
        let origin = Origin {
            cluster: Some("prod".into()),
            ..Origin::default()
        };
        let mut agg = Aggregator::new();
        agg.add(
            &origin,
            Some("1"),
            Some(0),
            BOB.replace("access granted", "access denied")
                .replace("username=bob", "error=\"ARN is not mapped\"")
                .as_str(),
        );
        agg.add(
            &origin,
            Some("2"),
            Some(0),
            r#"level=error msg="Errors parsing configmap: [x]""#,
        );
        let (f, _) = agg.finish();
        let facts = Facts::default();
        assert!(!needed(&f[0], None, &facts), "a plain not_mapped denial");
        assert!(needed(&f[1], None, &facts), "config_error");
        let broken = Refinement::AwsAuthBroken { detail: "x".into() };
        assert!(needed(&f[0], Some(&broken), &facts));
        let unprivileged = Facts {
            actor: Some(ActorFacts {
                arn: None,
                role_assumed: false,
                may_update_aws_auth: Some(false),
                reason: None,
            }),
            ..Facts::default()
        };
        assert!(
            needed(&f[0], None, &unprivileged),
            "the function may not act"
        );
    }

    #[test]
    fn deleted_sso_creator_needs_support_and_nothing_found_is_not_found() {
        let sso = ADMIN.replace(
            "user/ops/admin",
            "role/AWSReservedSSO_Admin_0123456789abcdef",
        );
        let f = Fake {
            insights: Ok(vec![row("authenticator-a", 1, &sso)]),
            filter: Ok(vec![]),
            exists: Some(false),
            calls: Mutex::default(),
        };
        let c = run(&f);
        assert!(c.advice.contains("only AWS Support"), "{}", c.advice);
        let f = Fake {
            insights: Ok(vec![]),
            filter: Ok(vec![row("authenticator-a", 1, BOB)]),
            exists: None,
            calls: Mutex::default(),
        };
        let c = run(&f);
        assert_eq!(c.status, CreatorStatus::NotFound);
        assert!(c.arn.is_none());
    }
}
