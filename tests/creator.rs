//! The cluster creator and incidents end to end, over real sockets: moto (CloudWatch Logs with
//! its Insights engine, IAM, STS, DynamoDB) and the project's EKS simulator.
//!
//! moto's Logs Insights engine ignores `filter` clauses (it returns every event in the range), so
//! a log group holding only the creator's lines is answered by Insights, and one holding other
//! lines too makes the lookup notice unfiltered rows and fall back to FilterLogEvents.

#[path = "../sim/tests/support/mod.rs"]
mod support;

mod common;

use std::collections::BTreeMap;

use eks_auth_remediator::creator::{CreatorConfig, CreatorSource, CreatorStatus};
use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::eventgen::{self, Options};
use eks_auth_remediator::facts_aws::AwsFacts;
use eks_auth_remediator::handler::{self, Config, Deps, Response};
use eks_auth_remediator::policy::Policy;
use eks_sim::{AuthMode, ClusterConfig, SimConfig, Simulator};

const NODE_ROLES: &str = "- rolearn: arn:aws:iam::123456789012:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";

fn logs_client() -> aws_sdk_cloudwatchlogs::Client {
    let config = support::sdk_config(&support::admin_creds());
    aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&config)
            .endpoint_url(&support::moto().endpoint)
            .build(),
    )
}

fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let config = support::sdk_config(&support::admin_creds());
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(&support::moto().endpoint)
            .build(),
    )
}

/// The function acting as `creds`: IAM, Logs and DynamoDB on moto, EKS on the simulator (or on
/// moto when there is none: the creator tests need no cluster).
fn edge(
    sim: Option<&Simulator>,
    creds: &eks_sim::sigv4::Creds,
    actor: &str,
    table: Option<&str>,
) -> Edge {
    let config = support::sdk_config(creds);
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&config)
            .endpoint_url(&support::moto().endpoint)
            .build(),
    );
    let eks_endpoint = sim.map_or(support::moto().endpoint.clone(), |s| s.eks_endpoint());
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::from(&config)
            .endpoint_url(eks_endpoint)
            .build(),
    );
    let facts = AwsFacts::from_parts(&config, iam, eks, Some(actor.to_string()), false)
        .with_incident_parts(
            logs_client(),
            dynamodb_client(),
            table.map(str::to_string),
            CreatorConfig {
                lookback_days: 2,
                timeout_secs: 15,
            },
        );
    Edge::Aws(Box::new(facts))
}

async fn run(edge: Edge, policy: Option<Policy>, event: &serde_json::Value) -> Response {
    let config = Config {
        region: Some(support::REGION.into()),
        ..Config::default()
    };
    let deps = Deps {
        policy,
        ..Deps::new(config, edge)
    };
    handler::handle_value(event, &deps)
        .await
        .expect("event decodes")
}

fn event(cluster: &str, lines: &[String]) -> serde_json::Value {
    eventgen::subscription(
        &lines.join("\n"),
        &Options {
            cluster: cluster.into(),
            account: support::ACCOUNT.into(),
            region: support::REGION.into(),
            control: false,
        },
    )
}

fn now_ms() -> i64 {
    support::unix_now() as i64 * 1000
}

fn admin_line(arn: &str) -> String {
    format!(
        r#"time="2026-01-01T00:00:00Z" level=info msg="access granted" arn="{arn}" client="10.0.0.9:51234" groups="[system:masters]" method=POST path=/authenticate stsendpoint=sts.us-west-2.amazonaws.com uid="aws-iam-authenticator:123456789012:AIDAEXAMPLE" username=kubernetes-admin"#
    )
}

fn granted(arn: &str, username: &str, groups: &str, minute: u32) -> String {
    format!(
        r#"time="2026-01-01T00:{minute:02}:00Z" level=info msg="access granted" arn="{arn}" groups="[{groups}]" method=POST path=/authenticate username="{username}""#
    )
}

fn denied(arn: &str, minute: u32) -> String {
    format!(
        r#"time="2026-01-01T00:{minute:02}:30Z" level=warning msg="access denied" arn="{arn}" client="10.0.0.7:40000" error="ARN is not mapped" method=POST path=/authenticate"#
    )
}

const CONFIG_ERROR: &str = r#"time="2026-01-01T00:20:00Z" level=error msg="Errors parsing configmap: [yaml: line 4: mapping values are not allowed in this context]""#;

/// Writes `(stream, message)` events into the cluster's log group in moto.
async fn put_logs(cluster: &str, events: &[(&str, String)]) {
    let logs = logs_client();
    let group = format!("/aws/eks/{cluster}/cluster");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("create log group");
    let mut streams: Vec<&str> = events.iter().map(|(s, _)| *s).collect();
    streams.dedup();
    for s in &streams {
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(*s)
            .send()
            .await
            .expect("create log stream");
    }
    let base = now_ms() - 60_000;
    for s in streams {
        let batch: Vec<_> = events
            .iter()
            .enumerate()
            .filter(|(_, (st, _))| *st == s)
            .map(|(i, (_, m))| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(base + i as i64 * 1000)
                    .message(m)
                    .build()
                    .unwrap()
            })
            .collect();
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name(s)
            .set_log_events(Some(batch))
            .send()
            .await
            .expect("put log events");
    }
}

const AUTH_STREAM: &str = "authenticator-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn creator_is_found_with_insights_and_with_the_filter_fallback() {
    let (creator, creds) = support::user_with_key("creator").await;

    // Only the creator's lines: moto's Insights answer matches the query and is used.
    let c1 = support::unique("ins");
    put_logs(&c1, &[(AUTH_STREAM, admin_line(&creator.arn))]).await;
    let r = run(
        edge(None, &creds, &creator.arn, None),
        None,
        &event(&c1, &[CONFIG_ERROR.to_string()]),
    )
    .await;
    assert_eq!(r.tickets.len(), 1, "{:#?}", r.tickets);
    let t = &r.tickets[0];
    let c = t
        .creator
        .as_ref()
        .expect("the incident ticket names the creator");
    assert_eq!(c.status, CreatorStatus::Found, "{c:?}");
    assert_eq!(c.source, CreatorSource::Insights, "{c:?}");
    assert_eq!(c.arn.as_deref(), Some(creator.arn.as_str()));
    assert_eq!(c.exists, Some(true));
    assert!(c
        .evidence
        .as_deref()
        .unwrap()
        .contains("username=kubernetes-admin"));
    assert!(t.diagnosis.contains("keeps access"), "{}", t.diagnosis);

    // Other lines too (another principal's grant, the API server's stream): moto returns them
    // all, the lookup notices and asks FilterLogEvents, and still picks the creator.
    let c2 = support::unique("flt");
    put_logs(
        &c2,
        &[
            (AUTH_STREAM, granted("arn:aws:iam::123456789012:role/bob", "bob", "devs", 1)),
            (AUTH_STREAM, admin_line(&creator.arn)),
            (
                "kube-apiserver-0123456789abcdef",
                "I0101 user=\"kubernetes-admin\" username=kubernetes-admin arn=arn:aws:iam::123456789012:user/impostor".to_string(),
            ),
        ],
    )
    .await;
    let r = run(
        edge(None, &creds, &creator.arn, None),
        None,
        &event(&c2, &[CONFIG_ERROR.to_string()]),
    )
    .await;
    let c = r.tickets[0].creator.as_ref().unwrap();
    assert_eq!(c.source, CreatorSource::FilterLogEvents, "{c:?}");
    assert_eq!(c.arn.as_deref(), Some(creator.arn.as_str()));
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("do not match the query's filters")),
        "{:?}",
        c.notes
    );
    let md = eks_auth_remediator::ticket::to_markdown(&r.tickets[0]);
    assert!(
        md.contains("## Cluster creator") && md.contains("FilterLogEvents"),
        "{md}"
    );
}

#[tokio::test]
async fn a_deleted_creator_is_to_be_recreated_with_the_same_name_and_path() {
    let (admin, admin_creds) = support::user_with_key("function").await;
    let name = support::unique("gone-creator");
    let gone = support::create_user(&name).await;
    let cluster = support::unique("del");
    put_logs(&cluster, &[(AUTH_STREAM, admin_line(&gone.arn))]).await;
    support::delete_user(&name).await;
    let r = run(
        edge(None, &admin_creds, &admin.arn, None),
        None,
        &event(&cluster, &[CONFIG_ERROR.to_string()]),
    )
    .await;
    let t = &r.tickets[0];
    let c = t.creator.as_ref().unwrap();
    assert_eq!(c.arn.as_deref(), Some(gone.arn.as_str()));
    assert_eq!(c.exists, Some(false), "{c:?}");
    assert!(
        c.advice
            .contains("recreate the same user with the same name and path"),
        "{}",
        c.advice
    );
    assert!(t.recommended_commands[0]
        .command
        .starts_with(&format!("aws iam create-user --user-name {name} --path /")));

    // Offline: no call at all, and the creator is "unknown".
    let r = run(
        Edge::Offline(eks_auth_remediator::facts::OfflineFacts),
        None,
        &event(&cluster, &[CONFIG_ERROR.to_string()]),
    )
    .await;
    let c = r.tickets[0].creator.as_ref().unwrap();
    assert_eq!(c.status, CreatorStatus::Unknown);
    assert!(c.advice.contains("unknown"));
}

async fn simulator(cluster: &str, creator: &str) -> Simulator {
    let mut c = ClusterConfig::new(cluster, creator);
    c.authentication_mode = AuthMode::ConfigMap;
    c.aws_auth = Some(BTreeMap::from([(
        "mapRoles".to_string(),
        NODE_ROLES.to_string(),
    )]));
    let mut cfg = SimConfig::with_clusters(vec![c]);
    cfg.sts.endpoint = Some(support::moto().endpoint.clone());
    cfg.iam_endpoint = Some(support::moto().endpoint.clone());
    Simulator::start(cfg).await.expect("simulator starts")
}

fn enforce(cluster: &str) -> Policy {
    let text = format!(
        "mode: enforce\nclusters: [{cluster}]\nrules:\n  - name: developers\n    principals: [\"arn:aws:iam::123456789012:role/*dev*\"]\n    aws_auth: {{username: \"dev:{{{{SessionName}}}}\", groups: [eks-viewers]}}\nlimits: {{max_changes_per_invocation: 5, max_changes_per_hour: 20}}\n"
    );
    Policy::parse(&text, "test policy").expect("test policy is valid")
}

/// A batch where three principals (one a node role) that were granted are now denied, plus a
/// new developer role the policy approves.
fn incident_lines(dev_role: &str) -> Vec<String> {
    let node = "arn:aws:iam::123456789012:role/eks-node";
    let mut lines = vec![
        granted(
            node,
            "system:node:ip-10-0-1-2.us-west-2.compute.internal",
            "system:bootstrappers system:nodes",
            0,
        ),
        granted("arn:aws:iam::123456789012:role/ci", "ci", "deployers", 1),
        granted("arn:aws:iam::123456789012:user/alice", "alice", "admins", 2),
    ];
    lines.push(denied(
        "arn:aws:sts::123456789012:assumed-role/eks-node/i-0123456789abcdef0",
        10,
    ));
    lines.push(denied(
        "arn:aws:sts::123456789012:assumed-role/ci/build-7",
        11,
    ));
    lines.push(denied("arn:aws:iam::123456789012:user/alice", 12));
    lines.push(denied(
        &format!("arn:aws:sts::123456789012:assumed-role/{dev_role}/dana"),
        13,
    ));
    lines
}

#[tokio::test]
async fn an_incident_is_one_critical_ticket_and_pauses_remediation() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let dev = support::create_role(&support::unique("dev"), "/").await;
    let cluster = support::unique("inc");
    let sim = simulator(&cluster, &creator.arn).await;
    put_logs(&cluster, &[(AUTH_STREAM, admin_line(&creator.arn))]).await;

    // Without the incident, the same policy maps the developer role.
    let control_cluster = support::unique("ctl");
    let control_sim = simulator(&control_cluster, &creator.arn).await;
    let dev_only = vec![denied(
        &format!("arn:aws:sts::123456789012:assumed-role/{}/dana", dev.name),
        13,
    )];
    let r = run(
        edge(Some(&control_sim), &creator_creds, &creator.arn, None),
        Some(enforce(&control_cluster)),
        &event(&control_cluster, &dev_only),
    )
    .await;
    assert!(r.incidents.is_empty());
    assert_eq!(
        serde_json::to_value(r.actions[0].status).unwrap(),
        "applied",
        "{:?}",
        r.actions[0].reason
    );
    assert_eq!(
        control_sim
            .counters(&control_cluster)
            .unwrap()
            .configmap_writes,
        1
    );

    // With it: one critical incident ticket, no write, the change is a paused ticket.
    let r = run(
        edge(Some(&sim), &creator_creds, &creator.arn, None),
        Some(enforce(&cluster)),
        &event(&cluster, &incident_lines(&dev.name)),
    )
    .await;
    assert_eq!(r.incidents.len(), 1, "{:#?}", r.incidents);
    let inc = &r.incidents[0];
    assert_eq!(serde_json::to_value(inc.kind).unwrap(), "mass_unmapping");
    assert_eq!(inc.principals.len(), 3);
    assert_eq!(
        inc.node_roles,
        vec!["arn:aws:iam::123456789012:role/eks-node"]
    );
    let incident_tickets: Vec<_> = r.tickets.iter().filter(|t| t.incident.is_some()).collect();
    assert_eq!(incident_tickets.len(), 1);
    let t = incident_tickets[0];
    assert_eq!(t.id, inc.ticket_id);
    assert_eq!(serde_json::to_value(t.severity).unwrap(), "critical");
    assert_eq!(
        t.creator.as_ref().and_then(|c| c.arn.as_deref()),
        Some(creator.arn.as_str())
    );
    let cmds: Vec<&str> = t
        .recommended_commands
        .iter()
        .map(|c| c.command.as_str())
        .collect();
    assert!(cmds
        .iter()
        .any(|c| c.contains("kubectl edit -n kube-system configmap/aws-auth")));
    assert!(cmds.iter().any(
        |c| c.contains("--arn arn:aws:iam::123456789012:role/eks-node")
            && c.contains("--group system:bootstrappers --group system:nodes")
    ));
    // The three covered principals have no ticket of their own; the developer's is paused.
    assert_eq!(
        r.tickets.len(),
        2,
        "{:#?}",
        r.tickets.iter().map(|t| &t.title).collect::<Vec<_>>()
    );
    let dev_action = r
        .actions
        .iter()
        .find(|a| a.ticket_id.as_deref() != Some(inc.ticket_id.as_str()))
        .unwrap();
    assert_eq!(serde_json::to_value(dev_action.kind).unwrap(), "ticket");
    assert!(
        dev_action
            .reason
            .starts_with(&format!("paused: incident {}", inc.id)),
        "{}",
        dev_action.reason
    );
    assert_eq!(
        sim.counters(&cluster).unwrap().configmap_writes,
        0,
        "nothing written while paused"
    );
    assert_eq!(r.pauses.len(), 1);
    assert_eq!(
        r.pauses[0].scope, "invocation",
        "no table: this invocation only"
    );
    // The same incident again has the same ticket id.
    let again = run(
        edge(Some(&sim), &creator_creds, &creator.arn, None),
        Some(enforce(&cluster)),
        &event(&cluster, &incident_lines(&dev.name)),
    )
    .await;
    assert_eq!(again.incidents[0].ticket_id, inc.ticket_id);
}

#[tokio::test]
async fn the_pause_persists_across_invocations_in_dynamodb() {
    let (creator, creator_creds) = support::user_with_key("creator").await;
    let dev = support::create_role(&support::unique("dev"), "/").await;
    let cluster = support::unique("pp");
    let sim = simulator(&cluster, &creator.arn).await;
    let table = support::unique("eks-auth-suppression");
    let ddb = dynamodb_client();
    common::create_suppression_table(&ddb, &table).await;

    // Invocation 1: the incident; the pause is stored.
    let r1 = run(
        edge(Some(&sim), &creator_creds, &creator.arn, Some(&table)),
        Some(enforce(&cluster)),
        &event(&cluster, &incident_lines(&dev.name)),
    )
    .await;
    assert_eq!(r1.incidents.len(), 1);
    assert_eq!(r1.pauses[0].scope, "table");
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("incident#{cluster}")),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the pause item");
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(
        expires > support::unix_now() as i64 + 3000,
        "about an hour ahead: {expires}"
    );

    // Invocation 2 (a new container: a fresh edge): only the developer's denial, no incident in
    // the batch, yet the stored pause holds and nothing is written.
    let dev_only = vec![denied(
        &format!("arn:aws:sts::123456789012:assumed-role/{}/dana", dev.name),
        30,
    )];
    let r2 = run(
        edge(Some(&sim), &creator_creds, &creator.arn, Some(&table)),
        Some(enforce(&cluster)),
        &event(&cluster, &dev_only),
    )
    .await;
    assert!(r2.incidents.is_empty());
    assert_eq!(r2.pauses.len(), 1);
    assert_eq!(r2.pauses[0].origin, "stored");
    assert_eq!(r2.pauses[0].incident_id, r1.incidents[0].id);
    assert!(
        r2.actions[0].reason.starts_with("paused: incident"),
        "{}",
        r2.actions[0].reason
    );
    assert_eq!(sim.counters(&cluster).unwrap().configmap_writes, 0);
    assert_eq!(r2.audit[0].action, "refused");

    // Once the pause has expired, remediation resumes.
    ddb.put_item()
        .table_name(&table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("incident#{cluster}")),
        )
        .item(
            "expires_at",
            aws_sdk_dynamodb::types::AttributeValue::N((support::unix_now() - 10).to_string()),
        )
        .send()
        .await
        .unwrap();
    let r3 = run(
        edge(Some(&sim), &creator_creds, &creator.arn, Some(&table)),
        Some(enforce(&cluster)),
        &event(&cluster, &dev_only),
    )
    .await;
    assert!(r3.pauses.is_empty());
    assert_eq!(
        serde_json::to_value(r3.actions[0].status).unwrap(),
        "applied",
        "{}",
        r3.actions[0].reason
    );
}

#[tokio::test]
async fn earlier_grants_in_the_log_group_count_as_granted_before() {
    // The batch holds only denials (the breakage happened before it); the grants are in the
    // cluster's log group from earlier.
    let (fun, creds) = support::user_with_key("function").await;
    let cluster = support::unique("hist");
    let node = "arn:aws:iam::123456789012:role/eks-node-hist";
    put_logs(
        &cluster,
        &[
            (
                AUTH_STREAM,
                granted(
                    node,
                    "system:node:ip-10-0-9-9.ec2.internal",
                    "system:bootstrappers system:nodes",
                    1,
                ),
            ),
            (
                AUTH_STREAM,
                granted(
                    "arn:aws:iam::123456789012:role/ci-hist",
                    "ci",
                    "deployers",
                    2,
                ),
            ),
            (
                AUTH_STREAM,
                granted("arn:aws:iam::123456789012:role/unrelated", "x", "y", 3),
            ),
        ],
    )
    .await;
    let at = eks_auth_remediator::timefmt::format_ms(now_ms());
    let lines: Vec<String> = [
        "arn:aws:sts::123456789012:assumed-role/eks-node-hist/i-0123456789abcdef0".to_string(),
        "arn:aws:sts::123456789012:assumed-role/ci-hist/build".to_string(),
    ]
    .iter()
    .map(|a| {
        format!(
            r#"time="{at}" level=warning msg="access denied" arn="{a}" error="ARN is not mapped""#
        )
    })
    .collect();
    let r = run(
        edge(None, &creds, &fun.arn, None),
        None,
        &event(&cluster, &lines),
    )
    .await;
    assert_eq!(r.incidents.len(), 1, "{:#?}", r.findings);
    assert_eq!(r.incidents[0].node_roles, vec![node.to_string()]);
    assert_eq!(r.incidents[0].principals.len(), 2);

    // Offline nothing is looked up: no evidence, no incident.
    let r = run(
        Edge::Offline(eks_auth_remediator::facts::OfflineFacts),
        None,
        &event(&cluster, &lines),
    )
    .await;
    assert!(r.incidents.is_empty());
}
