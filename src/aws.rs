//! AWS at the edge: one function builds the SDK configuration (region, retries, endpoint
//! overrides from `AWS_ENDPOINT_URL*` for emulators), and the remediation role is assumed here.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls;

/// Why AWS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: set AWS_REGION or pass --region")]
    NoRegion,
    #[error("sts:AssumeRole on {role} failed: {message}")]
    AssumeRole { role: String, message: String },
    #[error("sts:GetCallerIdentity failed: {0}")]
    Identity(String),
    #[error("acting as {actual}, expected the remediation role {expected}")]
    WrongIdentity { expected: String, actual: String },
    #[error("no credentials: {0}")]
    Credentials(String),
}

/// The SDK configuration from the environment (credentials chain, `AWS_ENDPOINT_URL*`), with an
/// explicit region when given.
///
/// # Errors
/// [`AwsError::NoRegion`] when neither `region` nor the environment names one.
pub async fn load(region: Option<&str>) -> Result<SdkConfig, AwsError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // rustls with ring: no C toolchain needed for TLS; plain http works for emulators.
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(AwsError::NoRegion);
    }
    Ok(config)
}

/// The caller's ARN (`sts:GetCallerIdentity`).
///
/// # Errors
/// [`AwsError::Identity`] with the service's message.
pub async fn caller_arn(config: &SdkConfig) -> Result<String, AwsError> {
    let sts = aws_sdk_sts::Client::new(config);
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::Identity(crate::handler::format_chain(&e)))?;
    out.arn
        .ok_or_else(|| AwsError::Identity("no Arn in the response".into()))
}

/// A configuration acting as the remediation role (credentials refreshed automatically), checked
/// with GetCallerIdentity. Returns the configuration and the verified caller ARN.
///
/// # Errors
/// [`AwsError::Identity`] (AssumeRole failures surface here) or [`AwsError::WrongIdentity`].
pub async fn assume_role(
    base: &SdkConfig,
    role_arn: &str,
    session: &str,
) -> Result<(SdkConfig, String), AwsError> {
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(session)
        .configure(base)
        .build()
        .await;
    let config = base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build();
    let actual = caller_arn(&config).await.map_err(|e| match e {
        AwsError::Identity(m) => AwsError::AssumeRole {
            role: role_arn.to_string(),
            message: m,
        },
        other => other,
    })?;
    let expected = crate::arn::Arn::parse(role_arn)
        .map(|a| a.without_path().to_string())
        .unwrap_or_else(|_| role_arn.to_string());
    // Assumed-role ARNs never carry the role's path: compare canonical forms.
    if !crate::arn::canonicalize(&actual).eq_ignore_ascii_case(&expected) {
        return Err(AwsError::WrongIdentity { expected, actual });
    }
    Ok((config, actual))
}

/// The credentials a configuration resolves to (for presigning the Kubernetes token).
///
/// # Errors
/// [`AwsError::Credentials`] when the chain yields none.
pub async fn credentials(config: &SdkConfig) -> Result<Credentials, AwsError> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| AwsError::Credentials("no credentials provider configured".into()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| AwsError::Credentials(crate::handler::format_chain(&e)))
}

/// An IAM role or user as IAM knows it: `Ok(Some((path-qualified ARN, unique id)))`, `Ok(None)` when
/// it does not exist (or is not a role or user), `Err` with the error chain on any other failure.
pub async fn iam_entity(
    iam: &aws_sdk_iam::Client,
    arn: &crate::arn::Arn,
) -> Result<Option<(String, String)>, String> {
    use crate::arn::PrincipalKind;
    use aws_sdk_iam::error::ProvideErrorMetadata;
    let name = arn.name();
    let fail = |code: Option<&str>, chain: String| match code {
        Some("NoSuchEntity") => Ok(None),
        _ => Err(chain),
    };
    match arn.kind() {
        PrincipalKind::Role => match iam.get_role().role_name(name).send().await {
            Ok(o) => Ok(o.role.map(|r| (r.arn, r.role_id))),
            Err(e) => fail(e.code(), crate::handler::format_chain(&e)),
        },
        PrincipalKind::User => match iam.get_user().user_name(name).send().await {
            Ok(o) => Ok(o.user.map(|u| (u.arn, u.user_id))),
            Err(e) => fail(e.code(), crate::handler::format_chain(&e)),
        },
        _ => Ok(None),
    }
}
