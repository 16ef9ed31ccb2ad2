//! Tracing setup for the two binaries.

/// Lambda: honours `AWS_LAMBDA_LOG_FORMAT` (JSON or text) and `AWS_LAMBDA_LOG_LEVEL`/`RUST_LOG`.
pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// CLI: human-readable logs on stderr (stdout carries the output), level from `RUST_LOG`
/// (default `warn`), JSON when `EKS_AUTH_LOG_FORMAT=json`.
pub fn init_cli() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::WARN.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let json = std::env::var("EKS_AUTH_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
