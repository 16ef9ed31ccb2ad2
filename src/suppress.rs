//! Suppression across invocations: a ticket id is opened once per suppression window; later
//! occurrences only raise a counter. State lives in a DynamoDB table (`EKS_AUTH_SUPPRESSION_TABLE`)
//! shared with other writers, so this module owns only the items whose `pk` is `ticket#<id>`.
//!
//! Item (table key `pk` String, TTL attribute `expires_at` epoch seconds):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `ticket#<ticket id>` |
//! | `ticket_id` | S | the ticket id |
//! | `opened_at` | N | when the current window opened (epoch seconds) |
//! | `expires_at` | N | `opened_at` + window; TTL deletes the item later, reads treat it as gone at once |
//! | `occurrences` | N | denials counted in this window (the findings' `count`s) |
//! | `opened_by` | S | digest of the delivery (event) that opened the window |
//! | `deliveries` | L of S | digests of the deliveries already counted (last [`MAX_DELIVERIES`]) |
//! | `delivered` | SS | sinks that have this window's ticket |
//! | `version` | N | optimistic-concurrency counter for open/count writes |
//!
//! Every write is conditional: opening needs the item absent (or expired at the version read),
//! counting needs the version read; the loser reads again and decides again. A delivery whose digest
//! is already in `deliveries` (a Lambda retry, a redelivered batch) is never counted twice; when it
//! is the delivery that opened the window, the sinks missing from `delivered` get the ticket.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::event::Decoded;

/// Environment variable naming the DynamoDB table.
pub const ENV_TABLE: &str = "EKS_AUTH_SUPPRESSION_TABLE";
/// Delivery digests kept per item: enough for every retry of recent deliveries, bounded size.
pub const MAX_DELIVERIES: usize = 64;
/// Read-decide-write rounds before a contended item is reported as an error.
const MAX_ROUNDS: usize = 8;

/// A boxed future, for the object-safe traits at the edge.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store's view of one ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketState {
    pub opened_at: i64,
    pub expires_at: i64,
    pub occurrences: u64,
    pub opened_by: String,
    pub deliveries: Vec<String>,
    pub delivered: BTreeSet<String>,
    pub version: u64,
}

/// What the store says about one ticket in one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// This delivery opened the ticket: every sink gets it.
    Opened,
    /// This delivery opened the ticket before (a retry): the sinks that do not have it get it.
    Reopened,
    /// Open already: counted.
    Suppressed,
    /// Open already and this delivery was counted before: nothing changes.
    Duplicate,
}

/// The write a decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// None: the verdict stands as read.
    Nothing,
    /// Create the item; `replacing` is the version of an expired item to overwrite.
    Open {
        state: TicketState,
        replacing: Option<u64>,
    },
    /// Count this delivery, if the item is still at `expect_version`.
    Count {
        expect_version: u64,
        add: u64,
        deliveries: Vec<String>,
    },
}

/// What a delivery does to a ticket: the verdict, the write it needs and the state after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub write: Write,
    pub after: TicketState,
}

/// Decides (pure) what a delivery of `count` occurrences with `digest` does to a ticket.
pub fn decide(
    existing: Option<&TicketState>,
    digest: &str,
    count: u64,
    now: i64,
    window: Duration,
) -> Decision {
    let live = existing.filter(|s| s.expires_at > now);
    match live {
        None => {
            let state = TicketState {
                opened_at: now,
                expires_at: now.saturating_add(window.as_secs() as i64),
                occurrences: count,
                opened_by: digest.to_string(),
                deliveries: vec![digest.to_string()],
                delivered: BTreeSet::new(),
                version: existing.map_or(0, |s| s.version + 1),
            };
            Decision {
                verdict: Verdict::Opened,
                write: Write::Open {
                    state: state.clone(),
                    replacing: existing.map(|s| s.version),
                },
                after: state,
            }
        }
        Some(s) if s.opened_by == digest => Decision {
            verdict: Verdict::Reopened,
            write: Write::Nothing,
            after: s.clone(),
        },
        Some(s) if s.deliveries.iter().any(|d| d == digest) => Decision {
            verdict: Verdict::Duplicate,
            write: Write::Nothing,
            after: s.clone(),
        },
        Some(s) => {
            let mut deliveries = s.deliveries.clone();
            deliveries.push(digest.to_string());
            let excess = deliveries.len().saturating_sub(MAX_DELIVERIES);
            deliveries.drain(..excess);
            let mut after = s.clone();
            after.occurrences += count;
            after.deliveries.clone_from(&deliveries);
            after.version += 1;
            Decision {
                verdict: Verdict::Suppressed,
                write: Write::Count {
                    expect_version: s.version,
                    add: count,
                    deliveries,
                },
                after,
            }
        }
    }
}

/// A digest of one delivery: the log event ids of every batch (or, for events without ids, their
/// time and text). A redelivered batch has the same digest; another batch has another.
pub fn delivery_digest(decoded: &Decoded) -> String {
    let mut h = Sha256::new();
    for b in &decoded.batches {
        for part in [&b.origin.log_group, &b.origin.log_stream] {
            h.update(part.as_deref().unwrap_or("").as_bytes());
            h.update([0]);
        }
        for ev in &b.events {
            match &ev.id {
                Some(id) => h.update(id.as_bytes()),
                None => {
                    h.update(ev.timestamp.unwrap_or(0).to_le_bytes());
                    h.update(ev.message().as_bytes());
                }
            }
            h.update([0]);
        }
        h.update([1]);
    }
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb:{operation} on {table} failed: {message}")]
    Aws {
        operation: &'static str,
        table: String,
        message: String,
    },
    #[error("item {pk} in {table} is malformed: {reason}")]
    Malformed {
        table: String,
        pk: String,
        reason: String,
    },
    #[error("item {pk} changed {MAX_ROUNDS} times while deciding; giving up")]
    Contended { pk: String },
}

/// The suppression state, behind a trait so the decision logic is tested without DynamoDB.
pub trait Store: Send + Sync {
    /// The table (or "memory"), for the response.
    fn name(&self) -> &str;
    /// Reads the item (strongly consistent).
    fn get<'a>(&'a self, pk: &'a str) -> BoxFuture<'a, Result<Option<TicketState>, StoreError>>;
    /// Applies `write` if its condition holds; false when another writer got there first.
    fn write<'a>(
        &'a self,
        pk: &'a str,
        ticket_id: &'a str,
        write: &'a Write,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Records that `sink` has the ticket of the window opened at `opened_at`.
    fn mark_delivered<'a>(
        &'a self,
        pk: &'a str,
        opened_at: i64,
        sink: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The item key for a ticket id.
pub fn pk(ticket_id: &str) -> String {
    format!("ticket#{ticket_id}")
}

/// Reads, decides and writes until the write holds. Returns the verdict and the state after it.
///
/// # Errors
/// [`StoreError`] from the store, or [`StoreError::Contended`].
pub async fn record(
    store: &dyn Store,
    ticket_id: &str,
    digest: &str,
    count: u64,
    now: i64,
    window: Duration,
) -> Result<(Verdict, TicketState), StoreError> {
    let key = pk(ticket_id);
    for _ in 0..MAX_ROUNDS {
        let existing = store.get(&key).await?;
        let d = decide(existing.as_ref(), digest, count, now, window);
        if store.write(&key, ticket_id, &d.write).await? {
            return Ok((d.verdict, d.after));
        }
    }
    Err(StoreError::Contended { pk: key })
}

// ---------------------------------------------------------------------------------------------
// In memory (one invocation, and tests)

/// A store in memory: suppression within one process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    items: std::sync::Mutex<std::collections::HashMap<String, TicketState>>,
}

impl Store for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    fn get<'a>(&'a self, pk: &'a str) -> BoxFuture<'a, Result<Option<TicketState>, StoreError>> {
        let v = self
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pk)
            .cloned();
        Box::pin(async move { Ok(v) })
    }

    fn write<'a>(
        &'a self,
        pk: &'a str,
        _ticket_id: &'a str,
        write: &'a Write,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let won = match write {
            Write::Nothing => true,
            Write::Open { state, replacing } => {
                if items.get(pk).map(|s| s.version) == *replacing {
                    items.insert(pk.to_string(), state.clone());
                    true
                } else {
                    false
                }
            }
            Write::Count {
                expect_version,
                add,
                deliveries,
            } => match items.get_mut(pk) {
                Some(s) if s.version == *expect_version => {
                    s.occurrences += add;
                    s.deliveries.clone_from(deliveries);
                    s.version += 1;
                    true
                }
                _ => false,
            },
        };
        Box::pin(async move { Ok(won) })
    }

    fn mark_delivered<'a>(
        &'a self,
        pk: &'a str,
        opened_at: i64,
        sink: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = items.get_mut(pk).filter(|s| s.opened_at == opened_at) {
            s.delivered.insert(sink.to_string());
        }
        Box::pin(async { Ok(()) })
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

/// The suppression table in DynamoDB.
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStore {
    /// A store on `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    fn aws_err(&self, operation: &'static str, e: impl std::error::Error) -> StoreError {
        StoreError::Aws {
            operation,
            table: self.table.clone(),
            message: crate::handler::format_chain(&e),
        }
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn strings(v: &[String]) -> AttributeValue {
    AttributeValue::L(v.iter().map(|d| s(d.clone())).collect())
}

fn parse_item(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<TicketState, String> {
    let num = |k: &str| -> Result<i64, String> {
        match item.get(k) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| format!("{k} is not a number")),
            _ => Err(format!("{k} is missing or not a number")),
        }
    };
    let list = |k: &str| -> Vec<String> {
        match item.get(k) {
            Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
            Some(AttributeValue::Ss(l)) => l.clone(),
            _ => Vec::new(),
        }
    };
    Ok(TicketState {
        opened_at: num("opened_at")?,
        expires_at: num("expires_at")?,
        occurrences: num("occurrences")?.max(0) as u64,
        opened_by: item
            .get("opened_by")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
        deliveries: list("deliveries"),
        delivered: list("delivered").into_iter().collect(),
        version: num("version")?.max(0) as u64,
    })
}

fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl Store for DynamoStore {
    fn name(&self) -> &str {
        &self.table
    }

    fn get<'a>(&'a self, pk: &'a str) -> BoxFuture<'a, Result<Option<TicketState>, StoreError>> {
        Box::pin(async move {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.aws_err("GetItem", e))?;
            match out.item {
                None => Ok(None),
                Some(item) => parse_item(&item)
                    .map(Some)
                    .map_err(|reason| StoreError::Malformed {
                        table: self.table.clone(),
                        pk: pk.to_string(),
                        reason,
                    }),
            }
        })
    }

    fn write<'a>(
        &'a self,
        pk: &'a str,
        ticket_id: &'a str,
        write: &'a Write,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            match write {
                Write::Nothing => Ok(true),
                Write::Open { state, replacing } => {
                    let mut req = self
                        .client
                        .put_item()
                        .table_name(&self.table)
                        .item("pk", s(pk))
                        .item("ticket_id", s(ticket_id))
                        .item("opened_at", n(state.opened_at))
                        .item("expires_at", n(state.expires_at))
                        .item("occurrences", n(state.occurrences))
                        .item("opened_by", s(state.opened_by.clone()))
                        .item("deliveries", strings(&state.deliveries))
                        .item("version", n(state.version));
                    req = match replacing {
                        None => req.condition_expression("attribute_not_exists(pk)"),
                        Some(v) => req
                            .condition_expression("version = :v")
                            .expression_attribute_values(":v", n(v)),
                    };
                    match req.send().await {
                        Ok(_) => Ok(true),
                        Err(e) if is_condition_failure(&e) => Ok(false),
                        Err(e) => Err(self.aws_err("PutItem", e)),
                    }
                }
                Write::Count {
                    expect_version,
                    add,
                    deliveries,
                } => {
                    let r = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(pk))
                        .update_expression(
                            "SET occurrences = occurrences + :add, deliveries = :d, version = version + :one",
                        )
                        .condition_expression("version = :v")
                        .expression_attribute_values(":add", n(add))
                        .expression_attribute_values(":d", strings(deliveries))
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":v", n(expect_version))
                        .send()
                        .await;
                    match r {
                        Ok(_) => Ok(true),
                        Err(e) if is_condition_failure(&e) => Ok(false),
                        Err(e) => Err(self.aws_err("UpdateItem", e)),
                    }
                }
            }
        })
    }

    fn mark_delivered<'a>(
        &'a self,
        pk: &'a str,
        opened_at: i64,
        sink: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .update_expression("ADD delivered :s")
                .condition_expression("opened_at = :o")
                .expression_attribute_values(":s", AttributeValue::Ss(vec![sink.to_string()]))
                .expression_attribute_values(":o", n(opened_at))
                .send()
                .await;
            match r {
                Ok(_) => Ok(()),
                // A new window opened meanwhile: this delivery belongs to the old one.
                Err(e) if is_condition_failure(&e) => Ok(()),
                Err(e) => Err(self.aws_err("UpdateItem", e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn first_delivery_opens_then_others_count_and_retries_do_not() {
        let d = decide(None, "a", 3, 1000, H);
        assert_eq!(d.verdict, Verdict::Opened);
        let Write::Open { state, replacing } = d.write else {
            panic!("{:?}", d.write)
        };
        assert_eq!(replacing, None);
        assert_eq!((state.expires_at, state.occurrences), (4600, 3));
        let d = decide(Some(&state), "a", 3, 1001, H);
        assert_eq!((d.verdict, &d.write), (Verdict::Reopened, &Write::Nothing));
        let d = decide(Some(&state), "b", 2, 1002, H);
        assert_eq!(d.verdict, Verdict::Suppressed);
        assert_eq!((d.after.occurrences, d.after.version), (5, 1));
        let w = d.write;
        assert!(
            matches!(w, Write::Count { expect_version: 0, add: 2, ref deliveries } if deliveries == &["a", "b"])
        );
        let mut counted = state.clone();
        counted.deliveries.push("b".into());
        assert_eq!(
            decide(Some(&counted), "b", 2, 1003, H).verdict,
            Verdict::Duplicate
        );
    }

    #[test]
    fn an_expired_item_is_replaced_at_its_version_even_before_ttl_deletes_it() {
        let old = TicketState {
            opened_at: 0,
            expires_at: 3600,
            version: 7,
            deliveries: vec!["a".into()],
            opened_by: "a".into(),
            ..Default::default()
        };
        let d = decide(Some(&old), "a", 1, 3600, H);
        assert_eq!(d.verdict, Verdict::Opened);
        let w = d.write;
        assert!(matches!(w, Write::Open { replacing: Some(7), ref state } if state.version == 8));
    }

    #[test]
    fn deliveries_are_bounded() {
        let st = TicketState {
            expires_at: i64::MAX,
            opened_by: "x".into(),
            deliveries: (0..MAX_DELIVERIES).map(|i| i.to_string()).collect(),
            ..Default::default()
        };
        let d = decide(Some(&st), "new", 1, 0, H);
        let Write::Count { deliveries, .. } = d.write else {
            panic!()
        };
        assert_eq!(deliveries.len(), MAX_DELIVERIES);
        assert_eq!(deliveries.first().map(String::as_str), Some("1"));
        assert_eq!(deliveries.last().map(String::as_str), Some("new"));
    }

    #[tokio::test]
    async fn record_in_memory() {
        let store = MemoryStore::default();
        let (v, s) = record(&store, "EAR-1", "a", 2, 10, H).await.unwrap();
        assert_eq!((v, s.occurrences), (Verdict::Opened, 2));
        store
            .mark_delivered("ticket#EAR-1", 10, "sns")
            .await
            .unwrap();
        let (v, s) = record(&store, "EAR-1", "b", 5, 11, H).await.unwrap();
        assert_eq!((v, s.occurrences), (Verdict::Suppressed, 7));
        let (v, s) = record(&store, "EAR-1", "b", 5, 12, H).await.unwrap();
        assert_eq!((v, s.occurrences), (Verdict::Duplicate, 7));
        let (v, s) = record(&store, "EAR-1", "a", 2, 13, H).await.unwrap();
        assert_eq!(v, Verdict::Reopened);
        assert!(s.delivered.contains("sns"));
        let (v, s) = record(&store, "EAR-1", "c", 1, 10 + 3600, H).await.unwrap();
        assert_eq!((v, s.occurrences), (Verdict::Opened, 1));
        assert!(s.delivered.is_empty());
    }

    #[test]
    fn digest_is_stable_and_tells_batches_apart() {
        let ev = |id: &str| serde_json::json!({"messageType":"DATA_MESSAGE","owner":"1","logGroup":"/aws/eks/prod/cluster","logStream":"authenticator-1","subscriptionFilters":[],"logEvents":[{"id":id,"timestamp":1,"message":"x"}]});
        let l = crate::event::Limits::default();
        let a = crate::event::decode_value(&ev("1"), &l).unwrap();
        let a2 = crate::event::decode_value(&ev("1"), &l).unwrap();
        let b = crate::event::decode_value(&ev("2"), &l).unwrap();
        assert_eq!(delivery_digest(&a), delivery_digest(&a2));
        assert_ne!(delivery_digest(&a), delivery_digest(&b));
        assert_eq!(delivery_digest(&a).len(), 32);
    }
}
