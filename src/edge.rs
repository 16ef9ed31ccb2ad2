//! The edge the handler talks through: offline (no network at all) or AWS.

use crate::diagnosis::Finding;
use crate::facts::{Facts, FactsProvider, OfflineFacts};
use crate::facts_aws::AwsFacts;
use crate::plan::Change;
use crate::remedy::{Applied, Remediator};

/// Offline or AWS-backed facts and remediation.
pub enum Edge {
    Offline(OfflineFacts),
    Aws(Box<AwsFacts>),
}

impl Edge {
    /// Connects to AWS from the environment; with `role_arn`, acts as that role (verified).
    ///
    /// # Errors
    /// [`crate::aws::AwsError`] when no region is known or the role cannot be assumed.
    pub async fn aws(
        region: Option<&str>,
        role_arn: Option<&str>,
    ) -> Result<Edge, crate::aws::AwsError> {
        let base = crate::aws::load(region).await?;
        let (config, actor, assumed) = match role_arn {
            Some(role) => {
                let (c, a) = crate::aws::assume_role(&base, role, "eks-auth-remediator").await?;
                (c, Some(a), true)
            }
            None => {
                let actor = match crate::aws::caller_arn(&base).await {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot tell which identity the function acts as");
                        None
                    }
                };
                (base, actor, false)
            }
        };
        Ok(Edge::Aws(Box::new(AwsFacts::new(&config, actor, assumed))))
    }
}

impl FactsProvider for Edge {
    async fn gather(&self, f: &Finding) -> Facts {
        match self {
            Edge::Offline(o) => o.gather(f).await,
            Edge::Aws(a) => a.gather(f).await,
        }
    }
}

impl Remediator for Edge {
    async fn apply(&self, f: &Finding, x: &Facts, c: &Change, t: &str) -> Result<Applied, String> {
        match self {
            Edge::Offline(o) => o.apply(f, x, c, t).await,
            Edge::Aws(a) => a.apply(f, x, c, t).await,
        }
    }
}
