//! Automatic remediation end to end, over real sockets: moto (IAM, STS) and the project's EKS
//! simulator (EKS API, Kubernetes API, authenticator). A principal is denied, the authenticator's
//! lines become a subscription event, the handler plans and (in enforce mode) applies the approved
//! change, and the principal's next request is authenticated.

#[path = "../sim/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::eventgen::{self, Options};
use eks_auth_remediator::facts_aws::AwsFacts;
use eks_auth_remediator::handler::{self, Config, Deps, Response};
use eks_auth_remediator::policy::Policy;
use eks_sim::{AuthMode, ClusterConfig, SimConfig, Simulator};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

const NODE_ROLES: &str = "# managed by the platform team\n- rolearn: arn:aws:iam::123456789012:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

/// The function acting as `creds`, IAM/STS on moto, EKS on the simulator.
fn edge(sim: &Simulator, creds: &eks_sim::sigv4::Creds, actor: &str) -> Edge {
    let config = support::sdk_config(creds);
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&config)
            .endpoint_url(&support::moto().endpoint)
            .build(),
    );
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::from(&config)
            .endpoint_url(sim.eks_endpoint())
            .build(),
    );
    Edge::Aws(Box::new(AwsFacts::from_parts(
        &config,
        iam,
        eks,
        Some(actor.to_string()),
        false,
    )))
}

async fn simulator(mode: AuthMode, creator: &str, aws_auth: Option<&str>) -> Simulator {
    let mut c = ClusterConfig::new("prod", creator);
    c.authentication_mode = mode;
    c.aws_auth = aws_auth.map(|t| BTreeMap::from([("mapRoles".to_string(), t.to_string())]));
    let mut cfg = SimConfig::with_clusters(vec![c]);
    cfg.sts.endpoint = Some(support::moto().endpoint.clone());
    cfg.iam_endpoint = Some(support::moto().endpoint.clone());
    Simulator::start(cfg).await.expect("simulator starts")
}

fn policy(mode: &str, extra: &str) -> Policy {
    let text = format!(
        "mode: {mode}\nclusters: [prod]\nnever: [\"arn:aws:iam::*:role/break-glass-*\"]\nrules:\n  - name: developers\n    principals: [\"arn:aws:iam::123456789012:role/*dev*\"]\n    access_entry: {{policy: AmazonEKSViewPolicy, scope: cluster}}\n    aws_auth: {{username: \"dev:{{{{SessionName}}}}\", groups: [eks-viewers]}}\n{extra}limits: {{max_changes_per_invocation: 5, max_changes_per_hour: 20}}\n"
    );
    Policy::parse(&text, "test policy").expect("test policy is valid")
}

/// P asks the cluster for aws-auth with its own token; returns the HTTP status.
async fn request_as(sim: &Simulator, creds: &eks_sim::sigv4::Creds) -> u16 {
    let token = support::token(creds, "prod");
    let client = support::kube_client_retry(sim, "prod", &token, false).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    match api.get("aws-auth").await {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn event_from_authlog(sim: &Simulator) -> serde_json::Value {
    let lines = sim.authlog().join("\n");
    eventgen::subscription(
        &lines,
        &Options {
            cluster: "prod".into(),
            account: support::ACCOUNT.into(),
            region: support::REGION.into(),
            control: false,
        },
    )
}

async fn run(edge: Edge, policy: Policy, event: &serde_json::Value) -> Response {
    let config = Config {
        region: Some(support::REGION.into()),
        ..Config::default()
    };
    let deps = Deps {
        policy: Some(policy),
        ..Deps::new(config, edge)
    };
    handler::handle_value(event, &deps)
        .await
        .expect("event decodes")
}

#[tokio::test]
async fn config_map_cluster_gets_the_approved_mapping_once() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let role = support::create_role(&support::unique("dev"), "/team/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "alice").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;

    assert_eq!(request_as(&sim, &dev_creds).await, 401, "P starts unmapped");
    let event = event_from_authlog(&sim);

    // Dry-run plans exactly the change and writes nothing.
    let dry = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("dry-run", ""),
        &event,
    )
    .await;
    let action = dry
        .actions
        .iter()
        .find(|a| a.change.is_some())
        .expect("a change is planned");
    assert_eq!(
        serde_json::to_value(action.kind).unwrap(),
        "aws_auth_mapping"
    );
    assert_eq!(serde_json::to_value(action.status).unwrap(), "planned");
    let canonical = format!("arn:aws:iam::123456789012:role/{}", role.name);
    assert_eq!(
        action
            .change
            .as_ref()
            .map(|c| serde_json::to_value(c).unwrap()["arn"].clone()),
        Some(canonical.clone().into())
    );
    assert_eq!(
        sim.counters("prod").unwrap().configmap_writes,
        0,
        "dry-run never writes"
    );
    assert_eq!(dry.audit[0].result, "dry_run");

    // Enforce applies it; every byte of the old aws-auth is kept.
    let applied = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    let action = applied.actions.iter().find(|a| a.change.is_some()).unwrap();
    assert_eq!(
        serde_json::to_value(action.status).unwrap(),
        "applied",
        "{:?}",
        action.reason
    );
    let cm = sim.configmap("prod", "kube-system", "aws-auth").unwrap();
    let text = cm["data"]["mapRoles"].as_str().unwrap();
    assert!(text.starts_with(NODE_ROLES), "{text}");
    assert!(
        text.contains(&canonical) && !text.contains("role/team/"),
        "role path stripped: {text}"
    );
    assert!(
        cm["metadata"]["annotations"]["eks-auth-remediator/last-change"]
            .as_str()
            .unwrap()
            .contains("EAR-")
    );
    assert_eq!(applied.audit[0].result, "applied");
    assert!(
        applied
            .tickets
            .iter()
            .all(|t| t.principal.as_deref() != Some(canonical.as_str())),
        "no ticket for a fixed finding"
    );

    // P now authenticates (its group has no RBAC grant: authorized as the cluster decides, 403).
    assert_eq!(request_as(&sim, &dev_creds).await, 403);

    // The same event again: nothing is written twice.
    let writes = sim.counters("prod").unwrap().configmap_writes;
    let again = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    assert_eq!(sim.counters("prod").unwrap().configmap_writes, writes);
    let text_after =
        sim.configmap("prod", "kube-system", "aws-auth").unwrap()["data"]["mapRoles"].clone();
    assert_eq!(text_after.as_str().unwrap().matches(&canonical).count(), 1);
    assert!(again
        .actions
        .iter()
        .all(|a| a.change.is_none() || serde_json::to_value(a.status).unwrap() == "unchanged"));
}

#[tokio::test]
async fn api_cluster_gets_an_access_entry_with_view_policy() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let role = support::create_role(&support::unique("dev"), "/team/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "bob").await;
    let sim = simulator(AuthMode::Api, &creator.arn, None).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let event = event_from_authlog(&sim);

    let out = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    let action = out
        .actions
        .iter()
        .find(|a| a.change.is_some())
        .expect("a change");
    assert_eq!(serde_json::to_value(action.kind).unwrap(), "access_entry");
    assert_eq!(
        serde_json::to_value(action.status).unwrap(),
        "applied",
        "{}",
        action.reason
    );
    // The entry names the path-qualified ARN, as EKS requires.
    let entry = sim
        .with_cluster("prod", |c| c.access_entries.get(&role.arn).cloned())
        .unwrap()
        .expect("entry for the path ARN");
    assert_eq!(entry.policies.len(), 1);
    // Authenticated and authorized to read: the API cluster has no aws-auth, so 404 (not 401/403).
    assert_eq!(
        request_as(&sim, &dev_creds).await,
        404,
        "view policy reads ConfigMaps"
    );
}

#[tokio::test]
async fn refusals_end_in_tickets_without_writes() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    // No rule matches this role name; a break-glass role hits `never`.
    let other = support::create_role(&support::unique("ops"), "/").await;
    let glass = support::create_role(&support::unique("break-glass-admin"), "/").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    for r in [&other, &glass] {
        let creds = support::assume_role(&support::admin_creds(), &r.arn, "s").await;
        assert_eq!(request_as(&sim, &creds).await, 401);
    }
    let event = event_from_authlog(&sim);
    let out = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    assert_eq!(sim.counters("prod").unwrap().configmap_writes, 0);
    let reasons: Vec<&str> = out.actions.iter().map(|a| a.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("no approval rule")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("never pattern")),
        "{reasons:?}"
    );
    assert_eq!(out.tickets.len(), out.actions.len());
}

#[tokio::test]
async fn sso_mapping_with_a_path_is_fixed_in_place() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let name = format!(
        "AWSReservedSSO_Developer_{}",
        support::unique("x").replace('-', "")
    );
    let role = support::create_role(&name, "/aws-reserved/sso.amazonaws.com/us-west-2/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "carol").await;
    // The mapping a human wrote with the path: it never matches the assumed role.
    let roles = format!("{NODE_ROLES}- rolearn: {}\n  username: dev:{{{{SessionName}}}}\n  groups:\n    - eks-viewers\n", role.arn);
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(&roles)).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let event = event_from_authlog(&sim);
    let out = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    let f = out
        .findings
        .iter()
        .find(|f| f.refinement.is_some())
        .expect("refined");
    let refinement = serde_json::to_value(&f.refinement).unwrap();
    assert_eq!(refinement["kind"], "mapping_has_path");
    assert_eq!(refinement["sso"], true);
    let action = out
        .actions
        .iter()
        .find(|a| a.change.is_some())
        .expect("a change");
    assert_eq!(
        serde_json::to_value(action.kind).unwrap(),
        "fix_mapping_path"
    );
    assert_eq!(
        serde_json::to_value(action.status).unwrap(),
        "applied",
        "{}",
        action.reason
    );
    let text = sim.configmap("prod", "kube-system", "aws-auth").unwrap()["data"]["mapRoles"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        roles.replace(&role.arn, &format!("arn:aws:iam::123456789012:role/{name}")),
        "only the ARN changed"
    );
    assert_eq!(request_as(&sim, &dev_creds).await, 403, "authenticated now");
}

#[tokio::test]
async fn conflicting_writes_are_retried_and_keep_every_other_edit() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let role = support::create_role(&support::unique("dev"), "/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "dan").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let event = event_from_authlog(&sim);
    // A human edit lands after the function's read: the next two writes conflict.
    sim.with_cluster("prod", |c| {
        let mut cm = c.cm_get("kube-system", "aws-auth").unwrap().clone();
        cm["data"]["mapUsers"] =
            "- userarn: arn:aws:iam::123456789012:user/human\n  username: human\n".into();
        c.cm_replace("kube-system", "aws-auth", cm).unwrap();
    });
    sim.inject(eks_sim::Rule {
        cluster: Some("prod".into()),
        target: eks_sim::Target::KubeWrite,
        fault: eks_sim::Fault::Conflict,
        count: Some(2),
    });
    let out = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    let action = out.actions.iter().find(|a| a.change.is_some()).unwrap();
    assert_eq!(
        serde_json::to_value(action.status).unwrap(),
        "applied",
        "{}",
        action.reason
    );
    assert_eq!(out.audit[0].after.as_ref().unwrap()["attempts"], 3);
    let cm = sim.configmap("prod", "kube-system", "aws-auth").unwrap();
    assert!(
        cm["data"]["mapUsers"]
            .as_str()
            .unwrap()
            .contains("user/human"),
        "the human edit is intact"
    );
    assert!(cm["data"]["mapRoles"]
        .as_str()
        .unwrap()
        .starts_with(NODE_ROLES));
    assert_eq!(
        cm["data"]["mapRoles"]
            .as_str()
            .unwrap()
            .matches(&role.name)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_half_done_access_entry_converges_on_the_next_run() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let role = support::create_role(&support::unique("dev"), "/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "erin").await;
    let sim = simulator(AuthMode::ApiAndConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let event = event_from_authlog(&sim);
    // The association fails (more times than the SDK retries): the entry exists without a policy.
    sim.inject(eks_sim::Rule {
        cluster: Some("prod".into()),
        target: eks_sim::Target::Eks("AssociateAccessPolicy".into()),
        fault: eks_sim::Fault::Status { status: 500 },
        count: Some(10),
    });
    let first = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    let a = first.actions.iter().find(|a| a.change.is_some()).unwrap();
    assert_eq!(serde_json::to_value(a.status).unwrap(), "failed");
    assert!(
        first.tickets.iter().any(|t| t.finding_id == a.finding_id),
        "a failed change is ticketed"
    );
    assert!(sim
        .with_cluster("prod", |c| c.access_entries.contains_key(&role.arn))
        .unwrap());
    sim.clear_faults();
    let second = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    let a = second.actions.iter().find(|a| a.change.is_some()).unwrap();
    assert_eq!(
        serde_json::to_value(a.status).unwrap(),
        "applied",
        "{}",
        a.reason
    );
    let entry = sim
        .with_cluster("prod", |c| c.access_entries.get(&role.arn).cloned())
        .unwrap()
        .unwrap();
    assert_eq!(entry.policies.len(), 1);
    assert_eq!(
        request_as(&sim, &dev_creds).await,
        200,
        "the view policy reads aws-auth"
    );
}

#[tokio::test]
async fn deleted_entities_and_broken_aws_auth_get_tickets_not_writes() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let (gone, gone_creds) = support::user_with_key("dev-gone").await;
    let role = support::create_role(&support::unique("dev"), "/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "fay").await;
    // A tab in the list: the authenticator (and YAML) reject the whole key.
    let broken = format!("{NODE_ROLES}- rolearn: {}\n\tusername: x\n", role.arn);
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(&broken)).await;
    assert_eq!(request_as(&sim, &gone_creds).await, 401);
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    support::delete_access_key(&gone.name, &gone_creds.access_key).await;
    support::delete_user(&gone.name).await;
    let event = event_from_authlog(&sim);
    let out = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    assert_eq!(sim.counters("prod").unwrap().configmap_writes, 0);
    let reasons: Vec<&str> = out.actions.iter().map(|a| a.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("does not exist")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("does not parse")),
        "{reasons:?}"
    );
    let kinds: Vec<String> = out
        .findings
        .iter()
        .filter_map(|f| f.refinement.as_ref())
        .map(|r| {
            serde_json::to_value(r).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        kinds.contains(&"entity_deleted".to_string())
            && kinds.contains(&"aws_auth_broken".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn the_remediation_role_is_assumed_and_verified() {
    let role = support::create_role(&support::unique("eks-auth-remediation"), "/automation/").await;
    let admin = support::admin_creds();
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(support::REGION))
        .credentials_provider(Credentials::new(
            admin.access_key,
            admin.secret_key,
            None,
            None,
            "test",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(&support::moto().endpoint)
        .load()
        .await;
    let (config, actor) =
        eks_auth_remediator::aws::assume_role(&base, &role.arn, "eks-auth-remediator")
            .await
            .expect("role assumed");
    assert!(
        actor.contains(&format!("assumed-role/{}/eks-auth-remediator", role.name)),
        "{actor}"
    );
    // The assumed credentials are what the Kubernetes token is made of.
    let creds = eks_auth_remediator::aws::credentials(&config)
        .await
        .unwrap();
    assert!(creds.session_token().is_some());
    let err = eks_auth_remediator::aws::assume_role(
        &base,
        "arn:aws:iam::123456789012:role/does-not-exist-x",
        "s",
    )
    .await;
    // moto lets any role be assumed; what matters is that a successful call is verified.
    if let Ok((_, a)) = err {
        assert!(a.contains("does-not-exist-x"));
    }
}

#[tokio::test]
async fn other_accounts_and_unprivileged_functions_get_tickets() {
    let (creator, _) = support::user_with_key("creator").await;
    let (weak, weak_creds) = support::user_with_key("weak-function").await;
    let role = support::create_role(&support::unique("dev"), "/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "gil").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let mut lines = sim.authlog().join("\n");
    // A denial for a principal of another account (forwarded logs): reported, not looked up.
    lines.push_str("\ntime=\"2024-01-01T00:00:00Z\" level=warning msg=\"access denied\" arn=\"arn:aws:iam::999999999999:role/dev-other\" client=\"127.0.0.1:1\" error=\"ARN is not mapped\" method=POST path=/authenticate");
    let event = eventgen::subscription(
        &lines,
        &Options {
            cluster: "prod".into(),
            account: support::ACCOUNT.into(),
            region: support::REGION.into(),
            control: false,
        },
    );
    // The function acts as an identity the cluster does not map: it may not write aws-auth.
    let out = run(
        edge(&sim, &weak_creds, &weak.arn),
        policy("enforce", ""),
        &event,
    )
    .await;
    assert_eq!(sim.counters("prod").unwrap().configmap_writes, 0);
    let reasons: Vec<&str> = out.actions.iter().map(|a| a.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("another account")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("may not update")),
        "{reasons:?}"
    );
    assert!(
        out.audit.iter().all(|r| r.result == "refused"),
        "{:?}",
        out.audit
    );
    assert_eq!(out.audit.len(), 2);
}

#[tokio::test]
async fn concurrent_remediations_each_land_exactly_once() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    let mut roles = Vec::new();
    for i in 0..3 {
        let role = support::create_role(&support::unique(&format!("dev{i}")), "/").await;
        let creds = support::assume_role(&support::admin_creds(), &role.arn, "s").await;
        assert_eq!(request_as(&sim, &creds).await, 401);
        roles.push(role);
    }
    // One event per principal, handled concurrently, with conflicting writes injected.
    let lines = sim.authlog();
    let events: Vec<serde_json::Value> = roles
        .iter()
        .map(|r| {
            let mine: Vec<&String> = lines.iter().filter(|l| l.contains(&r.name)).collect();
            eventgen::subscription(
                &mine
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                &Options {
                    cluster: "prod".into(),
                    account: support::ACCOUNT.into(),
                    region: support::REGION.into(),
                    control: false,
                },
            )
        })
        .collect();
    sim.inject(eks_sim::Rule {
        cluster: Some("prod".into()),
        target: eks_sim::Target::KubeWrite,
        fault: eks_sim::Fault::Conflict,
        count: Some(3),
    });
    let (a, b, c) = tokio::join!(
        run(
            edge(&sim, &creator_creds, &creator.arn),
            policy("enforce", ""),
            &events[0]
        ),
        run(
            edge(&sim, &creator_creds, &creator.arn),
            policy("enforce", ""),
            &events[1]
        ),
        run(
            edge(&sim, &creator_creds, &creator.arn),
            policy("enforce", ""),
            &events[2]
        ),
    );
    for out in [a, b, c] {
        let action = out.actions.iter().find(|x| x.change.is_some()).unwrap();
        assert_eq!(
            serde_json::to_value(action.status).unwrap(),
            "applied",
            "{}",
            action.reason
        );
    }
    let text = sim.configmap("prod", "kube-system", "aws-auth").unwrap()["data"]["mapRoles"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with(NODE_ROLES));
    for r in &roles {
        assert_eq!(
            text.matches(&format!("role/{}\n", r.name)).count(),
            1,
            "{text}"
        );
    }
}

#[tokio::test]
async fn eks_auth_token_is_accepted_by_the_cluster() {
    let (creator, creds) = support::user_with_key("creator").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args(["token", "--cluster", "prod", "--region", support::REGION])
        .env("AWS_ACCESS_KEY_ID", &creds.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cred: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cred["kind"], "ExecCredential");
    let token = cred["status"]["token"].as_str().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(token),
        "the token is never logged"
    );
    let client = support::kube_client_retry(&sim, "prod", token, false).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    api.get("aws-auth")
        .await
        .expect("the creator's token from eks-auth token is accepted");
}

#[tokio::test]
async fn missing_aws_auth_is_ticketed_not_created() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let role = support::create_role(&support::unique("dev"), "/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "hal").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, None).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let out = run(
        edge(&sim, &creator_creds, &creator.arn),
        policy("enforce", ""),
        &event_from_authlog(&sim),
    )
    .await;
    assert!(
        out.actions
            .iter()
            .any(|a| a.reason.contains("does not exist")),
        "{:?}",
        out.actions
    );
    assert!(
        sim.configmap("prod", "kube-system", "aws-auth").is_none(),
        "never created"
    );
    assert_eq!(out.tickets.len(), out.actions.len());
}

// The CLI runs as a child process while this test's runtime serves the simulator: multi-thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_auth_plan_never_writes_even_under_an_enforce_policy() {
    let (creator, creds) = support::user_with_key("creator").await;
    let role = support::create_role(&support::unique("dev"), "/").await;
    let dev_creds = support::assume_role(&support::admin_creds(), &role.arn, "ivy").await;
    let sim = simulator(AuthMode::ConfigMap, &creator.arn, Some(NODE_ROLES)).await;
    assert_eq!(request_as(&sim, &dev_creds).await, 401);
    let dir = support::scratch("plan-cli");
    let event = support::write(&dir, "event.json", &event_from_authlog(&sim).to_string());
    let policy_text = "mode: enforce\nclusters: [prod]\nrules:\n  - name: developers\n    principals: [\"arn:aws:iam::123456789012:role/*dev*\"]\n    aws_auth: {username: \"dev:{{SessionName}}\", groups: [eks-viewers]}\n";
    let policy_file = support::write(&dir, "policy.yaml", policy_text);
    let moto = &support::moto().endpoint;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args([
            "plan",
            event.to_str().unwrap(),
            "--policy",
            policy_file.to_str().unwrap(),
            "--region",
            support::REGION,
        ])
        .env("AWS_ACCESS_KEY_ID", &creds.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
        .env("AWS_ENDPOINT_URL_EKS", sim.eks_endpoint())
        .env("AWS_ENDPOINT_URL_IAM", moto)
        .env("AWS_ENDPOINT_URL_STS", moto)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("EKS_AUTH_OFFLINE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["mode"], "dry-run");
    let planned: Vec<&serde_json::Value> = resp["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "planned")
        .collect();
    assert_eq!(
        planned.len(),
        1,
        "{} {}",
        resp["actions"],
        resp["findings"][0]["facts"]["notes"]
    );
    assert_eq!(planned[0]["kind"], "aws_auth_mapping");
    assert_eq!(sim.counters("prod").unwrap().configmap_writes, 0);
}
