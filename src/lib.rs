//! eks-auth-remediator turns Amazon EKS "You must be logged in to the server (Unauthorized)"
//! incidents into a fix or a ticket.
//!
//! The flow, every step but the facts a pure function over plain data:
//!
//! ```text
//! event  -> decode (bounded base64/gzip/JSON)  -> parse (authenticator lines, any format)
//!        -> diagnose (outcome + cause per line, findings per cluster/principal/cause)
//!        -> incidents (cluster-wide: aws-auth parse errors, previously granted principals denied;
//!           remediation paused per cluster, the pause stored in DynamoDB)
//!        -> facts (trait; offline provider knows nothing) -> plan (one action per finding)
//!        -> report (response JSON with findings, actions and ticket payloads; the cluster
//!           creator from the logs for tickets that need it; EMF metrics from the Lambda binary)
//!        -> deliver (tickets opened once per window to SNS / EventBridge / webhook; see sinks)
//! ```
//!
//! ```
//! use eks_auth_remediator::{authlog, diagnosis};
//! let line = r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:sts::111122223333:assumed-role/dev/alice" error="ARN is not mapped""#;
//! let d = diagnosis::diagnose(&authlog::parse_line(line)?);
//! assert_eq!(d.cause, Some(diagnosis::Cause::NotMapped));
//! assert_eq!(d.principal.as_deref(), Some("arn:aws:iam::111122223333:role/dev"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arn;
pub mod audit;
pub mod authlog;
pub mod aws;
pub mod aws_auth;
pub mod benchdata;
pub mod cli_aws_auth;
pub mod creator;
pub mod creator_aws;
pub mod diagnosis;
pub mod edge;
pub mod eks_token;
pub mod event;
pub mod eventgen;
pub mod facts;
pub mod facts_aws;
pub mod handler;
pub mod incident;
pub mod incident_aws;
mod jsonstr;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod remedy;
pub mod report;
pub mod sinks;
pub mod suppress;
pub mod ticket;
pub mod timefmt;
