//! The Lambda function: wires configuration and runs the handler for each event.

use eks_auth_remediator::facts::OfflineFacts;
use eks_auth_remediator::handler::{self, Config, HandlerError, Response};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eks_auth_remediator::logging::init_lambda();
    let config = Config::from_env()?;
    let facts = OfflineFacts;
    let (config, facts) = (&config, &facts);
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            handler::handle_value(&ev.payload, config, facts)
                .await
                .inspect_err(|e: &HandlerError| {
                    tracing::error!(error = %handler::format_chain(e), error_type = e.error_type(), "invocation failed");
                })
                .map(|r: Response| r)
        },
    ))
    .await
}
