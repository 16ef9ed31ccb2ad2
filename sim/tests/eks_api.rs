//! The EKS API of the simulator, driven by the unmodified `aws-sdk-eks` client (and by boto3 in
//! `boto3_speaks_to_the_simulator`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_eks::config::retry::RetryConfig;
use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyError;
use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryError;
use aws_sdk_eks::operation::delete_access_entry::DeleteAccessEntryError;
use aws_sdk_eks::operation::describe_access_entry::DescribeAccessEntryError;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::disassociate_access_policy::DisassociateAccessPolicyError;
use aws_sdk_eks::operation::list_access_entries::ListAccessEntriesError;
use aws_sdk_eks::operation::update_access_entry::UpdateAccessEntryError;
use aws_sdk_eks::operation::update_cluster_config::UpdateClusterConfigError;
use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AuthenticationMode, ClusterStatus, UpdateAccessConfigRequest,
    UpdateParamType, UpdateStatus, UpdateType,
};
use aws_sdk_eks::Client;
use base64::Engine;
use eks_sim::{AuthMode, ClusterConfig, Fault, Rule, SimConfig, Simulator, Target};

const CREATOR: &str = "arn:aws:iam::123456789012:user/creator";

fn policy(name: &str) -> String {
    format!("arn:aws:eks::aws:cluster-access-policy/{name}")
}

fn role(name: &str) -> String {
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// `api` (API_AND_CONFIG_MAP, creator bootstrapped) and `cm` (CONFIG_MAP).
fn config() -> SimConfig {
    let mut api = ClusterConfig::new("api", CREATOR);
    api.authentication_mode = AuthMode::ApiAndConfigMap;
    let cm = ClusterConfig::new("cm", CREATOR);
    SimConfig::with_clusters(vec![api, cm])
}

async fn start() -> Simulator {
    Simulator::start(config()).await.expect("simulator starts")
}

fn client_with(sim: &Simulator, retry: RetryConfig) -> Client {
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
        .endpoint_url(sim.eks_endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(retry)
        .build();
    Client::from_conf(conf)
}

/// No retries: every injected fault reaches the test as is.
fn client(sim: &Simulator) -> Client {
    client_with(sim, RetryConfig::disabled())
}

fn status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn describe_and_list_clusters() {
    let sim = start().await;
    let eks = client(&sim);
    let out = eks.describe_cluster().name("api").send().await.unwrap();
    let c = out.cluster().expect("cluster");
    let info = sim.cluster("api").unwrap();
    assert_eq!(c.name(), Some("api"));
    assert_eq!(c.arn(), Some(info.arn.as_str()));
    assert_eq!(
        c.arn(),
        Some("arn:aws:eks:us-west-2:123456789012:cluster/api")
    );
    assert_eq!(c.endpoint(), Some(info.endpoint.as_str()));
    assert_eq!(c.status(), Some(&ClusterStatus::Active));
    assert_eq!(c.version(), Some("1.31"));
    assert!(c.created_at().is_some_and(|t| t.secs() > 1_600_000_000));
    assert!(c
        .role_arn()
        .is_some_and(|r| r.starts_with("arn:aws:iam::123456789012:role/")));
    assert!(c.platform_version().is_some());
    let access = c.access_config().expect("accessConfig");
    assert_eq!(
        access.authentication_mode(),
        Some(&AuthenticationMode::ApiAndConfigMap)
    );
    assert_eq!(
        access.bootstrap_cluster_creator_admin_permissions(),
        Some(true)
    );
    let ca = c
        .certificate_authority()
        .and_then(|ca| ca.data())
        .expect("CA data");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .unwrap();
    assert_eq!(String::from_utf8(pem).unwrap(), info.ca_pem);
    let logging = c.logging().expect("logging");
    let auth_on = logging.cluster_logging().iter().any(|s| {
        s.enabled() == Some(true) && s.types().iter().any(|t| t.as_str() == "authenticator")
    });
    assert!(auth_on, "{logging:?}");
    assert!(c.resources_vpc_config().is_some());
    assert!(c.kubernetes_network_config().is_some());
    assert!(c
        .identity()
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .is_some());

    let cm = eks.describe_cluster().name("cm").send().await.unwrap();
    assert_eq!(
        cm.cluster()
            .and_then(|c| c.access_config())
            .and_then(|a| a.authentication_mode()),
        Some(&AuthenticationMode::ConfigMap)
    );

    let err = eks
        .describe_cluster()
        .name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
    match err.into_service_error() {
        DescribeClusterError::ResourceNotFoundException(e) => {
            assert_eq!(e.message(), Some("No cluster found for name: nope."));
            assert_eq!(e.cluster_name(), Some("nope"));
        }
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }

    let names: Vec<String> = eks
        .list_clusters()
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(names, vec!["api".to_string(), "cm".to_string()]);
    let first = eks.list_clusters().max_results(1).send().await.unwrap();
    assert_eq!(first.clusters(), ["api".to_string()]);
    assert!(first.next_token().is_some());

    let policies = eks
        .list_access_policies()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let arns: Vec<&str> = policies.iter().filter_map(|p| p.arn()).collect();
    assert_eq!(arns.len(), eks_sim::state::ACCESS_POLICIES.len());
    assert!(arns.contains(&policy("AmazonEKSClusterAdminPolicy").as_str()));
    assert!(policies
        .iter()
        .all(|p| p.arn().unwrap().ends_with(p.name().unwrap())));
    // Requests are counted per cluster: one DescribeCluster named `api`.
    assert_eq!(sim.counters("api").unwrap().eks_requests, 1);
    assert_eq!(sim.counters("cm").unwrap().eks_requests, 1);
    assert_eq!(sim.counters("api").unwrap().eks_writes, 0);
}

#[tokio::test]
async fn access_entry_lifecycle() {
    let sim = start().await;
    let eks = client(&sim);
    let dev = role("team/dev");
    let out = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .kubernetes_groups("dev-readers")
        .username("dev:{{SessionName}}")
        .tags("owner", "sre")
        .client_request_token("token-1")
        .send()
        .await
        .unwrap();
    let e = out.access_entry().unwrap();
    assert_eq!(e.cluster_name(), Some("api"));
    assert_eq!(e.principal_arn(), Some(dev.as_str()));
    assert_eq!(e.kubernetes_groups(), ["dev-readers".to_string()]);
    assert_eq!(e.username(), Some("dev:{{SessionName}}"));
    assert_eq!(e.r#type(), Some("STANDARD"));
    assert_eq!(
        e.tags().and_then(|t| t.get("owner")).map(String::as_str),
        Some("sre")
    );
    assert!(e.access_entry_arn().is_some_and(
        |a| a.starts_with("arn:aws:eks:us-west-2:123456789012:access-entry/api/role/")
    ));
    assert!(e.created_at().is_some() && e.modified_at().is_some());
    let arn = e.access_entry_arn().unwrap().to_string();
    assert_eq!(sim.counters("api").unwrap().eks_writes, 1);

    // An idempotent retry (same token, same parameters) answers the existing entry.
    let again = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .kubernetes_groups("dev-readers")
        .username("dev:{{SessionName}}")
        .tags("owner", "sre")
        .client_request_token("token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.access_entry().unwrap().access_entry_arn(),
        Some(arn.as_str())
    );
    assert_eq!(
        sim.counters("api").unwrap().eks_writes,
        1,
        "a retry writes nothing"
    );

    // Anything else for an existing principal is 409 ResourceInUseException.
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(409));
    assert!(
        matches!(
            err.into_service_error(),
            CreateAccessEntryError::ResourceInUseException(_)
        ),
        "expected ResourceInUseException"
    );
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .kubernetes_groups("other")
        .client_request_token("token-1")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreateAccessEntryError::ResourceInUseException(_)
    ));

    // Validation errors.
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn("arn:aws:sts::123456789012:assumed-role/dev/session")
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        CreateAccessEntryError::InvalidParameterException(e) => {
            assert!(e.message().unwrap().contains("invalid principal"), "{e:?}");
            assert_eq!(e.cluster_name(), Some("api"));
        }
        other => panic!("expected InvalidParameterException, got {other:?}"),
    }
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(role("x"))
        .kubernetes_groups("system:masters")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreateAccessEntryError::InvalidParameterException(_)
    ));
    let err = eks
        .create_access_entry()
        .cluster_name("nope")
        .principal_arn(role("x"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreateAccessEntryError::ResourceNotFoundException(_)
    ));
    let err = eks
        .create_access_entry()
        .cluster_name("cm")
        .principal_arn(role("x"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreateAccessEntryError::InvalidRequestException(_)
    ));

    let d = eks
        .describe_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.access_entry().unwrap().access_entry_arn(),
        Some(arn.as_str())
    );

    // More entries, then list them page by page (the creator's bootstrap entry is there too).
    for name in ["a", "b", "c", "d"] {
        eks.create_access_entry()
            .cluster_name("api")
            .principal_arn(role(name))
            .send()
            .await
            .unwrap();
    }
    let node = role("node");
    let n = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(&node)
        .r#type("EC2_LINUX")
        .send()
        .await
        .unwrap();
    assert_eq!(n.access_entry().unwrap().r#type(), Some("EC2_LINUX"));
    let first = eks
        .list_access_entries()
        .cluster_name("api")
        .max_results(3)
        .send()
        .await
        .unwrap();
    assert_eq!(first.access_entries().len(), 3);
    assert!(first.next_token().is_some());
    let all: Vec<String> = eks
        .list_access_entries()
        .cluster_name("api")
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let mut expected: Vec<String> = ["a", "b", "c", "d", "node", "team/dev"]
        .iter()
        .map(|n| role(n))
        .collect();
    expected.push(CREATOR.to_string());
    expected.sort();
    assert_eq!(all, expected);
    let err = eks
        .list_access_entries()
        .cluster_name("api")
        .max_results(500)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListAccessEntriesError::InvalidParameterException(_)
    ));
    let err = eks
        .list_access_entries()
        .cluster_name("cm")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListAccessEntriesError::InvalidRequestException(_)
    ));

    // UpdateAccessEntry.
    let u = eks
        .update_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .kubernetes_groups("dev-writers")
        .kubernetes_groups("dev-readers")
        .username("developer")
        .send()
        .await
        .unwrap();
    let ue = u.access_entry().unwrap();
    assert_eq!(
        ue.kubernetes_groups(),
        ["dev-writers".to_string(), "dev-readers".to_string()]
    );
    assert_eq!(ue.username(), Some("developer"));
    assert!(ue.modified_at().unwrap() >= ue.created_at().unwrap());
    let err = eks
        .update_access_entry()
        .cluster_name("api")
        .principal_arn(&node)
        .kubernetes_groups("g")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        UpdateAccessEntryError::InvalidParameterException(_)
    ));
    let err = eks
        .update_access_entry()
        .cluster_name("api")
        .principal_arn(role("ghost"))
        .username("x")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        UpdateAccessEntryError::ResourceNotFoundException(_)
    ));

    // DeleteAccessEntry.
    eks.delete_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap();
    let err = eks
        .describe_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
    match err.into_service_error() {
        DescribeAccessEntryError::ResourceNotFoundException(e) => {
            assert!(e.message().unwrap().contains(&dev), "{e:?}")
        }
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }
    let err = eks
        .delete_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DeleteAccessEntryError::ResourceNotFoundException(_)
    ));

    let counters = sim.counters("api").unwrap();
    // 1 create + 5 creates + 1 update + 1 delete.
    assert_eq!(counters.eks_writes, 8);
    assert!(counters.eks_requests >= 20, "{counters:?}");
}

#[tokio::test]
async fn access_policies() {
    let sim = start().await;
    let eks = client(&sim);
    let dev = role("dev");
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap();
    let view = policy("AmazonEKSViewPolicy");
    let out = eks
        .associate_access_policy()
        .cluster_name("api")
        .principal_arn(&dev)
        .policy_arn(&view)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Namespace)
                .namespaces("dev")
                .namespaces("staging")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.cluster_name(), Some("api"));
    assert_eq!(out.principal_arn(), Some(dev.as_str()));
    let a = out.associated_access_policy().unwrap();
    assert_eq!(a.policy_arn(), Some(view.as_str()));
    let scope = a.access_scope().unwrap();
    assert_eq!(scope.r#type(), Some(&AccessScopeType::Namespace));
    assert_eq!(
        scope.namespaces(),
        ["dev".to_string(), "staging".to_string()]
    );
    assert!(a.associated_at().is_some() && a.modified_at().is_some());

    for name in ["AmazonEKSEditPolicy", "AmazonEKSAdminPolicy"] {
        eks.associate_access_policy()
            .cluster_name("api")
            .principal_arn(&dev)
            .policy_arn(policy(name))
            .access_scope(
                AccessScope::builder()
                    .r#type(AccessScopeType::Cluster)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let first = eks
        .list_associated_access_policies()
        .cluster_name("api")
        .principal_arn(&dev)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.cluster_name(), Some("api"));
    assert_eq!(first.principal_arn(), Some(dev.as_str()));
    assert_eq!(first.associated_access_policies().len(), 2);
    assert!(first.next_token().is_some());
    let all = eks
        .list_associated_access_policies()
        .cluster_name("api")
        .principal_arn(&dev)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let mut arns: Vec<&str> = all.iter().filter_map(|a| a.policy_arn()).collect();
    arns.sort_unstable();
    assert_eq!(
        arns,
        [
            policy("AmazonEKSAdminPolicy"),
            policy("AmazonEKSEditPolicy"),
            view.clone()
        ]
    );
    let cluster_scoped = all
        .iter()
        .find(|a| a.policy_arn() == Some(policy("AmazonEKSEditPolicy").as_str()))
        .and_then(|a| a.access_scope())
        .unwrap();
    assert_eq!(cluster_scoped.r#type(), Some(&AccessScopeType::Cluster));
    assert!(cluster_scoped.namespaces().is_empty());

    // ListAccessEntries filtered by policy: dev has View, the creator has ClusterAdmin.
    let with_view = eks
        .list_access_entries()
        .cluster_name("api")
        .associated_policy_arn(&view)
        .send()
        .await
        .unwrap();
    assert_eq!(with_view.access_entries(), std::slice::from_ref(&dev));
    let admins = eks
        .list_access_entries()
        .cluster_name("api")
        .associated_policy_arn(policy("AmazonEKSClusterAdminPolicy"))
        .send()
        .await
        .unwrap();
    assert_eq!(admins.access_entries(), [CREATOR.to_string()]);

    // Unknown policy; a non-STANDARD entry; an unknown entry.
    let err = eks
        .associate_access_policy()
        .cluster_name("api")
        .principal_arn(&dev)
        .policy_arn(policy("AmazonEKSNopePolicy"))
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(400));
    assert!(matches!(
        err.into_service_error(),
        AssociateAccessPolicyError::InvalidParameterException(_)
    ));
    let node = role("node");
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(&node)
        .r#type("EC2_LINUX")
        .send()
        .await
        .unwrap();
    let err = eks
        .associate_access_policy()
        .cluster_name("api")
        .principal_arn(&node)
        .policy_arn(&view)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        AssociateAccessPolicyError::InvalidParameterException(e) => {
            assert!(e.message().unwrap().contains("STANDARD"), "{e:?}")
        }
        other => panic!("expected InvalidParameterException, got {other:?}"),
    }
    let err = eks
        .associate_access_policy()
        .cluster_name("api")
        .principal_arn(role("ghost"))
        .policy_arn(&view)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        AssociateAccessPolicyError::ResourceNotFoundException(_)
    ));
    let err = eks
        .associate_access_policy()
        .cluster_name("api")
        .principal_arn(&dev)
        .policy_arn(&view)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Namespace)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        AssociateAccessPolicyError::InvalidParameterException(_)
    ));

    // Disassociate, twice.
    eks.disassociate_access_policy()
        .cluster_name("api")
        .principal_arn(&dev)
        .policy_arn(&view)
        .send()
        .await
        .unwrap();
    let err = eks
        .disassociate_access_policy()
        .cluster_name("api")
        .principal_arn(&dev)
        .policy_arn(&view)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DisassociateAccessPolicyError::ResourceNotFoundException(_)
    ));
    let left = eks
        .list_associated_access_policies()
        .cluster_name("api")
        .principal_arn(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(left.associated_access_policies().len(), 2);
    assert!(left.next_token().is_none());
    let stored = sim
        .with_cluster("api", |c| c.access_entries[&dev].policies.len())
        .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn update_cluster_config_moves_one_way() {
    let sim = start().await;
    let eks = client(&sim);
    let to = |mode: AuthenticationMode| {
        UpdateAccessConfigRequest::builder()
            .authentication_mode(mode)
            .build()
    };
    let out = eks
        .update_cluster_config()
        .name("cm")
        .access_config(to(AuthenticationMode::ApiAndConfigMap))
        .send()
        .await
        .unwrap();
    let u = out.update().unwrap();
    assert_eq!(u.status(), Some(&UpdateStatus::Successful));
    assert_eq!(u.r#type(), Some(&UpdateType::AccessConfigUpdate));
    assert_eq!(u.id().map(str::len), Some(36));
    assert!(u.created_at().is_some());
    assert!(u.errors().is_empty());
    let p = &u.params()[0];
    assert_eq!(p.r#type(), Some(&UpdateParamType::AuthenticationMode));
    assert_eq!(p.value(), Some("API_AND_CONFIG_MAP"));
    // Leaving CONFIG_MAP gives the creator an admin access entry.
    let entries = eks
        .list_access_entries()
        .cluster_name("cm")
        .send()
        .await
        .unwrap();
    assert_eq!(entries.access_entries(), [CREATOR.to_string()]);

    for back in [
        AuthenticationMode::ConfigMap,
        AuthenticationMode::ApiAndConfigMap,
    ] {
        let err = eks
            .update_cluster_config()
            .name("cm")
            .access_config(to(back))
            .send()
            .await
            .unwrap_err();
        match err.into_service_error() {
            UpdateClusterConfigError::InvalidParameterException(e) => {
                assert!(
                    e.message()
                        .unwrap()
                        .contains("Unsupported authentication mode update"),
                    "{e:?}"
                )
            }
            other => panic!("expected InvalidParameterException, got {other:?}"),
        }
    }
    eks.update_cluster_config()
        .name("cm")
        .access_config(to(AuthenticationMode::Api))
        .send()
        .await
        .unwrap();
    let mode = eks.describe_cluster().name("cm").send().await.unwrap();
    assert_eq!(
        mode.cluster()
            .and_then(|c| c.access_config())
            .and_then(|a| a.authentication_mode()),
        Some(&AuthenticationMode::Api)
    );
    // Two mode changes, plus the creator's bootstrap association the state counts as a write.
    assert_eq!(sim.counters("cm").unwrap().eks_writes, 3);

    // Nothing to update, and an unknown cluster.
    let err = eks
        .update_cluster_config()
        .name("cm")
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        UpdateClusterConfigError::InvalidParameterException(e) => {
            assert_eq!(e.message(), Some("No changes needed"))
        }
        other => panic!("expected InvalidParameterException, got {other:?}"),
    }
    let err = eks
        .update_cluster_config()
        .name("nope")
        .access_config(to(AuthenticationMode::Api))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        UpdateClusterConfigError::ResourceNotFoundException(_)
    ));
}

fn rule(cluster: Option<&str>, op: &str, fault: Fault, count: Option<u32>) -> Rule {
    Rule {
        cluster: cluster.map(str::to_string),
        target: Target::Eks(op.to_string()),
        fault,
        count,
    }
}

#[tokio::test]
async fn faults_reach_the_sdk() {
    let sim = start().await;
    let eks = client(&sim);

    // Throttle, retries disabled: ThrottlingException (not modelled for DescribeCluster, so
    // the SDK reports it by code).
    sim.inject(rule(
        Some("api"),
        "DescribeCluster",
        Fault::Throttle,
        Some(1),
    ));
    let err = eks.describe_cluster().name("api").send().await.unwrap_err();
    assert_eq!(status(&err), Some(429));
    assert_eq!(err.code(), Some("ThrottlingException"));
    eks.describe_cluster().name("api").send().await.unwrap();

    // The rule is per cluster and per operation.
    sim.inject(rule(
        Some("cm"),
        "DescribeCluster",
        Fault::Throttle,
        Some(1),
    ));
    eks.describe_cluster().name("api").send().await.unwrap();
    eks.list_access_policies().send().await.unwrap();
    assert!(eks.describe_cluster().name("cm").send().await.is_err());

    // Throttled twice, then fine: the SDK's standard retries get through.
    let retrying = client_with(
        &sim,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(5)),
    );
    let before = sim.counters("api").unwrap().eks_requests;
    sim.inject(rule(
        Some("api"),
        "ListAccessEntries",
        Fault::Throttle,
        Some(2),
    ));
    retrying
        .list_access_entries()
        .cluster_name("api")
        .send()
        .await
        .unwrap();
    assert_eq!(sim.counters("api").unwrap().eks_requests, before + 3);
    // ...and when the throttling outlasts the attempts, ThrottlingException.
    sim.inject(rule(
        Some("api"),
        "ListAccessEntries",
        Fault::Throttle,
        Some(3),
    ));
    let err = retrying
        .list_access_entries()
        .cluster_name("api")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));

    // 503 and 500 with their modelled shapes.
    sim.inject(rule(
        None,
        "DescribeCluster",
        Fault::Status { status: 503 },
        Some(1),
    ));
    let err = eks.describe_cluster().name("api").send().await.unwrap_err();
    assert_eq!(status(&err), Some(503));
    assert!(matches!(
        err.into_service_error(),
        DescribeClusterError::ServiceUnavailableException(_)
    ));
    sim.inject(rule(None, "*", Fault::Status { status: 500 }, Some(1)));
    let err = eks.describe_cluster().name("api").send().await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DescribeClusterError::ServerException(_)
    ));

    // Conflict: 409 ResourceInUseException, and nothing was written.
    sim.inject(rule(
        Some("api"),
        "CreateAccessEntry",
        Fault::Conflict,
        Some(1),
    ));
    let err = eks
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(role("x"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        CreateAccessEntryError::ResourceInUseException(_)
    ));
    assert!(sim
        .with_cluster("api", |c| !c.access_entries.contains_key(&role("x")))
        .unwrap());

    // Drop: the connection closes without an answer.
    sim.inject(rule(Some("api"), "DescribeCluster", Fault::Drop, Some(1)));
    let err = eks.describe_cluster().name("api").send().await.unwrap_err();
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "expected a dispatch failure, got {err:?}"
    );
    eks.describe_cluster().name("api").send().await.unwrap();

    // Latency: slower, then the normal answer.
    sim.inject(rule(
        Some("api"),
        "DescribeCluster",
        Fault::Latency { millis: 300 },
        Some(1),
    ));
    let t = Instant::now();
    eks.describe_cluster().name("api").send().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    // A dropped CreateAccessEntry retried by the SDK (same idempotency token) succeeds once.
    sim.inject(rule(Some("api"), "CreateAccessEntry", Fault::Drop, Some(1)));
    let writes = sim.counters("api").unwrap().eks_writes;
    retrying
        .create_access_entry()
        .cluster_name("api")
        .principal_arn(role("retried"))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.counters("api").unwrap().eks_writes, writes + 1);
    assert!(sim.shared().state().faults.rules().is_empty());
}

#[tokio::test]
async fn wire_format_details() {
    let sim = start().await;
    let http = eks_sim::client::HttpClient::default();
    let base = sim.eks_endpoint();
    let json = vec![("content-type".to_string(), "application/json".to_string())];

    let r = http
        .send("GET", &format!("{base}/nothing/here"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("GET /nothing/here"));

    let url = format!("{base}/clusters/api/access-entries");
    let r = http
        .send("POST", &url, &json, b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["clusterName"], "api");
    assert!(
        body["message"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    let r = http
        .send("POST", &url, &json, b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("principalArn"));

    let r = http
        .send("POST", &url, &json, br#"{"principalArn": "arn:aws:iam::123456789012:role/w", "kubernetesGroups": "not-a-list"}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // Percent-encoded labels, as the SDKs send them.
    let r = http
        .send(
            "POST",
            &url,
            &json,
            br#"{"principalArn": "arn:aws:iam::123456789012:role/path/w"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = http
        .send(
            "GET",
            &format!("{url}/arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fpath%2Fw"),
            &[],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["accessEntry"]["principalArn"],
        "arn:aws:iam::123456789012:role/path/w"
    );
    assert!(body["accessEntry"]["createdAt"].is_number());

    let r = http
        .send("GET", &format!("{url}?nextToken=%%%invalid"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

/// A stand-in for IAM's Query API (GetRole / GetUser), answering as moto does.
async fn fake_iam(
    known: BTreeMap<String, (String, String)>,
    seen: Arc<Mutex<Vec<String>>>,
) -> String {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let known = Arc::new(known);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (known, seen) = (known.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let (known, seen) = (known.clone(), seen.clone());
                        async move {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let form = String::from_utf8_lossy(&body).to_string();
                            seen.lock().unwrap().push(format!("{auth} | {form}"));
                            let params: BTreeMap<&str, &str> = form
                                .split('&')
                                .filter_map(|kv| kv.split_once('='))
                                .collect();
                            let (action, name) = match params.get("Action") {
                                Some(&"GetRole") => {
                                    ("Role", params.get("RoleName").copied().unwrap_or(""))
                                }
                                _ => ("User", params.get("UserName").copied().unwrap_or("")),
                            };
                            let (status, xml) = match known.get(name) {
                            Some((arn, id)) => (
                                200,
                                format!(
                                    "<Get{action}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Get{action}Result><{action}><Path>/</Path><{action}Name>{name}</{action}Name><{action}Id>{id}</{action}Id><Arn>{arn}</Arn></{action}></Get{action}Result></Get{action}Response>"
                                ),
                            ),
                            None => (
                                404,
                                format!("<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The {action} with name {name} cannot be found.</Message></Error></ErrorResponse>"),
                            ),
                        };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", "text/xml")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(xml)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn create_access_entry_binds_the_iam_unique_id() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let known = BTreeMap::from([
        (
            "dev".to_string(),
            (role("team/dev"), "AROADEVUNIQUEID00001".to_string()),
        ),
        (
            "alice".to_string(),
            (
                "arn:aws:iam::123456789012:user/alice".to_string(),
                "AIDAALICEUNIQUEID001".to_string(),
            ),
        ),
    ]);
    let iam = fake_iam(known, seen.clone()).await;
    let mut cfg = config();
    cfg.iam_endpoint = Some(iam);
    let sim = Simulator::start(cfg).await.unwrap();
    let eks = client(&sim);

    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(role("team/dev"))
        .send()
        .await
        .unwrap();
    let alice = "arn:aws:iam::123456789012:user/alice";
    eks.create_access_entry()
        .cluster_name("api")
        .principal_arn(alice)
        .send()
        .await
        .unwrap();
    let ids = sim
        .with_cluster("api", |c| {
            (
                c.access_entries[&role("team/dev")].unique_id.clone(),
                c.access_entries[alice].unique_id.clone(),
            )
        })
        .unwrap();
    assert_eq!(
        ids,
        (
            Some("AROADEVUNIQUEID00001".into()),
            Some("AIDAALICEUNIQUEID001".into())
        )
    );

    for ghost in [role("ghost"), role("other/dev")] {
        let err = eks
            .create_access_entry()
            .cluster_name("api")
            .principal_arn(&ghost)
            .send()
            .await
            .unwrap_err();
        match err.into_service_error() {
            CreateAccessEntryError::InvalidParameterException(e) => {
                assert!(
                    e.message()
                        .unwrap()
                        .starts_with("The specified principalArn is invalid: invalid principal"),
                    "{e:?}"
                )
            }
            other => panic!("expected InvalidParameterException for {ghost}, got {other:?}"),
        }
    }
    assert_eq!(sim.counters("api").unwrap().eks_writes, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen[0].starts_with("AWS4-HMAC-SHA256 Credential=")
            && seen[0].contains("/us-east-1/iam/aws4_request"),
        "{seen:?}"
    );
    assert!(
        seen[0].ends_with("Action=GetRole&RoleName=dev&Version=2010-05-08"),
        "{seen:?}"
    );
    assert!(
        seen[1].ends_with("Action=GetUser&UserName=alice&Version=2010-05-08"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn boto3_speaks_to_the_simulator() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let probe = std::process::Command::new("python3")
        .args(["-c", "import boto3, botocore; print(boto3.__version__)"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "boto3_speaks_to_the_simulator needs python3 with boto3 (CI={ci}): install it with `python3 -m pip install boto3`. Probe: {other:?}"
        ),
    }
    let sim = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/boto3_eks.py");
    let endpoint = sim.eks_endpoint();
    let ca = sim.cluster("api").unwrap().ca_pem.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(endpoint)
            .env("EKS_SIM_CA_PEM", ca)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boto3 script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("boto3 fidelity: OK"), "{stdout}\n{stderr}");
    assert!(sim.counters("api").unwrap().eks_requests > 20);
}
