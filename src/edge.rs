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

impl Edge {
    /// Applies the configuration the edge needs: the pause table and the creator lookup.
    pub fn configure(&mut self, config: &crate::handler::Config) {
        if let Edge::Aws(a) = self {
            a.pauses.table.clone_from(&config.incident.table);
            a.creators.config = config.creator;
        }
    }
}

impl crate::creator::CreatorLookup for Edge {
    async fn creator(&self, cluster: &str) -> crate::creator::CreatorInfo {
        match self {
            Edge::Offline(_) => crate::creator::CreatorInfo::unknown("offline: not looked up"),
            Edge::Aws(a) => a.creators.creator(cluster).await,
        }
    }

    async fn log_lines(
        &self,
        cluster: &str,
        pattern: &str,
        since_ms: i64,
    ) -> Result<Vec<(Option<i64>, String)>, String> {
        match self {
            Edge::Offline(_) => Ok(Vec::new()),
            Edge::Aws(a) => a.creators.log_lines(cluster, pattern, since_ms).await,
        }
    }
}

impl crate::incident::PauseStore for Edge {
    fn pause_table(&self) -> Option<&str> {
        match self {
            Edge::Offline(_) => None,
            Edge::Aws(a) => a.pauses.pause_table(),
        }
    }

    async fn load_pause(
        &self,
        cluster: &str,
        now_s: i64,
    ) -> Result<Option<crate::incident::StoredPause>, String> {
        match self {
            Edge::Offline(_) => Ok(None),
            Edge::Aws(a) => a.pauses.load_pause(cluster, now_s).await,
        }
    }

    async fn save_pause(
        &self,
        cluster: &str,
        pause: &crate::incident::StoredPause,
    ) -> Result<(), String> {
        match self {
            Edge::Offline(_) => Ok(()),
            Edge::Aws(a) => a.pauses.save_pause(cluster, pause).await,
        }
    }
}
