//! Authenticator log output: every authentication decision as the aws-iam-authenticator writes
//! it (logrus text format), to memory, an optional file and optionally CloudWatch Logs
//! (`/aws/eks/<cluster>/cluster`, stream `authenticator-<hex>`).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::client::{host_of, HttpClient};
use crate::sigv4::{self, Creds};

/// logrus quotes a value only when it holds characters outside `[A-Za-z0-9-._/@^+]`; an empty
/// value is written bare (`session=`), as `QuoteEmptyFields` is off by default.
pub fn logrus_value(v: &str) -> String {
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._/@^+".contains(&b))
    {
        return v.to_string();
    }
    // Go's %q: escape quotes, backslashes and control characters.
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A logrus text line: `time=... level=... msg=...` then the fields sorted by key.
pub fn format_line(time: &str, level: &str, msg: &str, fields: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut line = format!(
        "time={} level={level} msg={}",
        logrus_value(time),
        logrus_value(msg)
    );
    for (k, v) in sorted {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&logrus_value(v));
    }
    line
}

/// The authenticator's stream name for a cluster: `authenticator-` + 32 hex digits.
pub fn stream_name(cluster: &str) -> String {
    let d = Sha256::digest(cluster.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("authenticator-{}", &hex[..32])
}

/// Where lines go besides memory.
pub struct Sinks {
    pub file: Option<std::path::PathBuf>,
    pub logs_endpoint: Option<String>,
    pub region: String,
    pub http: HttpClient,
}

impl Sinks {
    /// Appends to the file and puts the line into CloudWatch Logs (creating the group and
    /// stream on first use). Failures are logged, never fatal to the request.
    pub async fn write(&self, cluster: &str, line: &str, created: &mut bool) {
        if let Some(path) = &self.file {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        let Some(endpoint) = &self.logs_endpoint else {
            return;
        };
        let group = format!("/aws/eks/{cluster}/cluster");
        let stream = stream_name(cluster);
        if !*created {
            // Both calls fail harmlessly with ResourceAlreadyExistsException when present.
            let _ = self
                .call(
                    endpoint,
                    "CreateLogGroup",
                    serde_json::json!({"logGroupName": group}),
                )
                .await;
            let _ = self
                .call(
                    endpoint,
                    "CreateLogStream",
                    serde_json::json!({"logGroupName": group, "logStreamName": stream}),
                )
                .await;
            *created = true;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let body = serde_json::json!({"logGroupName": group, "logStreamName": stream,
            "logEvents": [{"timestamp": now, "message": line}]});
        match self.call(endpoint, "PutLogEvents", body).await {
            Ok(200) => {}
            Ok(status) => tracing::warn!(status, "PutLogEvents failed"),
            Err(e) => tracing::warn!(error = %e, "PutLogEvents failed"),
        }
    }

    async fn call(
        &self,
        endpoint: &str,
        target: &str,
        body: serde_json::Value,
    ) -> Result<u16, crate::client::ClientError> {
        let body = body.to_string().into_bytes();
        let host = host_of(endpoint).unwrap_or("localhost").to_string();
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            ("host".to_string(), host),
            (
                "x-amz-target".to_string(),
                format!("Logs_20140328.{target}"),
            ),
        ];
        let creds = Creds {
            access_key: "AKIAEKSSIMULATOR0001".into(),
            secret_key: "eks-sim".into(),
            session_token: None,
        };
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut all = headers.clone();
        all.extend(sigv4::sign(
            "POST",
            "/",
            "",
            &headers,
            &body,
            &self.region,
            "logs",
            &creds,
            unix,
        ));
        let url = format!("{}/", endpoint.trim_end_matches('/'));
        Ok(self.http.send("POST", &url, &all, body).await?.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_logrus() {
        let line = format_line(
            "2022-12-28T15:37:19Z",
            "warning",
            "access denied",
            &[
                ("path", "/authenticate".into()),
                ("error", "ARN is not mapped".into()),
                ("arn", "arn:aws:iam::111122223333:role/dev".into()),
                ("client", "127.0.0.1:33384".into()),
                ("method", "POST".into()),
            ],
        );
        assert_eq!(
            line,
            r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:iam::111122223333:role/dev" client="127.0.0.1:33384" error="ARN is not mapped" method=POST path=/authenticate"#
        );
        assert_eq!(logrus_value(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(stream_name("prod").len(), "authenticator-".len() + 32);
    }
}
