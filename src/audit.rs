//! The audit trail: every change to a cluster, and every refusal to change one, as one structured
//! record: who (the identity acting), what (before/after), why (finding, rule), and the result.
//! Records go to the log (target `audit`, INFO) and into the response.

use serde::Serialize;

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// RFC 3339 UTC.
    pub time: String,
    /// The identity that acted (the assumed remediation role, or the function's own role).
    pub actor: Option<String>,
    pub cluster: Option<String>,
    /// `access_entry`, `aws_auth_mapping`, `fix_mapping_path`, or `refused` (no change planned).
    pub action: String,
    pub principal: Option<String>,
    pub finding_id: String,
    pub ticket_id: Option<String>,
    /// The approval rule that allowed it (none for refusals that no rule matched).
    pub rule: Option<String>,
    /// `dry_run`, `applied`, `unchanged`, `refused`, `failed`.
    pub result: String,
    pub reason: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl Record {
    /// Writes the record to the log as one line.
    pub fn log(&self) {
        let json = serde_json::to_string(self).unwrap_or_default();
        tracing::info!(
            target: "audit",
            action = %self.action,
            result = %self.result,
            cluster = self.cluster.as_deref().unwrap_or(""),
            finding_id = %self.finding_id,
            record = %json,
            "audit"
        );
    }
}

/// Now, RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    crate::timefmt::format_ms(ms)
}
