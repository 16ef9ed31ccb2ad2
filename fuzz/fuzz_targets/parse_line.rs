//! Bytes -> lossy UTF-8 -> `authlog::parse_line`, `split_paste` + `parse_entry`, `diagnose`.
//!
//! Also checks the quoting oracle: any string written with `quote_value` parses back unchanged,
//! plain and inside a Docker json-file wrapper.
#![no_main]

use eks_auth_remediator::{authlog, diagnosis, event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(rec) = authlog::parse_line(&text) {
        let d = diagnosis::diagnose(&rec);
        let _ = d.summary();
        let _ = diagnosis::diagnose(&rec.into_owned());
    }
    for entry in authlog::split_paste(&text) {
        if let Ok(rec) = authlog::parse_entry(&entry) {
            let _ = diagnosis::diagnose(&rec).summary();
        }
    }
    let _ = diagnosis::classify_error(&text);

    // Through the aggregator: truncation of samples, time parsing and grouping.
    let mut agg = diagnosis::Aggregator::new();
    let origin = diagnosis::Origin {
        cluster: Some("prod".into()),
        ..diagnosis::Origin::default()
    };
    agg.add(&origin, Some("1"), None, &text);
    agg.add(&origin, Some("2"), Some(0), &text);
    // As the subscription JSON holds it, and as anything claiming to be that.
    let json = serde_json::to_string(&*text).expect("a string serialises");
    agg.add_line(&origin, Some("3"), None, event::Line::Json(&json[1..]));
    agg.add_line(&origin, Some("4"), None, event::Line::Json(&text));
    let _ = agg.finish();

    // The escaped scan, when it answers, reads the fields the plain scan reads.
    let body = &json[1..json.len() - 1];
    let fields = |json: bool, text: &str| {
        let mut scratch = String::new();
        let mut found = Vec::new();
        let read = if json {
            authlog::scan_logfmt_json(text, &mut scratch, |k, v| found.push((k, v)))
        } else {
            authlog::scan_logfmt(text, &mut scratch, |k, v| found.push((k, v)))
        };
        read.then(|| {
            found
                .into_iter()
                .map(|(k, v)| match v {
                    authlog::Scanned::Line(v) => (k.to_string(), v.to_string()),
                    authlog::Scanned::Scratch(a, b) => (k.to_string(), scratch[a..b].to_string()),
                })
                .collect::<Vec<_>>()
        })
    };
    if let Some(escaped) = fields(true, body) {
        assert_eq!(Some(escaped), fields(false, &text), "{body:?}");
    }
    let _ = fields(true, &text);

    // Round trip: the fuzzed text as a value.
    let line = format!(
        "k={} msg={}",
        authlog::quote_value(&text),
        authlog::quote_value(&text)
    );
    if line.len() <= authlog::MAX_LINE_BYTES {
        let rec = authlog::parse_line(&line).expect("a quoted value always parses");
        assert_eq!(rec.fields.len(), 2, "{line:?}");
        assert_eq!(rec.get("k"), Some(&*text), "{line:?}");
        assert_eq!(rec.msg(), Some(&*text), "{line:?}");
        let docker = serde_json::json!({"log": format!("{line}\n")}).to_string();
        if docker.len() <= authlog::MAX_LINE_BYTES {
            let rec = authlog::parse_line(&docker).expect("a Docker-wrapped line parses");
            assert_eq!(rec.get("k"), Some(&*text), "{docker:?}");
        }
    }
});
