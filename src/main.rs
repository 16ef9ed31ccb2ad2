//! The Lambda function: wires configuration, the approval policy and the AWS edge once, then
//! runs the handler for each event.

use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::facts::OfflineFacts;
use eks_auth_remediator::handler::{self, Config, Deps, HandlerError};
use eks_auth_remediator::metrics;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eks_auth_remediator::logging::init_lambda();
    let config = Config::from_env()?;
    let policy = handler::policy_from_env()?;
    let offline = handler::offline_from_env();
    let role = policy
        .as_ref()
        .and_then(|p| p.remediation_role_arn().map(str::to_string))
        .or_else(|| {
            std::env::var("EKS_AUTH_REMEDIATION_ROLE_ARN")
                .ok()
                .filter(|r| !r.is_empty())
        });
    let mut edge = if offline {
        Edge::Offline(OfflineFacts)
    } else {
        Edge::aws(config.region.as_deref(), role.as_deref()).await?
    };
    edge.configure(&config);
    tracing::info!(
        policy = policy.is_some(),
        mode = ?policy.as_ref().map(|p| p.mode()),
        offline,
        remediation_role = role.as_deref().unwrap_or(""),
        "started"
    );
    let deps = Deps {
        policy,
        ..Deps::new(config, edge)
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
        let started = std::time::Instant::now();
        let result = handler::handle_value(&ev.payload, deps).await;
        if let Ok(r) = &result {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let latency = started.elapsed().as_secs_f64() * 1000.0;
            // Ticket delivery counts come from the sinks when they report them; until then the
            // response's tickets count as opened.
            metrics::emit(&metrics::documents(r, None, latency, now_ms));
        }
        result.inspect_err(|e: &HandlerError| {
                tracing::error!(error = %handler::format_chain(e), error_type = e.error_type(), "invocation failed");
            })
    }))
    .await
}
