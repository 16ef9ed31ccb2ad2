//! Bytes -> `event::decode_bytes` (default and small limits) -> `handler::diagnose_decoded`.
//!
//! Each input is tried three ways so the fuzzer reaches every layer, not just the outer JSON:
//! as the raw event, as the decoded logs JSON inside a subscription event (gzip + base64 done
//! here), and as the gzip stream itself (base64 done here), in a subscription and a Kinesis event.
#![no_main]

use eks_auth_remediator::event::{self, Decoded, Limits, Source};
use eks_auth_remediator::{eventgen, handler};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const SMALL: Limits = Limits {
    max_event_bytes: 4096,
    max_decompressed_bytes: 2048,
    max_events: 16,
};

fn check(decoded: &Decoded, limits: &Limits) {
    let events: usize = decoded.batches.iter().map(|b| b.events.len()).sum();
    assert!(
        events <= limits.max_events,
        "{events} events over the limit"
    );
    if matches!(decoded.source, Source::Subscription | Source::Kinesis) {
        let bytes: usize = decoded
            .batches
            .iter()
            .flat_map(|b| &b.events)
            .map(|e| e.message().len())
            .sum();
        assert!(
            bytes <= limits.max_decompressed_bytes,
            "{bytes} message bytes decoded under a {}-byte cap",
            limits.max_decompressed_bytes
        );
    }
    let _ = decoded.is_control_only();
    let _ = handler::diagnose_decoded(decoded, &handler::Config::default());
}

fn run(raw: &[u8]) {
    for limits in [Limits::default(), SMALL] {
        match event::decode_bytes(raw, &limits) {
            Ok(decoded) => check(&decoded, &limits),
            Err(e) => {
                let _ = e.to_string();
                let _ = handler::format_chain(&e);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. The raw event.
    run(data);
    // 2. The decoded logs JSON, compressed and encoded as CloudWatch Logs does.
    let inner = eventgen::b64(&eventgen::gzip(data));
    run(json!({"awslogs": {"data": inner}}).to_string().as_bytes());
    // 3. The gzip stream itself: corrupt headers, truncated members, concatenated members.
    let gz = eventgen::b64(data);
    run(json!({"awslogs": {"data": gz}}).to_string().as_bytes());
    run(
        json!({"Records": [{"kinesis": {"data": gz}}, {"kinesis": {"data": inner}}]})
            .to_string()
            .as_bytes(),
    );
});
