//! The `k8s-aws-v1.` bearer token that EKS clusters accept, made the way `aws eks get-token` makes it.
//!
//! The token is `k8s-aws-v1.` followed by the unpadded base64url of a SigV4 *query-presigned* STS
//! `GetCallerIdentity` URL, signed over the headers `host` and `x-k8s-aws-id: <cluster>`. The cluster's
//! authenticator replays the URL against STS (re-sending `x-k8s-aws-id` with its own cluster name) and
//! maps the identity STS returns. STS honours the signature for 15 minutes after `X-Amz-Date`; like
//! the AWS CLI we report an expiry of 14 minutes so clients refresh early.
//!
//! The URL is byte-identical to the one botocore (and so the AWS CLI) presigns, query parameters
//! included in the same order; `tests/eks_token.rs` checks that against the installed CLI.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use aws_credential_types::Credentials;
//! use eks_auth_remediator::eks_token;
//! use secrecy::ExposeSecret;
//!
//! let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None, None, "example");
//! let at = UNIX_EPOCH + Duration::from_secs(1_682_640_000);
//! let token = eks_token::presign(&creds, "us-west-2", "test-cluster", at)?;
//! assert!(token.secret().expose_secret().starts_with("k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20v"));
//! assert_eq!(format!("{token:?}").contains("REDACTED"), true);
//! assert_eq!(token.expiration_timestamp(), "2023-04-28T00:14:00Z");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningError, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The signed header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// The authenticator rejects longer tokens (`len(token) > maxTokenLenBytes`, 4 KiB).
pub const MAX_TOKEN_LEN: usize = 4096;
/// `X-Amz-Expires` of the presigned URL. STS ignores it (a signature is good for 15 minutes), but
/// old authenticators require a value of at most 60.
pub const URL_EXPIRES: Duration = Duration::from_secs(60);
/// The lifetime `aws eks get-token` reports, one minute short of the 15 STS honours.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
/// The `apiVersion` of the ExecCredential printed by [`exec_credential_json`] (the AWS CLI's default
/// when `KUBERNETES_EXEC_INFO` is unset).
pub const EXEC_CREDENTIAL_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

const STS_QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const GLOBAL_SIGNING_REGION: &str = "us-east-1";

/// Which STS endpoint the presigned URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StsEndpoint {
    /// `sts.<region>.<partition DNS suffix>`, signed for `<region>` (what the CLI does by default).
    #[default]
    Regional,
    /// `sts.amazonaws.com`, signed for `us-east-1` whatever the region (the CLI's
    /// `sts_regional_endpoints = legacy`). Exists only in the `aws` partition.
    Global,
}

/// A bearer token for an EKS cluster's Kubernetes API.
///
/// The token itself stays in a [`SecretString`]: `Debug` prints `[REDACTED]`.
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
    signed_at: SystemTime,
    expires_at: SystemTime,
}

impl Token {
    /// The token (`k8s-aws-v1.…`); call `expose_secret()` on it to send it.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// When the URL was signed (`X-Amz-Date`).
    pub fn signed_at(&self) -> SystemTime {
        self.signed_at
    }

    /// When clients should stop using the token: signing time + 14 minutes, as the AWS CLI reports.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// [`Token::expires_at`] as RFC 3339 in whole seconds (`2023-04-28T00:14:00Z`), the CLI's format.
    pub fn expiration_timestamp(&self) -> String {
        rfc3339_seconds(self.expires_at)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expiration_timestamp())
            .finish()
    }
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The region is not a region name.
    #[error("'{0}' is not an AWS region name")]
    Region(String),
    /// The cluster is not an EKS cluster name or id.
    #[error(
        "'{0}' is not an EKS cluster name or id (1-100 of A-Z a-z 0-9 - _, starting alphanumeric)"
    )]
    Cluster(String),
    /// [`StsEndpoint::Global`] outside the `aws` partition.
    #[error("the global STS endpoint exists only in the aws partition; region {region} is in {partition}")]
    GlobalEndpointUnavailable {
        /// The region asked for.
        region: String,
        /// Its partition.
        partition: &'static str,
    },
    /// The signing time is before the Unix epoch.
    #[error("signing time is before 1970")]
    Time,
    /// The credentials expire at or before the signing time.
    #[error("the credentials expired at {expired_at}, before the signing time {at}")]
    CredentialsExpired {
        /// The credentials' expiry (RFC 3339).
        expired_at: String,
        /// The signing time (RFC 3339).
        at: String,
    },
    /// aws-sigv4 refused the signing parameters.
    #[error("incomplete signing parameters")]
    Params(#[source] v4::signing_params::BuildError),
    /// aws-sigv4 could not sign.
    #[error("could not presign the STS request")]
    Sign(#[source] SigningError),
    /// The presigned URL is 4096 bytes or more (a very long session token).
    #[error("the presigned URL is {len} bytes; it must stay under {max}")]
    UrlTooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_TOKEN_LEN`].
        max: usize,
    },
    /// The token is over 4096 bytes, which the authenticator rejects (a long session token).
    #[error("the token is {len} bytes; the authenticator rejects tokens over {max}")]
    TokenTooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_TOKEN_LEN`].
        max: usize,
    },
}

/// Presigns a token for `cluster` against the regional STS endpoint of `region`, as of `at`.
///
/// # Errors
/// [`TokenError`] for an invalid region or cluster name, credentials already expired at `at`, a
/// signing failure, or a token the authenticator would reject as too large (long session tokens).
pub fn presign(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
) -> Result<Token, TokenError> {
    presign_with(creds, region, cluster, at, StsEndpoint::Regional)
}

/// [`presign`] with a choice of STS endpoint.
///
/// # Errors
/// As [`presign`]; also [`TokenError::GlobalEndpointUnavailable`] for [`StsEndpoint::Global`]
/// outside the `aws` partition.
pub fn presign_with(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
    endpoint: StsEndpoint,
) -> Result<Token, TokenError> {
    let url = presigned_url(creds, region, cluster, at, endpoint)?;
    if url.len() >= MAX_TOKEN_LEN {
        return Err(TokenError::UrlTooLarge {
            len: url.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + url.len() * 4 / 3 + 4);
    token.push_str(TOKEN_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(url.as_bytes(), &mut token);
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TokenTooLarge {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    Ok(Token {
        secret: SecretString::from(token),
        signed_at: at,
        expires_at: at + TOKEN_LIFETIME,
    })
}

/// The presigned STS URL a token encodes (it holds a signature and any session token: a secret).
///
/// Parameters come in botocore's order: `Action`, `Version`, `X-Amz-Algorithm`, `X-Amz-Credential`,
/// `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Security-Token` (with a session
/// token), `X-Amz-Signature`.
///
/// # Errors
/// As [`presign_with`], except for the size checks.
pub fn presigned_url(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    at: SystemTime,
    endpoint: StsEndpoint,
) -> Result<String, TokenError> {
    validate_cluster(cluster)?;
    let (host, signing_region) = sts_host(region, endpoint)?;
    at.duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError::Time)?;
    if let Some(expiry) = creds.expiry() {
        if expiry <= at {
            return Err(TokenError::CredentialsExpired {
                expired_at: rfc3339_seconds(expiry),
                at: rfc3339_seconds(at),
            });
        }
    }

    let base = format!("https://{host}/?{STS_QUERY}");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signing_region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(TokenError::Params)?
        .into();
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        [(CLUSTER_ID_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(TokenError::Sign)?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(TokenError::Sign)?
        .into_parts();
    let (_headers, query) = instructions.into_parts();

    // aws-sigv4 hands back the signature before the session token; botocore appends the signature
    // last. Same parameters, same signature: only the order differs, and we follow botocore.
    let mut url = base;
    let (signature, rest): (Vec<_>, Vec<_>) =
        query.iter().partition(|(k, _)| *k == "X-Amz-Signature");
    for (k, v) in rest.into_iter().chain(signature) {
        url.push('&');
        percent_encode_into(k, &mut url);
        url.push('=');
        percent_encode_into(v, &mut url);
    }
    Ok(url)
}

/// The ExecCredential document `aws eks get-token` prints for `token`, byte for byte (four-space
/// JSON, then the blank line the CLI adds). It contains the token: print it, don't log it.
pub fn exec_credential_json(token: &Token) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""));
    format!(
        "{{\n    \"kind\": \"ExecCredential\",\n    \"apiVersion\": {},\n    \"spec\": {{}},\n    \"status\": {{\n        \"expirationTimestamp\": {},\n        \"token\": {}\n    }}\n}}\n\n",
        q(EXEC_CREDENTIAL_API_VERSION),
        q(&token.expiration_timestamp()),
        q(token.secret.expose_secret()),
    )
}

/// The partition a region belongs to, by botocore's partition regexes (`cn-…` is `aws-cn`,
/// `us-gov-…` is `aws-us-gov`, …); anything else is `aws`, as in botocore.
pub fn region_partition(region: &str) -> &'static str {
    partition_and_suffix(region).0
}

/// The STS host and signing region for `region` and `endpoint`.
///
/// # Errors
/// [`TokenError::Region`] for a malformed region; [`TokenError::GlobalEndpointUnavailable`] for the
/// global endpoint outside the `aws` partition.
pub fn sts_host(region: &str, endpoint: StsEndpoint) -> Result<(String, &str), TokenError> {
    validate_region(region)?;
    let (partition, suffix) = partition_and_suffix(region);
    match endpoint {
        StsEndpoint::Regional => Ok((format!("sts.{region}.{suffix}"), region)),
        StsEndpoint::Global if partition == "aws" => {
            Ok(("sts.amazonaws.com".to_string(), GLOBAL_SIGNING_REGION))
        }
        StsEndpoint::Global => Err(TokenError::GlobalEndpointUnavailable {
            region: region.to_string(),
            partition,
        }),
    }
}

fn partition_and_suffix(region: &str) -> (&'static str, &'static str) {
    // Most specific prefixes first: `us-isob-` before `us-iso-`.
    const TABLE: &[(&str, &str, &str)] = &[
        ("cn-", "aws-cn", "amazonaws.com.cn"),
        ("us-gov-", "aws-us-gov", "amazonaws.com"),
        ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
        ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
        ("us-iso-", "aws-iso", "c2s.ic.gov"),
        ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
        ("eusc-", "aws-eusc", "amazonaws.eu"),
    ];
    TABLE
        .iter()
        .find(|(prefix, _, _)| region.starts_with(prefix))
        .map_or(("aws", "amazonaws.com"), |&(_, p, s)| (p, s))
}

fn validate_region(region: &str) -> Result<(), TokenError> {
    let ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && !region.ends_with('-')
        && !region.contains("--");
    if ok {
        Ok(())
    } else {
        Err(TokenError::Region(region.to_string()))
    }
}

// EKS cluster names: 1-100 characters, `^[0-9A-Za-z][A-Za-z0-9\-_]*$`; Outposts cluster ids (UUIDs)
// fit the same shape. Anything else would be normalised by SigV4 header canonicalisation and sign a
// different value than the authenticator re-sends.
fn validate_cluster(cluster: &str) -> Result<(), TokenError> {
    let ok = (1..=100).contains(&cluster.len())
        && cluster.starts_with(|c: char| c.is_ascii_alphanumeric())
        && cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TokenError::Cluster(cluster.to_string()))
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 and botocore do.
fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn rfc3339_seconds(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000),
        Err(e) => -i64::try_from(e.duration().as_secs().saturating_add(1)).unwrap_or(0),
    };
    // format_ms gives `YYYY-MM-DDTHH:MM:SS.mmmZ`; the CLI prints whole seconds.
    let full = crate::timefmt::format_ms(secs.saturating_mul(1000));
    match full.get(..19) {
        Some(head) => format!("{head}Z"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "ASIAR2TG44V6AS3ZZE7C",
            "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    #[test]
    fn authenticator_test_vector() {
        let url = presigned_url(
            &creds(None),
            "us-west-2",
            "test-cluster",
            at(1_682_640_000),
            StsEndpoint::Regional,
        )
        .unwrap();
        assert_eq!(
            url,
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request\
             &X-Amz-Date=20230428T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\
             &X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce"
        );
    }

    #[test]
    fn session_token_goes_before_the_signature() {
        let url = presigned_url(
            &creds(Some("FQoG/ZXIvYXdzE+a=b")),
            "eu-west-1",
            "c",
            at(1_682_640_000),
            StsEndpoint::Regional,
        )
        .unwrap();
        let tail = url
            .split("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&")
            .nth(1)
            .unwrap();
        assert!(
            tail.starts_with("X-Amz-Security-Token=FQoG%2FZXIvYXdzE%2Ba%3Db&X-Amz-Signature="),
            "{tail}"
        );
    }

    #[test]
    fn hosts_per_partition_and_global() {
        for (region, endpoint, host, signing) in [
            (
                "us-west-2",
                StsEndpoint::Regional,
                "sts.us-west-2.amazonaws.com",
                "us-west-2",
            ),
            (
                "cn-north-1",
                StsEndpoint::Regional,
                "sts.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
            ),
            (
                "us-gov-west-1",
                StsEndpoint::Regional,
                "sts.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
            ),
            (
                "us-isob-east-1",
                StsEndpoint::Regional,
                "sts.us-isob-east-1.sc2s.sgov.gov",
                "us-isob-east-1",
            ),
            (
                "eu-west-1",
                StsEndpoint::Global,
                "sts.amazonaws.com",
                "us-east-1",
            ),
        ] {
            let (h, s) = sts_host(region, endpoint).unwrap();
            assert_eq!((h.as_str(), s), (host, signing), "{region}");
        }
        assert!(matches!(
            sts_host("cn-north-1", StsEndpoint::Global),
            Err(TokenError::GlobalEndpointUnavailable {
                partition: "aws-cn",
                ..
            })
        ));
        assert_eq!(region_partition("us-iso-east-1"), "aws-iso");
        assert_eq!(region_partition("eusc-de-east-1"), "aws-eusc");
    }

    #[test]
    fn rejects_bad_inputs() {
        let c = creds(None);
        for region in ["", "US-WEST-2", "us-west-2.evil.com/", "us west", "-us"] {
            assert!(
                matches!(presign(&c, region, "c", at(1)), Err(TokenError::Region(_))),
                "{region:?}"
            );
        }
        for cluster in ["", "-x", "a b", "a:b", "é", &"x".repeat(101)] {
            assert!(
                matches!(
                    presign(&c, "us-east-1", cluster, at(1)),
                    Err(TokenError::Cluster(_))
                ),
                "{cluster:?}"
            );
        }
        let expired = Credentials::new("AKID", "S", None, Some(at(100)), "test");
        assert!(matches!(
            presign(&expired, "us-east-1", "c", at(100)),
            Err(TokenError::CredentialsExpired { .. })
        ));
        assert!(matches!(
            presign(&c, "us-east-1", "c", UNIX_EPOCH - Duration::from_secs(1)),
            Err(TokenError::Time)
        ));
    }

    #[test]
    fn oversized_session_token_is_refused() {
        // The URL stays under 4096 bytes but its base64 does not.
        let big = "A".repeat(3000);
        let err = presign(&creds(Some(&big)), "us-east-1", "c", at(1_682_640_000)).unwrap_err();
        assert!(
            matches!(err, TokenError::TokenTooLarge { max: 4096, .. }),
            "{err}"
        );
        let huge = "A".repeat(4096);
        let err = presign(&creds(Some(&huge)), "us-east-1", "c", at(1_682_640_000)).unwrap_err();
        assert!(
            matches!(err, TokenError::UrlTooLarge { max: 4096, .. }),
            "{err}"
        );
    }

    #[test]
    fn debug_redacts_and_exec_credential_matches_the_cli_shape() {
        let t = presign(&creds(None), "us-west-2", "test-cluster", at(1_682_640_000)).unwrap();
        let dbg = format!("{t:?}");
        assert!(
            dbg.contains("[REDACTED]") && !dbg.contains("k8s-aws-v1"),
            "{dbg}"
        );
        let json = exec_credential_json(&t);
        assert!(json.starts_with("{\n    \"kind\": \"ExecCredential\",\n    \"apiVersion\": \"client.authentication.k8s.io/v1beta1\",\n    \"spec\": {},\n    \"status\": {\n        \"expirationTimestamp\": \"2023-04-28T00:14:00Z\",\n        \"token\": \"k8s-aws-v1."));
        assert!(json.ends_with("\"\n    }\n}\n\n"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["status"]["token"].as_str(),
            Some(t.secret().expose_secret())
        );
    }

    #[test]
    fn expiry_is_fourteen_minutes_in_whole_seconds() {
        let t = presign(
            &creds(None),
            "us-west-2",
            "c",
            at(1_682_640_000) + Duration::from_millis(999),
        )
        .unwrap();
        assert_eq!(t.expiration_timestamp(), "2023-04-28T00:14:00Z");
        assert_eq!(rfc3339_seconds(at(0)), "1970-01-01T00:00:00Z");
    }
}
