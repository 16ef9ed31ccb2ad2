//! Decode + parse + diagnose of a 10,000-event CloudWatch Logs subscription batch, beside raw
//! gzip decompression of the same payload.
//!
//! ```text
//! cargo bench --bench pipeline
//! ```
//!
//! Two groups measure the same two functions: `pipeline_bytes` reports MB/s of decompressed
//! subscription JSON (about 4 MB), `pipeline_events` reports events/s.
//! - `gunzip`: the payload is base64-decoded once outside the loop; each iteration only runs
//!   flate2's `MultiGzDecoder` into a `Vec` sized for the output (the fastest baseline).
//! - `decode_parse_diagnose`: `handler::decode_and_diagnose`, what the Lambda handler runs:
//!   base64, bounded gunzip and JSON (`event::decode_value_early`), then parse every line,
//!   classify and group into findings, starting from the event as the Lambda runtime hands it
//!   over (a `serde_json::Value`). On two cores the payload is gunzipped on a second thread,
//!   the first lines are diagnosed while this thread waits for it, and the rest on two threads.
//!
//! `scripts/bench.sh` runs this and summarises the ratio; results live in docs/benchmarks.md.

use std::hint::black_box;
use std::io::Read;
use std::time::Duration;

use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use eks_auth_remediator::{benchdata, event, handler};

const EVENTS: usize = 10_000;

fn gunzip(gz: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn pipeline(c: &mut Criterion) {
    let (ev, size) = benchdata::subscription_event(EVENTS);
    let data = ev["awslogs"]["data"].as_str().expect("awslogs.data");
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    let config = handler::Config::default();

    // Check once that both sides do the whole job before timing them.
    assert_eq!(gunzip(&gz, size).len(), size);
    let decoded = event::decode_value(&ev, &config.limits).expect("decodes");
    let (findings, stats) = handler::diagnose_decoded(&decoded, &config);
    let (_, fused) = handler::decode_and_diagnose(&ev, &config).expect("decodes");
    assert_eq!((&fused.0, &fused.1), (&findings, &stats));
    assert_eq!(stats.parsed, EVENTS as u64);
    eprintln!(
        "batch: {EVENTS} events, {size} bytes decompressed, {} bytes gzip, {} findings",
        gz.len(),
        findings.len()
    );

    let run = |g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>| {
        g.bench_function("gunzip", |b| {
            b.iter(|| gunzip(black_box(&gz), size));
        });
        g.bench_function("decode_parse_diagnose", |b| {
            b.iter(|| handler::decode_and_diagnose(black_box(&ev), &config).expect("decodes"));
        });
    };

    let mut g = c.benchmark_group("pipeline_bytes");
    g.throughput(Throughput::Bytes(size as u64));
    run(&mut g);
    g.finish();

    let mut g = c.benchmark_group("pipeline_events");
    g.throughput(Throughput::Elements(EVENTS as u64));
    run(&mut g);
    g.finish();

    // Where the time goes: decoding alone (base64, gunzip, JSON) and the per-line work alone.
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("decode", |b| {
        b.iter(|| event::decode_value(black_box(&ev), &config.limits).expect("decodes"));
    });
    g.bench_function("parse_diagnose", |b| {
        b.iter(|| handler::diagnose_decoded(black_box(&decoded), &config));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // A 2-core machine: few samples, short runs (each iteration takes milliseconds).
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = pipeline
}
criterion_main!(benches);
