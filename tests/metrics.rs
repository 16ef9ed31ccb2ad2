//! The EMF documents the Lambda function prints, and the dashboard that plots them: every metric
//! name in the EMF output is on the dashboard and every metric the dashboard plots is emitted.

use std::collections::BTreeSet;

use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::facts::OfflineFacts;
use eks_auth_remediator::handler::{self, Config, Deps, Response};
use eks_auth_remediator::metrics::{self, Delivery, METRICS, NAMESPACE};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../infra/dashboard.json");

fn respond(event: &str) -> Response {
    let deps = Deps::new(Config::default(), Edge::Offline(OfflineFacts));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(handler::handle_bytes(
        &std::fs::read(format!("{}/events/{event}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        &deps,
    ))
    .unwrap()
}

fn emf_names(docs: &[Value]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for d in docs {
        for directive in d["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], NAMESPACE);
            for set in directive["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    // A dimension is a string member of the root.
                    assert!(d[dim.as_str().unwrap()].is_string(), "{d}");
                }
            }
            for m in directive["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                // A metric's value is a number member of the root.
                assert!(d[name].is_number(), "{d}");
                names.insert(name.to_string());
            }
        }
        assert!(d["_aws"]["Timestamp"].is_i64());
    }
    names
}

/// Metric names the dashboard plots: `[namespace, name, ...]` arrays, `MetricName="X"` in SEARCH
/// expressions, `SUM(X)` in Metrics Insights queries.
fn dashboard_names() -> BTreeSet<String> {
    let d: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    for w in d["widgets"].as_array().unwrap() {
        if w["type"] != "metric" {
            continue;
        }
        assert_eq!(w["properties"]["region"], "${Region}", "{w}");
        for m in w["properties"]["metrics"].as_array().unwrap() {
            let m = m.as_array().unwrap();
            if let Some(ns) = m.first().and_then(Value::as_str) {
                assert_eq!(ns, NAMESPACE);
                names.insert(m[1].as_str().unwrap().to_string());
                continue;
            }
            let e = m[0]["expression"].as_str().unwrap();
            for (open, close) in [("MetricName=\"", "\""), ("SUM(", ")")] {
                let mut rest = e;
                while let Some(i) = rest.find(open) {
                    let after = &rest[i + open.len()..];
                    let end = after.find(close).unwrap();
                    let name = &after[..end];
                    if !name.contains('(') {
                        names.insert(name.to_string());
                    }
                    rest = &after[end..];
                }
            }
        }
    }
    names
}

#[test]
fn emf_metrics_and_dashboard_agree() {
    let mut r = respond("mixed.json");
    let incident = respond("config-error.json");
    r.incidents.extend(incident.incidents);
    let mut delivery = Delivery::from_response(&r);
    delivery.sink_failures.insert("sns".into(), 2);
    delivery.suppressed.insert("prod".into(), 1);
    let docs = metrics::documents(&r, Some(&delivery), 12.5, 1_700_000_000_000);
    let emitted = emf_names(&docs);
    let fixed: BTreeSet<String> = METRICS.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(emitted, fixed, "every fixed metric is emitted");
    assert_eq!(
        dashboard_names(),
        emitted,
        "the dashboard plots exactly the emitted metrics"
    );
    // Values: denials per (cluster, cause) sum to the findings' denial counts.
    let denials: f64 = docs.iter().filter_map(|d| d["Denials"].as_f64()).sum();
    let expected: u64 = r
        .findings
        .iter()
        .filter(|f| f.finding.cause.is_some())
        .map(|f| f.finding.count)
        .sum();
    assert_eq!(denials, expected as f64);
    let latency = docs
        .iter()
        .find(|d| d.get("InvocationLatency").is_some())
        .unwrap();
    assert_eq!(
        latency["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
        "Milliseconds"
    );
    assert_eq!(
        latency["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([[]])
    );
    let incidents: f64 = docs.iter().filter_map(|d| d["Incidents"].as_f64()).sum();
    assert_eq!(incidents, 1.0);
}

#[test]
fn without_delivery_info_tickets_count_as_opened() {
    let r = respond("not-mapped.json");
    let docs = metrics::documents(&r, None, 1.0, 0);
    let opened: f64 = docs
        .iter()
        .filter_map(|d| d["TicketsOpened"].as_f64())
        .sum();
    assert_eq!(opened, r.tickets.len() as f64);
    assert!(opened > 0.0);
}

#[test]
fn the_dashboard_needs_only_the_region_substituted() {
    // CloudFormation Fn::Sub treats every ${...} as a variable: only ${Region} may appear.
    let mut rest = DASHBOARD;
    while let Some(i) = rest.find("${") {
        assert!(rest[i..].starts_with("${Region}"), "{}", &rest[i..i + 20]);
        rest = &rest[i + 2..];
    }
}

/// The SAM template and the CDK app build their own dashboards (SAM cannot read a file): each
/// plots every emitted metric in the same namespace, so none of the three dashboards drifts.
#[test]
fn the_deployment_dashboards_plot_every_metric() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "infra/sam/template.yaml",
        "infra/cdk/lib/remediator-stack.ts",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        assert!(text.contains(NAMESPACE), "{file} does not name {NAMESPACE}");
        for (name, _, _) in METRICS {
            assert!(has_word(&text, name), "{file} does not plot {name}");
        }
    }
}

/// `word` stands in `text` with no letter or digit right before or after it.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
