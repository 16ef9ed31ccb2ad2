//! SNS: `Publish` of the ticket JSON, with `cause`, `severity`, `cluster` and `ticket_id` message
//! attributes for subscription filter policies, and the title as the subject (email subscribers).

use aws_sdk_sns::types::MessageAttributeValue;

use super::{Outgoing, Sink, SinkError};
use crate::suppress::BoxFuture;
use crate::ticket::{self, Ticket};

/// SNS subjects must be under 100 characters, printable ASCII, one line.
pub const MAX_SUBJECT: usize = 99;

/// Publishes tickets to one topic.
pub struct SnsSink {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsSink {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        SnsSink { client, topic_arn }
    }
}

/// The subject SNS accepts for a title: control and non-ASCII characters replaced, at most
/// [`MAX_SUBJECT`] characters (the last three `...` when cut).
pub fn subject(title: &str) -> String {
    let clean: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if clean.len() <= MAX_SUBJECT {
        clean
    } else {
        format!("{}...", &clean[..MAX_SUBJECT - 3])
    }
}

/// The message attributes: every value a non-empty String.
pub fn attributes(t: &Ticket) -> Vec<(&'static str, String)> {
    let mut a = vec![
        (
            "cause",
            t.cause.map_or("config_error", |c| c.as_str()).to_string(),
        ),
        ("severity", ticket::severity_str(t.severity).to_string()),
        ("ticket_id", t.id.clone()),
    ];
    if let Some(c) = t.cluster.as_deref().filter(|c| !c.is_empty()) {
        a.push(("cluster", c.to_string()));
    }
    a
}

impl Sink for SnsSink {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn deliver<'a>(&'a self, out: &'a Outgoing<'a>) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut req = self
                .client
                .publish()
                .topic_arn(&self.topic_arn)
                .message(out.json)
                .subject(subject(&out.ticket.title));
            for (k, v) in attributes(out.ticket) {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(|e| SinkError::Aws {
                        operation: "sns:Publish",
                        message: e.to_string(),
                    })?;
                req = req.message_attributes(k, value);
            }
            if self.topic_arn.ends_with(".fifo") {
                req = req
                    .message_group_id(out.ticket.cluster.as_deref().unwrap_or("eks-auth"))
                    .message_deduplication_id(format!("{}-{}", out.ticket.id, out.opened_at));
            }
            req.send().await.map_err(|e| SinkError::Aws {
                operation: "sns:Publish",
                message: crate::handler::format_chain(&e),
            })?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_fits_sns() {
        let long = format!("[eks-auth] prod: {} denied (not_mapped)\n", "x".repeat(200));
        let s = subject(&long);
        assert_eq!(s.len(), MAX_SUBJECT);
        assert!(s.ends_with("..."));
        assert_eq!(subject("a\tb é"), "a?b ?");
        assert_eq!(subject("short"), "short");
    }
}
