//! [`PauseStore`] on DynamoDB: one item per cluster, `pk = "incident#<cluster>"`, TTL attribute
//! `expires_at` (epoch seconds). The table (shared with ticket suppression) has the partition key
//! `pk` (String) and no sort key. DynamoDB deletes expired items lazily, so reads check
//! `expires_at` themselves.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::incident::{pause_key, IncidentKind, PauseStore, StoredPause};

/// The pause store: a DynamoDB table, or none (pauses hold for one invocation).
pub struct DynamoPauses {
    pub client: aws_sdk_dynamodb::Client,
    pub table: Option<String>,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl PauseStore for DynamoPauses {
    fn pause_table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    async fn load_pause(&self, cluster: &str, now_s: i64) -> Result<Option<StoredPause>, String> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let r = self
            .client
            .get_item()
            .table_name(table)
            .key("pk", s(&pause_key(cluster)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::handler::format_chain(&e))?;
        let Some(item) = r.item else {
            return Ok(None);
        };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let expires_at = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        if expires_at <= now_s {
            return Ok(None);
        }
        let kind = match text("kind").as_deref() {
            Some("config_error") => IncidentKind::ConfigError,
            _ => IncidentKind::MassUnmapping,
        };
        Ok(Some(StoredPause {
            incident_id: text("incident_id").unwrap_or_default(),
            ticket_id: text("ticket_id").unwrap_or_default(),
            kind,
            expires_at,
        }))
    }

    async fn save_pause(&self, cluster: &str, p: &StoredPause) -> Result<(), String> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let item: HashMap<String, AttributeValue> = [
            ("pk", s(&pause_key(cluster))),
            ("expires_at", AttributeValue::N(p.expires_at.to_string())),
            ("incident_id", s(&p.incident_id)),
            ("ticket_id", s(&p.ticket_id)),
            ("kind", s(p.kind.as_str())),
            ("cluster", s(cluster)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::handler::format_chain(&e))
    }
}
