//! What the remediator knows about a finding beyond the log lines.
//!
//! The [`FactsProvider`] trait is the seam between the pure core and AWS. [`OfflineFacts`]
//! answers "unknown" to everything and makes no network call; the AWS implementation arrives with
//! automatic remediation.

use serde::Serialize;

use crate::diagnosis::Finding;

/// Facts about one finding's principal and cluster. `None` means "not known".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Which provider answered (`offline`, `aws`).
    pub source: &'static str,
    pub principal_exists: Option<bool>,
    /// The IAM ARN with its path, as access entries need it.
    pub principal_path_arn: Option<String>,
    pub authentication_mode: Option<String>,
}

/// Gathers facts for findings; called at most once per distinct principal and cluster.
pub trait FactsProvider {
    /// Facts for one finding.
    fn gather(&self, finding: &Finding) -> impl std::future::Future<Output = Facts> + Send;
}

/// The provider used with `--offline` and until AWS access is configured: knows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineFacts;

impl FactsProvider for OfflineFacts {
    async fn gather(&self, _finding: &Finding) -> Facts {
        Facts {
            source: "offline",
            ..Facts::default()
        }
    }
}
