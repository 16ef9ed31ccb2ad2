//! Ticket sinks and delivery: every ticket opened goes to every configured sink (SNS,
//! EventBridge, an HTTPS webhook) exactly once per suppression window.
//!
//! The [`Dispatcher`] asks the suppression store ([`crate::suppress`]) whether each ticket opens,
//! is a retry of the delivery that opened it, or is counted against an open one; then delivers to
//! the sinks that do not have it yet and records each success. A failed sink leaves the ticket in
//! the response and the log, and the [`DeliveryReport`] says which sink failed for which ticket so
//! the handler can fail the invocation (`Retryable.TicketDelivery`); the retry delivers only to the
//! sinks that failed.

pub mod eventbridge;
pub mod sns;
pub mod webhook;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use serde::Serialize;

use crate::policy::Tickets;
use crate::suppress::{self, BoxFuture, Store, Verdict};
use crate::ticket::Ticket;

/// Why a sink did not take a ticket.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error("PutEvents rejected the entry: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error("webhook answered HTTP {status} after {attempts} attempt(s)")]
    Status { status: u16, attempts: u32 },
    #[error("webhook request failed after {attempts} attempt(s): {message}")]
    Transport { attempts: u32, message: String },
    #[error("webhook secret unavailable: {0}")]
    Secret(String),
}

/// What a sink gets: the ticket, its JSON (the exact bytes sent) and the window it was opened in.
pub struct Outgoing<'a> {
    pub ticket: &'a Ticket,
    pub json: &'a str,
    /// When the ticket's suppression window opened (epoch seconds): with the ticket id, an
    /// idempotency key for receivers.
    pub opened_at: i64,
}

/// One destination for tickets.
pub trait Sink: Send + Sync {
    /// `sns`, `eventbridge`, `webhook`: recorded in the suppression item and the response.
    fn name(&self) -> &'static str;
    /// Delivers one ticket.
    fn deliver<'a>(&'a self, out: &'a Outgoing<'a>) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Where suppression state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// The DynamoDB table: across invocations.
    Dynamodb,
    /// Within this invocation only (`EKS_AUTH_SUPPRESSION_TABLE` is not set).
    Invocation,
}

/// The outcome of one sink for one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkStatus {
    Delivered,
    Failed,
    /// The sink already had this window's ticket (a retry after a partial failure).
    Skipped,
}

/// One sink, one ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkReport {
    pub sink: &'static str,
    pub ticket_id: String,
    pub status: SinkStatus,
    pub error: Option<String>,
}

/// What became of one ticket in one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// This delivery opened it: delivered to every sink.
    Opened,
    /// A retry of the delivery that opened it: delivered to the sinks that did not have it.
    Reopened,
    /// Open already (or twice in this invocation): counted, not delivered.
    Suppressed,
    /// This delivery was counted before (a redelivered batch): nothing changed.
    Duplicate,
    /// The suppression store failed: not delivered (a retry will).
    Error,
}

impl From<Verdict> for TicketStatus {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Opened => TicketStatus::Opened,
            Verdict::Reopened => TicketStatus::Reopened,
            Verdict::Suppressed => TicketStatus::Suppressed,
            Verdict::Duplicate => TicketStatus::Duplicate,
        }
    }
}

/// One ticket's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketReport {
    pub ticket_id: String,
    pub status: TicketStatus,
    /// Occurrences counted in the current window (with the store), else this invocation's count.
    pub occurrences: u64,
    /// When the window opened (epoch seconds), when known.
    pub opened_at: Option<i64>,
    pub error: Option<String>,
}

/// The `delivery` object of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// False for `--offline`, `eks-auth plan` and tests without a dispatcher: nothing was
    /// delivered or recorded; `note` says why.
    pub enabled: bool,
    pub suppression: Suppression,
    pub table: Option<String>,
    pub window_seconds: u64,
    /// Tickets opened (delivered to the sinks) by this invocation, retries of its own delivery
    /// included.
    pub opened: usize,
    /// Tickets already open: counted, not delivered.
    pub suppressed: usize,
    /// Sink deliveries that failed.
    pub sink_failures: usize,
    /// Tickets the suppression store could not decide on (not delivered).
    pub store_failures: usize,
    pub tickets: Vec<TicketReport>,
    pub sinks: Vec<SinkReport>,
    pub note: Option<String>,
}

impl DeliveryReport {
    /// A report for an invocation that delivers nothing.
    pub fn disabled(note: impl Into<String>) -> Self {
        DeliveryReport {
            enabled: false,
            suppression: Suppression::Invocation,
            table: None,
            window_seconds: 0,
            opened: 0,
            suppressed: 0,
            sink_failures: 0,
            store_failures: 0,
            tickets: Vec::new(),
            sinks: Vec::new(),
            note: Some(note.into()),
        }
    }

    /// True when a retry could deliver something that failed.
    pub fn failed(&self) -> bool {
        self.sink_failures > 0 || self.store_failures > 0
    }

    /// `webhook for EAR-x: error; store for EAR-y: error`, for the invocation's error message.
    pub fn failure_summary(&self) -> String {
        let sinks = self
            .sinks
            .iter()
            .filter(|s| s.status == SinkStatus::Failed)
            .map(|s| {
                format!(
                    "{} for {}: {}",
                    s.sink,
                    s.ticket_id,
                    s.error.as_deref().unwrap_or("")
                )
            });
        let store = self
            .tickets
            .iter()
            .filter(|t| t.status == TicketStatus::Error)
            .map(|t| {
                format!(
                    "suppression store for {}: {}",
                    t.ticket_id,
                    t.error.as_deref().unwrap_or("")
                )
            });
        sinks.chain(store).collect::<Vec<_>>().join("; ")
    }
}

/// Whether an invocation delivers tickets.
pub enum Delivery {
    /// Nothing is delivered or recorded; the reason goes into the response.
    Disabled(String),
    Enabled(Dispatcher),
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery::Disabled("no ticket delivery configured".into())
    }
}

impl Delivery {
    /// Delivers one decoded event's tickets (or reports why not).
    pub async fn run(&self, decoded: &crate::event::Decoded, tickets: &[Ticket]) -> DeliveryReport {
        match self {
            Delivery::Disabled(why) => DeliveryReport::disabled(why.clone()),
            Delivery::Enabled(d) => {
                d.dispatch(tickets, &suppress::delivery_digest(decoded))
                    .await
            }
        }
    }
}

/// The delivery of the Lambda function and `eks-auth invoke`: the policy's sinks (none without a
/// policy) and the table in `EKS_AUTH_SUPPRESSION_TABLE`, on the function's own credentials.
///
/// # Errors
/// [`SetupError`] as [`Dispatcher::from_policy`], or no AWS region.
pub async fn delivery_from_env(
    policy: Option<&crate::policy::Policy>,
    region: Option<&str>,
) -> Result<Delivery, SetupError> {
    let table = std::env::var(suppress::ENV_TABLE)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let default = Tickets::default();
    let tickets = policy.map_or(&default, |p| p.tickets());
    let config = crate::aws::load(region).await?;
    Dispatcher::from_policy(&config, tickets, table).map(Delivery::Enabled)
}

/// Delivers tickets to the sinks, once per suppression window.
pub struct Dispatcher {
    sinks: Vec<Box<dyn Sink>>,
    store: Option<Box<dyn Store>>,
    window: Duration,
}

/// Why the sinks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("webhook secret: environment variable {0} is not set or empty")]
    SecretEnv(String),
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("cannot set up AWS for ticket delivery")]
    Aws(#[from] crate::aws::AwsError),
}

impl Dispatcher {
    /// A dispatcher over these sinks; without a store, suppression is per invocation.
    pub fn new(sinks: Vec<Box<dyn Sink>>, store: Option<Box<dyn Store>>, window: Duration) -> Self {
        Dispatcher {
            sinks,
            store,
            window,
        }
    }

    /// The sinks of the policy's `tickets` section, on `config` (the function's own credentials),
    /// with the DynamoDB table `table` when given.
    ///
    /// # Errors
    /// [`SetupError`] when the webhook secret's variable is unset or the TLS roots cannot load.
    pub fn from_policy(
        config: &SdkConfig,
        tickets: &Tickets,
        table: Option<String>,
    ) -> Result<Self, SetupError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(s) = &tickets.sns {
            sinks.push(Box::new(sns::SnsSink::new(
                aws_sdk_sns::Client::new(config),
                s.topic_arn.clone(),
            )));
        }
        if let Some(e) = &tickets.eventbridge {
            sinks.push(Box::new(eventbridge::EventBridgeSink::new(
                aws_sdk_eventbridge::Client::new(config),
                e.event_bus.clone(),
            )));
        }
        if let Some(w) = &tickets.webhook {
            sinks.push(Box::new(webhook::WebhookSink::from_config(w, config)?));
        }
        let store = table.map(|t| {
            Box::new(suppress::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(config),
                t,
            )) as Box<dyn Store>
        });
        Ok(Dispatcher::new(sinks, store, tickets.suppression_window))
    }

    /// The sink names, in delivery order.
    pub fn sink_names(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|s| s.name()).collect()
    }

    /// Decides and delivers every ticket of one delivery (`digest`, see
    /// [`suppress::delivery_digest`]).
    pub async fn dispatch(&self, tickets: &[Ticket], digest: &str) -> DeliveryReport {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.dispatch_at(tickets, digest, now).await
    }

    /// As [`Dispatcher::dispatch`] at a given time (epoch seconds).
    pub async fn dispatch_at(&self, tickets: &[Ticket], digest: &str, now: i64) -> DeliveryReport {
        let mut report = DeliveryReport {
            enabled: true,
            suppression: if self.store.is_some() {
                Suppression::Dynamodb
            } else {
                Suppression::Invocation
            },
            table: self.store.as_ref().map(|s| s.name().to_string()),
            window_seconds: self.window.as_secs(),
            opened: 0,
            suppressed: 0,
            sink_failures: 0,
            store_failures: 0,
            tickets: Vec::with_capacity(tickets.len()),
            sinks: Vec::new(),
            note: match (&self.store, self.sinks.is_empty()) {
                (None, true) => Some(format!("no sinks configured (policy tickets.sinks) and {} is not set: tickets are only in the response and the log", suppress::ENV_TABLE)),
                (None, false) => Some(format!("{} is not set: tickets are suppressed within this invocation only", suppress::ENV_TABLE)),
                (Some(_), true) => Some("no sinks configured (policy tickets.sinks): tickets are counted but only in the response and the log".into()),
                (Some(_), false) => None,
            },
        };
        let mut seen = HashSet::new();
        // A sink that failed is not tried again in this invocation (its retries already waited):
        // the remaining tickets are reported failed for it and the retry delivers them.
        let mut down: HashSet<&'static str> = HashSet::new();
        for t in tickets {
            if !seen.insert(t.id.as_str()) {
                report.suppressed += 1;
                report.tickets.push(TicketReport {
                    ticket_id: t.id.clone(),
                    status: TicketStatus::Suppressed,
                    occurrences: t.evidence.count,
                    opened_at: None,
                    error: None,
                });
                continue;
            }
            let (verdict, opened_at, occurrences, delivered) = match &self.store {
                None => (Verdict::Opened, now, t.evidence.count, Default::default()),
                Some(store) => {
                    match suppress::record(
                        store.as_ref(),
                        &t.id,
                        digest,
                        t.evidence.count,
                        now,
                        self.window,
                    )
                    .await
                    {
                        Ok((v, s)) => (v, s.opened_at, s.occurrences, s.delivered),
                        Err(e) => {
                            tracing::error!(ticket_id = %t.id, error = %e, "suppression store failed; the ticket is not delivered");
                            report.store_failures += 1;
                            report.tickets.push(TicketReport {
                                ticket_id: t.id.clone(),
                                status: TicketStatus::Error,
                                occurrences: t.evidence.count,
                                opened_at: None,
                                error: Some(crate::handler::format_chain(&e)),
                            });
                            continue;
                        }
                    }
                }
            };
            let status = TicketStatus::from(verdict);
            report.tickets.push(TicketReport {
                ticket_id: t.id.clone(),
                status,
                occurrences,
                opened_at: Some(opened_at),
                error: None,
            });
            tracing::info!(ticket_id = %t.id, status = ?status, occurrences, "ticket suppression");
            if !matches!(verdict, Verdict::Opened | Verdict::Reopened) {
                report.suppressed += 1;
                continue;
            }
            report.opened += 1;
            let json = serde_json::to_string(t).unwrap_or_default();
            let out = Outgoing {
                ticket: t,
                json: &json,
                opened_at,
            };
            for sink in &self.sinks {
                let name = sink.name();
                if delivered.contains(name) {
                    report.sinks.push(SinkReport {
                        sink: name,
                        ticket_id: t.id.clone(),
                        status: SinkStatus::Skipped,
                        error: None,
                    });
                    continue;
                }
                if down.contains(name) {
                    report.sink_failures += 1;
                    report.sinks.push(SinkReport {
                        sink: name,
                        ticket_id: t.id.clone(),
                        status: SinkStatus::Failed,
                        error: Some(format!(
                            "not tried: {name} failed earlier in this invocation"
                        )),
                    });
                    continue;
                }
                match sink.deliver(&out).await {
                    Ok(()) => {
                        tracing::info!(ticket_id = %t.id, sink = name, "ticket delivered");
                        let mut error = None;
                        if let Some(store) = &self.store {
                            if let Err(e) = store
                                .mark_delivered(&suppress::pk(&t.id), opened_at, name)
                                .await
                            {
                                // Not a failure of the invocation: a retry would deliver again.
                                tracing::warn!(ticket_id = %t.id, sink = name, error = %e, "delivered, but recording the delivery failed");
                                error = Some(format!(
                                    "delivered, but recording it failed: {}",
                                    crate::handler::format_chain(&e)
                                ));
                            }
                        }
                        report.sinks.push(SinkReport {
                            sink: name,
                            ticket_id: t.id.clone(),
                            status: SinkStatus::Delivered,
                            error,
                        });
                    }
                    Err(e) => {
                        let error = crate::handler::format_chain(&e);
                        tracing::error!(ticket_id = %t.id, sink = name, error = %error, "ticket delivery failed");
                        report.sink_failures += 1;
                        down.insert(name);
                        report.sinks.push(SinkReport {
                            sink: name,
                            ticket_id: t.id.clone(),
                            status: SinkStatus::Failed,
                            error: Some(error),
                        });
                    }
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records deliveries; fails while `down` is set.
    #[derive(Clone, Default)]
    struct Fake {
        name: &'static str,
        got: Arc<Mutex<Vec<String>>>,
        down: Arc<Mutex<bool>>,
        tries: Arc<Mutex<usize>>,
    }

    impl Sink for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn deliver<'a>(&'a self, out: &'a Outgoing<'a>) -> BoxFuture<'a, Result<(), SinkError>> {
            Box::pin(async move {
                *self.tries.lock().unwrap() += 1;
                if *self.down.lock().unwrap() {
                    return Err(SinkError::Status {
                        status: 500,
                        attempts: 1,
                    });
                }
                self.got.lock().unwrap().push(out.ticket.id.clone());
                Ok(())
            })
        }
    }

    fn ticket(id: &str) -> Ticket {
        let line = format!(
            r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:iam::111122223333:user/{id}" error="ARN is not mapped""#
        );
        let mut agg = crate::diagnosis::Aggregator::new();
        agg.add(&Default::default(), None, None, &line);
        let (f, _) = agg.finish();
        crate::ticket::build(&f[0])
    }

    #[tokio::test]
    async fn retry_after_a_partial_failure_delivers_only_where_it_failed() {
        let a = Fake {
            name: "a",
            ..Default::default()
        };
        let b = Fake {
            name: "b",
            ..Default::default()
        };
        *b.down.lock().unwrap() = true;
        let d = Dispatcher::new(
            vec![Box::new(a.clone()), Box::new(b.clone())],
            Some(Box::new(suppress::MemoryStore::default())),
            Duration::from_secs(3600),
        );
        let t = [ticket("alice")];
        let r = d.dispatch_at(&t, "d1", 100).await;
        assert_eq!((r.opened, r.sink_failures), (1, 1));
        assert!(r.failed());
        assert!(
            r.failure_summary().starts_with("b for EAR-"),
            "{}",
            r.failure_summary()
        );
        *b.down.lock().unwrap() = false;
        let r = d.dispatch_at(&t, "d1", 101).await;
        assert_eq!(
            (r.opened, r.sink_failures, r.tickets[0].status),
            (1, 0, TicketStatus::Reopened)
        );
        assert_eq!(r.sinks[0].status, SinkStatus::Skipped);
        assert_eq!(r.sinks[1].status, SinkStatus::Delivered);
        // Another batch is counted, delivered nowhere.
        let r = d.dispatch_at(&t, "d2", 102).await;
        assert_eq!(
            (r.opened, r.suppressed, r.tickets[0].occurrences),
            (0, 1, 2)
        );
        assert_eq!(a.got.lock().unwrap().len(), 1);
        assert_eq!(b.got.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_sink_that_failed_is_not_tried_again_in_the_invocation() {
        let a = Fake {
            name: "a",
            ..Default::default()
        };
        *a.down.lock().unwrap() = true;
        let d = Dispatcher::new(vec![Box::new(a.clone())], None, Duration::from_secs(60));
        let r = d
            .dispatch_at(&[ticket("p"), ticket("q"), ticket("r")], "x", 0)
            .await;
        assert_eq!((r.opened, r.sink_failures), (3, 3));
        assert_eq!(*a.tries.lock().unwrap(), 1);
        assert!(r.sinks[2]
            .error
            .as_deref()
            .unwrap()
            .starts_with("not tried"));
    }

    #[tokio::test]
    async fn without_a_store_the_same_id_opens_once_per_invocation() {
        let a = Fake {
            name: "a",
            ..Default::default()
        };
        let d = Dispatcher::new(vec![Box::new(a.clone())], None, Duration::from_secs(60));
        let t = [ticket("bob"), ticket("bob")];
        let r = d.dispatch_at(&t, "x", 0).await;
        assert_eq!((r.opened, r.suppressed), (1, 1));
        assert_eq!(r.suppression, Suppression::Invocation);
        assert!(r.note.unwrap().contains("EKS_AUTH_SUPPRESSION_TABLE"));
        assert_eq!(a.got.lock().unwrap().len(), 1);
    }
}
