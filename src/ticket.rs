//! The ticket payload: a stable JSON document (schema in `schemas/ticket.schema.json`) and its
//! Markdown rendering, with the runbook's exact commands for the finding's cause filled in.

use std::fmt::Write as _;

use serde::Serialize;

use crate::arn::{Arn, PrincipalKind};
use crate::creator::{CreatorInfo, CreatorStatus};
use crate::diagnosis::{Cause, Finding, Outcome};
use crate::facts::Refinement;
use crate::incident::{Incident, IncidentKind};
use crate::plan::Action;

/// Bumped on any incompatible change to the payload; additive changes keep it.
pub const SCHEMA_VERSION: &str = "1.0";

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// One command a human should run, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub description: String,
    pub command: String,
}

/// What the ticket rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub count: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub distinct_clients: usize,
    pub clients: Vec<String>,
    pub sts_error_codes: Vec<String>,
    pub sts_regions: Vec<String>,
    pub details: Vec<String>,
    pub errors: Vec<String>,
    pub log_group: Option<String>,
    pub log_streams: Vec<String>,
    pub samples: Vec<String>,
}

/// The ticket payload. Field names and meanings are frozen for a given [`SCHEMA_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub schema_version: &'static str,
    /// Deterministic: same cluster + principal + cause give the same id, so ticket systems dedupe.
    pub id: String,
    pub finding_id: String,
    pub title: String,
    pub severity: Severity,
    pub cluster: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub principal: Option<String>,
    pub principal_type: Option<PrincipalKind>,
    /// The ARN as aws-auth must name it: path removed.
    pub aws_auth_arn: Option<String>,
    pub outcome: Outcome,
    pub cause: Option<Cause>,
    pub diagnosis: String,
    pub evidence: Evidence,
    pub recommended_commands: Vec<Command>,
    /// The deeper diagnosis from AWS facts, when they were gathered.
    pub refinement: Option<Refinement>,
    /// What the remediator planned or tried, and why it did not (fully) fix it.
    pub action: Option<Action>,
    pub source: &'static str,
    /// The cluster creator (who can restore aws-auth), for tickets that need it
    /// (`crate::creator::needed`) and incidents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<CreatorInfo>,
    /// The cluster-wide incident this ticket reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
}

/// The Logs Insights query the runbook uses to find the cluster creator.
pub const CREATOR_QUERY: &str = "fields @logStream, @timestamp, @message | sort @timestamp desc | filter @logStream like /authenticator/ | filter @message like \"username=kubernetes-admin\" | limit 50";

/// The ticket id for a finding id.
pub fn ticket_id(finding_id: &str) -> String {
    format!("EAR-{finding_id}")
}

/// Builds the ticket for a finding.
pub fn build(f: &Finding) -> Ticket {
    build_with(f, None, None)
}

/// Builds the ticket for a finding with its refined diagnosis and the remediator's action.
pub fn build_with(f: &Finding, refinement: Option<&Refinement>, action: Option<&Action>) -> Ticket {
    let ctx = Ctx::new(f);
    let (severity, mut diagnosis, mut commands) = match (f.outcome, f.cause) {
        (Outcome::ConfigError, _) => config_error(&ctx),
        (_, Some(cause)) => for_cause(&ctx, cause),
        _ => for_cause(&ctx, Cause::Unknown),
    };
    let what = match f.cause {
        Some(c) => format!("denied ({c})"),
        None => "aws-auth has entries the authenticator drops (config_error)".into(),
    };
    let title = match (f.outcome, &f.principal) {
        (Outcome::ConfigError, _) => format!("[eks-auth] {}: {what}", ctx.cluster_label),
        (_, Some(p)) => format!("[eks-auth] {}: {p} {what}", ctx.cluster_label),
        (_, None) => format!(
            "[eks-auth] {}: unidentified caller {what}",
            ctx.cluster_label
        ),
    };
    if let Some(r) = refinement {
        let (text, extra) = refined(&ctx, r);
        diagnosis = format!("{text} {diagnosis}");
        for c in extra.into_iter().rev() {
            commands.insert(0, c);
        }
    }
    if let Some(a) = action {
        diagnosis.push_str(&format!(" Remediator: {}.", a.reason));
    }
    Ticket {
        schema_version: SCHEMA_VERSION,
        id: ticket_id(&f.id),
        finding_id: f.id.clone(),
        title,
        severity,
        cluster: f.cluster.clone(),
        region: f.region.clone(),
        account: f.account.clone(),
        principal: f.principal.clone(),
        principal_type: f.principal_type,
        aws_auth_arn: ctx.arn.as_ref().map(|a| a.without_path().to_string()),
        outcome: f.outcome,
        cause: f.cause,
        diagnosis,
        evidence: Evidence {
            count: f.count,
            first_seen: f.first_seen.clone(),
            last_seen: f.last_seen.clone(),
            distinct_clients: f.distinct_clients,
            clients: f.clients.clone(),
            sts_error_codes: f.sts_error_codes.clone(),
            sts_regions: f.sts_regions.clone(),
            details: f.details.clone(),
            errors: f.errors.clone(),
            log_group: f.log_group.clone(),
            log_streams: f.log_streams.clone(),
            samples: f.samples.clone(),
        },
        recommended_commands: commands,
        refinement: refinement.cloned(),
        action: action.cloned(),
        source: concat!("eks-auth-remediator ", env!("CARGO_PKG_VERSION")),
        creator: None,
        incident: None,
    }
}

/// Puts the cluster creator in a ticket: its advice in the diagnosis, the commands that use or
/// recreate it first.
pub fn add_creator(t: &mut Ticket, c: CreatorInfo) {
    let cluster = t.cluster.clone().unwrap_or_else(|| "$CLUSTER".into());
    let region = t.region.clone().unwrap_or_else(|| "$AWS_REGION".into());
    let cmds = crate::creator::commands(&c, &cluster, &region);
    for cmd in cmds.into_iter().rev() {
        t.recommended_commands.insert(0, cmd);
    }
    t.diagnosis
        .push_str(&format!(" Cluster creator: {}", c.advice));
    t.creator = Some(c);
}

/// The one critical ticket for a cluster-wide incident.
pub fn incident_ticket(
    inc: &Incident,
    region: Option<&str>,
    account: Option<&str>,
    mode_hint: Option<&str>,
    creator: Option<CreatorInfo>,
) -> Ticket {
    let f = Finding {
        id: inc.id.clone(),
        cluster: Some(inc.cluster.clone()),
        account: account.map(str::to_string),
        region: region.map(str::to_string),
        outcome: match inc.kind {
            IncidentKind::ConfigError => Outcome::ConfigError,
            IncidentKind::MassUnmapping => Outcome::Denied,
        },
        cause: match inc.kind {
            IncidentKind::ConfigError => None,
            IncidentKind::MassUnmapping => Some(Cause::NotMapped),
        },
        principal: None,
        principal_type: None,
        count: inc.denials + inc.config_errors,
        first_seen: inc.first_seen.clone(),
        last_seen: inc.last_seen.clone(),
        distinct_clients: 0,
        clients: Vec::new(),
        sts_error_codes: Vec::new(),
        sts_regions: Vec::new(),
        details: inc.principals.clone(),
        errors: Vec::new(),
        log_group: Some(crate::creator::log_group(&inc.cluster)),
        log_streams: Vec::new(),
        samples: inc.samples.clone(),
    };
    let x = Ctx::new(&f);
    let what = match inc.kind {
        IncidentKind::ConfigError => format!(
            "the authenticator cannot parse aws-auth ({} error line(s)) and drops entries",
            inc.config_errors
        ),
        IncidentKind::MassUnmapping => format!(
            "{} principal(s) granted earlier are now denied not_mapped",
            inc.principals.len()
        ),
    };
    let nodes = if inc.node_roles.is_empty() {
        String::new()
    } else {
        format!(
            " Node role(s) {} lost their mapping: their nodes cannot renew credentials and go NotReady.",
            inc.node_roles.join(", ")
        )
    };
    let mut diagnosis = format!(
        "Incident {} ({}) on cluster {}: {what}. aws-auth was most likely edited and lost mappings that worked; every identity it mapped may be locked out.{nodes} Automatic remediation on this cluster is paused while the incident lasts. Restore access as the cluster creator, who keeps access in CONFIG_MAP mode: restore aws-auth from a known-good copy, re-add the node role mapping with groups system:bootstrappers and system:nodes, or create access entries if the authentication mode allows.",
        inc.id,
        inc.kind.as_str(),
        inc.cluster
    );
    if let Some(m) = mode_hint {
        diagnosis.push_str(&format!(" Authentication mode: {m}."));
    }
    let mut cmds = vec![
        x.auth_mode(),
        x.c(
            "As the creator: save the current (broken) aws-auth before changing it",
            "kubectl -n kube-system get configmap aws-auth -o yaml > aws-auth.broken.yaml",
        ),
        x.c(
            "Restore aws-auth from a known-good copy (GitOps repository, backup, or the last-applied annotation)",
            "kubectl apply -f aws-auth.known-good.yaml",
        ),
        x.c(
            "...or fix it in place, keeping every other entry (node roles first)",
            "kubectl edit -n kube-system configmap/aws-auth",
        ),
    ];
    for node in &inc.node_roles {
        let arn = Arn::parse(node).map_or(node.clone(), |a| a.without_path().to_string());
        cmds.push(x.c(
            "Re-add the node role mapping with the node groups",
            format!(
                "eksctl create iamidentitymapping --cluster {} --region {} --arn {} --username 'system:node:{{{{EC2PrivateDNSName}}}}' --group system:bootstrappers --group system:nodes --no-duplicate-arns",
                x.cluster, x.region, sh(&arn)
            ),
        ));
        cmds.push(x.c(
            "API or API_AND_CONFIG_MAP mode: an EC2_LINUX access entry maps the node role instead",
            format!(
                "aws eks create-access-entry --cluster-name {} --region {} --principal-arn \"$(aws iam get-role --role-name {} --query Role.Arn --output text)\" --type EC2_LINUX",
                x.cluster,
                x.region,
                sh(&Arn::parse(node).map_or(node.clone(), |a| a.name().to_string()))
            ),
        ));
    }
    if !inc.principals.is_empty() {
        cmds.push(x.c(
            "API or API_AND_CONFIG_MAP mode: access entries for the other principals (STANDARD; then associate-access-policy)",
            format!(
                "for arn in {}; do aws eks create-access-entry --cluster-name {} --region {} --principal-arn \"$arn\" --type STANDARD; done",
                inc.principals
                    .iter()
                    .filter(|p| !inc.node_roles.contains(p))
                    .map(|p| sh(p))
                    .collect::<Vec<_>>()
                    .join(" "),
                x.cluster,
                x.region
            ),
        ));
    }
    cmds.push(x.c(
        "Verify: nodes Ready and the principals authenticated again",
        "kubectl get nodes && kubectl get svc",
    ));
    if creator
        .as_ref()
        .is_none_or(|c| c.status != CreatorStatus::Found)
    {
        cmds.extend(x.creator());
    }
    let mut t = Ticket {
        schema_version: SCHEMA_VERSION,
        id: inc.ticket_id.clone(),
        finding_id: inc.id.clone(),
        title: format!(
            "[eks-auth] {}: INCIDENT {}: {what}",
            inc.cluster,
            inc.kind.as_str()
        ),
        severity: Severity::Critical,
        cluster: f.cluster.clone(),
        region: f.region.clone(),
        account: f.account.clone(),
        principal: None,
        principal_type: None,
        aws_auth_arn: None,
        outcome: f.outcome,
        cause: f.cause,
        diagnosis,
        evidence: Evidence {
            count: f.count,
            first_seen: f.first_seen.clone(),
            last_seen: f.last_seen.clone(),
            distinct_clients: 0,
            clients: Vec::new(),
            sts_error_codes: Vec::new(),
            sts_regions: Vec::new(),
            details: f.details.clone(),
            errors: Vec::new(),
            log_group: f.log_group.clone(),
            log_streams: Vec::new(),
            samples: f.samples.clone(),
        },
        recommended_commands: cmds,
        refinement: None,
        action: None,
        source: concat!("eks-auth-remediator ", env!("CARGO_PKG_VERSION")),
        creator: None,
        incident: Some(inc.clone()),
    };
    if let Some(c) = creator {
        add_creator(&mut t, c);
    }
    t
}

/// Values every command needs, shell-quoted, with variables where the batch did not tell us.
struct Ctx<'a> {
    f: &'a Finding,
    arn: Option<Arn>,
    cluster: String,
    cluster_label: String,
    region: String,
    partition: String,
}

impl<'a> Ctx<'a> {
    fn new(f: &'a Finding) -> Self {
        let arn = f.principal.as_deref().and_then(|p| Arn::parse(p).ok());
        Ctx {
            f,
            cluster: f.cluster.as_deref().map_or("\"$CLUSTER\"".into(), sh),
            cluster_label: f
                .cluster
                .clone()
                .unwrap_or_else(|| "unknown cluster".into()),
            region: f.region.as_deref().map_or("\"$AWS_REGION\"".into(), sh),
            partition: arn.as_ref().map_or("aws".into(), |a| a.partition.clone()),
            arn,
        }
    }

    fn c(&self, description: impl Into<String>, command: impl Into<String>) -> Command {
        Command {
            description: description.into(),
            command: command.into(),
        }
    }

    fn whoami(&self) -> Command {
        self.c(
            "On the machine that got 'You must be logged in to the server (Unauthorized)': check which IAM identity kubectl uses",
            "aws sts get-caller-identity",
        )
    }

    fn kubeconfig(&self) -> Command {
        self.c(
            "Regenerate the kubeconfig entry for this cluster and retry",
            format!(
                "aws eks update-kubeconfig --name {} --region {} && kubectl get svc",
                self.cluster, self.region
            ),
        )
    }

    fn auth_mode(&self) -> Command {
        self.c(
            "Read the cluster's authentication mode (CONFIG_MAP: aws-auth only; API: access entries only; API_AND_CONFIG_MAP: both)",
            format!(
                "aws eks describe-cluster --name {} --region {} --query cluster.accessConfig.authenticationMode --output text",
                self.cluster, self.region
            ),
        )
    }

    fn read_aws_auth(&self) -> Command {
        self.c(
            "As the cluster creator or an admin: read the current aws-auth ConfigMap",
            "kubectl -n kube-system get configmap aws-auth -o yaml",
        )
    }

    fn creator(&self) -> Vec<Command> {
        let group = self.f.log_group.as_deref().map_or_else(
            || format!("/aws/eks/{}/cluster", self.cluster_label),
            str::to_string,
        );
        vec![
            self.c(
                "Find the cluster creator (always admin in CONFIG_MAP mode) in the authenticator logs of the last 7 days",
                format!(
                    "QUERY_ID=$(aws logs start-query --region {} --log-group-name {} --start-time $(date -d '-7 days' +%s) --end-time $(date +%s) --query-string {} --query queryId --output text)",
                    self.region,
                    sh(&group),
                    sh(CREATOR_QUERY)
                ),
            ),
            self.c(
                "Read the query's results (the arn= of the kubernetes-admin lines is the creator)",
                format!("aws logs get-query-results --region {} --query-id \"$QUERY_ID\"", self.region),
            ),
        ]
    }

    /// `"$(aws iam get-role --role-name R ...)"`: access entries need the path-qualified ARN.
    fn path_qualified(&self) -> String {
        match &self.arn {
            Some(a) if a.kind() == PrincipalKind::Role => format!(
                "\"$(aws iam get-role --role-name {} --query Role.Arn --output text)\"",
                sh(a.name())
            ),
            Some(a) if a.kind() == PrincipalKind::User => format!(
                "\"$(aws iam get-user --user-name {} --query User.Arn --output text)\"",
                sh(a.name())
            ),
            Some(a) => sh(&a.to_string()),
            None => "\"$PRINCIPAL_ARN\"".into(),
        }
    }

    fn principal_label(&self) -> String {
        self.f
            .principal
            .clone()
            .unwrap_or_else(|| "the caller (not named in the log line)".into())
    }

    fn entity_check(&self) -> Option<Command> {
        let a = self.arn.as_ref()?;
        match a.kind() {
            PrincipalKind::Role => Some(self.c(
                "Check that the role still exists and note its path-qualified ARN and unique ID",
                format!("aws iam get-role --role-name {} --query 'Role.[Arn,RoleId]' --output text", sh(a.name())),
            )),
            PrincipalKind::User => Some(self.c(
                "Check that the user still exists and has an active access key",
                format!(
                    "aws iam get-user --user-name {n} --query 'User.[Arn,UserId]' --output text && aws iam list-access-keys --user-name {n}",
                    n = sh(a.name())
                ),
            )),
            _ => None,
        }
    }
}

fn for_cause(x: &Ctx<'_>, cause: Cause) -> (Severity, String, Vec<Command>) {
    let who = x.principal_label();
    let mut cmds = Vec::new();
    let (severity, text) = match cause {
        Cause::NotMapped => {
            let mut text = format!(
                "{who} presented a valid token and STS confirmed its identity, but neither an aws-auth mapping nor an EKS access entry matches it, so the authenticator denied it."
            );
            if let Some(a) = &x.arn {
                if a.kind() == PrincipalKind::Role {
                    text.push_str(&format!(
                        " aws-auth compares the canonical ARN without the role's path: map it as {} (a rolearn that keeps a path such as 'gitlab-ci/' or 'aws-reserved/sso.amazonaws.com/<region>/' never matches). An access entry, on the contrary, needs the path-qualified ARN from iam get-role.",
                        a.without_path()
                    ));
                }
                if a.is_sso_role() {
                    text.push_str(" This is an IAM Identity Center (SSO) role: its IAM path is aws-reserved/sso.amazonaws.com/<region>/, which must not appear in aws-auth.");
                }
            }
            text.push_str(" Grant the narrowest access that fits; system:masters and AmazonEKSClusterAdminPolicy are superuser.");
            cmds.push(x.whoami());
            cmds.push(x.auth_mode());
            if let Some(c) = x.entity_check() {
                cmds.push(c);
            }
            cmds.push(x.c(
                "API or API_AND_CONFIG_MAP mode: create an access entry for the path-qualified ARN",
                format!(
                    "aws eks create-access-entry --cluster-name {} --region {} --principal-arn {} --type STANDARD",
                    x.cluster, x.region, x.path_qualified()
                ),
            ));
            cmds.push(x.c(
                "...and associate an access policy (view shown; choose edit/admin only if approved)",
                format!(
                    "aws eks associate-access-policy --cluster-name {} --region {} --principal-arn {} --policy-arn arn:{}:eks::aws:cluster-access-policy/AmazonEKSViewPolicy --access-scope type=cluster",
                    x.cluster, x.region, x.path_qualified(), x.partition
                ),
            ));
            let (arn, username) = match &x.arn {
                Some(a) if a.kind() == PrincipalKind::Role => (
                    a.without_path().to_string(),
                    format!("{}:{{{{SessionName}}}}", a.name()),
                ),
                Some(a) => (a.to_string(), a.name().to_string()),
                None => ("\"$PRINCIPAL_ARN\"".into(), "\"$USERNAME\"".into()),
            };
            cmds.push(x.c(
                "CONFIG_MAP mode (as the cluster creator or an admin): map the identity in aws-auth, role ARN without its path; add --group with an RBAC group bound to the access it needs",
                format!(
                    "eksctl create iamidentitymapping --cluster {} --region {} --arn {} --username {} --no-duplicate-arns",
                    x.cluster,
                    x.region,
                    sh(&arn),
                    sh(&username)
                ),
            ));
            cmds.push(x.read_aws_auth());
            cmds.extend(x.creator());
            (Severity::Medium, text)
        }
        Cause::InvalidClientToken => {
            cmds.push(x.whoami());
            cmds.push(x.c(
                "See which credentials the CLI picks up (keys are masked)",
                "aws configure list",
            ));
            if let Some(c) = x.entity_check() {
                cmds.push(c);
            }
            cmds.push(x.kubeconfig());
            (Severity::Low, format!(
                "STS answered InvalidClientTokenId for the token of {who}: the access key belongs to no existing IAM entity (the user or role was deleted, the key deactivated or rotated, or it belongs to another partition), or the identity has no programmatic access. Fix the caller's credentials; no cluster change helps."
            ))
        }
        Cause::ExpiredToken => {
            cmds.push(x.c(
                "Refresh the session credentials (SSO shown; use your usual login)",
                "aws sso login",
            ));
            cmds.push(x.whoami());
            cmds.push(x.kubeconfig());
            (Severity::Low, format!(
                "STS answered ExpiredToken: the session credentials of {who} had expired when kubectl made its token. Refresh the credentials and retry."
            ))
        }
        Cause::SignatureMismatch => {
            cmds.push(x.c(
                "Check the cluster name kubectl signs into its token (the exec args' --cluster-name)",
                "kubectl config view --minify -o jsonpath='{.users[0].user.exec.args}'",
            ));
            cmds.push(x.kubeconfig());
            cmds.push(x.whoami());
            (Severity::Low, format!(
                "STS answered SignatureDoesNotMatch for {who}. Most often the token was made for another cluster name (the authenticator re-sends x-k8s-aws-id with its own cluster name, so the signature no longer matches); otherwise the secret key is wrong. Regenerate the kubeconfig for {} and retry.",
                x.cluster_label
            ))
        }
        Cause::StsRejected => {
            cmds.push(x.whoami());
            cmds.push(x.c(
                "Call the regional STS endpoint the authenticator uses; an AccessDenied here points to an SCP or a disabled regional endpoint",
                format!("aws sts get-caller-identity --region {r} --endpoint-url https://sts.{r}.amazonaws.com", r = x.region.trim_matches('"')),
            ));
            cmds.push(x.kubeconfig());
            (Severity::Medium, format!(
                "STS rejected the presigned GetCallerIdentity call for {who}{}. Check the caller's credentials, service control policies and whether STS is enabled in the cluster's region.",
                codes(x.f)
            ))
        }
        Cause::StsThrottled => {
            cmds.push(x.kubeconfig());
            (Severity::Info, "STS throttled the authenticator's GetCallerIdentity calls. This is transient: kubectl retries succeed. If it persists, look for a client that authenticates in a tight loop (the clients list) and cache its token.".into())
        }
        Cause::StsUnreachable => {
            cmds.push(x.c(
                "Check the cluster's status",
                format!("aws eks describe-cluster --name {} --region {} --query cluster.status --output text", x.cluster, x.region),
            ));
            cmds.push(x.c(
                "Look for an open EKS/STS event in the account's health dashboard",
                format!("aws health describe-events --region us-east-1 --filter services=EKS,STS,regions={}", x.region.trim_matches('"')),
            ));
            (Severity::High, "The cluster's control plane could not reach STS, so every IAM authentication fails while this lasts. Nothing on the client side helps; if it persists for more than a few minutes, open an AWS Support case quoting the evidence.".into())
        }
        Cause::TokenExpired => {
            cmds.push(x.c(
                "Compare the client's clock with UTC (tokens are valid for 15 minutes)",
                "date -u",
            ));
            cmds.push(x.c(
                "Make a fresh token and check its expiry",
                format!("aws eks get-token --cluster-name {} --region {} --query status.expirationTimestamp --output text", x.cluster, x.region),
            ));
            cmds.push(x.kubeconfig());
            (Severity::Low, "The token's X-Amz-Date is more than 15 minutes old: a client reused a cached token, or its clock is skewed. Sync the clock (NTP) and stop caching tokens beyond their expiry.".into())
        }
        Cause::MalformedToken => {
            cmds.push(x.c(
                "Check the AWS CLI version (old CLIs make tokens the authenticator rejects)",
                "aws --version",
            ));
            cmds.push(x.c(
                "Inspect the kubeconfig's user entry",
                "kubectl config view --minify",
            ));
            cmds.push(x.kubeconfig());
            (Severity::Low, format!(
                "The bearer token was not a well-formed k8s-aws-v1 presigned STS URL ({}). The client's credential plugin is misconfigured or outdated, or something other than kubectl sent it.",
                x.f.errors.first().map_or("no detail", String::as_str)
            ))
        }
        Cause::TemplateError => {
            cmds.push(x.read_aws_auth());
            let ids = if x.f.details.is_empty() {
                "\"$INSTANCE_ID\"".to_string()
            } else {
                x.f.details.join(" ")
            };
            cmds.push(x.c(
                "Check that the instance exists in the cluster's account and region and has a private DNS name",
                format!("aws ec2 describe-instances --region {} --instance-ids {ids} --query 'Reservations[].Instances[].PrivateDnsName' --output text", x.region),
            ));
            (Severity::High, format!(
                "The mapping for {who} uses a username template (system:node:{{{{EC2PrivateDNSName}}}}) that the authenticator could not render: its EC2 instance lookup failed. Typical reasons: nodes in another account, a session name that is not an instance id, or the instance is gone. Nodes with this role cannot join."
            ))
        }
        Cause::ReservedUsername => {
            cmds.push(x.c(
                "Show the mapping that uses the reserved username",
                format!(
                    "eksctl get iamidentitymapping --cluster {} --region {} --arn {}",
                    x.cluster,
                    x.region,
                    x.arn.as_ref().map_or("\"$PRINCIPAL_ARN\"".into(), |a| sh(
                        &a.without_path().to_string()
                    ))
                ),
            ));
            cmds.push(x.c(
                "As the cluster creator or an admin: change the username so it does not start with a reserved prefix (system:, eks:, aws:, amazon:, iam:)",
                "kubectl -n kube-system edit configmap aws-auth",
            ));
            (Severity::Medium, format!(
                "The aws-auth mapping for {who} sets a username ({}) that begins with a prefix the authenticator reserves, so the mapping is refused.",
                x.f.details.first().map_or("see evidence", String::as_str)
            ))
        }
        Cause::InvalidArn => {
            cmds.push(x.whoami());
            cmds.push(x.kubeconfig());
            (Severity::Medium, format!(
                "The authenticator could not use the caller's ARN ({}): it is invalid or has no partition the authenticator knows. Check that the credentials and the cluster are in the same partition and region.",
                x.f.principal.as_deref().unwrap_or("not logged")
            ))
        }
        Cause::StalePrincipal => {
            if let Some(c) = x.entity_check() {
                cmds.push(c);
            }
            cmds.push(x.c(
                "Record the access policies the old entry had",
                format!("aws eks list-associated-access-policies --cluster-name {} --region {} --principal-arn {}", x.cluster, x.region, x.path_qualified()),
            ));
            cmds.push(x.c(
                "Delete the stale access entry (it is bound to the deleted entity's unique ID)",
                format!(
                    "aws eks delete-access-entry --cluster-name {} --region {} --principal-arn {}",
                    x.cluster,
                    x.region,
                    x.path_qualified()
                ),
            ));
            cmds.push(x.c(
                "Recreate it for the current entity",
                format!("aws eks create-access-entry --cluster-name {} --region {} --principal-arn {} --type STANDARD", x.cluster, x.region, x.path_qualified()),
            ));
            cmds.push(x.c(
                "Re-associate each recorded policy (view shown)",
                format!(
                    "aws eks associate-access-policy --cluster-name {} --region {} --principal-arn {} --policy-arn arn:{}:eks::aws:cluster-access-policy/AmazonEKSViewPolicy --access-scope type=cluster",
                    x.cluster, x.region, x.path_qualified(), x.partition
                ),
            ));
            (Severity::High, format!(
                "{who} was deleted and recreated under the same ARN. Its EKS access entry is bound to the old entity's unique ID, so the new entity is denied ('ARN does not match User ID'). Recreate the access entry."
            ))
        }
        Cause::Unknown => {
            cmds.push(x.whoami());
            cmds.push(x.kubeconfig());
            cmds.push(x.auth_mode());
            (Severity::Medium, format!(
                "The authenticator denied {who} with an error this tool does not recognise: {}. Read the sample lines and the runbook; please report the line so the taxonomy can learn it.",
                x.f.errors.first().map_or("(no error field)", String::as_str)
            ))
        }
    };
    (severity, text, cmds)
}

/// The refined diagnosis sentence and the fix it calls for, put first.
fn refined(x: &Ctx<'_>, r: &Refinement) -> (String, Vec<Command>) {
    match r {
        Refinement::MappingHasPath { entry_arn, sso } => {
            let fixed = crate::arn::Arn::parse(entry_arn).map(|a| a.without_path().to_string()).unwrap_or_default();
            (
                format!(
                    "aws-auth maps {entry_arn}, a role ARN with {} path; the authenticator compares the canonical ARN, which never carries a path, so this entry never matches. The fix is the same entry as {fixed}.",
                    if *sso { "an IAM Identity Center (aws-reserved/sso.amazonaws.com/...)" } else { "a" }
                ),
                vec![x.c(
                    "As the cluster creator or an admin: change the entry's rolearn to the ARN without its path",
                    "kubectl -n kube-system edit configmap aws-auth",
                )],
            )
        }
        Refinement::MappingInvalid { entry_arn, detail } => (
            format!(
                "aws-auth has an entry for the principal ({}) that the authenticator drops or can never match: {detail}.",
                entry_arn.as_deref().unwrap_or("no ARN")
            ),
            vec![x.read_aws_auth()],
        ),
        Refinement::AwsAuthBroken { detail } => (
            format!("The aws-auth list that should map the principal does not parse ({detail}): the authenticator ignores all of it."),
            vec![x.read_aws_auth()],
        ),
        Refinement::EntityDeleted => (
            "IAM says the user or role no longer exists: recreate it (same name) or use another identity; no mapping helps a deleted entity.".into(),
            x.entity_check().into_iter().collect(),
        ),
        Refinement::CrossAccount { principal_account, cluster_account } => (
            format!("The principal belongs to account {principal_account}, not the cluster's {cluster_account}: the remediator does not look it up or grant it automatically; confirm the cross-account access is intended."),
            Vec::new(),
        ),
        Refinement::ApiModeMappingInAwsAuth => (
            "The cluster uses authentication mode API, which ignores aws-auth, yet the principal's mapping is there: create an access entry instead.".into(),
            vec![x.auth_mode()],
        ),
        Refinement::StaleAccessEntry => (
            "An access entry exists for this ARN, but EKS still denies it: the entity was most likely deleted and recreated, and the entry names the old unique ID. Recreate the access entry.".into(),
            Vec::new(),
        ),
        Refinement::NoMapping => ("Neither aws-auth nor an access entry maps the principal.".into(), Vec::new()),
        Refinement::AlreadyMapped => ("The principal is mapped now: the denial predates a fix.".into(), Vec::new()),
    }
}

fn config_error(x: &Ctx<'_>) -> (Severity, String, Vec<Command>) {
    let mut cmds = vec![x.read_aws_auth()];
    cmds.extend(x.creator());
    cmds.push(x.c(
        "As the creator or an admin: fix or remove the entries named in the error, keeping every other entry (node roles first)",
        "kubectl -n kube-system edit configmap aws-auth",
    ));
    (
        Severity::High,
        "The authenticator could not parse part of the aws-auth ConfigMap and dropped those entries (a YAML error drops a whole key: every mapping in it stops working, node roles included). Restore a valid aws-auth as the cluster creator, who keeps access in CONFIG_MAP mode.".into(),
        cmds,
    )
}

fn codes(f: &Finding) -> String {
    if f.sts_error_codes.is_empty() {
        String::new()
    } else {
        format!(" (STS {})", f.sts_error_codes.join(", "))
    }
}

/// Quotes for POSIX sh when the value holds anything beyond a safe set.
pub fn sh(v: &str) -> String {
    let safe = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=+,%".contains(&b));
    if safe {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// Renders a ticket as Markdown for humans.
pub fn to_markdown(t: &Ticket) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", t.title);
    let _ = writeln!(s, "| | |\n|---|---|");
    let row = |s: &mut String, k: &str, v: Option<&str>| {
        let _ = writeln!(
            s,
            "| {k} | {} |",
            v.map_or("unknown".into(), |v| format!("`{v}`"))
        );
    };
    row(&mut s, "Ticket", Some(&t.id));
    row(&mut s, "Severity", Some(severity_str(t.severity)));
    row(&mut s, "Cluster", t.cluster.as_deref());
    row(&mut s, "Region", t.region.as_deref());
    row(&mut s, "Account", t.account.as_deref());
    row(&mut s, "Principal", t.principal.as_deref());
    if t.aws_auth_arn.is_some() && t.aws_auth_arn != t.principal {
        row(&mut s, "aws-auth ARN", t.aws_auth_arn.as_deref());
    }
    row(
        &mut s,
        "Cause",
        t.cause.map(Cause::as_str).or(Some("config_error")),
    );
    let e = &t.evidence;
    let _ = writeln!(
        s,
        "| Occurrences | {} from {} client(s) |",
        e.count, e.distinct_clients
    );
    if let (Some(a), Some(b)) = (&e.first_seen, &e.last_seen) {
        let _ = writeln!(s, "| Seen | {a} .. {b} |");
    }
    let _ = writeln!(s, "\n## Diagnosis\n\n{}\n", t.diagnosis);
    if let Some(inc) = &t.incident {
        let _ = writeln!(
            s,
            "## Incident\n\n- Id: `{}` ({})\n- Principals granted before, now denied: {}\n- Node roles: {}\n- aws-auth parse errors: {}\n",
            inc.id,
            inc.kind.as_str(),
            if inc.principals.is_empty() { "none".into() } else { inc.principals.join(", ") },
            if inc.node_roles.is_empty() { "none".into() } else { inc.node_roles.join(", ") },
            inc.config_errors
        );
    }
    if let Some(c) = &t.creator {
        let _ = writeln!(s, "## Cluster creator\n");
        let _ = writeln!(
            s,
            "- Creator: {}\n- Still exists in IAM: {}\n- Found with: {}",
            c.arn
                .as_deref()
                .map_or("unknown".into(), |a| format!("`{a}`")),
            c.exists.map_or("unknown", |x| if x { "yes" } else { "no" }),
            match c.source {
                crate::creator::CreatorSource::Insights => "Logs Insights",
                crate::creator::CreatorSource::FilterLogEvents => "FilterLogEvents",
                crate::creator::CreatorSource::None => "not searched",
            }
        );
        if let Some(e) = &c.evidence {
            let _ = writeln!(s, "- Evidence: `{e}`");
        }
        let _ = writeln!(s, "\n{}\n", c.advice);
    }
    let _ = writeln!(s, "## What to do\n");
    for (i, c) in t.recommended_commands.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. {}\n\n   ```sh\n   {}\n   ```\n",
            i + 1,
            c.description,
            c.command
        );
    }
    let _ = writeln!(s, "## Evidence\n");
    if !e.sts_error_codes.is_empty() {
        let _ = writeln!(s, "- STS error codes: {}", e.sts_error_codes.join(", "));
    }
    if !e.clients.is_empty() {
        let _ = writeln!(s, "- Clients: {}", e.clients.join(", "));
    }
    if let Some(g) = &e.log_group {
        let _ = writeln!(
            s,
            "- Log group: `{g}` streams: {}",
            e.log_streams.join(", ")
        );
    }
    let _ = writeln!(s, "\n```text");
    for l in &e.samples {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s, "```");
    s
}

pub fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::{Aggregator, Origin};

    fn finding(line: &str) -> Finding {
        let origin = Origin {
            cluster: Some("prod".into()),
            region: Some("eu-west-1".into()),
            account: Some("111122223333".into()),
            log_group: Some("/aws/eks/prod/cluster".into()),
            log_stream: None,
        };
        let mut agg = Aggregator::new();
        agg.add(&origin, Some("1"), Some(0), line);
        agg.finish().0.remove(0)
    }

    #[test]
    fn not_mapped_sso_role_commands() {
        let f = finding(
            r#"level=warning msg="access denied" arn="arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef" error="ARN is not mapped""#,
        );
        let t = build(&f);
        assert_eq!(t.id, format!("EAR-{}", f.id));
        assert_eq!(t.severity, Severity::Medium);
        let all: Vec<&str> = t
            .recommended_commands
            .iter()
            .map(|c| c.command.as_str())
            .collect();
        assert!(all.contains(&"aws sts get-caller-identity"));
        assert!(all.iter().any(|c| c.starts_with("eksctl create iamidentitymapping --cluster prod --region eu-west-1 --arn arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef --username 'AWSReservedSSO_Admin_0123456789abcdef:{{SessionName}}' --no-duplicate-arns")));
        assert!(all.iter().any(|c| c.contains("aws eks create-access-entry --cluster-name prod --region eu-west-1 --principal-arn \"$(aws iam get-role --role-name AWSReservedSSO_Admin_0123456789abcdef")));
        assert!(all
            .iter()
            .any(|c| c.contains("--log-group-name /aws/eks/prod/cluster")
                && c.contains("username=kubernetes-admin")));
        assert!(t.diagnosis.contains("Identity Center"));
        let md = to_markdown(&t);
        assert!(md.contains("## What to do"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh("prod-1"), "prod-1");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("it's"), "'it'\\''s'");
        assert_eq!(sh(""), "''");
    }
}
