//! Builds events from raw lines: what `eks-auth event` prints and what `events/` is made of.
//!
//! Output is deterministic (ids, timestamps, stream name and gzip header depend only on the
//! input), so sample events can be regenerated and compared.

use std::io::Write;

use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{authlog, timefmt};

/// Where the generated event claims to come from.
#[derive(Debug, Clone)]
pub struct Options {
    pub cluster: String,
    pub account: String,
    pub region: String,
    /// A CONTROL_MESSAGE instead of data.
    pub control: bool,
}

/// Timestamp used for lines that carry none: 2022-12-28T15:37:19Z.
const BASE_MS: i64 = 1_672_241_839_000;

/// The decoded subscription JSON for `text` (one record per line; console timestamps joined).
pub fn decoded(text: &str, o: &Options) -> Value {
    let stream = format!(
        "authenticator-{}",
        &hex(&Sha256::digest(o.cluster.as_bytes()))[..32]
    );
    if o.control {
        return json!({
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [{
                "id": "",
                "timestamp": BASE_MS,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Lambda."
            }]
        });
    }
    let mut last = BASE_MS;
    let events: Vec<Value> = authlog::split_paste(text)
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let ts = authlog::parse_entry(line)
                .ok()
                .and_then(|r| r.time().and_then(timefmt::parse_ms))
                .unwrap_or(last);
            last = ts;
            // Console-copy joins are an input convenience: the event carries the original text.
            let message = line.replace('\u{1f}', "\n");
            json!({"id": format!("{ts:032}{i:024}"), "timestamp": ts, "message": message})
        })
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": o.account,
        "logGroup": format!("/aws/eks/{}/cluster", o.cluster),
        "logStream": stream,
        "subscriptionFilters": ["eks-auth-remediator"],
        "logEvents": events,
    })
}

/// [`decoded`] as CloudWatch Logs writes it: compact, keys in its order (`messageType`, `owner`,
/// `logGroup`, `logStream`, `subscriptionFilters`, then `logEvents` of `{id, timestamp,
/// message}`), which a [`Value`] (sorted keys) does not keep.
pub fn wire(text: &str, o: &Options) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        id: &'a Value,
        timestamp: &'a Value,
        message: &'a Value,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Logs<'a> {
        message_type: &'a Value,
        owner: &'a Value,
        log_group: &'a Value,
        log_stream: &'a Value,
        subscription_filters: &'a Value,
        log_events: Vec<Event<'a>>,
    }
    let v = decoded(text, o);
    let events = v["logEvents"].as_array().map_or(&[][..], Vec::as_slice);
    let logs = Logs {
        message_type: &v["messageType"],
        owner: &v["owner"],
        log_group: &v["logGroup"],
        log_stream: &v["logStream"],
        subscription_filters: &v["subscriptionFilters"],
        log_events: events
            .iter()
            .map(|e| Event {
                id: &e["id"],
                timestamp: &e["timestamp"],
                message: &e["message"],
            })
            .collect(),
    };
    // Serialising values and plain structs cannot fail.
    serde_json::to_string(&logs).unwrap_or_default()
}

/// Gzip with a fixed header (mtime 0), as CloudWatch Logs compresses subscription data.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Padded standard base64, as AWS sends it.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A CloudWatch Logs subscription event: `{"awslogs":{"data":"<base64 of gzip of JSON>"}}`.
pub fn subscription(text: &str, o: &Options) -> Value {
    let inner = wire(text, o);
    json!({"awslogs": {"data": b64(&gzip(inner.as_bytes()))}})
}

/// A Kinesis event as a cross-account CloudWatch Logs destination delivers it.
pub fn kinesis(text: &str, o: &Options) -> Value {
    let inner = wire(text, o);
    let data = b64(&gzip(inner.as_bytes()));
    json!({"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": hex(&Sha256::digest(inner.as_bytes()))[..32].to_string(),
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": data,
            "approximateArrivalTimestamp": 1_672_241_840.0
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": format!("arn:aws:iam::{}:role/eks-auth-remediator", o.account),
        "awsRegion": o.region,
        "eventSourceARN": format!("arn:aws:kinesis:{}:{}:stream/eks-authenticator-logs", o.region, o.account)
    }]})
}

/// The manual test event: `{"cluster","region","account","lines":[...]}`.
pub fn manual(text: &str, o: &Options) -> Value {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    json!({"cluster": o.cluster, "region": o.region, "account": o.account, "lines": lines})
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
