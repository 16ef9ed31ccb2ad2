//! Replaying a verified token's presigned GetCallerIdentity against STS (moto in tests), and
//! turning the answer into the authenticator's `Identity` with its error strings.
//!
//! - [`StsMode::Verbatim`]: `GET <endpoint>/?<presigned query>` with `Host` set to the token's
//!   host, `x-k8s-aws-id: <cluster>` and `accept: application/json`: the request the
//!   authenticator sends, routed to the configured endpoint (for an STS stub that checks
//!   signatures). moto's single-endpoint server does not route it to STS: it picks the service
//!   from the `Authorization` header or the body and, with neither, answers as S3 (ListBuckets
//!   XML), which the authenticator's JSON decoder rejects.
//! - [`StsMode::Moto`]: `POST <endpoint>/` with `Action=GetCallerIdentity&Version=2011-06-15`,
//!   signed in an `Authorization` header with the token's access key (and session token), a dummy
//!   secret, service `sts` and the credential scope's region. moto answers XML for the IAM user or
//!   assumed-role session owning the key. For a key it does not know (a deleted user, a made-up
//!   key) moto returns a default identity `arn:aws:sts::<account>:user/moto`; real STS answers
//!   403 `InvalidClientTokenId` there, so this mode reports that instead.

use crate::config::StsMode;
use crate::sigv4::{self, Creds};
use crate::token::{go_quote, VerifiedToken};
use crate::Shared;

/// The authenticator's `token.Identity`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The ARN STS returned (`arn:aws:sts::A:assumed-role/R/session`).
    pub arn: String,
    /// `arn:aws:iam::A:role/R` for assumed roles, the ARN otherwise.
    pub canonical_arn: String,
    pub account_id: String,
    /// The unique ID (`AROA...`, without `:session` for roles; whole for users and root).
    pub user_id: String,
    pub session_name: String,
    pub access_key_id: String,
    /// The presigned URL's host.
    pub sts_endpoint: String,
    pub principal_type: PrincipalType,
}

/// `arn.PrincipalType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrincipalType {
    #[default]
    None,
    Role,
    User,
    Root,
    FederatedUser,
    AssumedRole,
}

/// The partitions the authenticator recognizes.
pub const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// Why STS did not vouch for a token; `Display` is the `error=` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// `sts getCallerIdentity failed: ...`
    #[error("sts getCallerIdentity failed: {0}")]
    Failed(String),
    /// `sts getCallerIdentity was throttled: <body>`
    #[error("sts getCallerIdentity was throttled: {0}")]
    Throttled(String),
}

/// `arn.Canonicalize`: the principal type and the canonical ARN, or its error text.
///
/// # Errors
/// The authenticator's messages for invalid ARNs, unknown partitions and unsupported resources.
pub fn canonicalize(arn: &str) -> Result<(PrincipalType, String), String> {
    let Some(rest) = arn.strip_prefix("arn:") else {
        return Err(format!("arn '{arn}' is invalid: 'arn: invalid prefix'"));
    };
    let sections: Vec<&str> = rest.splitn(5, ':').collect();
    if sections.len() != 5 {
        return Err(format!(
            "arn '{arn}' is invalid: 'arn: not enough sections'"
        ));
    }
    let (partition, service, account, resource) =
        (sections[0], sections[1], sections[3], sections[4]);
    if !PARTITIONS.contains(&partition) {
        return Err(format!("arn '{arn}' does not have a recognized partition"));
    }
    let parts: Vec<&str> = resource.split('/').collect();
    match (service, parts[0]) {
        ("sts", "federated-user") => Ok((PrincipalType::FederatedUser, arn.to_string())),
        ("sts", "assumed-role") => {
            if parts.len() < 3 {
                return Err(format!("assumed-role arn '{arn}' does not have a role"));
            }
            let role = parts[1..parts.len() - 1].join("/");
            Ok((
                PrincipalType::AssumedRole,
                format!("arn:{partition}:iam::{account}:role/{role}"),
            ))
        }
        ("sts", _) => Err(format!("unrecognized resource {resource} for service sts")),
        ("iam", "role") => Ok((PrincipalType::Role, arn.to_string())),
        ("iam", "user") => Ok((PrincipalType::User, arn.to_string())),
        ("iam", "root") => Ok((PrincipalType::Root, arn.to_string())),
        ("iam", _) => Err(format!("unrecognized resource {resource} for service iam")),
        _ => Err(format!(
            "service {service} in arn {arn} is not a valid service for identities"
        )),
    }
}

/// `arn.StripPath`: `role/path/to/R` becomes `role/R`; other ARNs are unchanged.
pub fn strip_path(arn: &str) -> String {
    let sections: Vec<&str> = arn.splitn(6, ':').collect();
    if sections.len() != 6 {
        return arn.to_string();
    }
    let parts: Vec<&str> = sections[5].split('/').collect();
    if parts[0] != "role" || parts.len() <= 2 {
        return arn.to_string();
    }
    format!(
        "arn:{}:iam::{}:role/{}",
        sections[1],
        sections[4],
        parts[parts.len() - 1]
    )
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<tag>...</tag>` in `xml`.
pub fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml_unescape(&xml[start..end]))
}

/// `Account`, `Arn`, `UserId` from a JSON or XML GetCallerIdentity answer, or Go's
/// `json.Unmarshal` error text.
fn parse_caller_identity(body: &[u8]) -> Result<(String, String, String), String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            if !v.is_object() && !v.is_null() {
                return Err(format!(
                    "json: cannot unmarshal {} into Go value of type token.getCallerIdentityWrapper",
                    match v {
                        serde_json::Value::Array(_) => "array",
                        serde_json::Value::String(_) => "string",
                        serde_json::Value::Number(_) => "number",
                        _ => "bool",
                    }
                ));
            }
            let r = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            Ok((s("Account"), s("Arn"), s("UserId")))
        }
        Err(e) => {
            let text = String::from_utf8_lossy(body);
            if let Some(result) = xml_field(&text, "GetCallerIdentityResult") {
                let f = |k: &str| xml_field(&result, k).unwrap_or_default();
                return Ok((f("Account"), f("Arn"), f("UserId")));
            }
            let trimmed = text.trim_start();
            match trimmed.chars().next() {
                None => Err("unexpected end of JSON input".into()),
                Some(c) if !"{[\"-0123456789tfn".contains(c) => Err(format!(
                    "invalid character '{c}' looking for beginning of value"
                )),
                Some(_) => Err(e.to_string()),
            }
        }
    }
}

/// Builds the identity from STS's answer (`getIdentityFromSTSResponse`).
///
/// # Errors
/// `sts getCallerIdentity failed: ...` for an ARN that cannot be canonicalized or a malformed
/// user ID.
pub fn identity_from_response(
    account: &str,
    arn: &str,
    user_id: &str,
    access_key_id: &str,
    sts_endpoint: &str,
) -> Result<Identity, StsError> {
    let (principal_type, canonical_arn) = canonicalize(arn).map_err(StsError::Failed)?;
    let mut id = Identity {
        arn: arn.to_string(),
        canonical_arn,
        account_id: account.to_string(),
        access_key_id: access_key_id.to_string(),
        sts_endpoint: sts_endpoint.to_string(),
        principal_type,
        ..Identity::default()
    };
    match principal_type {
        PrincipalType::FederatedUser | PrincipalType::User | PrincipalType::Root => {
            id.user_id = user_id.to_string();
        }
        _ => {
            let parts: Vec<&str> = user_id.split(':').collect();
            if parts.len() != 2 {
                return Err(StsError::Failed(format!(
                    "malformed UserID {}",
                    go_quote(user_id)
                )));
            }
            id.user_id = parts[0].to_string();
            id.session_name = parts[1].to_string();
        }
    }
    Ok(id)
}

/// What Go's HTTP client would say for a transport failure.
fn transport_text(e: &crate::client::ClientError, endpoint: &str) -> String {
    let host = crate::client::host_of(endpoint).unwrap_or(endpoint);
    match e {
        crate::client::ClientError::Timeout(_) => {
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into()
        }
        crate::client::ClientError::Url(u) => format!("parse {}: invalid URL", go_quote(u)),
        crate::client::ClientError::Transport(t) => {
            let lower = t.to_ascii_lowercase();
            if lower.contains("connection refused") {
                format!("dial tcp {host}: connect: connection refused")
            } else if lower.contains("connection reset") {
                format!("read tcp {host}: read: connection reset by peer")
            } else if lower.contains("incomplete") || lower.contains("closed") {
                "EOF".into()
            } else {
                format!("dial tcp {host}: {t}")
            }
        }
    }
}

/// Replays the token's request against the configured STS and returns the caller.
///
/// # Errors
/// [`StsError`] with the authenticator's text.
pub async fn get_caller_identity(
    shared: &Shared,
    cluster: &str,
    token: &VerifiedToken,
) -> Result<Identity, StsError> {
    let region = &token.sts_region;
    let Some(endpoint) = shared.config.sts.endpoint.clone() else {
        return Err(StsError::Failed(format!(
            "error during GET: dial tcp: lookup {} on 127.0.0.53:53: no such host on {region} endpoint",
            token.host.split(':').next().unwrap_or(&token.host)
        )));
    };
    let base = endpoint.trim_end_matches('/').to_string();
    let reply = match shared.config.sts.mode {
        StsMode::Verbatim => {
            let url = format!("{base}/?{}", token.raw_query);
            // `Host` (capitalized) passes the client's filter on `host` and names the host the
            // URL was signed for.
            let headers = vec![
                ("Host".to_string(), token.host.clone()),
                (
                    crate::token::CLUSTER_ID_HEADER.to_string(),
                    cluster.to_string(),
                ),
                ("accept".to_string(), "application/json".to_string()),
            ];
            shared.http.send("GET", &url, &headers, Vec::new()).await
        }
        StsMode::Moto => {
            let body = b"Action=GetCallerIdentity&Version=2011-06-15".to_vec();
            let host = crate::client::host_of(&base)
                .unwrap_or("localhost")
                .to_string();
            let headers = vec![
                (
                    "content-type".to_string(),
                    "application/x-www-form-urlencoded; charset=utf-8".to_string(),
                ),
                ("host".to_string(), host),
            ];
            let creds = Creds {
                access_key: token.access_key_id.clone(),
                secret_key: "eks-sim-replay".into(),
                session_token: token.session_token.clone(),
            };
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut all = headers.clone();
            all.extend(sigv4::sign(
                "POST",
                "/",
                "",
                &headers,
                &body,
                &token.signing_region,
                "sts",
                &creds,
                unix,
            ));
            all.push(("accept".to_string(), "application/json".to_string()));
            shared
                .http
                .send("POST", &format!("{base}/"), &all, body)
                .await
        }
    };
    let reply = reply.map_err(|e| {
        StsError::Failed(format!(
            "error during GET: {} on {region} endpoint",
            transport_text(&e, &base)
        ))
    })?;
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    if reply.status != 200 {
        if body.contains("Throttling") {
            return Err(StsError::Throttled(body));
        }
        return Err(StsError::Failed(format!(
            "error from AWS (expected 200, got {}) on {region} endpoint. Body: {body}",
            reply.status
        )));
    }
    let (account, arn, user_id) = parse_caller_identity(&reply.body).map_err(StsError::Failed)?;
    if shared.config.sts.mode == StsMode::Moto
        && arn.ends_with(":user/moto")
        && arn.contains(":sts::")
    {
        // moto's answer for a key it does not know; STS says this.
        return Err(StsError::Failed(format!(
            "error from AWS (expected 200, got 403) on {region} endpoint. Body: {}",
            invalid_client_token_body()
        )));
    }
    identity_from_response(&account, &arn, &user_id, &token.access_key_id, &token.host)
}

/// STS's JSON error body for a key that belongs to no entity.
pub fn invalid_client_token_body() -> String {
    let rid = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(crate::token::now_nanos().to_le_bytes());
        let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    format!(
        "{{\"Error\":{{\"Code\":\"InvalidClientTokenId\",\"Message\":\"The security token included in the request is invalid.\",\"Type\":\"Sender\"}},\"RequestId\":\"{rid}\"}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalizes_like_the_authenticator() {
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:assumed-role/dev/alice@example.com"),
            Ok((
                PrincipalType::AssumedRole,
                "arn:aws:iam::123456789012:role/dev".into()
            ))
        );
        assert_eq!(
            canonicalize("arn:aws-cn:sts::123456789012:assumed-role/a/b/session"),
            Ok((
                PrincipalType::AssumedRole,
                "arn:aws-cn:iam::123456789012:role/a/b".into()
            ))
        );
        assert_eq!(
            canonicalize("arn:aws:iam::123456789012:user/division/bob"),
            Ok((
                PrincipalType::User,
                "arn:aws:iam::123456789012:user/division/bob".into()
            ))
        );
        assert_eq!(
            canonicalize("arn:aws:iam::123456789012:root").unwrap().0,
            PrincipalType::Root
        );
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:federated-user/bob")
                .unwrap()
                .0,
            PrincipalType::FederatedUser
        );
        assert_eq!(
            canonicalize(""),
            Err("arn '' is invalid: 'arn: invalid prefix'".into())
        );
        assert_eq!(
            canonicalize("arn:aws:iam"),
            Err("arn 'arn:aws:iam' is invalid: 'arn: not enough sections'".into())
        );
        assert_eq!(
            canonicalize("arn:aws-foo:iam::123456789012:user/x"),
            Err(
                "arn 'arn:aws-foo:iam::123456789012:user/x' does not have a recognized partition"
                    .into()
            )
        );
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:user/moto"),
            Err("unrecognized resource user/moto for service sts".into())
        );
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:assumed-role/x"),
            Err(
                "assumed-role arn 'arn:aws:sts::123456789012:assumed-role/x' does not have a role"
                    .into()
            )
        );
        assert_eq!(
            canonicalize("arn:aws:s3:::bucket"),
            Err(
                "service s3 in arn arn:aws:s3:::bucket is not a valid service for identities"
                    .into()
            )
        );
        assert_eq!(
            strip_path("arn:aws:iam::123456789012:role/a/b/R"),
            "arn:aws:iam::123456789012:role/R"
        );
        assert_eq!(
            strip_path("arn:aws:iam::123456789012:user/a/b"),
            "arn:aws:iam::123456789012:user/a/b"
        );
    }

    #[test]
    fn parses_json_and_xml_answers() {
        let json = br#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"1","Arn":"arn:aws:iam::1:user/u","UserId":"AIDA"},"ResponseMetadata":{"RequestId":"r"}}}"#;
        assert_eq!(
            parse_caller_identity(json),
            Ok(("1".into(), "arn:aws:iam::1:user/u".into(), "AIDA".into()))
        );
        let xml = br#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><UserId>AROA:s</UserId><Account>1</Account><Arn>arn:aws:sts::1:assumed-role/r/s</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>"#;
        assert_eq!(
            parse_caller_identity(xml),
            Ok((
                "1".into(),
                "arn:aws:sts::1:assumed-role/r/s".into(),
                "AROA:s".into()
            ))
        );
        let s3 = br#"<?xml version="1.0" encoding="utf-8"?><ListAllMyBucketsResult/>"#;
        assert_eq!(
            parse_caller_identity(s3),
            Err("invalid character '<' looking for beginning of value".into())
        );
        assert_eq!(
            parse_caller_identity(b""),
            Err("unexpected end of JSON input".into())
        );
        let id = identity_from_response(
            "1",
            "arn:aws:sts::1:assumed-role/r/s",
            "AROA:s",
            "ASIA",
            "sts.amazonaws.com",
        )
        .unwrap();
        assert_eq!(
            (
                id.user_id.as_str(),
                id.session_name.as_str(),
                id.canonical_arn.as_str()
            ),
            ("AROA", "s", "arn:aws:iam::1:role/r")
        );
        assert_eq!(
            identity_from_response("1", "arn:aws:sts::1:assumed-role/r/s", "AROA", "ASIA", "h")
                .unwrap_err()
                .to_string(),
            r#"sts getCallerIdentity failed: malformed UserID "AROA""#
        );
        assert_eq!(
            identity_from_response("", "", "", "", "h")
                .unwrap_err()
                .to_string(),
            "sts getCallerIdentity failed: arn '' is invalid: 'arn: invalid prefix'"
        );
    }
}
