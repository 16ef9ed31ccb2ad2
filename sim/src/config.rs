//! The simulator's configuration: clusters configured at start, and where STS, CloudWatch Logs
//! and IAM live (moto in tests). Read from YAML or JSON; unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Top-level configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Region the simulated clusters live in (ARNs, the STS host check, log lines).
    #[serde(default = "default_region")]
    pub region: String,
    /// Account that owns the clusters.
    #[serde(default = "default_account")]
    pub account: String,
    /// Address for the EKS API listener (`127.0.0.1:0` picks a free port).
    #[serde(default = "default_listen")]
    pub eks_listen: String,
    /// Where presigned GetCallerIdentity requests are replayed.
    #[serde(default)]
    pub sts: StsConfig,
    /// Write authenticator lines to CloudWatch Logs (`/aws/eks/<cluster>/cluster`).
    #[serde(default)]
    pub logs: Option<LogsConfig>,
    /// IAM endpoint used to bind access entries to the entity's unique ID (as EKS does).
    #[serde(default)]
    pub iam_endpoint: Option<String>,
    /// Append authenticator lines to this file too.
    #[serde(default)]
    pub authlog_file: Option<PathBuf>,
    pub clusters: Vec<ClusterConfig>,
}

fn default_region() -> String {
    "us-west-2".into()
}

fn default_account() -> String {
    "123456789012".into()
}

fn default_listen() -> String {
    "127.0.0.1:0".into()
}

/// How a presigned STS URL is replayed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StsMode {
    /// GET the presigned URL as-is against the endpoint, with `x-k8s-aws-id` (what the
    /// authenticator does against real STS).
    Verbatim,
    /// Re-sign the same request with an `Authorization` header using the token's access key and
    /// session token: moto picks the service from that header and ignores query credentials.
    #[default]
    Moto,
}

/// Where STS lives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StsConfig {
    /// `http://127.0.0.1:5000`; none means every token is rejected as STS-unreachable.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub mode: StsMode,
    /// Extra hostnames accepted in presigned URLs besides `sts[.region].amazonaws.com[.cn]`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

/// Where authenticator lines go in CloudWatch Logs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    pub endpoint: String,
}

/// EKS `accessConfig.authenticationMode`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMode {
    #[default]
    ConfigMap,
    ApiAndConfigMap,
    Api,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::ConfigMap => "CONFIG_MAP",
            AuthMode::ApiAndConfigMap => "API_AND_CONFIG_MAP",
            AuthMode::Api => "API",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "CONFIG_MAP" => Some(AuthMode::ConfigMap),
            "API_AND_CONFIG_MAP" => Some(AuthMode::ApiAndConfigMap),
            "API" => Some(AuthMode::Api),
            _ => None,
        }
    }

    /// Access entries are consulted.
    pub fn uses_api(self) -> bool {
        self != AuthMode::ConfigMap
    }

    /// aws-auth is consulted.
    pub fn uses_config_map(self) -> bool {
        self != AuthMode::Api
    }
}

/// One simulated cluster.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    #[serde(default)]
    pub authentication_mode: AuthMode,
    /// The IAM identity that created the cluster: admin in CONFIG_MAP mode, and given an
    /// access entry with AmazonEKSClusterAdminPolicy in API modes when bootstrapping is on.
    pub creator_arn: String,
    #[serde(default = "yes")]
    pub bootstrap_cluster_creator_admin_permissions: bool,
    /// `data` of kube-system/aws-auth (`mapRoles`, `mapUsers`, `mapAccounts`); none = absent.
    #[serde(default)]
    pub aws_auth: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub access_entries: Vec<AccessEntryConfig>,
    #[serde(default = "default_version")]
    pub kubernetes_version: String,
    /// Address of this cluster's Kubernetes API listener (`127.0.0.1:0` picks a free port).
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn yes() -> bool {
    true
}

fn default_version() -> String {
    "1.31".into()
}

/// An access entry present at start.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessEntryConfig {
    pub principal_arn: String,
    #[serde(default)]
    pub kubernetes_groups: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default = "standard", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// The IAM unique ID the entry is bound to (to simulate a deleted-and-recreated entity).
    #[serde(default)]
    pub unique_id: Option<String>,
}

fn standard() -> String {
    "STANDARD".into()
}

/// An access policy associated at start.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub policy_arn: String,
    #[serde(default)]
    pub namespaces: Vec<String>,
}

impl SimConfig {
    /// Parses YAML (JSON is YAML too).
    ///
    /// # Errors
    /// The parser's message, with the line at fault.
    pub fn from_yaml(text: &str) -> Result<SimConfig, serde_norway::Error> {
        serde_norway::from_str(text)
    }

    /// A configuration with the given clusters and defaults elsewhere.
    pub fn with_clusters(clusters: Vec<ClusterConfig>) -> SimConfig {
        SimConfig {
            region: default_region(),
            account: default_account(),
            eks_listen: default_listen(),
            sts: StsConfig::default(),
            logs: None,
            iam_endpoint: None,
            authlog_file: None,
            clusters,
        }
    }
}

impl ClusterConfig {
    /// A cluster with defaults: CONFIG_MAP mode, no aws-auth, no access entries.
    pub fn new(name: &str, creator_arn: &str) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            authentication_mode: AuthMode::ConfigMap,
            creator_arn: creator_arn.into(),
            bootstrap_cluster_creator_admin_permissions: true,
            aws_auth: None,
            access_entries: Vec::new(),
            kubernetes_version: default_version(),
            listen: default_listen(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_defaults_and_unknown_keys() {
        let cfg = SimConfig::from_yaml(
            "clusters:\n  - name: prod\n    creator_arn: arn:aws:iam::123456789012:user/admin\n    authentication_mode: API\n",
        )
        .unwrap();
        assert_eq!(cfg.region, "us-west-2");
        assert_eq!(cfg.clusters[0].authentication_mode, AuthMode::Api);
        assert!(cfg.clusters[0].bootstrap_cluster_creator_admin_permissions);
        let err = SimConfig::from_yaml("clusters: []\nclsuters: []\n").unwrap_err();
        assert!(err.to_string().contains("clsuters"), "{err}");
    }
}
