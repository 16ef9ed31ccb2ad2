//! Unit tests of the analysis and the edits on literal fixtures.

use std::collections::BTreeMap;

use super::*;

const A: &str = "arn:aws:iam::111122223333:role/a";

fn nm(arn: &str, user: &str, groups: &[&str]) -> NewMapping {
    NewMapping {
        arn: arn.into(),
        username: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn problems(text: &str) -> Vec<Vec<Problem>> {
    analyze_roles(text)
        .entries
        .into_iter()
        .map(|e| e.problems)
        .collect()
}

#[test]
fn keys_match_case_insensitively_and_unknown_keys_are_kept() {
    let a = analyze_roles(&format!(
        "- RoleArn: {A}\n  USERNAME: u\n  Groups: [g]\n  team: x\n"
    ));
    assert_eq!(a.error, None);
    let e = &a.entries[0];
    assert_eq!(
        (e.arn.as_deref(), e.username.as_str(), e.groups.as_slice()),
        (Some(A), "u", &["g".to_string()][..])
    );
    assert_eq!(e.other_keys, ["team"]);
    assert_eq!(e.problems, [Problem::UnknownKey { key: "team".into() }]);
    // Two spellings: Go decodes the sorted JSON keys in order, so "rolearn" (sorted after "roleARN") wins.
    let a = analyze_roles(&format!(
        "- rolearn: {A}\n  roleARN: arn:aws:iam::111122223333:role/b\n  username: u\n"
    ));
    assert_eq!(a.entries[0].arn.as_deref(), Some(A));
    assert!(
        matches!(&a.entries[0].problems[0], Problem::AmbiguousKey { used, .. } if used == "rolearn")
    );
}

#[test]
fn type_errors_drop_the_whole_key_with_the_item_line() {
    for (text, what) in [
        (
            "- rolearn: x\n  username: a\n- rolearn: y\n  username: b\n  groups: system:masters\n",
            "not a list",
        ),
        ("- rolearn: x\n  username: 12345\n", "a number"),
        ("- just a string\n", "not a mapping"),
        ("rolearn: x\n", "expected a list"),
    ] {
        let a = analyze_roles(text);
        let err = a.error.expect(text);
        assert_eq!(err.kind, KeyErrorKind::Type, "{text}");
        assert!(err.message.contains(what), "{}", err.message);
    }
    let a = analyze_roles("- rolearn: x\n  username: a\n- rolearn: y\n  groups: admin\n");
    assert_eq!(a.error.unwrap().line, Some(3));
}

#[test]
fn validation_drops_single_items_with_upstream_messages() {
    let a = analyze_roles(&format!(
        "-\n- username: nobody\n- rolearn: {A}\n  sso: {{permissionSetName: Admin, accountID: \"111122223333\"}}\n  username: x\n- sso:\n    permissionSetName: Admin\n    accountID: \"1234\"\n  username: y\n"
    ));
    assert_eq!(a.error, None);
    let drops: Vec<String> = a
        .entries
        .iter()
        .map(|e| {
            e.dropped
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        drops,
        [
            "one of rolearn or SSO must be supplied",
            "one of rolearn or SSO must be supplied",
            "only one of rolearn or SSO can be supplied",
            "AccountID '1234' is not a valid AWS Account ID",
        ]
    );
    let u = analyze_users("- username: x\n  groups: [a]\n");
    assert_eq!(u.entries[0].dropped, Some(DropReason::MissingUserArn));
    assert_eq!(
        u.entries[0].dropped.as_ref().unwrap().to_string(),
        "value for userarn must be supplied"
    );
}

#[test]
fn arn_problems() {
    type Check = fn(&Problem) -> bool;
    let cases: &[(&str, Check)] = &[
        ("${node_role_arn}", |p| matches!(p, Problem::Placeholder { field: Field::Arn, .. })),
        ("$${aws_iam_role.x.arn}", |p| matches!(p, Problem::Placeholder { .. })),
        ("$ROLE_ARN", |p| matches!(p, Problem::Placeholder { .. })),
        ("<ARN of instance role (not instance profile)>", |p| matches!(p, Problem::Placeholder { .. })),
        ("arn:aws:iam::ACCOUNT_ID:role/x", |p| matches!(p, Problem::Placeholder { .. })),
        ("arn:aws:iam::111122223333:role/*", |p| *p == Problem::Wildcard),
        ("arn:aws:iam::1111:role/x", |p| matches!(p, Problem::InvalidArn { .. })),
        ("arn:aws:iam::111122223333:policy/x", |p| matches!(p, Problem::InvalidArn { .. })),
        ("arn:aws:sts::111122223333:assumed-role/a/s", |p| matches!(p, Problem::AssumedRoleArn { fixed } if fixed == A)),
        ("arn:aws:iam::111122223333:role/service-role/a", |p| {
            matches!(p, Problem::RolePath { path, fixed } if path == "service-role/" && fixed == A)
        }),
        ("arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123", |p| {
            matches!(p, Problem::SsoRolePath { region: Some(r), fixed } if r == "eu-west-1" && fixed.ends_with("role/AWSReservedSSO_Admin_0123"))
        }),
    ];
    for (arn, check) in cases {
        let ps = &problems(&format!("- rolearn: \"{arn}\"\n  username: u\n"))[0];
        assert!(ps.iter().any(check), "{arn}: {ps:?}");
    }
    let ps = &problems(&format!("- rolearn: \" {A}\"\n  username: u\n"))[0];
    assert_eq!(ps, &[Problem::Whitespace]);
    let e = &analyze_roles(&format!("- rolearn: {A}/x\n  username: u\n")).entries[0];
    assert_eq!(
        e.canonical_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/x")
    );
    let u =
        &analyze_users("- userarn: arn:aws:iam::111122223333:user/ops/carol\n  username: carol\n")
            .entries[0];
    assert!(
        u.problems.is_empty(),
        "user paths are part of the caller's ARN"
    );
}

#[test]
fn username_and_group_problems() {
    let ps = problems(&format!(
        "- rolearn: {A}\n  username: ''\n- rolearn: {A}1\n  username: eks:admin\n- rolearn: {A}2\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups: [system:bootstrappers, system:nodes]\n- rolearn: {A}3\n  username: x-{{{{SessionID}}}}\n  groups: [system:masters, \"<group>\"]\n"
    ));
    assert_eq!(ps[0], [Problem::EmptyUsername]);
    assert_eq!(
        ps[1],
        [Problem::ReservedUsername {
            prefix: "eks:".into()
        }]
    );
    assert!(ps[2].is_empty(), "{:?}", ps[2]);
    assert_eq!(
        ps[3],
        [
            Problem::UnknownTemplate {
                field: Field::Username,
                name: "SessionID".into()
            },
            Problem::SystemMasters,
            Problem::Placeholder {
                field: Field::Group,
                value: "<group>".into()
            },
        ]
    );
}

#[test]
fn duplicates_last_one_wins() {
    let a = analyze_roles(&format!(
        "- rolearn: {A}\n  username: one\n\n- rolearn: {}\n  username: two\n",
        A.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam")
    ));
    assert_eq!(
        a.entries[0].problems,
        [Problem::ShadowedBy {
            index: 1,
            line: Some(4)
        }]
    );
    assert_eq!(
        a.entries[1].problems,
        [Problem::Overrides { indexes: vec![0] }]
    );
    assert_eq!(
        a.effective()
            .map(|e| e.username.as_str())
            .collect::<Vec<_>>(),
        ["two"]
    );
}

#[test]
fn accounts_keep_raw_text() {
    let a = analyze_accounts("- 012345678912\n- \"111122223333\"\n- 12 # short\n");
    let got: Vec<(&str, bool, Option<usize>)> = a
        .accounts
        .iter()
        .map(|x| (x.value.as_str(), x.valid, x.line))
        .collect();
    assert_eq!(
        got,
        [
            ("012345678912", true, Some(1)),
            ("111122223333", true, Some(2)),
            ("12", false, Some(3))
        ]
    );
    assert_eq!(
        analyze_accounts("[111122223333]").accounts[0].value,
        "111122223333"
    );
    assert!(analyze_accounts("- [a]\n").error.is_some());
}

#[test]
fn configmap_keys_are_exact() {
    let mut data = BTreeMap::new();
    data.insert(
        "maproles".to_string(),
        format!("- rolearn: {A}\n  username: a\n"),
    );
    data.insert("mapUsers".to_string(), String::new());
    let c = analyze(&data);
    assert_eq!(c.ignored_keys, ["maproles"]);
    assert!(c.roles.is_none());
    assert_eq!(c.users.as_ref().map(|u| u.entries.len()), Some(0));
    assert_eq!(c.find(A), MatchKind::None);
}

#[test]
fn add_refuses_duplicates_conflicts_and_invalid_requests() {
    let text = format!("- rolearn: {A}\n  username: a\n  groups:\n    - x\n    - y\n");
    let same = add_role(
        &text,
        &nm(
            &A.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam"),
            "a",
            &["y", "x"],
        ),
    );
    assert!(
        matches!(same, Err(EditError::AlreadyPresent { line: Some(1), .. })),
        "{same:?}"
    );
    let diff = add_role(&text, &nm(A, "b", &["x"])).unwrap_err();
    assert!(
        matches!(&diff, EditError::Conflict { difference, .. } if difference.contains("username 'a' instead of 'b'")),
        "{diff}"
    );
    let path = format!(
        "- rolearn: {}\n  username: a\n",
        A.replace("role/", "role/team/")
    );
    assert!(
        matches!(add_role(&path, &nm(A, "a", &[])), Err(EditError::Conflict { difference, .. }) if difference.contains("with its path"))
    );
    for bad in [
        nm("arn:aws:iam::111122223333:role/*", "a", &[]),
        nm("${role}", "a", &[]),
        nm(A, "", &[]),
        nm(A, "<user>", &[]),
        nm(A, "x-{{SessionID}}", &[]),
        nm(A, "a", &[""]),
        nm("arn:aws:iam::111122223333:user/u", "a", &[]),
    ] {
        assert!(
            matches!(add_role("", &bad), Err(EditError::InvalidMapping(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        add_user("", &nm(A, "a", &[])),
        Err(EditError::InvalidMapping(_))
    ));
    let e = add_role("- rolearn: x\n\tusername: y\n", &nm(A, "a", &[])).unwrap_err();
    assert!(
        matches!(e, EditError::Unparseable { line: Some(2), .. }),
        "{e}"
    );
    let e = add_role("- rolearn: x\n  groups: admin\n", &nm(A, "a", &[])).unwrap_err();
    assert!(
        matches!(e, EditError::Unparseable { line: Some(1), .. }),
        "{e}"
    );
}

#[test]
fn add_writes_canonical_arns_and_quotes_templates() {
    let e = add_role(
        "",
        &nm(
            "arn:aws:sts::111122223333:assumed-role/a/bob",
            "{{SessionName}}",
            &["system:masters"],
        ),
    )
    .unwrap();
    assert_eq!(e.text, format!("- rolearn: {A}\n  username: \"{{{{SessionName}}}}\"\n  groups:\n    - system:masters\n"));
    assert!(e.notes.contains(&Note::GrantsSystemMasters));
    assert!(matches!(&e.notes[0], Note::AssumedRoleConverted { to, .. } if to == A));
    let e = add_user(
        "# users\n",
        &nm("arn:aws:iam::111122223333:user/ops/carol", "carol", &[]),
    )
    .unwrap();
    assert_eq!(e.text, "# users\n- userarn: arn:aws:iam::111122223333:user/ops/carol\n  username: carol\n  groups: []\n");
    let e = add_role("[]", &nm(A, "yes", &["on"])).unwrap();
    assert_eq!(
        e.text,
        format!("[{{\"rolearn\": \"{A}\", \"username\": \"yes\", \"groups\": [\"on\"]}}]")
    );
}

#[test]
fn add_refuses_what_it_cannot_verify() {
    // Inserting after the last content line would cut the `|+` scalar's kept blank line.
    let text = format!("- rolearn: {A}\n  username: |+\n    a\n\n");
    let e = add_role(&text, &nm("arn:aws:iam::111122223333:role/b", "b", &[])).unwrap_err();
    assert!(matches!(e, EditError::Unsafe { .. }), "{e}");
    // A second document after the list.
    let e = add_role("- rolearn: x\n  username: y\n---\n- z\n", &nm(A, "a", &[])).unwrap_err();
    assert!(matches!(e, EditError::Unparseable { .. }), "{e}");
}

#[test]
fn replace_arn_changes_only_the_token() {
    let old = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123";
    let new = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123";
    for (text, want) in [
        (
            format!("- rolearn: {old} # sso\n  username: admin\n"),
            format!("- rolearn: {new} # sso\n  username: admin\n"),
        ),
        (
            format!("- \"roleARN\": '{old}'\r\n  username: admin"),
            format!("- \"roleARN\": '{new}'\r\n  username: admin"),
        ),
        (
            format!("[{{\"rolearn\":\"{old}\",\"username\":\"admin\"}}]"),
            format!("[{{\"rolearn\":\"{new}\",\"username\":\"admin\"}}]"),
        ),
    ] {
        let e = replace_arn(ListKind::Roles, &text, old, old).unwrap();
        assert_eq!(e.text, want);
        assert!(
            matches!(&e.notes[..], [Note::RolePathStripped { .. }]),
            "{:?}",
            e.notes
        );
    }
    let two = format!("- rolearn: {old}\n  username: a\n- rolearn: {new}\n  username: b\n");
    assert!(matches!(
        replace_arn(ListKind::Roles, &two, old, new),
        Err(EditError::Conflict { line: Some(3), .. })
    ));
    assert!(matches!(
        replace_arn(ListKind::Roles, &two, A, new),
        Err(EditError::NotFound { .. })
    ));
    let dup = format!("- rolearn: {old}\n  username: a\n- rolearn: {old}\n  username: b\n");
    assert!(matches!(
        replace_arn(ListKind::Roles, &dup, old, new),
        Err(EditError::Ambiguous { .. })
    ));
}

#[test]
fn remove_takes_the_item_lines_only() {
    let b = "arn:aws:iam::111122223333:role/b";
    let text = format!("# head\n- rolearn: {A}\n  username: a # inline\n  groups:\n    - system:nodes\n# about b\n- rolearn: {b}\n  username: b\n# tail\n");
    let e = remove(ListKind::Roles, &text, A).unwrap();
    assert_eq!(
        e.text,
        format!("# head\n# about b\n- rolearn: {b}\n  username: b\n# tail\n")
    );
    assert_eq!(e.notes, [Note::RemovedNodeMapping { line: Some(2) }]);
    let e = remove(ListKind::Roles, &text, b).unwrap();
    assert_eq!(e.text, format!("# head\n- rolearn: {A}\n  username: a # inline\n  groups:\n    - system:nodes\n# about b\n# tail\n"));
    let e = remove(
        ListKind::Roles,
        &format!("- rolearn: {A}\n  username: a\n- rolearn: {b}\n  username: b"),
        b,
    )
    .unwrap();
    assert_eq!(e.text, format!("- rolearn: {A}\n  username: a"));
    let json =
        format!("[{{\"rolearn\":\"{A}\"}}, {{\"rolearn\":\"{b}\"}}, {{\"rolearn\":\"{A}\"}}]");
    let e = remove(ListKind::Roles, &json, A).unwrap();
    assert_eq!(e.text, format!("[{{\"rolearn\":\"{b}\"}}]"));
    assert!(e.notes.contains(&Note::RemovedEntries { count: 2 }));
    assert!(matches!(
        remove(ListKind::Roles, &json, "arn:aws:iam::111122223333:role/c"),
        Err(EditError::NotFound { .. })
    ));
}
