//! HTTPS webhook: `POST` of the ticket JSON, signed with HMAC-SHA256 when a secret is configured.
//!
//! Headers: `Content-Type: application/json`, `X-EKS-Auth-Ticket-Id`, `Idempotency-Key`
//! (`<ticket id>:<window opened at>`), `X-EKS-Auth-Timestamp` (epoch seconds) and, with a secret,
//! `X-EKS-Auth-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the timestamp is
//! in the signed material, so a receiver rejecting old timestamps is safe from replays.
//!
//! Each attempt has the configured timeout (connect to answer read). 5xx, 408, 429, timeouts and
//! connection errors are retried with exponential backoff (100 ms doubling, at most 2 s) up to
//! `retries` times; any other answer is final. The client is hyper with rustls (ring) and the
//! system's root certificates.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::{Outgoing, SetupError, Sink, SinkError};
use crate::policy::{self, WebhookSecret};
use crate::suppress::BoxFuture;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-eks-auth-signature";
/// The timestamp header (part of the signed material).
pub const TIMESTAMP_HEADER: &str = "x-eks-auth-timestamp";
/// The ticket id header.
pub const TICKET_HEADER: &str = "x-eks-auth-ticket-id";
/// Answers longer than this are not read further.
const MAX_ANSWER: usize = 64 * 1024;

/// Where the HMAC key comes from.
pub enum Secret {
    None,
    Static(SecretString),
    /// Read from Secrets Manager on first use; cached for the container's life.
    SecretsManager {
        client: aws_sdk_secretsmanager::Client,
        arn: String,
        cached: tokio::sync::OnceCell<SecretString>,
    },
}

impl Secret {
    async fn get(&self) -> Result<Option<SecretString>, SinkError> {
        match self {
            Secret::None => Ok(None),
            Secret::Static(s) => Ok(Some(s.clone())),
            Secret::SecretsManager {
                client,
                arn,
                cached,
            } => cached
                .get_or_try_init(|| async {
                    let out = client
                        .get_secret_value()
                        .secret_id(arn)
                        .send()
                        .await
                        .map_err(|e| {
                            SinkError::Secret(format!(
                                "secretsmanager:GetSecretValue on {arn}: {}",
                                crate::handler::format_chain(&e)
                            ))
                        })?;
                    out.secret_string
                        .filter(|s| !s.is_empty())
                        .map(SecretString::from)
                        .ok_or_else(|| SinkError::Secret(format!("{arn} has no SecretString")))
                })
                .await
                .cloned()
                .map(Some),
        }
    }
}

/// `sha256=<hex>` over `<timestamp>.<body>`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256=");
    for b in tag {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Posts tickets to one URL.
pub struct WebhookSink {
    client: HttpsClient,
    url: http::Uri,
    secret: Secret,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

/// The rustls configuration with the system's root certificates.
///
/// # Errors
/// [`SetupError::Webhook`] when no root certificate can be loaded.
pub fn system_tls() -> Result<rustls::ClientConfig, SetupError> {
    use hyper_rustls::ConfigBuilderExt;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SetupError::Webhook(e.to_string()))?
    .with_native_roots()
    .map_err(|e| SetupError::Webhook(format!("no system root certificates: {e}")))?
    .with_no_client_auth())
}

impl WebhookSink {
    /// A sink for a validated policy entry; the secret variable is read now.
    ///
    /// # Errors
    /// [`SetupError`] when `secret_env` names an unset variable or TLS cannot be set up.
    pub fn from_config(
        w: &policy::WebhookSink,
        config: &aws_config::SdkConfig,
    ) -> Result<Self, SetupError> {
        let secret = match &w.secret {
            None => Secret::None,
            Some(WebhookSecret::Env(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Secret::Static(SecretString::from(v)),
                _ => return Err(SetupError::SecretEnv(var.clone())),
            },
            Some(WebhookSecret::SecretsManager(arn)) => Secret::SecretsManager {
                client: aws_sdk_secretsmanager::Client::new(config),
                arn: arn.clone(),
                cached: tokio::sync::OnceCell::new(),
            },
        };
        WebhookSink::new(&w.url, secret, w.timeout, w.retries, system_tls()?)
    }

    /// A sink with explicit TLS settings (tests pass their own CA).
    ///
    /// # Errors
    /// [`SetupError::Webhook`] when the URL does not parse.
    pub fn new(
        url: &str,
        secret: Secret,
        timeout: Duration,
        retries: u32,
        tls: rustls::ClientConfig,
    ) -> Result<Self, SetupError> {
        let url: http::Uri = url
            .parse()
            .map_err(|e| SetupError::Webhook(format!("'{url}': {e}")))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(WebhookSink {
            client,
            url,
            secret,
            timeout,
            retries,
            backoff: Duration::from_millis(100),
        })
    }

    /// Sets the first retry's delay (doubles each retry, at most 2 s).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    async fn attempt(
        &self,
        out: &Outgoing<'_>,
        secret: Option<&SecretString>,
    ) -> Result<u16, String> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let mut req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("eks-auth-remediator/", env!("CARGO_PKG_VERSION")),
            )
            .header(TICKET_HEADER, out.ticket.id.as_str())
            .header(
                "idempotency-key",
                format!("{}:{}", out.ticket.id, out.opened_at),
            )
            .header(TIMESTAMP_HEADER, ts.as_str());
        if let Some(s) = secret {
            req = req.header(
                SIGNATURE_HEADER,
                signature(s.expose_secret(), &ts, out.json.as_bytes()),
            );
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(out.json.as_bytes())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| crate::handler::format_chain(&e))?;
            let status = resp.status().as_u16();
            // Read (a bounded part of) the answer so the connection can be reused.
            let _ = Limited::new(resp.into_body(), MAX_ANSWER).collect().await;
            Ok::<u16, String>(status)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

fn retryable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

impl Sink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn deliver<'a>(&'a self, out: &'a Outgoing<'a>) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let secret = self.secret.get().await?;
            let attempts = self.retries + 1;
            let mut delay = self.backoff;
            let mut n = 1;
            loop {
                match self.attempt(out, secret.as_ref()).await {
                    Ok(s) if (200..300).contains(&s) => return Ok(()),
                    Ok(s) if !retryable(s) || n == attempts => {
                        return Err(SinkError::Status {
                            status: s,
                            attempts: n,
                        })
                    }
                    Err(message) if n == attempts => {
                        return Err(SinkError::Transport {
                            attempts: n,
                            message,
                        })
                    }
                    Ok(s) => {
                        tracing::warn!(ticket_id = %out.ticket.id, status = s, attempt = n, "webhook answered an error; retrying")
                    }
                    Err(e) => {
                        tracing::warn!(ticket_id = %out.ticket.id, error = %e, attempt = n, "webhook request failed; retrying")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                n += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_openssl() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", "1700000000", br#"{"a":1}"#),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn retry_classes() {
        assert!(retryable(500) && retryable(503) && retryable(429) && retryable(408));
        assert!(!retryable(400) && !retryable(404) && !retryable(401));
    }
}
