//! CloudWatch Embedded Metric Format (EMF) documents for one invocation (pure).
//!
//! An EMF document is one JSON log line: `_aws.Timestamp` (epoch ms), `_aws.CloudWatchMetrics`
//! (namespace, dimension sets, metric names and units) and, at the root, the dimension values and
//! metric values. One document holds one value per dimension key, so the invocation prints one
//! document per (Cluster, Cause), per Cluster, per Sink, and one without dimensions. The Lambda
//! binary prints them to stdout, where CloudWatch Logs extracts the metrics.
//!
//! Names are fixed (the deployment's dashboard and alarms use them): namespace
//! `EKSAuthRemediator`; see [`METRICS`].

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::diagnosis::Outcome;
use crate::handler::Response;
use crate::plan::ActionStatus;
use crate::sinks::{SinkStatus, TicketStatus};

pub const NAMESPACE: &str = "EKSAuthRemediator";

/// Every metric: name, unit, dimensions.
pub const METRICS: [(&str, &str, &[&str]); 9] = [
    ("Denials", "Count", &["Cluster", "Cause"]),
    ("RemediationsApplied", "Count", &["Cluster"]),
    ("RemediationsRefused", "Count", &["Cluster"]),
    ("TicketsOpened", "Count", &["Cluster"]),
    ("TicketsSuppressed", "Count", &["Cluster"]),
    ("Incidents", "Count", &["Cluster"]),
    ("SinkFailures", "Count", &["Sink"]),
    ("InvocationLatency", "Milliseconds", &[]),
    ("ParseFailures", "Count", &[]),
];

/// Ticket delivery counts: what the sinks report; [`Delivery::from_response`] when there are none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Tickets opened, per cluster.
    pub opened: BTreeMap<String, u64>,
    /// Tickets suppressed as duplicates, per cluster.
    pub suppressed: BTreeMap<String, u64>,
    /// Failed deliveries, per sink (`sns`, `eventbridge`, `webhook`, ...).
    pub sink_failures: BTreeMap<String, u64>,
}

/// The cluster dimension value when a finding has none.
const NO_CLUSTER: &str = "unknown";

impl Delivery {
    /// The counts of the response's `delivery` report; when nothing was delivered (offline, no
    /// sinks configured), every ticket in the response counts as opened.
    pub fn from_response(r: &Response) -> Delivery {
        let mut d = Delivery::default();
        let cluster_of = |id: &str| {
            r.tickets
                .iter()
                .find(|t| t.id == id)
                .and_then(|t| t.cluster.clone())
                .unwrap_or_else(|| NO_CLUSTER.into())
        };
        if !r.delivery.enabled {
            for t in &r.tickets {
                *d.opened
                    .entry(t.cluster.clone().unwrap_or_else(|| NO_CLUSTER.into()))
                    .or_default() += 1;
            }
            return d;
        }
        for t in &r.delivery.tickets {
            let slot = match t.status {
                TicketStatus::Opened | TicketStatus::Reopened => &mut d.opened,
                TicketStatus::Suppressed => &mut d.suppressed,
                TicketStatus::Duplicate | TicketStatus::Error => continue,
            };
            *slot.entry(cluster_of(&t.ticket_id)).or_default() += 1;
        }
        for s in &r.delivery.sinks {
            if s.status == SinkStatus::Failed {
                *d.sink_failures.entry(s.sink.to_string()).or_default() += 1;
            }
        }
        d
    }
}

fn directive(names: &[&str], dims: &[&str]) -> Value {
    let metrics: Vec<Value> = names
        .iter()
        .map(|n| {
            let unit = METRICS
                .iter()
                .find(|(m, _, _)| m == n)
                .map_or("Count", |(_, u, _)| u);
            json!({"Name": n, "Unit": unit})
        })
        .collect();
    json!({"Namespace": NAMESPACE, "Dimensions": [dims], "Metrics": metrics})
}

fn doc(ts: i64, names: &[&str], dims: &[(&str, &str)], values: &[(&str, f64)]) -> Value {
    let keys: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let mut root = serde_json::Map::new();
    root.insert(
        "_aws".into(),
        json!({"Timestamp": ts, "CloudWatchMetrics": [directive(names, &keys)]}),
    );
    for (k, v) in dims {
        root.insert((*k).into(), json!(v));
    }
    for (k, v) in values {
        root.insert((*k).into(), json!(v));
    }
    Value::Object(root)
}

/// The EMF documents for one invocation: its response, ticket delivery counts (None: derived
/// from the response's tickets), latency in milliseconds and the time (epoch ms).
pub fn documents(
    r: &Response,
    delivery: Option<&Delivery>,
    latency_ms: f64,
    timestamp_ms: i64,
) -> Vec<Value> {
    let own;
    let delivery = match delivery {
        Some(d) => d,
        None => {
            own = Delivery::from_response(r);
            &own
        }
    };
    let cluster_of: BTreeMap<&str, &str> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.finding.id.as_str(),
                f.finding.cluster.as_deref().unwrap_or(NO_CLUSTER),
            )
        })
        .collect();
    let mut denials: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for f in &r.findings {
        if let (Outcome::Denied, Some(c)) = (f.finding.outcome, f.finding.cause) {
            *denials
                .entry((
                    f.finding.cluster.as_deref().unwrap_or(NO_CLUSTER),
                    c.as_str(),
                ))
                .or_default() += f.finding.count;
        }
    }
    #[derive(Default)]
    struct PerCluster {
        applied: u64,
        refused: u64,
        opened: u64,
        suppressed: u64,
        incidents: u64,
    }
    let mut per: BTreeMap<String, PerCluster> = BTreeMap::new();
    for c in cluster_of.values() {
        per.entry((*c).to_string()).or_default();
    }
    for a in &r.actions {
        if a.status == ActionStatus::Applied {
            let c = cluster_of.get(a.finding_id.as_str()).unwrap_or(&NO_CLUSTER);
            per.entry((*c).to_string()).or_default().applied += 1;
        }
    }
    for rec in &r.audit {
        if rec.action == "refused" {
            let c = rec.cluster.as_deref().unwrap_or(NO_CLUSTER);
            per.entry(c.to_string()).or_default().refused += 1;
        }
    }
    for (c, n) in &delivery.opened {
        per.entry(c.clone()).or_default().opened += n;
    }
    for (c, n) in &delivery.suppressed {
        per.entry(c.clone()).or_default().suppressed += n;
    }
    for i in &r.incidents {
        per.entry(i.cluster.clone()).or_default().incidents += 1;
    }
    let mut out = Vec::new();
    for ((cluster, cause), n) in denials {
        out.push(doc(
            timestamp_ms,
            &["Denials"],
            &[("Cluster", cluster), ("Cause", cause)],
            &[("Denials", n as f64)],
        ));
    }
    let cluster_metrics = [
        "RemediationsApplied",
        "RemediationsRefused",
        "TicketsOpened",
        "TicketsSuppressed",
        "Incidents",
    ];
    for (cluster, p) in &per {
        out.push(doc(
            timestamp_ms,
            &cluster_metrics,
            &[("Cluster", cluster)],
            &[
                ("RemediationsApplied", p.applied as f64),
                ("RemediationsRefused", p.refused as f64),
                ("TicketsOpened", p.opened as f64),
                ("TicketsSuppressed", p.suppressed as f64),
                ("Incidents", p.incidents as f64),
            ],
        ));
    }
    for (sink, n) in &delivery.sink_failures {
        out.push(doc(
            timestamp_ms,
            &["SinkFailures"],
            &[("Sink", sink)],
            &[("SinkFailures", *n as f64)],
        ));
    }
    out.push(doc(
        timestamp_ms,
        &["InvocationLatency", "ParseFailures"],
        &[],
        &[
            ("InvocationLatency", latency_ms),
            ("ParseFailures", r.stats.unparsed as f64),
        ],
    ));
    out
}

/// Prints the documents to stdout, one line each (the Lambda function's metrics).
pub fn emit(docs: &[Value]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for d in docs {
        let _ = writeln!(out, "{d}");
    }
    let _ = out.flush();
}
