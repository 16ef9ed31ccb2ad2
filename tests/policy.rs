//! The approval policy: loading (inline, file, environment), every error kind with its location,
//! pattern semantics and decisions.

use std::ffi::OsString;
use std::path::PathBuf;

use eks_auth_remediator::policy::{
    AccessPolicy, AccessScope, ArnPattern, ClusterPattern, Decision, Limits, Mode, Policy,
    PolicyError, PolicySource, Problem, ProblemKind, DEFAULT_LIMITS,
};

const EXAMPLE: &str = include_str!("../infra/policy.example.yaml");

/// A minimal valid document with `rule` (already indented as a list item under `rules:`).
fn with_rule(rule: &str) -> String {
    format!("clusters: [\"*\"]\nrules:\n{rule}")
}

fn problems(doc: &str) -> Vec<Problem> {
    match Policy::parse(doc, "test") {
        Ok(_) => panic!("expected an invalid policy:\n{doc}"),
        Err(e) => {
            let p = e.problems().to_vec();
            assert!(!p.is_empty(), "{e}");
            p
        }
    }
}

/// Exactly one problem, of `kind`, at `line`:`column`.
#[track_caller]
fn assert_problem(doc: &str, kind: ProblemKind, line: usize, column: usize) -> Problem {
    let ps = problems(doc);
    assert_eq!(ps.len(), 1, "{ps:#?}\n{doc}");
    let p = ps.into_iter().next().unwrap();
    assert_eq!(
        (p.kind, p.line, p.column),
        (kind, line, column),
        "{p:?}\n{doc}"
    );
    p
}

fn ok(doc: &str) -> Policy {
    Policy::parse(doc, "test").unwrap_or_else(|e| panic!("{e}\n{doc}"))
}

// ---------------------------------------------------------------------------------------------
// Loading

#[test]
fn example_file_loads_and_means_what_its_comments_say() {
    let p = ok(EXAMPLE);
    assert_eq!(p.mode(), Mode::DryRun);
    assert_eq!(
        p.remediation_role_arn(),
        Some("arn:aws:iam::111122223333:role/eks-auth-remediation")
    );
    assert_eq!(p.limits(), DEFAULT_LIMITS);
    let names: Vec<&str> = p.rules().iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "developers-view",
            "ci-deployers",
            "sre-admins",
            "node-roles"
        ]
    );
    for c in ["prod-eu", "prod-", "staging", "sandbox-01"] {
        assert!(p.cluster_in_scope(c), "{c}");
    }
    for c in ["staging-2", "Prod-eu", "sandbox-1", "dev"] {
        assert!(!p.cluster_in_scope(c), "{c}");
    }
    match p.decide(
        "arn:aws:iam::444455556666:role/runner",
        Some("arn:aws:iam::444455556666:role/gitlab-ci/runner"),
    ) {
        Decision::Allowed {
            rule_name, grant, ..
        } => {
            assert_eq!(rule_name, "ci-deployers");
            let e = grant.access_entry.as_ref().unwrap();
            assert_eq!(e.policy, AccessPolicy::Edit);
            assert_eq!(
                e.scope,
                AccessScope::Namespaces(vec!["apps".into(), "team-*".into()])
            );
        }
        other => panic!("{other:?}"),
    }
    let sre = &p.rules()[2];
    assert!(sre.allow_cluster_admin() && sre.grant().is_cluster_admin());
    assert!(!p.rules()[0].grant().is_cluster_admin());
}

#[test]
fn inline_and_file_loading_agree() {
    let path = std::env::temp_dir().join(format!("eks-auth-policy-{}.yaml", std::process::id()));
    std::fs::write(&path, EXAMPLE).unwrap();
    let env = |inline: Option<&str>, file: Option<&PathBuf>| {
        let inline = inline.map(OsString::from);
        let file = file.map(|p| p.clone().into_os_string());
        PolicySource::from_lookup(move |k| match k {
            "EKS_AUTH_POLICY" => inline.clone(),
            "EKS_AUTH_POLICY_FILE" => file.clone(),
            _ => None,
        })
    };
    let from_file = Policy::load(&env(None, Some(&path)).unwrap()).unwrap();
    let inline = Policy::load(&env(Some(EXAMPLE), None).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file, inline);
    assert_eq!(
        env(None, Some(&path)).unwrap(),
        PolicySource::File(path.clone())
    );

    // A file's problems name the file; inline problems name the variable.
    let bad = path.with_extension("bad.yaml");
    std::fs::write(&bad, "clusters: []\nrules: []\nmode: sometimes\n").unwrap();
    let err = Policy::from_file(&bad).unwrap_err();
    std::fs::remove_file(&bad).unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains(&bad.display().to_string()) && msg.contains("line 3"),
        "{msg}"
    );
    let err = Policy::load(&PolicySource::Inline("clusters: []\nrules: 1\n".into())).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid policy in EKS_AUTH_POLICY: line 2"),
        "{err}"
    );

    // Missing file.
    let err = Policy::from_file(&path).unwrap_err();
    assert!(matches!(err, PolicyError::Read { .. }), "{err}");
}

#[test]
fn environment_must_name_exactly_one_source() {
    use std::os::unix::ffi::OsStringExt;
    let src = |inline: Option<OsString>, file: Option<OsString>| {
        PolicySource::from_lookup(move |k| match k {
            "EKS_AUTH_POLICY" => inline.clone(),
            "EKS_AUTH_POLICY_FILE" => file.clone(),
            _ => None,
        })
    };
    assert!(matches!(src(None, None), Err(PolicyError::NotConfigured)));
    assert!(matches!(
        src(Some("a".into()), Some("b".into())),
        Err(PolicyError::Ambiguous)
    ));
    assert!(matches!(
        src(Some("  \n".into()), None),
        Err(PolicyError::EmptyVar {
            var: "EKS_AUTH_POLICY"
        })
    ));
    assert!(matches!(
        src(None, Some("".into())),
        Err(PolicyError::EmptyVar {
            var: "EKS_AUTH_POLICY_FILE"
        })
    ));
    assert!(matches!(
        src(Some(OsString::from_vec(vec![0xff, 0xfe])), None),
        Err(PolicyError::NotUnicode { .. })
    ));
}

#[test]
fn json_documents_load_too() {
    let p = ok(r#"{
  "mode": "enforce",
  "clusters": ["prod-*"],
  "rules": [{"name": "r", "principals": ["arn:aws:iam::111122223333:role/dev-*"],
             "access_entry": {"policy": "AmazonEKSViewPolicy", "scope": "cluster"}}],
  "limits": {"max_changes_per_invocation": 1}
}"#);
    assert_eq!(p.mode(), Mode::Enforce);
    assert_eq!(
        p.limits(),
        Limits {
            max_changes_per_invocation: 1,
            max_changes_per_hour: 20
        }
    );
    // JSON errors are located too.
    let p = assert_problem(
        "{\"clusters\": [],\n \"rules\": [],\n \"mdoe\": \"enforce\"}",
        ProblemKind::Schema,
        3,
        2,
    );
    assert!(p.message.contains("unknown field `mdoe`"), "{p:?}");
}

#[test]
fn defaults_are_documented_ones_only() {
    let p = ok("clusters: []\nrules: []\n");
    assert_eq!(p.mode(), Mode::DryRun);
    assert_eq!(p.remediation_role_arn(), None);
    assert!(p.never().is_empty() && p.rules().is_empty());
    assert_eq!(
        p.limits(),
        Limits {
            max_changes_per_invocation: 5,
            max_changes_per_hour: 20
        }
    );
    assert!(!p.cluster_in_scope("anything"));
}

// ---------------------------------------------------------------------------------------------
// Every error kind, with its line and column

#[test]
fn syntax_errors_are_located() {
    // Unclosed flow sequence: reported where the parser gave up.
    let p = assert_problem("clusters: [a\nrules: []\n", ProblemKind::Syntax, 2, 6);
    assert!(p.message.contains("flow sequence"), "{p:?}");
    // A tab used for indentation.
    assert_problem(
        "clusters: []\nrules:\n  - name: a\n\tprincipals: []\n",
        ProblemKind::Syntax,
        4,
        1,
    );
    // Duplicate keys point at the second occurrence.
    let p = assert_problem(
        "clusters: []\nrules: []\nlimits:\n  max_changes_per_hour: 3\n  max_changes_per_hour: 4\n",
        ProblemKind::Syntax,
        5,
        3,
    );
    assert!(
        p.message.contains("duplicate key `max_changes_per_hour`"),
        "{p:?}"
    );
    // A second document, after a first that ended with `...` or not.
    assert_problem(
        "clusters: []\nrules: []\n---\nmode: enforce\n",
        ProblemKind::Syntax,
        3,
        1,
    );
    assert_problem("# nothing but comments\n\n", ProblemKind::Empty, 1, 1);
    assert_problem("", ProblemKind::Empty, 1, 1);
}

#[test]
fn schema_errors_are_located() {
    // Unknown key (deny_unknown_fields), at the key.
    let p = assert_problem(
        &with_rule("  - name: a\n    principals: []\n    acess_entry: {}\n"),
        ProblemKind::Schema,
        5,
        5,
    );
    assert_eq!(p.path, "rules[0]");
    assert!(p.message.contains("unknown field `acess_entry`"), "{p:?}");
    // Missing required key, at the mapping that lacks it.
    let p = assert_problem("mode: enforce\nrules: []\n", ProblemKind::Schema, 1, 1);
    assert!(p.message.contains("missing field `clusters`"), "{p:?}");
    let p = assert_problem(
        &with_rule("  - principals: []\n"),
        ProblemKind::Schema,
        3,
        5,
    );
    assert!(p.message.contains("missing field `name`"), "{p:?}");
    // Wrong type.
    let p = assert_problem("clusters: prod\nrules: []\n", ProblemKind::Schema, 1, 11);
    assert!(p.message.contains("expected a sequence"), "{p:?}");
    assert_problem(
        &with_rule("  - name: a\n    principals: []\n    allow_cluster_admin: \"yes\"\n"),
        ProblemKind::Schema,
        5,
        26,
    );
    assert_problem(
        "clusters: []\nrules: []\nlimits: {max_changes_per_hour: -1}\n",
        ProblemKind::Schema,
        3,
        32,
    );
    // Not a mapping at all.
    let p = assert_problem("- clusters: []\n", ProblemKind::Schema, 1, 1);
    assert_eq!(
        p.message,
        "invalid type: sequence, expected a policy: a mapping with clusters and rules"
    );
    // Unknown enum values.
    let p = assert_problem(
        "mode: Enforce\nclusters: []\nrules: []\n",
        ProblemKind::Schema,
        1,
        7,
    );
    assert_eq!(p.path, "mode");
    assert_problem(
        &with_rule("  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    access_entry: {policy: AmazonEKSViewPolicy, scope: global}\n"),
        ProblemKind::Schema,
        5,
        56,
    );
    // An optional key written without a value is not "absent".
    assert_problem(
        "clusters: []\nrules: []\nmode:\n",
        ProblemKind::Schema,
        3,
        6,
    );
    assert_problem(
        "clusters: []\nrules: []\nlimits:\n",
        ProblemKind::Limit,
        3,
        8,
    );
    assert_problem(
        "clusters: []\nrules: []\nlimits: {}\n",
        ProblemKind::Limit,
        3,
        9,
    );
    assert_problem(
        "clusters: []\nrules: []\nnever: ~\n",
        ProblemKind::Schema,
        3,
        8,
    );
}

#[test]
fn pattern_errors_are_located() {
    let cases: &[(&str, &str)] = &[
        ("arn:aws:iam::111122223333:role/a b", "' ' is not allowed"),
        ("arn:aws-mars:iam::111122223333:role/x", "unknown partition"),
        ("arn:*:iam::111122223333:role/x", "unknown partition"),
        ("arn:aws:iam:::role/x", "must be 12 digits, or '*'"),
        ("arn:aws:iam::1111*:role/x", "must be 12 digits, or '*'"),
        ("arn:aws:iam::${ACCOUNT_ID}:role/x", "must be 12 digits"),
        ("arn:aws:iam:us-east-1:111122223333:role/x", "has a region"),
        ("arn:aws:s3:::bucket", "not iam or sts"),
        ("arn:aws:sts::111122223333:assumed-role/x/s", "canonical"),
        ("arn:aws:iam::111122223333:*", "literal type"),
        ("arn:aws:iam::111122223333:group/x", "no principal type"),
        ("arn:aws:iam::111122223333:role/", "needs a name"),
        (
            "arn:aws:iam::111122223333:role/a//b",
            "no empty path segments",
        ),
        ("arn:aws:iam::111122223333:role/***", "not a wildcard"),
        ("arn:aws:iam::111122223333:root/x", "exactly 'root'"),
        ("role/dev-*", "not an ARN pattern"),
    ];
    for (pattern, want) in cases {
        let doc = format!("clusters: []\nrules: []\nnever:\n  - \"x\"\n  - {pattern:?}\n")
            .replacen("\"x\"", "\"arn:aws:iam::111122223333:root\"", 1);
        let p = assert_problem(&doc, ProblemKind::Pattern, 5, 5);
        assert_eq!(p.path, "never[1]");
        assert!(p.message.contains(want), "{pattern}: {}", p.message);
    }
    let p = assert_problem(
        "clusters:\n  - prod-*\n  - prod.*\nrules: []\n",
        ProblemKind::Pattern,
        3,
        5,
    );
    assert!(p.message.contains("'.' cannot appear"), "{p:?}");
    assert_problem(
        "clusters: [\"prod-**\"]\nrules: []\n",
        ProblemKind::Pattern,
        1,
        12,
    );
    assert_problem("clusters: [\"\"]\nrules: []\n", ProblemKind::Pattern, 1, 12);
    // In a rule.
    let p = assert_problem(
        &with_rule("  - name: a\n    principals:\n      - arn:aws:iam::111122223333:role/ok\n      - arn:aws:iam::42:role/x\n    aws_auth: {username: u, groups: []}\n"),
        ProblemKind::Pattern,
        6,
        9,
    );
    assert_eq!(p.path, "rules[0].principals[1]");
}

#[test]
fn remediation_role_must_be_a_role() {
    for bad in [
        "arn:aws:iam::111122223333:user/bob",
        "arn:aws:iam::111122223333:role/*",
        "not-an-arn",
    ] {
        let doc = format!("clusters: []\n\nremediation_role_arn: {bad:?}\nrules: []\n");
        let p = assert_problem(&doc, ProblemKind::Arn, 3, 23);
        assert_eq!(p.path, "remediation_role_arn");
    }
}

#[test]
fn access_policy_errors_are_located() {
    let rule = |policy: &str, principal: &str| {
        with_rule(&format!(
            "  - name: a\n    principals: [{principal:?}]\n    access_entry:\n      scope: cluster\n      policy: {policy}\n"
        ))
    };
    let view = "arn:aws:iam::111122223333:role/a";
    let p = assert_problem(
        &rule("AmazonEKSReadOnlyPolicy", view),
        ProblemKind::AccessPolicy,
        7,
        15,
    );
    assert_eq!(p.path, "rules[0].access_entry.policy");
    assert!(
        p.message
            .contains("unknown access policy 'AmazonEKSReadOnlyPolicy'"),
        "{p:?}"
    );
    let p = assert_problem(
        &rule("amazoneksviewpolicy", view),
        ProblemKind::AccessPolicy,
        7,
        15,
    );
    assert!(
        p.message.contains("did you mean AmazonEKSViewPolicy?"),
        "{p:?}"
    );
    // The AWS-internal policies are not grantable.
    assert_problem(
        &rule("AmazonEKSAutoNodePolicy", view),
        ProblemKind::AccessPolicy,
        7,
        15,
    );
    // Malformed and unknown-name ARNs.
    assert_problem(
        &rule("arn:aws:iam::aws:policy/AmazonEKSViewPolicy", view),
        ProblemKind::AccessPolicy,
        7,
        15,
    );
    assert_problem(
        &rule(
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSNopePolicy",
            view,
        ),
        ProblemKind::AccessPolicy,
        7,
        15,
    );
    // A full ARN pins a partition no aws-cn principal can have.
    let p = assert_problem(
        &rule(
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
            "arn:aws-cn:iam::111122223333:role/a",
        ),
        ProblemKind::AccessPolicy,
        7,
        15,
    );
    assert!(p.message.contains("partition aws"), "{p:?}");
    // Names resolve per partition; a full ARN is accepted as is.
    let p = ok(&rule(
        "AmazonEKSEditPolicy",
        "arn:aws-cn:iam::111122223333:role/a",
    ));
    let e = p.rules()[0].grant().access_entry.clone().unwrap();
    assert_eq!(
        e.policy.arn("aws-cn"),
        "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    );
    let p = ok(&rule(
        "arn:aws-us-gov:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy",
        "arn:aws-us-gov:iam::111122223333:role/a",
    ));
    assert_eq!(
        p.rules()[0].grant().access_entry.as_ref().unwrap().policy,
        AccessPolicy::AdminView
    );
}

#[test]
fn scope_errors_are_located() {
    let rule = |entry: &str| {
        with_rule(&format!(
            "  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    access_entry:\n      policy: AmazonEKSEditPolicy\n{entry}"
        ))
    };
    // Neither scope nor namespaces: at the access_entry mapping.
    assert_problem(&rule(""), ProblemKind::Scope, 6, 7);
    assert_problem(
        &rule("      scope: cluster\n      namespaces: [a]\n"),
        ProblemKind::Scope,
        8,
        19,
    );
    assert_problem(&rule("      scope: namespace\n"), ProblemKind::Scope, 7, 14);
    let p = assert_problem(
        &rule("      namespaces:\n        - apps\n        - Bad_Name\n"),
        ProblemKind::Scope,
        9,
        11,
    );
    assert_eq!(p.path, "rules[0].access_entry.namespaces[1]");
    assert_problem(
        &rule("      namespaces: [apps, apps]\n"),
        ProblemKind::Scope,
        7,
        26,
    );
    assert_problem(
        &rule("      namespaces: []\n"),
        ProblemKind::EmptyList,
        7,
        19,
    );
    let p = ok(&rule(
        "      scope: namespace\n      namespaces: [apps, dev-*]\n",
    ));
    assert_eq!(
        p.rules()[0].grant().access_entry.as_ref().unwrap().scope,
        AccessScope::Namespaces(vec!["apps".into(), "dev-*".into()])
    );
}

#[test]
fn cluster_admin_is_gated_at_load_time() {
    let admin_policy = with_rule(
        "  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    access_entry: {policy: AmazonEKSClusterAdminPolicy, scope: cluster}\n",
    );
    let p = assert_problem(&admin_policy, ProblemKind::ClusterAdmin, 5, 28);
    assert_eq!(p.path, "rules[0].access_entry.policy");
    // As a full ARN too.
    assert_problem(
        &admin_policy.replace(
            "AmazonEKSClusterAdminPolicy",
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        ),
        ProblemKind::ClusterAdmin,
        5,
        28,
    );
    let masters = with_rule(
        "  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    aws_auth:\n      username: admin\n      groups:\n        - ops\n        - system:masters\n",
    );
    let p = assert_problem(&masters, ProblemKind::ClusterAdmin, 9, 11);
    assert_eq!(p.path, "rules[0].aws_auth.groups[1]");
    // With the flag both load.
    let p = ok(&format!("{admin_policy}    allow_cluster_admin: true\n"));
    assert!(p.rules()[0].grant().is_cluster_admin());
    let p = ok(&format!("{masters}    allow_cluster_admin: true\n"));
    assert!(p.rules()[0].grant().is_cluster_admin());
    // The flag on a rule granting no admin is an error at the flag.
    let view = with_rule(
        "  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    access_entry: {policy: AmazonEKSAdminPolicy, scope: cluster}\n    allow_cluster_admin: true\n",
    );
    assert_problem(&view, ProblemKind::ClusterAdmin, 6, 26);
}

#[test]
fn names_templates_and_reserved_identities_are_checked() {
    let auth = |username: &str, groups: &str| {
        with_rule(&format!(
            "  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    aws_auth:\n      username: {username:?}\n      groups: [{groups}]\n"
        ))
    };
    let p = assert_problem(&auth("{{SessionNam}}", "dev"), ProblemKind::Template, 6, 17);
    assert!(
        p.message.contains("unknown placeholder '{{SessionNam}}'"),
        "{p:?}"
    );
    assert_problem(
        &auth("x", "\"team-{{Account}}\""),
        ProblemKind::Template,
        7,
        16,
    );
    assert_problem(&auth("system:admin", "dev"), ProblemKind::Reserved, 6, 17);
    assert_problem(
        &auth("u", "dev, system:authenticated"),
        ProblemKind::Reserved,
        7,
        21,
    );
    assert_problem(&auth("", "dev"), ProblemKind::Name, 6, 17);
    assert_problem(&auth("u", "dev, dev"), ProblemKind::Name, 7, 21);
    // Node-role mappings are grantable.
    ok(&auth(
        "system:node:{{EC2PrivateDNSName}}",
        "system:bootstrappers, system:nodes",
    ));
    // Rule names: malformed, duplicate.
    let rule = |name: &str| {
        format!("  - name: {name:?}\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n    aws_auth: {{username: u, groups: []}}\n")
    };
    assert_problem(&with_rule(&rule("has space")), ProblemKind::Name, 3, 11);
    assert_problem(&with_rule(&rule("")), ProblemKind::Name, 3, 11);
    let p = assert_problem(
        &with_rule(&format!("{}{}", rule("same"), rule("same"))),
        ProblemKind::Name,
        6,
        11,
    );
    assert_eq!(p.path, "rules[1].name");
}

#[test]
fn empty_lists_missing_grants_and_limits_are_located() {
    let p = assert_problem(
        &with_rule("  - name: a\n    principals: []\n    aws_auth: {username: u, groups: []}\n"),
        ProblemKind::EmptyList,
        4,
        17,
    );
    assert_eq!(p.path, "rules[0].principals");
    let p = assert_problem(
        &with_rule("  - name: a\n    principals: [\"arn:aws:iam::111122223333:role/a\"]\n  - name: b\n    principals: [\"arn:aws:iam::111122223333:role/b\"]\n    aws_auth: {username: u, groups: []}\n"),
        ProblemKind::NoGrant,
        3,
        5,
    );
    assert_eq!(p.path, "rules[0]");
    assert_problem(
        "clusters: []\nrules: []\nlimits:\n  max_changes_per_invocation: 0\n",
        ProblemKind::Limit,
        4,
        31,
    );
    let p = assert_problem(
        "clusters: []\nrules: []\nlimits:\n  max_changes_per_hour: 10\n  max_changes_per_invocation: 11\n",
        ProblemKind::Limit,
        5,
        31,
    );
    assert!(
        p.message
            .contains("11 changes per invocation exceed the 10"),
        "{p:?}"
    );
    // A default can conflict too; the problem then points at `limits`.
    let p = assert_problem(
        "clusters: []\nrules: []\nlimits:\n  max_changes_per_hour: 3\n",
        ProblemKind::Limit,
        4,
        3,
    );
    assert!(p.message.starts_with("the default of 5 changes"), "{p:?}");
}

#[test]
fn all_problems_are_reported_in_line_order_with_their_lines() {
    let doc = "\
clusters: [\"prod.*\"]
never: [\"arn:aws:iam::*:role/x\", \"arn:aws:iam::nope:role/y\"]
rules:
  - name: a
    principals: [\"arn:aws:iam::111122223333:role/a\"]
    access_entry: {policy: AmazonEKSClusterAdminPolicy, scope: cluster}
    aws_auth: {username: \"{{Nope}}\", groups: [system:masters]}
limits: {max_changes_per_invocation: 0}
";
    let err = Policy::parse(doc, "policy.yaml").unwrap_err();
    let got: Vec<(usize, ProblemKind)> = err.problems().iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        got,
        [
            (1, ProblemKind::Pattern),
            (2, ProblemKind::Pattern),
            (6, ProblemKind::ClusterAdmin),
            (7, ProblemKind::Template),
            (7, ProblemKind::ClusterAdmin),
            (8, ProblemKind::Limit),
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "invalid policy in policy.yaml: 6 problems\n  line 1, column 12: clusters[0]: "
        ),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Patterns and decisions

#[test]
fn arn_patterns_are_anchored_and_confined_to_partition_and_account() {
    use eks_auth_remediator::arn::Arn;
    let m = |pat: &str, arn: &str| {
        ArnPattern::parse(pat)
            .unwrap()
            .matches(&Arn::parse(arn).unwrap())
    };
    let x = "arn:aws:iam::111122223333:role/x";
    assert!(m(x, x));
    assert!(
        m(x, "arn:aws:iam::111122223333:role/X"),
        "IAM names are case-insensitive"
    );
    assert!(
        !m(x, "arn:aws-cn:iam::111122223333:role/x"),
        "other partition"
    );
    assert!(
        !m(x, "arn:aws-us-gov:iam::111122223333:role/x"),
        "other partition"
    );
    assert!(!m(x, "arn:aws:iam::444455556666:role/x"), "other account");
    assert!(
        !m(x, "arn:aws:iam::111122223333:role/xy"),
        "anchored at the end"
    );
    assert!(
        !m(x, "arn:aws:iam::111122223333:role/a/x"),
        "a path is not the same role"
    );
    assert!(!m(x, "arn:aws:iam::111122223333:user/x"), "type is literal");
    let any = "arn:aws:iam::*:role/x";
    assert!(m(any, x) && m(any, "arn:aws:iam::444455556666:role/x"));
    assert!(
        !m(any, "arn:aws-cn:iam::444455556666:role/x"),
        "* is one partition's accounts"
    );
    let star = "arn:aws:iam::111122223333:role/dev-*";
    assert!(m(star, "arn:aws:iam::111122223333:role/dev-alice"));
    assert!(
        !m(star, "arn:aws:iam::111122223333:role/dev-team/alice"),
        "* stops at /"
    );
    assert!(
        !m(star, "arn:aws:iam::111122223333:role/xdev-alice"),
        "anchored at the start"
    );
    let deep = "arn:aws:iam::111122223333:role/**/alice";
    assert!(m(deep, "arn:aws:iam::111122223333:role/dev-team/alice"));
    assert!(m(deep, "arn:aws:iam::111122223333:role/a/b/c/alice"));
    assert!(
        !m(deep, "arn:aws:iam::111122223333:role/alice"),
        "** is inside slashes here"
    );
    let one = "arn:aws:iam::111122223333:user/ops/b?b";
    assert!(m(one, "arn:aws:iam::111122223333:user/ops/bob"));
    assert!(!m(one, "arn:aws:iam::111122223333:user/ops/bb"));
    assert!(m(
        "arn:aws:iam::111122223333:root",
        "arn:aws:iam::111122223333:root"
    ));
    assert!(m(
        "arn:aws:sts::111122223333:federated-user/*",
        "arn:aws:sts::111122223333:federated-user/dan"
    ));

    let c = |pat: &str, name: &str| ClusterPattern::parse(pat).unwrap().matches(name);
    assert!(c("prod-*", "prod-eu") && c("prod-*", "prod-") && !c("prod-*", "preprod-eu"));
    assert!(!c("prod", "prod-eu") && !c("prod", "PROD"));
    assert!(c("eks-??", "eks-01") && !c("eks-??", "eks-1"));
}

const DECIDE: &str = r#"
clusters: ["*"]
never:
  - "arn:aws:iam::*:role/break-glass-*"
  - "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*"
rules:
  - name: sso-dev
    principals: ["arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Developer_*"]
    access_entry: {policy: AmazonEKSViewPolicy, scope: cluster}
  - name: all-roles
    principals: ["arn:aws:iam::111122223333:role/**"]
    access_entry: {policy: AmazonEKSViewPolicy, namespaces: [default]}
  - name: devs
    principals: ["arn:aws:iam::111122223333:role/dev-*"]
    access_entry: {policy: AmazonEKSEditPolicy, scope: cluster}
  - name: admins
    principals: ["arn:aws:iam::111122223333:user/admins/*"]
    aws_auth: {username: "{{SessionName}}", groups: [system:masters]}
    allow_cluster_admin: true
"#;

fn rule_of(d: Decision<'_>) -> String {
    match d {
        Decision::Allowed { rule_name, .. } => rule_name.to_string(),
        Decision::Never { pattern } => format!("never {pattern}"),
        Decision::NoRule => "no rule".into(),
        Decision::PathRequired { pattern } => format!("path required {pattern}"),
        Decision::InvalidPrincipal { reason } => format!("invalid {reason}"),
    }
}

#[test]
fn never_wins_over_rules_on_canonical_and_path_arns() {
    let p = ok(DECIDE);
    let canonical = "arn:aws:iam::111122223333:role/break-glass-1";
    // all-roles would allow it; never wins.
    assert_eq!(
        p.decide(canonical, Some(canonical)),
        Decision::Never {
            pattern: "arn:aws:iam::*:role/break-glass-*"
        }
    );
    // Matched through the path-qualified ARN only.
    let admin = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0a1b2c";
    let admin_path = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0a1b2c";
    assert!(rule_of(p.decide(admin, Some(admin_path)))
        .starts_with("never arn:aws:iam::111122223333:role/aws-reserved"));
    // Path unknown: a never pattern could match once it is known, so no verdict yet.
    assert!(rule_of(p.decide(admin, None)).starts_with("path required arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*"));
    // The session form is canonicalised first.
    assert_eq!(
        rule_of(p.decide(
            "arn:aws:sts::111122223333:assumed-role/break-glass-2/alice",
            None
        )),
        "never arn:aws:iam::*:role/break-glass-*"
    );
}

#[test]
fn first_matching_rule_wins_and_paths_are_used() {
    let p = ok(DECIDE);
    let dev = "arn:aws:iam::111122223333:role/AWSReservedSSO_Developer_99ff";
    let dev_path = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_Developer_99ff";
    assert_eq!(rule_of(p.decide(dev, Some(dev_path))), "sso-dev");
    // Without the path, sso-dev might apply, and it comes before all-roles: ask for the path.
    assert!(rule_of(p.decide(dev, None)).starts_with("path required"));
    // A role without a path: all-roles (rule 2) wins over devs (rule 3), whose grant is larger.
    let alice = "arn:aws:iam::111122223333:role/dev-alice";
    match p.decide(alice, Some(alice)) {
        Decision::Allowed {
            rule_index,
            rule_name,
            grant,
        } => {
            assert_eq!((rule_index, rule_name), (1, "all-roles"));
            assert_eq!(
                grant.access_entry.as_ref().unwrap().policy,
                AccessPolicy::View
            );
        }
        other => panic!("{other:?}"),
    }
    // all-roles' `**` could match any path, but it would match the canonical ARN anyway: no path needed
    // for roles whose names no earlier path pattern can match.
    assert_eq!(rule_of(p.decide(alice, None)), "all-roles");
    // Users carry their path in the canonical ARN.
    assert_eq!(
        rule_of(p.decide("arn:aws:iam::111122223333:user/admins/carol", None)),
        "admins"
    );
    // Other account, other partition: nothing.
    assert_eq!(
        rule_of(p.decide("arn:aws:iam::444455556666:role/dev-alice", None)),
        "no rule"
    );
    assert_eq!(
        rule_of(p.decide("arn:aws-cn:iam::111122223333:role/dev-alice", None)),
        "no rule"
    );
}

#[test]
fn inconsistent_or_unparseable_principals_are_not_decided() {
    let p = ok(DECIDE);
    let alice = "arn:aws:iam::111122223333:role/dev-alice";
    assert!(
        rule_of(p.decide(alice, Some("arn:aws:iam::111122223333:role/team/dev-bob")))
            .starts_with("invalid")
    );
    assert!(
        rule_of(p.decide(alice, Some("arn:aws:iam::444455556666:role/team/dev-alice")))
            .starts_with("invalid")
    );
    assert!(rule_of(p.decide("dev-alice", None)).starts_with("invalid"));
    // The path ARN may differ from the canonical one in case only.
    assert_eq!(
        rule_of(p.decide(alice, Some("arn:aws:iam::111122223333:role/team/Dev-Alice"))),
        "all-roles"
    );
}

// ---------------------------------------------------------------------------------------------
// tickets

#[test]
fn tickets_section_defaults_and_values() {
    use eks_auth_remediator::policy::{WebhookSecret, DEFAULT_SUPPRESSION_WINDOW};
    use std::time::Duration;
    let p = ok("clusters: []\nrules: []\n");
    assert_eq!(p.tickets().suppression_window, DEFAULT_SUPPRESSION_WINDOW);
    assert!(p.tickets().sns.is_none() && p.tickets().webhook.is_none());

    let p = ok(EXAMPLE);
    let t = p.tickets();
    assert_eq!(t.suppression_window, Duration::from_secs(86400));
    assert_eq!(
        t.sns.as_ref().unwrap().topic_arn,
        "arn:aws:sns:eu-west-1:111122223333:eks-auth-tickets"
    );
    assert_eq!(t.eventbridge.as_ref().unwrap().event_bus, "default");
    let w = t.webhook.as_ref().unwrap();
    assert_eq!(w.url, "https://hooks.example.com/eks-auth");
    assert_eq!(
        w.secret,
        Some(WebhookSecret::Env("EKS_AUTH_WEBHOOK_SECRET".into()))
    );
    assert_eq!((w.timeout, w.retries), (Duration::from_secs(5), 3));

    let p = ok("clusters: []\nrules: []\ntickets:\n  suppression_window: 90m\n  sinks:\n    eventbridge: {event_bus: \"arn:aws:events:eu-west-1:111122223333:event-bus/ops\"}\n    webhook: {url: \"http://127.0.0.1:8080/x\", secret_arn: \"arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf\"}\n");
    assert_eq!(p.tickets().suppression_window, Duration::from_secs(5400));
    assert!(matches!(
        p.tickets().webhook.as_ref().unwrap().secret,
        Some(WebhookSecret::SecretsManager(_))
    ));
}

#[test]
fn tickets_errors_are_located() {
    let doc = |t: &str| format!("clusters: []\nrules: []\ntickets:\n{t}");
    // Unknown keys, at every level.
    let p = assert_problem(
        &doc(
            "  sinks:\n    sns: {topic_arn: \"arn:aws:sns:eu-west-1:111122223333:t\", topic: x}\n",
        ),
        ProblemKind::Schema,
        5,
        62,
    );
    assert!(p.message.contains("unknown field `topic`"), "{p:?}");
    assert_problem(&doc("  sink: {}\n"), ProblemKind::Schema, 4, 3);
    // Meaning.
    let p = assert_problem(
        &doc("  sinks:\n    webhook: {url: \"http://hooks.example.com/x\"}\n"),
        ProblemKind::Tickets,
        5,
        20,
    );
    assert!(p.message.contains("loopback"), "{p:?}");
    assert_eq!(p.path, "tickets.sinks.webhook.url");
    assert_problem(
        &doc("  suppression_window: 24\n"),
        ProblemKind::Tickets,
        4,
        23,
    );
    assert_problem(
        &doc("  suppression_window: 10s\n"),
        ProblemKind::Tickets,
        4,
        23,
    );
    assert_problem(
        &doc("  sinks:\n    sns: {topic_arn: \"arn:aws:sqs:eu-west-1:111122223333:t\"}\n"),
        ProblemKind::Tickets,
        5,
        22,
    );
    assert_problem(
        &doc("  sinks:\n    eventbridge: {event_bus: \"a/b\"}\n"),
        ProblemKind::Tickets,
        5,
        30,
    );
    let ps = problems(&doc(
        "  sinks:\n    webhook:\n      url: https://h.example/x\n      secret_env: A\n      secret_arn: \"arn:aws:secretsmanager:eu-west-1:111122223333:secret:s\"\n      timeout: 5m\n      retries: 11\n",
    ));
    let at: Vec<(usize, ProblemKind)> = ps.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        at,
        [
            (8, ProblemKind::Tickets),
            (9, ProblemKind::Tickets),
            (10, ProblemKind::Tickets)
        ],
        "{ps:#?}"
    );
    assert_problem(&doc("  sinks: {}\n"), ProblemKind::Tickets, 4, 10);
    assert_problem(
        "clusters: []\nrules: []\ntickets:\n",
        ProblemKind::Tickets,
        3,
        9,
    );
}
