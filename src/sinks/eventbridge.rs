//! EventBridge: `PutEvents` with source `eks-auth-remediator`, detail-type `EKS Auth Ticket` and
//! the ticket JSON as detail. A rejected entry (`FailedEntryCount` > 0) is a sink failure.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{Outgoing, Sink, SinkError};
use crate::suppress::BoxFuture;

/// The events' `source`.
pub const SOURCE: &str = "eks-auth-remediator";
/// The events' `detail-type`.
pub const DETAIL_TYPE: &str = "EKS Auth Ticket";

/// Puts tickets on one event bus.
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    event_bus: String,
}

impl EventBridgeSink {
    /// `event_bus` is a bus name or ARN.
    pub fn new(client: aws_sdk_eventbridge::Client, event_bus: String) -> Self {
        EventBridgeSink { client, event_bus }
    }
}

impl Sink for EventBridgeSink {
    fn name(&self) -> &'static str {
        "eventbridge"
    }

    fn deliver<'a>(&'a self, out: &'a Outgoing<'a>) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(&self.event_bus)
                .source(SOURCE)
                .detail_type(DETAIL_TYPE)
                .detail(out.json)
                .build();
            let res = self
                .client
                .put_events()
                .entries(entry)
                .send()
                .await
                .map_err(|e| SinkError::Aws {
                    operation: "events:PutEvents",
                    message: crate::handler::format_chain(&e),
                })?;
            let failed = res.failed_entry_count;
            let first = res.entries.as_deref().and_then(|e| e.first());
            let entry_error = first.and_then(|e| e.error_code.clone());
            if failed > 0 || entry_error.is_some() {
                return Err(SinkError::Rejected {
                    code: entry_error.unwrap_or_else(|| "unknown".into()),
                    message: first
                        .and_then(|e| e.error_message.clone())
                        .unwrap_or_default(),
                });
            }
            Ok(())
        })
    }
}
