//! One timing run for `scripts/ab.sh`, which alternates two builds of this example to compare
//! them on the same machine in the same minutes (criterion's runs move by 5 to 10% between each
//! other on a shared VM; alternating builds cancels most of that).
//!
//! ```text
//! cargo run --release --example abtime
//! ```
//!
//! Prints one line of `name=value` pairs, in milliseconds:
//! - `pipeline`: `handler::decode_and_diagnose` on the benchmark's 10,000-event event, wall time,
//!   best of 60 (what the Lambda handler and `eks-auth invoke` run);
//! - `gunzip`: raw gunzip of the same payload into a buffer sized for it, best of 60;
//! - `ratio`: the two divided, the issue's measure;
//! - `decode_cpu`: the parsing thread's CPU time for `event::decode_value` (base64 and JSON; the
//!   decompression runs on another thread), best of 40;
//! - `lines_cpu`: diagnosing the decoded batch on one thread, CPU time, best of 40.

use std::io::Read;
use std::time::Instant;

use base64::Engine;
use eks_auth_remediator::{benchdata, event, handler};

/// CPU time of the calling thread, in ms.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, which lives for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// The least of `runs` timings of `f` by `clock` (ms).
fn best(runs: usize, clock: impl Fn() -> f64, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = clock();
            f();
            clock() - start
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let (ev, size) = benchdata::subscription_event(10_000);
    let data = ev["awslogs"]["data"].as_str().unwrap_or_default();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("the benchmark event is valid base64");
    let config = handler::Config::default();
    let epoch = Instant::now();
    let wall = || epoch.elapsed().as_secs_f64() * 1e3;

    let gunzip = best(60, wall, || {
        let mut out = Vec::with_capacity(size);
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .expect("the benchmark payload is valid gzip");
        std::hint::black_box(out);
    });
    let pipeline = best(60, wall, || {
        std::hint::black_box(
            handler::decode_and_diagnose(&ev, &config).expect("the benchmark event decodes"),
        );
    });
    let decode_cpu = best(40, thread_cpu_ms, || {
        std::hint::black_box(
            event::decode_value(&ev, &config.limits).expect("the benchmark event decodes"),
        );
    });
    let decoded = event::decode_value(&ev, &config.limits).expect("the benchmark event decodes");
    let lines_cpu = best(40, thread_cpu_ms, || {
        std::hint::black_box(handler::diagnose_with(&decoded, &config, 1));
    });
    println!(
        "pipeline={pipeline:.3} gunzip={gunzip:.3} ratio={:.3} decode_cpu={decode_cpu:.3} lines_cpu={lines_cpu:.3}",
        pipeline / gunzip
    );
}
