//! The Lambda function: wires configuration, the approval policy and the AWS edge once, then
//! runs the handler for each event.

use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::facts::OfflineFacts;
use eks_auth_remediator::handler::{self, Config, Deps, HandlerError};
use eks_auth_remediator::metrics;
use eks_auth_remediator::sinks::{self, Delivery};
use eks_auth_remediator::suppress;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eks_auth_remediator::logging::init_lambda();
    let config = Config::from_env()?;
    let policy = handler::policy_from_env()?;
    let offline = handler::offline_from_env();
    let role = handler::remediation_role(policy.as_ref())?;
    let (mut edge, delivery) = if offline {
        (
            Edge::Offline(OfflineFacts),
            Delivery::Disabled("EKS_AUTH_OFFLINE: tickets are not delivered".into()),
        )
    } else {
        (
            Edge::aws(config.region.as_deref(), role.as_deref()).await?,
            sinks::delivery_from_env(policy.as_ref(), config.region.as_deref()).await?,
        )
    };
    edge.configure(&config);
    tracing::info!(
        policy = policy.is_some(),
        mode = ?policy.as_ref().map(|p| p.mode()),
        offline,
        remediation_role = role.as_deref().unwrap_or(""),
        sinks = ?match &delivery {
            Delivery::Enabled(d) => d.sink_names(),
            Delivery::Disabled(_) => Vec::new(),
        },
        suppression_table = std::env::var(suppress::ENV_TABLE).unwrap_or_default(),
        "started"
    );
    let deps = Deps {
        policy,
        delivery,
        ..Deps::new(config, edge)
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
        let started = std::time::Instant::now();
        let result = handler::handle_value(&ev.payload, deps).await;
        // A failed delivery still reports its metrics (the sink failures above all).
        let response = match &result {
            Ok(r) => Some(r),
            Err(HandlerError::TicketDelivery { response, .. }) => Some(response.as_ref()),
            Err(_) => None,
        };
        if let Some(r) = response {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let latency = started.elapsed().as_secs_f64() * 1000.0;
            metrics::emit(&metrics::documents(r, None, latency, now_ms));
        }
        result.inspect_err(|e: &HandlerError| {
                tracing::error!(error = %handler::format_chain(e), error_type = e.error_type(), "invocation failed");
            })
    }))
    .await
}
