//! The acceptance scenario, end to end over real sockets: a principal created in moto's
//! IAM is refused with kubectl's "You must be logged in to the server (Unauthorized)" and an
//! `access denied ... ARN is not mapped` authenticator line; the fix (an aws-auth entry written
//! through the Kubernetes API on a CONFIG_MAP cluster, or an access entry with
//! AmazonEKSViewPolicy created through the EKS REST API on an API cluster) lets it in, with
//! exactly the permissions the mapping grants.

mod support;

use eks_sim::client::HttpClient;
use eks_sim::{AuthMode, ClusterConfig, SimConfig, Simulator};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::*;

/// kubectl's message when a request is refused with 401 and discovery is already cached.
const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)";
/// Its message when discovery itself gets the 401 (a cold cache): client-go's discovery client
/// cannot decode the Status body and falls back to a generic text, as against real EKS.
const UNAUTHORIZED_COLD: &str = "error: You must be logged in to the server (the server has asked for the client to provide credentials)";
const NODE_ROLES: &str = "# managed by eksctl\n- rolearn: arn:aws:iam::123456789012:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

async fn start(c: ClusterConfig) -> Simulator {
    let mut cfg = SimConfig::with_clusters(vec![c]);
    cfg.sts.endpoint = Some(moto().endpoint.clone());
    cfg.iam_endpoint = Some(moto().endpoint.clone());
    Simulator::start(cfg).await.expect("simulator starts")
}

/// P: a role assumed by an IAM user, as an operator's SSO-less role would be.
async fn principal(prefix: &str, path: &str) -> (Principal, eks_sim::sigv4::Creds) {
    let (_, user_key) = user_with_key(&format!("{prefix}-user")).await;
    let role = create_role(&unique(prefix), path).await;
    let session = assume_role(&user_key, &role.arn, "operator").await;
    (role, session)
}

fn denials(sim: &Simulator) -> Vec<String> {
    lines_with(sim, "msg=\"access denied\"")
}

async fn eks_post(
    sim: &Simulator,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let reply = HttpClient::default()
        .send(
            "POST",
            &format!("{}{path}", sim.eks_endpoint()),
            &[("content-type".to_string(), "application/json".to_string())],
            body.to_string().into_bytes(),
        )
        .await
        .expect("EKS API answers");
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null),
    )
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_cluster_principal_mapped_through_aws_auth() {
    let (creator, creator_key) = user_with_key("creator").await;
    let (p, p_creds) = principal("platform-reader", "/").await;
    let canonical = p.arn.clone();
    let mut c = ClusterConfig::new("prod", &creator.arn);
    c.aws_auth = Some([("mapRoles".to_string(), NODE_ROLES.to_string())].into());
    let sim = start(c).await;
    let dir = scratch("scenario-cm");

    // 1. P is refused: kubectl's message, and the authenticator line the remediator reads.
    // With no discovery cache, discovery itself is refused...
    let p_kubeconfig = write(
        &dir,
        "p.kubeconfig",
        &sim.kubeconfig("prod", Some(&token(&p_creds, "prod")))
            .unwrap(),
    );
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &["get", "configmap", "aws-auth", "-n", "kube-system"],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(UNAUTHORIZED_COLD), "{r:?}");
    assert!(
        r.stderr
            .contains("couldn't get current server API group list"),
        "{r:?}"
    );
    // ...once discovery is cached (by anyone on this machine), the GET is.
    let creator_kubeconfig = write(
        &dir,
        "creator.kubeconfig",
        &sim.kubeconfig("prod", Some(&token(&creator_key, "prod")))
            .unwrap(),
    );
    assert_eq!(
        kubectl(&dir, &creator_kubeconfig, &["get", "configmaps", "-A"])
            .await
            .code,
        0
    );
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &["get", "configmap", "aws-auth", "-n", "kube-system"],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.trim(), UNAUTHORIZED, "{r:?}");
    let p_client = kube_client(&sim, "prod", &token(&p_creds, "prod")).await;
    let st = match Api::<ConfigMap>::namespaced(p_client, "kube-system")
        .get("aws-auth")
        .await
    {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected 401, got {other:?}"),
    };
    assert_eq!(st.code, 401);
    let denied = denials(&sim);
    assert!(denied.len() >= 3, "{denied:?}");
    for line in &denied {
        assert!(
            line.contains("level=warning msg=\"access denied\""),
            "{line}"
        );
        assert!(
            line.contains(&format!("arn=\"{canonical}\"")),
            "canonical role ARN: {line}"
        );
        assert!(
            line.contains("error=\"ARN is not mapped\" method=POST path=/authenticate"),
            "{line}"
        );
    }
    let sts = lines_with(&sim, "msg=\"STS response\"");
    assert!(
        sts[0].contains(&format!(
            "arn=\"arn:aws:sts::{ACCOUNT}:assumed-role/{}/operator\"",
            p.name
        )),
        "{}",
        sts[0]
    );

    // 2. The creator maps P in aws-auth through the Kubernetes API: a minimal edit (append one
    // item, keep every other byte) written with the object's resourceVersion.
    let admin = kube_client(&sim, "prod", &token(&creator_key, "prod")).await;
    let cms: Api<ConfigMap> = Api::namespaced(admin, "kube-system");
    let mut aws_auth = cms
        .get("aws-auth")
        .await
        .expect("the creator is always admin in CONFIG_MAP mode");
    let roles = aws_auth.data.as_mut().unwrap().get_mut("mapRoles").unwrap();
    roles.push_str(&format!("- rolearn: {canonical}\n  username: platform-reader:{{{{SessionName}}}}\n  groups:\n    - system:masters\n"));
    let stored = cms
        .replace("aws-auth", &PostParams::default(), &aws_auth)
        .await
        .expect("replace with current resourceVersion");
    assert!(
        stored.data.unwrap()["mapRoles"].starts_with(NODE_ROLES),
        "other bytes kept"
    );
    let granted = lines_with(&sim, "msg=\"access granted\"");
    assert!(!granted.is_empty());
    assert!(granted
        .iter()
        .all(|l| l.contains("username=kubernetes-admin")
            && l.contains("groups=\"[system:masters]\"")));

    // 3. P's next request is authenticated and authorized per its groups.
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &[
            "get",
            "configmap",
            "aws-auth",
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&canonical));
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &["auth", "can-i", "update", "configmaps", "-n", "kube-system"],
    )
    .await;
    assert_eq!(r.stdout.trim(), "yes", "{r:?}");
    let last = lines_with(&sim, "msg=\"access granted\"").pop().unwrap();
    assert!(last.contains(&format!("arn=\"{canonical}\"")), "{last}");
    assert!(
        last.contains("username=\"platform-reader:operator\""),
        "{last}"
    );
    assert!(last.contains("groups=\"[system:masters]\""), "{last}");
    assert!(
        last.contains(&format!(
            "uid=\"aws-iam-authenticator:{ACCOUNT}:{}\"",
            p.unique_id
        )),
        "{last}"
    );
    let denied_before = denied.len();
    assert_eq!(denials(&sim).len(), denied_before, "no new denials");

    // A principal mapped with a group nothing grants anything to is authenticated, then forbidden.
    let (q, q_creds) = principal("auditor", "/").await;
    let aws_auth = cms.get("aws-auth").await.unwrap();
    let mut roles = aws_auth.data.unwrap()["mapRoles"].clone();
    roles.push_str(&format!(
        "- rolearn: {}\n  username: auditor\n  groups: [auditors]\n",
        q.arn
    ));
    cms.patch(
        "aws-auth",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"mapRoles": roles}})),
    )
    .await
    .unwrap();
    let q_kubeconfig = write(
        &dir,
        "q.kubeconfig",
        &sim.kubeconfig("prod", Some(&token(&q_creds, "prod")))
            .unwrap(),
    );
    let r = kubectl(
        &dir,
        &q_kubeconfig,
        &["get", "configmap", "aws-auth", "-n", "kube-system"],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("configmaps \"aws-auth\" is forbidden: User \"auditor\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""),
        "{r:?}"
    );
    let c = sim.counters("prod").unwrap();
    assert_eq!(c.configmap_writes, 2);
    assert_eq!(c.authn_denied, denied_before as u64);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_cluster_principal_gets_an_access_entry_with_view_policy() {
    let (creator, creator_key) = user_with_key("api-creator").await;
    // A role with a path: the access entry must name the ARN with its path.
    let (p, p_creds) = principal("viewer", "/team/").await;
    let canonical = format!("arn:aws:iam::{ACCOUNT}:role/{}", p.name);
    assert_ne!(p.arn, canonical);
    let mut c = ClusterConfig::new("prod-api", &creator.arn);
    c.authentication_mode = AuthMode::Api;
    let sim = start(c).await;
    let dir = scratch("scenario-api");

    // 1. Refused.
    let p_kubeconfig = write(
        &dir,
        "p.kubeconfig",
        &sim.kubeconfig("prod-api", Some(&token(&p_creds, "prod-api")))
            .unwrap(),
    );
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &["get", "configmaps", "-n", "kube-system"],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(UNAUTHORIZED_COLD), "{r:?}");
    let d = denials(&sim);
    assert!(
        d.last().unwrap().contains(&format!("arn=\"{canonical}\""))
            && d.last().unwrap().contains("error=\"ARN is not mapped\""),
        "{d:?}"
    );

    // The creator gets in through its bootstrapped access entry.
    let admin = kube_client(&sim, "prod-api", &token(&creator_key, "prod-api")).await;
    Api::<ConfigMap>::namespaced(admin.clone(), "kube-system")
        .list(&ListParams::default())
        .await
        .expect("creator is cluster admin");

    // 2. An access entry for P (principalArn with its path) and AmazonEKSViewPolicy, through the
    // EKS REST API.
    let (status, body) = eks_post(
        &sim,
        "/clusters/prod-api/access-entries",
        json!({"principalArn": p.arn, "type": "STANDARD"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accessEntry"]["principalArn"], p.arn.as_str());
    let (status, body) = eks_post(
        &sim,
        &format!("/clusters/prod-api/access-entries/{}/access-policies", enc(&p.arn)),
        json!({"policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy", "accessScope": {"type": "cluster"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bound = sim
        .with_cluster("prod-api", |c| c.access_entries[&p.arn].unique_id.clone())
        .unwrap();
    assert_eq!(
        bound.as_deref(),
        Some(p.unique_id.as_str()),
        "the entry is bound to the role's unique ID"
    );

    // 3. P reads, but may not write.
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &["get", "configmaps", "-n", "kube-system", "-o", "name"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = kubectl(
        &dir,
        &p_kubeconfig,
        &["auth", "can-i", "update", "configmaps", "-n", "kube-system"],
    )
    .await;
    assert_eq!((r.code, r.stdout.trim()), (1, "no"), "{r:?}");
    let p_client = kube_client(&sim, "prod-api", &token(&p_creds, "prod-api")).await;
    let cms: Api<ConfigMap> = Api::namespaced(p_client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "from-viewer"}, "data": {"a": "b"}}))
            .unwrap();
    match cms.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                s.message,
                format!("configmaps is forbidden: User \"arn:aws:sts::{ACCOUNT}:assumed-role/{}/operator\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\"", p.name)
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let last = lines_with(&sim, "msg=\"access granted\"").pop().unwrap();
    assert!(
        last.contains(&format!("arn=\"{canonical}\"")) && last.contains("groups=\"[]\""),
        "{last}"
    );

    // The role deleted and recreated under the same ARN: new unique ID, the entry still names
    // the old one.
    let (status, body) = query_api(
        "iam",
        "2010-05-08",
        &admin_creds(),
        &[("Action", "DeleteRole"), ("RoleName", &p.name)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let again = create_role(&p.name, "/team/").await;
    assert_ne!(again.unique_id, p.unique_id);
    let (_, user_key) = user_with_key("viewer-user-2").await;
    let session = assume_role(&user_key, &again.arn, "operator").await;
    let r = kubectl(
        &dir,
        &write(
            &dir,
            "p2.kubeconfig",
            &sim.kubeconfig("prod-api", Some(&token(&session, "prod-api")))
                .unwrap(),
        ),
        &["get", "configmaps"],
    )
    .await;
    assert!(r.stderr.contains(UNAUTHORIZED), "{r:?}");
    let d = denials(&sim).pop().unwrap();
    assert!(
        d.contains(&format!("arn=\"{canonical}\"")) && d.contains("ARN does not match User ID"),
        "{d}"
    );
    assert_eq!(sim.counters("prod-api").unwrap().configmap_writes, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
