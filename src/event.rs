//! Input events and bounded decoding.
//!
//! Four shapes are accepted (see the README's "Event shapes"):
//! - a CloudWatch Logs subscription event `{"awslogs":{"data":"<base64 of gzip of JSON>"}}`;
//! - a Kinesis event whose records carry the raw gzip of the same JSON (cross-account destinations);
//! - the decoded subscription JSON itself (`{"messageType":..., "logEvents":[...]}`);
//! - a manual test event `{"cluster":"prod","region":"eu-west-1","lines":["time=... msg=..."]}`.
//!
//! Every layer has a size cap, and every error names the layer that failed.

use std::io::Read;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::diagnosis::Origin;

/// Default cap on decompressed bytes per payload: a 10,000-event batch is a few MB.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 32 << 20;
/// Default cap on the raw event (Lambda allows 6 MB synchronous, 1 MB asynchronous).
pub const DEFAULT_MAX_EVENT: usize = 16 << 20;
/// At most this many log events per invocation (a PutLogEvents batch holds 10,000).
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

/// Decoding limits, configurable through the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: DEFAULT_MAX_EVENT,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

/// Which input shape an event had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Subscription,
    Kinesis,
    Decoded,
    Manual,
}

/// CloudWatch Logs' message type; `CONTROL_MESSAGE` is a reachability probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    DataMessage,
    ControlMessage,
}

/// One log line with its CloudWatch id and timestamp when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<i64>,
    pub message: String,
}

/// A batch of lines from one log stream (or one manual event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub message_type: MessageType,
    pub origin: Origin,
    pub events: Vec<LogEvent>,
}

/// A decoded invocation payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    pub source: Source,
    pub batches: Vec<Batch>,
}

impl Decoded {
    /// True when every batch is a CONTROL_MESSAGE.
    pub fn is_control_only(&self) -> bool {
        !self.batches.is_empty()
            && self
                .batches
                .iter()
                .all(|b| b.message_type == MessageType::ControlMessage)
    }
}

/// Why an event could not be decoded. `layer` names where: `event`, `awslogs.data base64`,
/// `awslogs.data gzip`, `Records[3].kinesis.data gzip`, `logs JSON`, ...
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{layer}: input is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        layer: String,
        size: usize,
        limit: usize,
    },
    #[error("{layer}: decompressed data exceeds the {limit}-byte limit (gzip bomb or oversized batch); raise EKS_AUTH_MAX_DECOMPRESSED_BYTES if this is legitimate")]
    DecompressedTooLarge { layer: String, limit: usize },
    #[error("{layer}: invalid base64")]
    Base64 {
        layer: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{layer}: invalid gzip")]
    Gzip {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{layer}: invalid JSON")]
    Json {
        layer: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{layer}: {message}")]
    Shape { layer: String, message: String },
    #[error("event holds {count} log events, over the {limit} limit")]
    TooManyEvents { count: usize, limit: usize },
}

impl DecodeError {
    fn shape(layer: &str, message: impl Into<String>) -> Self {
        DecodeError::Shape {
            layer: layer.to_string(),
            message: message.into(),
        }
    }
}

/// Decodes raw event bytes (a file, stdin, or a Lambda payload).
///
/// # Errors
/// [`DecodeError`] naming the layer that failed.
pub fn decode_bytes(raw: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    if raw.len() > limits.max_event_bytes {
        return Err(DecodeError::TooLarge {
            layer: "event".into(),
            size: raw.len(),
            limit: limits.max_event_bytes,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|source| DecodeError::Json {
            layer: "event".into(),
            source,
        })?;
    decode_value(&value, limits)
}

/// Decodes an event already parsed as JSON (what the Lambda runtime hands us).
///
/// # Errors
/// [`DecodeError`] naming the layer that failed.
pub fn decode_value(value: &serde_json::Value, limits: &Limits) -> Result<Decoded, DecodeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| DecodeError::shape("event", "expected a JSON object"))?;
    let region_hint = obj
        .get("region")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if let Some(awslogs) = obj.get("awslogs") {
        let data = awslogs
            .get("data")
            .and_then(|d| d.as_str())
            .ok_or_else(|| DecodeError::shape("awslogs", "missing string field 'data'"))?;
        let gz = b64(data, "awslogs.data base64", limits)?;
        let json = gunzip(&gz, "awslogs.data gzip", limits)?;
        let batch = parse_logs_json(&json, "awslogs.data JSON", region_hint, limits)?;
        return Ok(Decoded {
            source: Source::Subscription,
            batches: vec![batch],
        });
    }
    if let Some(records) = obj.get("Records").and_then(|r| r.as_array()) {
        let mut batches = Vec::with_capacity(records.len());
        let mut total = 0usize;
        for (i, rec) in records.iter().enumerate() {
            let data = rec
                .get("kinesis")
                .and_then(|k| k.get("data"))
                .and_then(|d| d.as_str())
                .ok_or_else(|| {
                    DecodeError::shape(
                        &format!("Records[{i}]"),
                        "not a Kinesis record: missing kinesis.data",
                    )
                })?;
            let region = rec
                .get("awsRegion")
                .and_then(|r| r.as_str())
                .map(str::to_string)
                .or_else(|| region_hint.clone());
            let gz = b64(data, &format!("Records[{i}].kinesis.data base64"), limits)?;
            // The whole invocation shares one decompression budget.
            let budget = Limits {
                max_decompressed_bytes: limits.max_decompressed_bytes.saturating_sub(total),
                ..*limits
            };
            let json = gunzip(&gz, &format!("Records[{i}].kinesis.data gzip"), &budget)?;
            total += json.len();
            batches.push(parse_logs_json(
                &json,
                &format!("Records[{i}].kinesis.data JSON"),
                region,
                limits,
            )?);
        }
        count_events(&batches, limits)?;
        return Ok(Decoded {
            source: Source::Kinesis,
            batches,
        });
    }
    if obj.contains_key("logEvents") || obj.contains_key("messageType") {
        let batch = logs_from_value(value, "event", region_hint, limits)?;
        return Ok(Decoded {
            source: Source::Decoded,
            batches: vec![batch],
        });
    }
    if obj.contains_key("lines") || obj.contains_key("text") {
        return manual(value, limits).map(|batch| Decoded {
            source: Source::Manual,
            batches: vec![batch],
        });
    }
    Err(DecodeError::shape(
        "event",
        "unrecognised event: expected 'awslogs' (subscription), 'Records' (Kinesis), 'logEvents' (decoded logs) or 'lines'/'text' (manual)",
    ))
}

fn count_events(batches: &[Batch], limits: &Limits) -> Result<(), DecodeError> {
    let count: usize = batches.iter().map(|b| b.events.len()).sum();
    if count > limits.max_events {
        return Err(DecodeError::TooManyEvents {
            count,
            limit: limits.max_events,
        });
    }
    Ok(())
}

fn b64(data: &str, layer: &str, limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let data = data.trim();
    if data.len() > limits.max_event_bytes {
        return Err(DecodeError::TooLarge {
            layer: layer.into(),
            size: data.len(),
            limit: limits.max_event_bytes,
        });
    }
    // Accept padded (what AWS sends) and unpadded (what some serializers write).
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(data).map_err(|source| DecodeError::Base64 {
        layer: layer.into(),
        source,
    })
}

/// Gunzips with a hard cap on output: memory stays bounded whatever the ratio.
pub fn gunzip(gz: &[u8], layer: &str, limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let cap = limits.max_decompressed_bytes;
    let decoder = flate2::read::MultiGzDecoder::new(gz);
    let mut out = Vec::with_capacity(gz.len().saturating_mul(8).min(cap).max(1024));
    decoder
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Gzip {
            layer: layer.into(),
            source,
        })?;
    if out.len() > cap {
        return Err(DecodeError::DecompressedTooLarge {
            layer: layer.into(),
            limit: cap,
        });
    }
    Ok(out)
}

/// The subscription JSON: `{messageType, owner, logGroup, logStream, subscriptionFilters, logEvents}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogs {
    message_type: Option<MessageType>,
    owner: Option<String>,
    log_group: Option<String>,
    log_stream: Option<String>,
    #[serde(default)]
    log_events: Vec<LogEvent>,
    /// Not part of the AWS shape: lets a pasted decoded event carry its region.
    region: Option<String>,
}

fn parse_logs_json(
    json: &[u8],
    layer: &str,
    region: Option<String>,
    limits: &Limits,
) -> Result<Batch, DecodeError> {
    let raw: RawLogs = serde_json::from_slice(json).map_err(|source| DecodeError::Json {
        layer: layer.into(),
        source,
    })?;
    batch_from_raw(raw, region, limits)
}

fn logs_from_value(
    value: &serde_json::Value,
    layer: &str,
    region: Option<String>,
    limits: &Limits,
) -> Result<Batch, DecodeError> {
    let raw = RawLogs::deserialize(value).map_err(|source| DecodeError::Json {
        layer: layer.into(),
        source,
    })?;
    batch_from_raw(raw, region, limits)
}

fn batch_from_raw(
    raw: RawLogs,
    region: Option<String>,
    limits: &Limits,
) -> Result<Batch, DecodeError> {
    if raw.log_events.len() > limits.max_events {
        return Err(DecodeError::TooManyEvents {
            count: raw.log_events.len(),
            limit: limits.max_events,
        });
    }
    let message_type = raw.message_type.unwrap_or(MessageType::DataMessage);
    Ok(Batch {
        message_type,
        origin: Origin {
            cluster: raw.log_group.as_deref().and_then(cluster_of_log_group),
            account: raw.owner.filter(|o| !o.is_empty()),
            region: raw.region.or(region),
            log_group: raw.log_group,
            log_stream: raw.log_stream,
        },
        events: raw.log_events,
    })
}

/// The manual test event: `{"cluster", "region"?, "account"?, "lines": [...], "text"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {
    cluster: Option<String>,
    region: Option<String>,
    account: Option<String>,
    #[serde(default)]
    lines: Vec<String>,
    /// Free text as pasted from a console (timestamp lines above records are joined).
    text: Option<String>,
}

fn manual(value: &serde_json::Value, limits: &Limits) -> Result<Batch, DecodeError> {
    let raw = RawManual::deserialize(value).map_err(|source| DecodeError::Json {
        layer: "manual event".into(),
        source,
    })?;
    let mut joined = raw.lines.join("\n");
    if let Some(t) = &raw.text {
        joined.push('\n');
        joined.push_str(t);
    }
    let events: Vec<LogEvent> = crate::authlog::split_paste(&joined)
        .into_iter()
        .map(|l| LogEvent {
            id: None,
            timestamp: None,
            message: l.into_owned(),
        })
        .collect();
    if events.len() > limits.max_events {
        return Err(DecodeError::TooManyEvents {
            count: events.len(),
            limit: limits.max_events,
        });
    }
    let cluster = raw.cluster.filter(|c| !c.is_empty());
    Ok(Batch {
        message_type: MessageType::DataMessage,
        origin: Origin {
            log_group: cluster.as_deref().map(|c| format!("/aws/eks/{c}/cluster")),
            cluster,
            account: raw.account,
            region: raw.region,
            log_stream: None,
        },
        events,
    })
}

/// `prod` from `/aws/eks/prod/cluster`.
pub fn cluster_of_log_group(group: &str) -> Option<String> {
    let rest = group.strip_prefix("/aws/eks/")?;
    let name = rest.strip_suffix("/cluster")?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn logs_json() -> String {
        serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "111122223333",
            "logGroup": "/aws/eks/prod/cluster", "logStream": "authenticator-0123",
            "subscriptionFilters": ["f"],
            "logEvents": [{"id": "1", "timestamp": 1, "message": "msg=hi"}]
        })
        .to_string()
    }

    #[test]
    fn subscription_event() {
        let data = base64::engine::general_purpose::STANDARD.encode(gz(logs_json().as_bytes()));
        let ev = serde_json::json!({"awslogs": {"data": data}}).to_string();
        let d = decode_bytes(ev.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(d.source, Source::Subscription);
        let b = &d.batches[0];
        assert_eq!(b.origin.cluster.as_deref(), Some("prod"));
        assert_eq!(b.origin.account.as_deref(), Some("111122223333"));
        assert_eq!(b.events[0].message, "msg=hi");
        // unpadded base64 is accepted too
        let unpadded =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(gz(logs_json().as_bytes()));
        let ev = serde_json::json!({"awslogs": {"data": unpadded}}).to_string();
        assert!(decode_bytes(ev.as_bytes(), &Limits::default()).is_ok());
    }

    #[test]
    fn each_layer_names_itself() {
        let lim = Limits::default();
        let err = |v: serde_json::Value| decode_value(&v, &lim).unwrap_err().to_string();
        assert!(
            err(serde_json::json!({"awslogs": {"data": "!!"}})).starts_with("awslogs.data base64")
        );
        let not_gzip = base64::engine::general_purpose::STANDARD.encode(b"plain");
        assert!(err(serde_json::json!({"awslogs": {"data": not_gzip}}))
            .starts_with("awslogs.data gzip"));
        let not_json = base64::engine::general_purpose::STANDARD.encode(gz(b"{nope"));
        assert!(err(serde_json::json!({"awslogs": {"data": not_json}}))
            .starts_with("awslogs.data JSON"));
        assert!(err(serde_json::json!([1])).starts_with("event"));
        assert!(err(serde_json::json!({"foo": 1})).contains("unrecognised event"));
        let bad = base64::engine::general_purpose::STANDARD.encode(b"x");
        assert!(
            err(serde_json::json!({"Records": [{"kinesis": {"data": bad}}]}))
                .starts_with("Records[0].kinesis.data gzip")
        );
        assert!(decode_bytes(b"{", &lim)
            .unwrap_err()
            .to_string()
            .starts_with("event: invalid JSON"));
    }

    #[test]
    fn decompression_is_capped() {
        let bomb = gz(&vec![0u8; 1 << 20]);
        let lim = Limits {
            max_decompressed_bytes: 1000,
            ..Limits::default()
        };
        let err = gunzip(&bomb, "x", &lim).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::DecompressedTooLarge { limit: 1000, .. }
        ));
        assert_eq!(gunzip(&gz(&[1u8; 1000]), "x", &lim).unwrap().len(), 1000);
    }

    #[test]
    fn kinesis_control_and_manual() {
        let data = base64::engine::general_purpose::STANDARD.encode(gz(logs_json().as_bytes()));
        let ev =
            serde_json::json!({"Records": [{"kinesis": {"data": data}, "awsRegion": "eu-west-1"}]});
        let d = decode_value(&ev, &Limits::default()).unwrap();
        assert_eq!(d.source, Source::Kinesis);
        assert_eq!(d.batches[0].origin.region.as_deref(), Some("eu-west-1"));

        let ctl = serde_json::json!({"messageType": "CONTROL_MESSAGE", "logEvents": [{"id": "", "timestamp": 0, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
        assert!(decode_value(&ctl, &Limits::default())
            .unwrap()
            .is_control_only());

        let man = serde_json::json!({"cluster": "dev", "lines": ["2022-12-28T15:37:19Z", "msg=x"]});
        let d = decode_value(&man, &Limits::default()).unwrap();
        assert_eq!(d.source, Source::Manual);
        assert_eq!(d.batches[0].events.len(), 1);
        assert_eq!(
            d.batches[0].origin.log_group.as_deref(),
            Some("/aws/eks/dev/cluster")
        );
        let typo = serde_json::json!({"cluster": "dev", "lines": [], "clsuter": 1});
        assert!(decode_value(&typo, &Limits::default()).is_err());
    }

    #[test]
    fn cluster_names() {
        assert_eq!(
            cluster_of_log_group("/aws/eks/prod-1/cluster").as_deref(),
            Some("prod-1")
        );
        assert_eq!(cluster_of_log_group("/aws/lambda/x"), None);
        assert_eq!(cluster_of_log_group("/aws/eks//cluster"), None);
    }
}
