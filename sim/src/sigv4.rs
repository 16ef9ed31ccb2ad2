//! Just enough SigV4 (header signing) to talk to moto: replaying a presigned STS request in
//! moto-compatible mode, and writing authenticator lines to CloudWatch Logs. moto reads the
//! access key and service from the `Authorization` header; it does not verify signatures.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Credentials to sign with.
#[derive(Debug, Clone)]
pub struct Creds {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key).expect("hmac key");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// `20230428T000000Z` for a Unix time.
pub fn amz_date(unix: u64) -> String {
    let (y, m, d, h, mi, s) = crate::civil::from_unix(unix as i64);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Signs a request: returns the headers to add (`x-amz-date`, `x-amz-security-token`,
/// `authorization`). `headers` must hold `host` and any other header to sign, lower-case.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    path: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    region: &str,
    service: &str,
    creds: &Creds,
    unix: u64,
) -> Vec<(String, String)> {
    let date = amz_date(unix);
    let day = &date[..8];
    let mut all: Vec<(String, String)> = headers.to_vec();
    all.push(("x-amz-date".into(), date.clone()));
    if let Some(t) = &creds.session_token {
        all.push(("x-amz-security-token".into(), t.clone()));
    }
    all.sort();
    let canonical_headers: String = all
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let payload = hex(&Sha256::digest(body));
    let canonical =
        format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), day);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    let signature = hex(&hmac(&k, &to_sign));
    let mut out = vec![("x-amz-date".to_string(), date)];
    if let Some(t) = &creds.session_token {
        out.push(("x-amz-security-token".into(), t.clone()));
    }
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example (GET iam ListUsers, "Signature Version 4 test suite" style).
    #[test]
    fn matches_the_documented_example() {
        let creds = Creds {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        // 2015-08-30T12:36:00Z
        let out = sign(
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08",
            &[
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ("host".into(), "iam.amazonaws.com".into()),
            ],
            b"",
            "us-east-1",
            "iam",
            &creds,
            1_440_938_160,
        );
        let auth = &out.last().unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }
}
