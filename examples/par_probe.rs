use eks_auth_remediator::{benchdata, event, handler};
fn main() {
    let config = handler::Config::default();
    let (ev, _) = benchdata::subscription_event(10_000);
    let mut best = f64::MAX;
    for _ in 0..30 {
        let t = std::time::Instant::now();
        std::hint::black_box(event::decode_value(&ev, &config.limits).unwrap());
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    eprintln!("best total {best:.3}");
}
