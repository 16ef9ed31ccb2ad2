//! [`LogSearch`] over CloudWatch Logs (StartQuery/GetQueryResults, FilterLogEvents) and IAM
//! (GetRole/GetUser), with the creator cached per cluster for the container's life.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::arn::{Arn, PrincipalKind};
use crate::creator::{self, CreatorConfig, CreatorInfo, CreatorStatus, LogRow, LogSearch};

/// A found creator is cached for the container's life (a cluster's creator never changes) but
/// its IAM existence is re-checked after this long; a failed or empty search is retried after it.
pub const RECHECK: Duration = Duration::from_secs(300);

/// CloudWatch Logs + IAM clients for the creator lookup.
pub struct AwsLogSearch {
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub iam: aws_sdk_iam::Client,
    /// How often GetQueryResults is polled.
    pub poll: Duration,
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::handler::format_chain(e)
}

impl LogSearch for AwsLogSearch {
    async fn insights(
        &self,
        log_group: &str,
        query: &str,
        start_s: i64,
        end_s: i64,
        deadline: Instant,
    ) -> Result<Vec<LogRow>, String> {
        use aws_sdk_cloudwatchlogs::types::QueryStatus;
        let started = self
            .logs
            .start_query()
            .log_group_name(log_group)
            .query_string(query)
            .start_time(start_s)
            .end_time(end_s)
            .limit(50)
            .send()
            .await
            .map_err(|e| chain(&e))?;
        let id = started.query_id.ok_or("StartQuery returned no queryId")?;
        loop {
            let r = self
                .logs
                .get_query_results()
                .query_id(&id)
                .send()
                .await
                .map_err(|e| chain(&e))?;
            match r.status {
                Some(QueryStatus::Complete) => {
                    return Ok(r
                        .results
                        .unwrap_or_default()
                        .into_iter()
                        .map(|fields| {
                            let mut row = LogRow::default();
                            for f in fields {
                                let v = f.value.unwrap_or_default();
                                match f.field.as_deref() {
                                    Some("@message") => row.message = v,
                                    Some("@logStream") => row.stream = Some(v),
                                    Some("@timestamp") => row.timestamp_ms = insights_time(&v),
                                    _ => {}
                                }
                            }
                            row
                        })
                        .collect())
                }
                Some(QueryStatus::Running | QueryStatus::Scheduled) | None => {}
                Some(other) => return Err(format!("query {id} ended {}", other.as_str())),
            }
            if Instant::now() + self.poll > deadline {
                let _ = self.logs.stop_query().query_id(&id).send().await;
                return Err(format!("query {id} did not complete before the deadline"));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn filter(
        &self,
        log_group: &str,
        pattern: &str,
        stream_prefix: &str,
        start_ms: i64,
        end_ms: i64,
        deadline: Instant,
    ) -> Result<Vec<LogRow>, String> {
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..100 {
            let r = self
                .logs
                .filter_log_events()
                .log_group_name(log_group)
                .log_stream_name_prefix(stream_prefix)
                .filter_pattern(pattern)
                .start_time(start_ms)
                .end_time(end_ms)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| chain(&e))?;
            rows.extend(r.events.unwrap_or_default().into_iter().map(|e| LogRow {
                stream: e.log_stream_name,
                timestamp_ms: e.timestamp,
                message: e.message.unwrap_or_default(),
            }));
            token = r.next_token;
            if token.is_none() || Instant::now() > deadline {
                break;
            }
        }
        Ok(rows)
    }

    async fn entity_exists(&self, arn: &Arn) -> Result<Option<bool>, String> {
        if !matches!(arn.kind(), PrincipalKind::Role | PrincipalKind::User) {
            return Ok(None);
        }
        crate::aws::iam_entity(&self.iam, arn)
            .await
            .map(|e| Some(e.is_some()))
    }
}

/// `2024-05-01 10:00:00.000` (AWS) or epoch milliseconds (moto).
fn insights_time(v: &str) -> Option<i64> {
    v.parse::<i64>()
        .ok()
        .or_else(|| crate::timefmt::parse_ms(&v.replacen(' ', "T", 1)))
        .or_else(|| crate::timefmt::parse_ms(&format!("{}Z", v.replacen(' ', "T", 1))))
}

/// The creator lookup with its per-cluster cache.
pub struct CreatorCache {
    pub search: AwsLogSearch,
    pub config: CreatorConfig,
    cache: tokio::sync::Mutex<HashMap<String, (Instant, CreatorInfo)>>,
}

impl CreatorCache {
    pub fn new(search: AwsLogSearch, config: CreatorConfig) -> CreatorCache {
        CreatorCache {
            search,
            config,
            cache: tokio::sync::Mutex::default(),
        }
    }

    /// Authenticator lines of `cluster` matching `pattern` since `since_ms` (FilterLogEvents,
    /// bounded by the creator lookup's deadline).
    pub async fn log_lines(
        &self,
        cluster: &str,
        pattern: &str,
        since_ms: i64,
    ) -> Result<Vec<(Option<i64>, String)>, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let deadline = Instant::now() + Duration::from_secs(self.config.timeout_secs);
        let rows = self
            .search
            .filter(
                &creator::log_group(cluster),
                pattern,
                creator::STREAM_PREFIX,
                since_ms,
                now + 1000,
                deadline,
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                r.stream
                    .as_deref()
                    .is_none_or(|s| s.contains(creator::STREAM_PREFIX))
            })
            .map(|r| (r.timestamp_ms, r.message))
            .collect())
    }

    /// The creator of `cluster`, from the cache when fresh.
    pub async fn creator(&self, cluster: &str) -> CreatorInfo {
        let cached = self.cache.lock().await.get(cluster).cloned();
        let info = match cached {
            Some((at, c)) if at.elapsed() < RECHECK => return c,
            // The creator is known: only its existence can have changed.
            Some((_, mut c)) if c.status == CreatorStatus::Found => {
                if let Some(a) = c.arn.as_deref().and_then(|a| Arn::parse(a).ok()) {
                    if let Ok(x) = self.search.entity_exists(&a).await {
                        c.exists = x;
                    }
                }
                c.advice = creator::advice(&c);
                c
            }
            _ => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                creator::find_creator(&self.search, cluster, &self.config, now).await
            }
        };
        tracing::info!(
            cluster,
            status = ?info.status,
            source = ?info.source,
            exists = ?info.exists,
            "cluster creator"
        );
        self.cache
            .lock()
            .await
            .insert(cluster.to_string(), (Instant::now(), info.clone()));
        info
    }
}
