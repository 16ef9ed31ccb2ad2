//! Property tests for the parser and the decoder: nothing panics on arbitrary or near-miss input,
//! logfmt values survive `quote_value` -> `parse_line` (plain, Docker and CSV wrapped), and the
//! decoder honours its [`Limits`].
//!
//! Case counts are kept modest so the file runs in seconds in the debug profile; raise them with
//! `PROPTEST_CASES=10000 cargo test --test proptest_parser` for a deeper run.

use std::borrow::Cow;

use base64::Engine;
use eks_auth_remediator::authlog::{self, Format, Wrapper};
use eks_auth_remediator::event::{self, DecodeError, Decoded, Limits};
use eks_auth_remediator::{diagnosis, eventgen, handler};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers.

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        // Shrinking can be slow on big structured inputs; a few hundred steps find a small case.
        max_shrink_iters: 2048,
        // Failures print their minimal input; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs every parse entry point and the diagnosis on `text`; panics are the failure.
fn exercise_text(text: &str) {
    if let Ok(rec) = authlog::parse_line(text) {
        let d = diagnosis::diagnose(&rec);
        let _ = d.summary();
        let owned = rec.into_owned();
        let _ = diagnosis::diagnose(&owned);
    }
    for entry in authlog::split_paste(text) {
        if let Ok(rec) = authlog::parse_entry(&entry) {
            let _ = diagnosis::diagnose(&rec).summary();
        }
    }
    let _ = authlog::parse_logfmt(text);
    let _ = authlog::looks_like_timestamp(text);
    let _ = diagnosis::classify_error(text);
    // Also through the aggregator, which adds truncation and time parsing.
    let mut agg = diagnosis::Aggregator::new();
    let origin = diagnosis::Origin {
        cluster: Some("prod".into()),
        ..diagnosis::Origin::default()
    };
    agg.add(&origin, Some("1"), None, text);
    agg.add(&origin, None, Some(i64::MIN), text);
    agg.add(&origin, None, Some(i64::MAX), text);
    let _ = agg.finish();
}

/// Diagnoses whatever decoded; panics are the failure.
fn exercise_decoded(decoded: &Decoded) {
    let _ = decoded.is_control_only();
    let _ = handler::diagnose_decoded(decoded, &handler::Config::default());
}

fn opts() -> eventgen::Options {
    eventgen::Options {
        cluster: "prod".into(),
        account: "111122223333".into(),
        region: "eu-west-1".into(),
        control: false,
    }
}

fn small(max_decompressed_bytes: usize) -> Limits {
    Limits {
        max_event_bytes: 1 << 20,
        max_decompressed_bytes,
        max_events: 64,
    }
}

/// Every message the decoder returns came out of the decompressed JSON, so their total size is
/// bounded by the decompression cap (JSON escaping only ever makes the encoded form longer).
fn assert_within_limits(d: &Decoded, limits: &Limits) {
    if matches!(
        d.source,
        event::Source::Subscription | event::Source::Kinesis
    ) {
        let total: usize = d
            .batches
            .iter()
            .flat_map(|b| &b.events)
            .map(|e| e.message().len())
            .sum();
        assert!(
            total <= limits.max_decompressed_bytes,
            "{total} message bytes decoded under a {}-byte cap",
            limits.max_decompressed_bytes
        );
    }
    let events: usize = d.batches.iter().map(|b| b.events.len()).sum();
    assert!(
        events <= limits.max_events,
        "{events} events under a {} cap",
        limits.max_events
    );
}

// ---------------------------------------------------------------------------------------------
// Strategies: near-miss log lines.

const SAMPLE_LINES: &[&str] = &[
    r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:sts::111122223333:assumed-role/dev/alice" client="127.0.0.1:33384" error="ARN is not mapped" method=POST path=/authenticate"#,
    r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" client="127.0.0.1:1" error="sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: {\"Error\":{\"Code\":\"InvalidClientTokenId\"}}" method=POST path=/authenticate"#,
    r#"time="2022-12-28T15:37:19Z" level=info msg="access granted" arn="arn:aws:iam::111122223333:role/node" client="127.0.0.1:2" groups="[system:nodes]" method=POST path=/authenticate uid="aws-iam-authenticator:111122223333:AROA" username="system:node:ip-10-0-0-1""#,
    r#"time="2022-12-28T15:37:19Z" level=info msg="STS response" accesskeyid=ASIA accountid=111122223333 arn="arn:aws:sts::111122223333:assumed-role/dev/alice" client="127.0.0.1:3" method=POST path=/authenticate session=alice stsendpoint=sts.eu-west-1.amazonaws.com userid=AROA"#,
    r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" error="input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration) 2022-12-28 15:00:00 +0000 UTC""#,
    r#"time="2022-12-28T15:37:19Z" level=error msg="access denied" error="renderTemplates error: failed querying private DNS from EC2 for i-0123456789abcdef0""#,
    r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" error="username must not begin with 'aws:' (was 'aws:x')""#,
    r#"WARN[2022-12-28T15:37:19Z] access denied                                 arn="arn:aws:iam::111122223333:role/developer" error="ARN is not mapped""#,
    r#"{"arn":"arn:aws:iam::111122223333:role/developer","error":"ARN is not mapped","level":"warning","msg":"access denied","time":"2022-12-28T16:00:13Z"}"#,
    r#"{"log":"time=\"2022-12-28T16:00:00Z\" level=warning msg=\"access denied\" error=\"ARN is not mapped\"\n","stream":"stderr","time":"2022-12-28T16:00:00.123456789Z"}"#,
    r#""2022-12-28 16:00:07.000","time=""2022-12-28T16:00:07Z"" level=warning msg=""access denied"" error=""ARN is not mapped""""#,
    r#"aws-iam-authenticator-ip-10-0-1-23 aws-iam-authenticator time="2022-12-28T16:00:05Z" level=warning msg="access denied" error="ARN is not mapped""#,
    r#"time="2022-12-28T15:37:19Z" level=error msg="Errors parsing configmap: [\"invalid role ARN\"]""#,
];

/// Pieces that sit near the parser's decision points.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z_@.-]{0,6}",
        2 => Just("=".to_string()),
        3 => Just("\"".to_string()),
        2 => Just("\"\"".to_string()),
        2 => Just(" ".to_string()),
        1 => Just("\t".to_string()),
        1 => Just("   ".to_string()),
        2 => Just("\\".to_string()),
        1 => Just("\\\"".to_string()),
        1 => Just("\\\\".to_string()),
        1 => Just("\\x".to_string()),
        1 => Just("\\x4".to_string()),
        1 => Just("\\x41".to_string()),
        1 => Just("\\xe2\\x82".to_string()),
        1 => Just("\\xff".to_string()),
        1 => Just("\\u".to_string()),
        1 => Just("\\u00e".to_string()),
        1 => Just("\\u00e9".to_string()),
        1 => Just("\\ud800".to_string()),
        1 => Just("\\U0001F600".to_string()),
        1 => Just("\\UFFFFFFFF".to_string()),
        1 => Just("\\U".to_string()),
        1 => Just("\\q".to_string()),
        1 => Just("\\é".to_string()),
        1 => Just("\u{1b}[33m".to_string()),
        1 => Just("\u{1b}[0m".to_string()),
        1 => Just("\u{1b}[".to_string()),
        1 => Just("\u{1b}".to_string()),
        1 => Just("WARN[".to_string()),
        1 => Just("INFO[2022-12-28T15:37:19Z]".to_string()),
        1 => Just("ERRO[0042] ".to_string()),
        1 => Just("[".to_string()),
        1 => Just("]".to_string()),
        1 => Just("{".to_string()),
        1 => Just("}".to_string()),
        1 => Just("{\"log\":\"".to_string()),
        1 => Just("\\n\",\"stream\":\"stderr\"}".to_string()),
        1 => Just("\"msg\":".to_string()),
        1 => Just(",".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("\r\n".to_string()),
        1 => Just("\u{1f}".to_string()),
        1 => Just("\u{feff}".to_string()),
        1 => Just("\u{0}".to_string()),
        1 => Just("2022-12-28 15:37:19.000".to_string()),
        1 => Just("2022-12-28T15:37:19Z".to_string()),
        1 => Just("2022-12-28T15:37:19.123456+02:00".to_string()),
        1 => Just("2022-".to_string()),
        1 => Just("msg=\"access denied\"".to_string()),
        1 => Just("msg=".to_string()),
        1 => Just("level=warning".to_string()),
        1 => Just("error=\"ARN is not mapped: arn:aws:iam::111122223333:role/x\"".to_string()),
        1 => Just("arn=\"arn:aws:sts::111122223333:assumed-role/R/s\"".to_string()),
        1 => Just("arn:aws:iam::".to_string()),
        1 => Just("sts getCallerIdentity failed".to_string()),
        1 => Just("\"Code\":\"".to_string()),
        1 => Just("<Code>".to_string()),
        1 => Just(" on us-west-2 endpoint".to_string()),
        1 => Just(" on ".to_string()),
        1 => Just(" endpoint".to_string()),
        1 => Just("arn '".to_string()),
        1 => Just("username '".to_string()),
        1 => Just("i-".to_string()),
        1 => Just("stsendpoint=https://sts.".to_string()),
        1 => Just("aws-iam-authenticator-x aws-iam-authenticator ".to_string()),
        1 => Just("[pod/aws-iam-authenticator-x/aws-iam-authenticator] ".to_string()),
        2 => ".{0,4}",
        1 => any::<char>().prop_map(String::from),
    ]
}

fn fragment_line() -> impl Strategy<Value = String> {
    vec(fragment(), 0..40).prop_map(|parts| parts.concat())
}

/// A random logfmt record: keys and values of the kind the authenticator writes, quoted or not.
fn logfmt_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("msg".to_string()),
        Just("level".to_string()),
        Just("time".to_string()),
        Just("arn".to_string()),
        Just("error".to_string()),
        Just("client".to_string()),
        "[a-z][a-z0-9_]{0,10}",
    ];
    let value = prop_oneof![
        Just("access denied".to_string()),
        Just("warning".to_string()),
        Just("ARN is not mapped".to_string()),
        ".{0,12}",
        "[ -~]{0,12}",
    ];
    vec((key, value, any::<bool>()), 1..8).prop_map(|mut pairs| {
        // Wrappers such as CSV rows and prefixes only count a record that has a message.
        if !pairs.iter().any(|(k, _, _)| k == "msg") {
            pairs.push(("msg".into(), "access denied".into(), false));
        }
        pairs
            .iter()
            .map(|(k, v, quote_always)| {
                if *quote_always {
                    format!("{k}={}", serde_json::to_string(v).unwrap_or_default())
                } else {
                    format!("{k}={}", authlog::quote_value(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// A well-formed record in a random wrapper.
fn wrapped_line() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        logfmt_line(),
        prop::sample::select(SAMPLE_LINES).prop_map(str::to_string),
    ];
    (base, 0u8..8).prop_map(|(line, wrapper)| match wrapper {
        0 => line,
        1 => json!({"log": format!("{line}\n"), "stream": "stderr", "time": "2022-12-28T15:37:19.1Z"})
            .to_string(),
        2 => format!(
            "\"2022-12-28 15:37:19.000\",\"{}\"",
            line.replace('"', "\"\"")
        ),
        // A prefix in front of a CSV row is not a shape anything produces.
        3 if !line.starts_with('"') => {
            format!("aws-iam-authenticator-ip-10-0-0-1 aws-iam-authenticator {line}")
        }
        3 => line,
        4 => format!("WARN[2022-12-28T15:37:19Z] access denied                                 {line}"),
        5 => format!("\u{1b}[33mWARN\u{1b}[0m[0042] {line}"),
        6 => format!("2022-12-28T15:37:19.000+00:00\n{line}\n"),
        // Wrappers inside wrappers: an Insights export of Docker json-file lines.
        _ => format!(
            "\"2022-12-28 15:37:19.000\",\"{}\"",
            json!({"log": format!("{line}\n"), "stream": "stderr"})
                .to_string()
                .replace('"', "\"\"")
        ),
    })
}

/// A mutation applied to a good line: truncation, a byte flipped, a fragment spliced in.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, String),
    Duplicate(prop::sample::Index, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        (any::<prop::sample::Index>(), fragment()).prop_map(|(i, f)| Mutation::Insert(i, f)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
}

/// Char boundaries of `s`, end included.
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect()
}

fn apply(mut s: String, muts: &[Mutation]) -> String {
    for m in muts {
        let b = boundaries(&s);
        match m {
            Mutation::Truncate(i) => s.truncate(*i.get(&b)),
            Mutation::Delete(i) => {
                if b.len() > 1 {
                    let k = i.index(b.len() - 1);
                    s.replace_range(b[k]..b[k + 1], "");
                }
            }
            Mutation::Insert(i, f) => s.insert_str(*i.get(&b), f),
            Mutation::Duplicate(x, y) => {
                let (mut p, mut q) = (*x.get(&b), *y.get(&b));
                if p > q {
                    std::mem::swap(&mut p, &mut q);
                }
                let piece = s[p..q].to_string();
                s.insert_str(q, &piece);
            }
        }
    }
    s
}

fn near_miss_line() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => fragment_line(),
        3 => (wrapped_line(), vec(mutation(), 1..4)).prop_map(|(l, m)| apply(l, &m)),
        1 => (vec(wrapped_line(), 1..4), vec(mutation(), 0..3))
            .prop_map(|(ls, m)| apply(ls.join("\n"), &m)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Strategies: events.

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "awslogs",
                "data",
                "Records",
                "kinesis",
                "awsRegion",
                "logEvents",
                "messageType",
                "owner",
                "logGroup",
                "logStream",
                "subscriptionFilters",
                "id",
                "timestamp",
                "message",
                "lines",
                "text",
                "cluster",
                "region",
                "account",
                "log",
                "msg",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-zA-Z]{0,6}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,16}".prop_map(Value::String),
        near_miss_line().prop_map(Value::String),
        prop::sample::select(
            &[
                "DATA_MESSAGE",
                "CONTROL_MESSAGE",
                "/aws/eks/prod/cluster",
                "/aws/eks//cluster",
                "H4sI",
                "H4sIAAAAAAAA/w==",
                "!!",
                ""
            ][..]
        )
        .prop_map(|s| Value::String(s.to_string())),
        vec(any::<u8>(), 0..64).prop_map(|b| Value::String(eventgen::b64(&b))),
        vec(any::<u8>(), 0..64).prop_map(|b| Value::String(eventgen::b64(&eventgen::gzip(&b)))),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((json_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A log event object with fields that are right, missing, or the wrong type.
fn log_event() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        Just(None),
        "[0-9]{0,4}".prop_map(|s| Some(Value::String(s))),
        json_leaf().prop_map(Some),
    ];
    let ts = prop_oneof![
        Just(None),
        any::<i64>().prop_map(|t| Some(Value::from(t))),
        json_leaf().prop_map(Some),
    ];
    let message = prop_oneof![
        4 => near_miss_line().prop_map(|s| Some(Value::String(s))),
        1 => Just(None),
        1 => json_leaf().prop_map(Some),
    ];
    (id, ts, message).prop_map(|(id, ts, message)| {
        let mut m = serde_json::Map::new();
        if let Some(v) = id {
            m.insert("id".into(), v);
        }
        if let Some(v) = ts {
            m.insert("timestamp".into(), v);
        }
        if let Some(v) = message {
            m.insert("message".into(), v);
        }
        Value::Object(m)
    })
}

fn logs_json() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["DATA_MESSAGE", "CONTROL_MESSAGE", "NOPE"][..]),
        prop::sample::select(
            &[
                "/aws/eks/prod/cluster",
                "/aws/eks/a/b/cluster",
                "",
                "/aws/lambda/x",
            ][..],
        ),
        vec(log_event(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(mt, group, events, region)| {
            let mut v = json!({
                "messageType": mt,
                "owner": "111122223333",
                "logGroup": group,
                "logStream": "authenticator-0",
                "subscriptionFilters": ["f"],
                "logEvents": events,
            });
            if region {
                v["region"] = json!("eu-west-1");
            }
            v
        })
}

/// Every accepted event shape, with plausible contents.
fn shaped_event() -> impl Strategy<Value = Value> {
    prop_oneof![
        logs_json(),
        logs_json().prop_map(|l| json!({"awslogs": {"data": eventgen::b64(&eventgen::gzip(l.to_string().as_bytes()))}})),
        vec((logs_json(), any::<bool>()), 0..4).prop_map(|recs| {
            let records: Vec<Value> = recs
                .into_iter()
                .map(|(l, region)| {
                    let mut r = json!({"kinesis": {"data": eventgen::b64(&eventgen::gzip(l.to_string().as_bytes()))}});
                    if region {
                        r["awsRegion"] = json!("us-east-1");
                    }
                    r
                })
                .collect();
            json!({ "Records": records })
        }),
        (vec(near_miss_line(), 0..6), prop::option::of(near_miss_line()), prop::option::of(".{0,8}"))
            .prop_map(|(lines, text, cluster)| {
                let mut v = json!({ "lines": lines, "region": "eu-west-1" });
                if let Some(t) = text {
                    v["text"] = json!(t);
                }
                if let Some(c) = cluster {
                    v["cluster"] = json!(c);
                }
                v
            }),
    ]
}

fn arb_limits() -> impl Strategy<Value = Limits> {
    let size = prop_oneof![
        Just(0usize),
        Just(1usize),
        0usize..4096,
        Just(event::DEFAULT_MAX_DECOMPRESSED),
        Just(usize::MAX),
        Just(usize::MAX - 1),
    ];
    (
        size.clone(),
        size,
        prop_oneof![Just(0usize), 0usize..16, Just(usize::MAX)],
    )
        .prop_map(
            |(max_event_bytes, max_decompressed_bytes, max_events)| Limits {
                max_event_bytes,
                max_decompressed_bytes,
                max_events,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Parser: never panics.

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_strings(s in any::<String>()) {
        exercise_text(&s);
    }

    #[test]
    fn parser_never_panics_on_ascii_soup(s in "[ -~\t\n\u{1b}\u{1f}]{0,200}") {
        exercise_text(&s);
    }

    #[test]
    fn parser_never_panics_on_lossy_bytes(b in vec(any::<u8>(), 0..256)) {
        exercise_text(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn parser_never_panics_on_near_misses(s in near_miss_line()) {
        exercise_text(&s);
    }

    #[test]
    fn wrapped_records_parse(line in wrapped_line()) {
        // Unmutated, every wrapper of a well-formed record yields a record with fields.
        let entries = authlog::split_paste(&line);
        prop_assert!(!entries.is_empty());
        for e in &entries {
            let rec = authlog::parse_entry(e);
            prop_assert!(rec.is_ok(), "{e:?}: {rec:?}");
            let _ = diagnosis::diagnose(&rec.unwrap());
        }
    }

    #[test]
    fn classify_error_never_panics(s in prop_oneof![any::<String>(), fragment_line()]) {
        let c = diagnosis::classify_error(&s);
        if let Some(code) = &c.sts_code {
            prop_assert!(!code.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser: quoting round trip.

fn value_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(&['"', '\\', '=', ' ', '\t', '\n', '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{0}', '\u{85}', '\u{a0}', '\u{feff}', '\u{2028}', '[', ']', '{', '}', ',', 'x', 'u', '\''][..]),
        2 => (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('?')),
        2 => prop::char::range('a', 'z'),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<String>(),
        vec(value_char(), 0..16).prop_map(|cs| cs.into_iter().collect()),
        "[A-Za-z0-9._/@^+-]{1,10}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(("[a-z][a-z0-9_]{0,10}", value()), 1..8)
}

fn build_line(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", authlog::quote_value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn fields_of(rec: &authlog::AuthRecord<'_>) -> Vec<(String, String)> {
    rec.fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn quoted_values_round_trip(pairs in pairs()) {
        let line = build_line(&pairs);
        let rec = authlog::parse_line(&line);
        prop_assert!(rec.is_ok(), "{line:?}: {rec:?}");
        let rec = rec.unwrap();
        prop_assert_eq!(rec.format, Format::Logfmt);
        prop_assert_eq!(rec.wrapper, Wrapper::None);
        prop_assert_eq!(fields_of(&rec), pairs.clone(), "{:?}", line);
        // Quoting is idempotent in the sense that a bare value is returned as is.
        for (_, v) in &pairs {
            if let Cow::Borrowed(q) = authlog::quote_value(v) {
                prop_assert_eq!(q, v.as_str());
            }
        }
    }

    #[test]
    fn quoted_values_round_trip_through_docker(pairs in pairs()) {
        let line = build_line(&pairs);
        let docker = json!({"log": format!("{line}\n")}).to_string();
        let rec = authlog::parse_line(&docker);
        prop_assert!(rec.is_ok(), "{docker:?}: {rec:?}");
        let rec = rec.unwrap();
        prop_assert_eq!(rec.wrapper, Wrapper::Docker);
        prop_assert_eq!(fields_of(&rec), pairs);
    }

    #[test]
    fn quoted_values_round_trip_through_csv(
        mut pairs in pairs(),
        msg in value(),
        at in any::<prop::sample::Index>(),
    ) {
        // CSV rows are taken only when the record carries a message.
        let pos = at.index(pairs.len() + 1);
        pairs.insert(pos, ("msg".to_string(), msg));
        let line = build_line(&pairs);
        let ts = "2022-12-28 15:37:19.000";
        let csv = format!("\"{ts}\",\"{}\"", line.replace('"', "\"\""));
        let rec = authlog::parse_line(&csv);
        prop_assert!(rec.is_ok(), "{csv:?}: {rec:?}");
        let rec = rec.unwrap();
        prop_assert_eq!(rec.wrapper, Wrapper::Csv);
        let mut want = pairs.clone();
        if !pairs.iter().any(|(k, _)| k == "time") {
            // The row's timestamp fills in a missing time.
            want.push(("time".to_string(), ts.to_string()));
        }
        prop_assert_eq!(fields_of(&rec), want);
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder: never panics, respects limits.

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(b in vec(any::<u8>(), 0..512), limits in arb_limits()) {
        for lim in [Limits::default(), limits] {
            if let Ok(d) = event::decode_bytes(&b, &lim) {
                assert_within_limits(&d, &lim);
                exercise_decoded(&d);
            }
        }
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_json(v in arb_json(), limits in arb_limits()) {
        let text = v.to_string();
        for lim in [Limits::default(), limits] {
            if let Ok(d) = event::decode_value(&v, &lim) {
                assert_within_limits(&d, &lim);
                exercise_decoded(&d);
            }
            let _ = event::decode_bytes(text.as_bytes(), &lim);
        }
    }

    #[test]
    fn decoder_never_panics_on_shaped_events(v in shaped_event(), limits in arb_limits()) {
        for lim in [Limits::default(), limits] {
            match event::decode_value(&v, &lim) {
                Ok(d) => {
                    assert_within_limits(&d, &lim);
                    exercise_decoded(&d);
                }
                Err(e) => {
                    // Every error renders and names its layer.
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn decoder_survives_corrupted_subscriptions(
        lines in vec(prop::sample::select(SAMPLE_LINES), 1..6),
        flips in vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        b64_flips in vec((any::<prop::sample::Index>(), prop::sample::select(&[b'A', b'/', b'+', b'=', b'!', b' ', b'\n', b'-'][..])), 0..3),
        kinesis in any::<bool>(),
    ) {
        let text = lines.join("\n");
        let ev = eventgen::subscription(&text, &opts());
        let data = ev["awslogs"]["data"].as_str().unwrap_or_default();
        let mut gz = base64::engine::general_purpose::STANDARD.decode(data).unwrap_or_default();
        for (i, x) in &flips {
            let k = i.index(gz.len().max(1));
            if let Some(byte) = gz.get_mut(k) {
                *byte ^= x;
            }
        }
        if let Some(c) = cut {
            let k = c.index(gz.len() + 1);
            gz.truncate(k);
        }
        let mut enc = eventgen::b64(&gz).into_bytes();
        for (i, c) in &b64_flips {
            let k = i.index(enc.len().max(1));
            if let Some(byte) = enc.get_mut(k) {
                *byte = *c;
            }
        }
        let enc = String::from_utf8(enc).unwrap_or_default();
        let corrupted = if kinesis {
            json!({"Records": [{"kinesis": {"data": enc}}, {"kinesis": {"data": data}}]})
        } else {
            json!({"awslogs": {"data": enc}})
        };
        for lim in [Limits::default(), small(512)] {
            match event::decode_value(&corrupted, &lim) {
                Ok(d) => {
                    assert_within_limits(&d, &lim);
                    exercise_decoded(&d);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let _ = event::decode_bytes(corrupted.to_string().as_bytes(), &lim);
        }
    }

    #[test]
    fn decompression_cap_is_exact(
        lines in vec(prop::sample::select(SAMPLE_LINES), 1..8),
        cap in 1usize..4096,
    ) {
        let text = lines.join("\n");
        let inner_len = eventgen::decoded(&text, &opts()).to_string().len();
        let ev = eventgen::subscription(&text, &opts());
        let lim = small(cap);
        match event::decode_value(&ev, &lim) {
            Ok(d) => {
                prop_assert!(inner_len <= cap, "{inner_len} bytes decoded under a {cap}-byte cap");
                assert_within_limits(&d, &lim);
            }
            Err(DecodeError::DecompressedTooLarge { limit, layer }) => {
                prop_assert!(inner_len > cap, "{inner_len} bytes refused under a {cap}-byte cap");
                prop_assert_eq!(limit, cap);
                prop_assert_eq!(layer, "awslogs.data gzip");
            }
            Err(DecodeError::TooManyEvents { .. }) => prop_assert!(lines.len() > lim.max_events),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn kinesis_records_share_one_budget(
        texts in vec(vec(prop::sample::select(SAMPLE_LINES), 1..4), 1..4),
        cap in 1usize..8192,
    ) {
        let mut records = Vec::new();
        let mut total = 0usize;
        for lines in &texts {
            let text = lines.join("\n");
            total += eventgen::decoded(&text, &opts()).to_string().len();
            let ev = eventgen::kinesis(&text, &opts());
            records.push(ev["Records"][0].clone());
        }
        let ev = json!({ "Records": records });
        let lim = small(cap);
        match event::decode_value(&ev, &lim) {
            Ok(d) => {
                prop_assert!(total <= cap, "{total} bytes decoded under a {cap}-byte cap");
                prop_assert_eq!(d.batches.len(), texts.len());
                assert_within_limits(&d, &lim);
            }
            Err(DecodeError::DecompressedTooLarge { limit, .. }) => {
                prop_assert!(total > cap, "{total} bytes refused under a {cap}-byte cap");
                prop_assert!(limit <= cap);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn gunzip_output_never_exceeds_cap(
        data in prop_oneof![
            vec(any::<u8>(), 0..2048),
            (any::<u8>(), 0usize..(1 << 16)).prop_map(|(b, n)| vec![b; n]),
        ],
        cap in 0usize..4096,
        garbage in vec(any::<u8>(), 0..64),
    ) {
        let lim = small(cap);
        let gz = eventgen::gzip(&data);
        match event::gunzip(&gz, "x", &lim) {
            Ok(out) => {
                prop_assert!(out.len() <= cap);
                prop_assert_eq!(out, data);
            }
            Err(DecodeError::DecompressedTooLarge { limit, .. }) => {
                prop_assert!(data.len() > cap);
                prop_assert_eq!(limit, cap);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        // Concatenated members and trailing garbage: still bounded, never a panic.
        let mut multi = gz.clone();
        multi.extend_from_slice(&gz);
        multi.extend_from_slice(&garbage);
        if let Ok(out) = event::gunzip(&multi, "x", &lim) {
            prop_assert!(out.len() <= cap);
        }
        if let Ok(out) = event::gunzip(&garbage, "x", &lim) {
            prop_assert!(out.len() <= cap);
        }
    }
}

/// Extreme caps are valid configuration (any positive integer parses) and must not overflow.
#[test]
fn extreme_limits_do_not_overflow() {
    let ev = eventgen::subscription(SAMPLE_LINES[0], &opts());
    let lim = Limits {
        max_event_bytes: usize::MAX,
        max_decompressed_bytes: usize::MAX,
        max_events: usize::MAX,
    };
    let d = event::decode_value(&ev, &lim).unwrap();
    assert_eq!(d.batches[0].events.len(), 1);
    let gz = eventgen::gzip(b"hello");
    assert_eq!(event::gunzip(&gz, "x", &lim).unwrap(), b"hello");
}

/// Inputs shaped against each backtracking point of the parser (prefix search, TTY message split,
/// CSV cells, nested wrappers, ANSI stripping, escapes) at CloudWatch's 256 KiB event size. A
/// quadratic path would take minutes here; linear ones take milliseconds.
#[test]
fn large_adversarial_lines_finish() {
    const N: usize = 256 * 1024;
    let rep = |s: &str| s.repeat(N / s.len());
    let mut nested = r#"time="t" level=warning msg="access denied" error="x""#.to_string();
    for _ in 0..6 {
        nested = format!("pod c {}", json!({ "log": format!("{nested}\n") }));
    }
    let cases = [
        rep("x "),
        format!(
            "WARN[x] {}{}junk",
            rep("m ").get(..200).unwrap_or(""),
            rep("a=1 ")
        ),
        format!("p p p p p p p p p p p p p p p p p p p {} junk", rep("a=1 ")),
        format!("a {}", rep("{")),
        format!("a {{\"k\":[{}", rep("1,")),
        rep("a {"),
        rep("\""),
        rep("\"\","),
        rep("\"a\","),
        rep("\"a=1 msg=x\","),
        format!("\"{}\"", rep("WARN[x] m a=1 ")),
        rep("\u{1b}["),
        rep("\u{1b}[0m"),
        format!("k=\"{}", rep("\\x41")),
        format!("k=\"{}\"", rep("\\u00e9")),
        format!(
            "msg=\"access denied\" error=\"sts getCallerIdentity failed{} endpoint\"",
            rep(" on ")
        ),
        rep("2022-12-28T15:37:19Z\n"),
        rep("WARN["),
        format!("{nested} {}", rep("y ")),
    ];
    let started = std::time::Instant::now();
    for line in &cases {
        exercise_text(line);
    }
    // Generous: debug build on a loaded 2-core machine. Quadratic behaviour is orders beyond this.
    let took = started.elapsed();
    assert!(took.as_secs() < 60, "took {took:?}");
}
