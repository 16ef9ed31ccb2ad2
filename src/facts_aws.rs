//! Facts from AWS: IAM (does the entity exist, its path-qualified ARN and unique ID), EKS
//! (authentication mode, endpoint, CA, the principal's access entry), the cluster's aws-auth and
//! whether the acting identity may update it. Gathered only for findings that need them, at most
//! once per principal and per cluster, cached across warm invocations for a short TTL.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;

use crate::arn::{Arn, PrincipalKind};
use crate::diagnosis::{Cause, Finding, Outcome};
use crate::facts::{aws_auth_facts, ActorFacts, Facts, FactsProvider};
use crate::remedy::access_entry::{EksAccess, SdkEks};
use crate::remedy::aws_auth;

/// How long facts stay cached across warm invocations.
pub const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
struct PrincipalInfo {
    exists: Option<bool>,
    path_arn: Option<String>,
    unique_id: Option<String>,
    note: Option<String>,
}

/// What we know of a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterInfo {
    pub mode: Option<String>,
    pub endpoint: Option<String>,
    pub ca_pem: Option<String>,
    /// `Some(None)`: aws-auth does not exist; `None`: not read.
    pub aws_auth: Option<Option<BTreeMap<String, String>>>,
    pub may_update: Option<bool>,
    pub notes: Vec<String>,
}

#[derive(Default)]
struct Cache {
    principals: HashMap<String, (Instant, PrincipalInfo)>,
    clusters: HashMap<String, (Instant, ClusterInfo)>,
}

/// The AWS facts provider; also the identity remediation acts as.
pub struct AwsFacts {
    pub region: String,
    pub iam: aws_sdk_iam::Client,
    pub eks: SdkEks,
    /// The acting identity's configuration (its credentials make the Kubernetes bearer token).
    pub config: aws_config::SdkConfig,
    pub actor_arn: Option<String>,
    pub role_assumed: bool,
    cache: tokio::sync::Mutex<Cache>,
    /// The cluster creator lookup (CloudWatch Logs + IAM), cached per cluster.
    pub creators: crate::creator_aws::CreatorCache,
    /// Incident pauses across invocations (DynamoDB; no table: none).
    pub pauses: crate::incident_aws::DynamoPauses,
}

impl AwsFacts {
    /// A provider acting with `config` (already the remediation role when one is configured).
    pub fn new(
        config: &aws_config::SdkConfig,
        actor_arn: Option<String>,
        role_assumed: bool,
    ) -> AwsFacts {
        let iam = aws_sdk_iam::Client::new(config);
        AwsFacts {
            creators: crate::creator_aws::CreatorCache::new(
                crate::creator_aws::AwsLogSearch {
                    logs: aws_sdk_cloudwatchlogs::Client::new(config),
                    iam: iam.clone(),
                    poll: Duration::from_millis(500),
                },
                crate::creator::CreatorConfig::default(),
            ),
            pauses: crate::incident_aws::DynamoPauses {
                client: aws_sdk_dynamodb::Client::new(config),
                table: None,
            },
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            iam,
            eks: SdkEks {
                client: aws_sdk_eks::Client::new(config),
            },
            config: config.clone(),
            actor_arn,
            role_assumed,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// A provider from explicit clients (per-service endpoints, as tests against emulators need).
    pub fn from_parts(
        config: &aws_config::SdkConfig,
        iam: aws_sdk_iam::Client,
        eks: aws_sdk_eks::Client,
        actor_arn: Option<String>,
        role_assumed: bool,
    ) -> AwsFacts {
        let mut facts = AwsFacts {
            iam: iam.clone(),
            eks: SdkEks { client: eks },
            ..AwsFacts::new(config, actor_arn, role_assumed)
        };
        facts.creators.search.iam = iam;
        facts
    }

    /// Sets the CloudWatch Logs and DynamoDB clients (emulator endpoints in tests), the pause
    /// table and the creator lookup's settings.
    pub fn with_incident_parts(
        mut self,
        logs: aws_sdk_cloudwatchlogs::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        table: Option<String>,
        creator: crate::creator::CreatorConfig,
    ) -> AwsFacts {
        self.creators.search.logs = logs;
        self.creators.config = creator;
        self.pauses = crate::incident_aws::DynamoPauses {
            client: dynamodb,
            table,
        };
        self
    }

    /// Forgets cached facts (after a change, so verification reads fresh state).
    pub async fn invalidate(&self, cluster: &str) {
        self.cache.lock().await.clusters.remove(cluster);
    }

    async fn principal(&self, arn: &Arn) -> PrincipalInfo {
        let key = arn.to_string().to_ascii_lowercase();
        if let Some((at, info)) = self.cache.lock().await.principals.get(&key) {
            if at.elapsed() < TTL {
                return info.clone();
            }
        }
        let info = self.lookup_principal(arn).await;
        self.cache
            .lock()
            .await
            .principals
            .insert(key, (Instant::now(), info.clone()));
        info
    }

    async fn lookup_principal(&self, arn: &Arn) -> PrincipalInfo {
        if !matches!(arn.kind(), PrincipalKind::Role | PrincipalKind::User) {
            return PrincipalInfo {
                note: Some(format!("{arn} is not an IAM role or user: not looked up")),
                ..PrincipalInfo::default()
            };
        }
        match crate::aws::iam_entity(&self.iam, arn).await {
            Ok(Some((path_arn, id))) => PrincipalInfo {
                exists: Some(true),
                path_arn: Some(path_arn),
                unique_id: Some(id),
                note: None,
            },
            Ok(None) => PrincipalInfo {
                exists: Some(false),
                ..PrincipalInfo::default()
            },
            Err(message) => PrincipalInfo {
                note: Some(format!("IAM lookup of {arn} failed: {message}")),
                ..PrincipalInfo::default()
            },
        }
    }

    /// Cluster facts, cached.
    pub async fn cluster(&self, name: &str) -> ClusterInfo {
        if let Some((at, info)) = self.cache.lock().await.clusters.get(name) {
            if at.elapsed() < TTL {
                return info.clone();
            }
        }
        let info = self.lookup_cluster(name).await;
        self.cache
            .lock()
            .await
            .clusters
            .insert(name.to_string(), (Instant::now(), info.clone()));
        info
    }

    async fn lookup_cluster(&self, name: &str) -> ClusterInfo {
        let mut info = ClusterInfo::default();
        match self.eks.client.describe_cluster().name(name).send().await {
            Ok(out) => {
                let c = out.cluster;
                info.mode = c
                    .as_ref()
                    .and_then(|c| c.access_config.as_ref())
                    .and_then(|a| a.authentication_mode.as_ref())
                    .map(|m| m.as_str().to_string());
                info.endpoint = c.as_ref().and_then(|c| c.endpoint.clone());
                info.ca_pem = c
                    .as_ref()
                    .and_then(|c| c.certificate_authority.as_ref())
                    .and_then(|ca| ca.data.as_ref())
                    .and_then(|d| {
                        base64::engine::general_purpose::STANDARD
                            .decode(d.trim())
                            .ok()
                    })
                    .and_then(|pem| String::from_utf8(pem).ok());
            }
            Err(e) => {
                info.notes.push(format!(
                    "eks:DescribeCluster {name} failed: {}",
                    crate::handler::format_chain(&e)
                ));
                return info;
            }
        }
        if info.mode.as_deref() == Some("API") {
            return info;
        }
        match self.kube(name, &info).await {
            Ok(client) => {
                match aws_auth::read(&client).await {
                    Ok(data) => info.aws_auth = Some(data.map(|(d, _)| d)),
                    Err(e) => info
                        .notes
                        .push(format!("reading kube-system/aws-auth failed: {e}")),
                }
                match aws_auth::may_update(&client).await {
                    Ok((allowed, reason)) => {
                        info.may_update = Some(allowed);
                        if !allowed {
                            info.notes.push(format!(
                                "the acting identity may not update kube-system/aws-auth: {reason}"
                            ));
                        }
                    }
                    Err(e) => {
                        info.may_update = Some(false);
                        info.notes
                            .push(format!("SelfSubjectAccessReview failed: {e}"));
                    }
                }
            }
            Err(e) => info.notes.push(e),
        }
        info
    }

    /// A kube client for the cluster as the acting identity.
    ///
    /// # Errors
    /// A message when the endpoint or CA is unknown or the token cannot be made.
    pub async fn kube(&self, cluster: &str, info: &ClusterInfo) -> Result<kube::Client, String> {
        let (Some(endpoint), Some(ca_pem)) = (&info.endpoint, &info.ca_pem) else {
            return Err(format!(
                "cluster {cluster}: no endpoint/CA from DescribeCluster"
            ));
        };
        let creds = crate::aws::credentials(&self.config)
            .await
            .map_err(|e| e.to_string())?;
        let token = crate::eks_token::presign(&creds, &self.region, cluster, SystemTime::now())
            .map_err(|e| format!("cannot make a token for {cluster}: {e}"))?;
        aws_auth::client(&aws_auth::Target {
            endpoint: endpoint.clone(),
            ca_pem: ca_pem.clone(),
            token: token.secret().clone(),
        })
        .await
        .map_err(|e| e.to_string())
    }
}

/// Whether a finding needs facts at all.
pub fn needs_facts(f: &Finding) -> bool {
    f.outcome == Outcome::Denied
        && matches!(f.cause, Some(Cause::NotMapped | Cause::StalePrincipal))
        && f.principal.is_some()
        && f.cluster.is_some()
}

impl FactsProvider for AwsFacts {
    async fn gather(&self, f: &Finding) -> Facts {
        let mut facts = Facts {
            source: "aws",
            actor: Some(ActorFacts {
                arn: self.actor_arn.clone(),
                role_assumed: self.role_assumed,
                may_update_aws_auth: None,
                reason: None,
            }),
            ..Facts::default()
        };
        if !needs_facts(f) {
            return facts;
        }
        let (Some(principal), Some(cluster)) = (f.principal.as_deref(), f.cluster.as_deref())
        else {
            return facts;
        };
        let Ok(arn) = Arn::parse(principal) else {
            facts.notes.push(format!("{principal} is not a valid ARN"));
            return facts;
        };
        if let Some(acct) = &f.account {
            facts.same_account = Some(&arn.account == acct);
        }
        if facts.same_account == Some(false) {
            facts.notes.push(format!(
                "{principal} belongs to account {}, not the cluster's {}: reported, not looked up",
                arn.account,
                f.account.as_deref().unwrap_or("")
            ));
        } else {
            let p = self.principal(&arn).await;
            facts.principal_exists = p.exists;
            facts.principal_path_arn = p.path_arn;
            facts.principal_unique_id = p.unique_id;
            facts.notes.extend(p.note);
        }
        let c = self.cluster(cluster).await;
        facts.authentication_mode = c.mode.clone();
        facts.cluster_endpoint = c.endpoint.clone();
        facts.cluster_ca_pem = c.ca_pem.clone();
        facts.notes.extend(c.notes.iter().cloned());
        if let Some(actor) = facts.actor.as_mut() {
            actor.may_update_aws_auth = c.may_update;
        }
        if c.mode.as_deref().is_some_and(|m| m != "CONFIG_MAP") {
            let lookup = facts
                .principal_path_arn
                .clone()
                .unwrap_or_else(|| principal.to_string());
            match self.eks.describe_entry(cluster, &lookup).await {
                Ok(e) => {
                    facts.access_entry_exists = Some(e.is_some());
                    facts.access_entry = e;
                }
                Err(e) => facts
                    .notes
                    .push(format!("eks:DescribeAccessEntry failed: {e}")),
            }
        }
        if let Some(data) = &c.aws_auth {
            facts.aws_auth = Some(aws_auth_facts(data.as_ref(), principal));
        }
        facts
    }
}
