//! Writes the benchmark's 10,000-event CloudWatch Logs subscription event to a file.
//!
//! ```text
//! cargo run --release --example batch -- /tmp/batch.json [EVENTS]
//! ```
//!
//! The Python comparison (`scripts/py_pipeline.py`) and the peak-memory measurement in
//! `scripts/bench.sh` read this file; `benches/pipeline.rs` builds the same event in memory.

use std::process::ExitCode;

use eks_auth_remediator::benchdata;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: batch OUTPUT.json [EVENTS (default 10000)]");
        return ExitCode::from(2);
    };
    let n = match args.next().map(|s| s.parse::<usize>()) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("batch: EVENTS must be a positive integer");
            return ExitCode::from(2);
        }
    };
    let (event, decompressed) = benchdata::subscription_event(n);
    let text = event.to_string();
    if let Err(e) = std::fs::write(&path, &text) {
        eprintln!("batch: cannot write {path}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "{path}: {n} events, {} bytes on disk, {decompressed} bytes decompressed",
        text.len()
    );
    ExitCode::SUCCESS
}
