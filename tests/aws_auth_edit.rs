//! aws-auth analysis and minimal-diff edits on fixtures reproducing the published shapes of DOMAIN.md section 4,
//! plus properties over generated documents.
//!
//! `data/aws-auth/lists/*.yaml` are list texts byte for byte (the *value* of `mapRoles`/`mapUsers`);
//! `data/aws-auth/configmaps/*.yaml` are whole manifests whose `data` values are extracted with serde_norway.

use std::collections::BTreeMap;

use eks_auth_remediator::aws_auth::{
    self, add, analyze_list, find_mapping, remove, replace_arn, DropReason, EditError,
    KeyErrorKind, ListKind, MatchKind, NewMapping, Note, Problem,
};
use proptest::prelude::*;

macro_rules! list {
    ($name:literal) => {
        include_str!(concat!("data/aws-auth/lists/", $name, ".yaml"))
    };
}

macro_rules! manifest {
    ($name:literal) => {
        data(include_str!(concat!(
            "data/aws-auth/configmaps/",
            $name,
            ".yaml"
        )))
    };
}

const NEW: &str = "arn:aws:iam::444455556666:role/deploy/ci-deployer";
const NEW_CANONICAL: &str = "arn:aws:iam::444455556666:role/ci-deployer";

fn data(manifest: &str) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        data: BTreeMap<String, String>,
    }
    serde_norway::from_str::<Manifest>(manifest)
        .expect("fixture manifest parses")
        .data
}

fn deployer() -> NewMapping {
    NewMapping {
        arn: NEW.into(),
        username: "ci-deployer".into(),
        groups: vec!["deployers".into()],
    }
}

/// The one insertion that turns `old` into `new`, if there is one.
fn insertion<'a>(old: &str, new: &'a str) -> Option<&'a str> {
    let p = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let s = old[p..]
        .bytes()
        .rev()
        .zip(new[p..].bytes().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (p + s == old.len()).then(|| &new[p..new.len() - s])
}

/// Checks an add: a single insertion; for block lists every old line unchanged and in order with exactly the new
/// item's lines added; old entries unchanged (lines included) plus the new one; adding again is refused; removing
/// restores the original bytes. Returns the lines added (block lists) or the inserted text (flow lists).
fn check_add(kind: ListKind, old: &str, m: &NewMapping, arn: &str) -> (String, Vec<Note>) {
    let edit = add(kind, old, m).unwrap_or_else(|e| panic!("add failed: {e}\n{old}"));
    let new = edit.text.as_str();
    let inserted =
        insertion(old, new).unwrap_or_else(|| panic!("not a single insertion:\n{old}\n---\n{new}"));
    let block = !old.trim_start().starts_with('[');
    let added = if block {
        let (ol, nl): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
        let pre = ol.iter().zip(&nl).take_while(|(a, b)| a == b).count();
        let suf = ol[pre..]
            .iter()
            .rev()
            .zip(nl[pre..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        assert_eq!(pre + suf, ol.len(), "an original line changed:\n{new}");
        let added = nl[pre..nl.len() - suf].join("\n");
        assert_eq!(
            added.lines().count(),
            inserted.trim_matches(['\r', '\n']).lines().count()
        );
        added
    } else {
        inserted.to_string()
    };
    if !old.is_empty() {
        assert_eq!(
            old.ends_with('\n'),
            new.ends_with('\n'),
            "final newline state changed"
        );
    }
    assert_eq!(old.contains("\r\n"), new.contains("\r\n"));
    if old.contains("\r\n") {
        assert_eq!(
            new.matches('\n').count(),
            new.matches("\r\n").count(),
            "mixed line endings"
        );
    }
    let (before, after) = (analyze_list(kind, old), analyze_list(kind, new));
    assert_eq!(after.error, None);
    assert_eq!(after.entries.len(), before.entries.len() + 1);
    assert_eq!(
        &after.entries[..before.entries.len()],
        &before.entries[..],
        "old entries changed"
    );
    let last = after.entries.last().unwrap();
    assert_eq!(last.arn.as_deref(), Some(arn));
    assert_eq!(
        (last.username.as_str(), &last.groups),
        (m.username.as_str(), &m.groups)
    );
    assert_eq!(last.dropped, None);
    assert!(last.line.is_some(), "new entry not located");
    assert!(
        matches!(find_mapping(&after, arn), MatchKind::Exact(e) if e.index == before.entries.len())
    );
    assert!(matches!(
        add(kind, new, m),
        Err(EditError::AlreadyPresent { .. })
    ));
    assert_eq!(
        remove(kind, new, arn).expect("remove the added entry").text,
        old,
        "add then remove"
    );
    (added, edit.notes)
}

fn lines(s: &[&str]) -> String {
    s.join("\n")
}

const DEPLOYER_DOC_STYLE: &[&str] = &[
    "- rolearn: arn:aws:iam::444455556666:role/ci-deployer",
    "  username: ci-deployer",
    "  groups:",
    "    - deployers",
];

#[test]
fn comments_inside_after_values_and_after_the_last_item_are_kept() {
    let old = list!("comments");
    let a = analyze_list(ListKind::Roles, old);
    assert_eq!(
        a.entries.iter().map(|e| e.line).collect::<Vec<_>>(),
        [Some(2), Some(9)]
    );
    let (added, notes) = check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    assert_eq!(added, lines(DEPLOYER_DOC_STYLE));
    assert!(matches!(&notes[..], [Note::RolePathStripped { to, .. }] if to == NEW_CANONICAL));
    let new = add(ListKind::Roles, old, &deployer()).unwrap().text;
    assert!(
        new.starts_with(old),
        "appended after the commented-out entry"
    );
}

#[test]
fn blank_lines_between_items_and_at_the_end() {
    let old = list!("blank-lines");
    let (added, _) = check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    assert_eq!(added, lines(DEPLOYER_DOC_STYLE));
    let new = add(ListKind::Roles, old, &deployer()).unwrap().text;
    assert!(
        new.ends_with("    - deployers\n\n"),
        "trailing blank line stays last"
    );
    let a = analyze_list(ListKind::Roles, old);
    assert_eq!(
        a.entries.iter().map(|e| e.line).collect::<Vec<_>>(),
        [Some(1), Some(7), Some(13)]
    );
}

#[test]
fn camel_case_and_crazy_case_keys() {
    let old = list!("camel-case-keys");
    let a = analyze_list(ListKind::Roles, old);
    assert_eq!(
        a.entries[1].arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/Admin")
    );
    assert_eq!(a.entries[1].groups, ["system:masters"]);
    let (added, _) = check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    assert_eq!(
        added,
        lines(&[
            "- roleARN: arn:aws:iam::444455556666:role/ci-deployer",
            "  userName: ci-deployer",
            "  Groups:",
            "  - deployers"
        ])
    );
}

#[test]
fn quoted_keys_and_values() {
    let (added, _) = check_add(
        ListKind::Roles,
        list!("quoted-keys"),
        &deployer(),
        NEW_CANONICAL,
    );
    assert_eq!(
        added,
        lines(&[
            "- \"rolearn\": \"arn:aws:iam::444455556666:role/ci-deployer\"",
            "  \"username\": \"ci-deployer\"",
            "  \"groups\":",
            "    - \"deployers\"",
        ])
    );
}

#[test]
fn mixed_key_order_follows_the_first_item() {
    let (added, _) = check_add(
        ListKind::Roles,
        list!("mixed-key-order"),
        &deployer(),
        NEW_CANONICAL,
    );
    assert_eq!(
        added,
        lines(&[
            "- groups:",
            "  - deployers",
            "  rolearn: arn:aws:iam::444455556666:role/ci-deployer",
            "  username: ci-deployer"
        ])
    );
}

#[test]
fn crlf_line_endings() {
    let old = list!("crlf");
    assert!(old.contains("\r\n"), "fixture must keep its CRLF bytes");
    let (added, _) = check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    assert_eq!(added, lines(DEPLOYER_DOC_STYLE));
    let new = add(ListKind::Roles, old, &deployer()).unwrap().text;
    assert!(new.ends_with("# written on Windows\r\n- rolearn: arn:aws:iam::444455556666:role/ci-deployer\r\n  username: ci-deployer\r\n  groups:\r\n    - deployers\r\n"));
}

#[test]
fn no_final_newline_stays_without() {
    let old = list!("no-final-newline");
    assert!(!old.ends_with('\n'));
    let (added, _) = check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    assert_eq!(added, lines(DEPLOYER_DOC_STYLE));
    assert!(add(ListKind::Roles, old, &deployer())
        .unwrap()
        .text
        .ends_with("\n    - deployers"));
}

#[test]
fn a_real_tab_is_the_yaml_error_it_is() {
    let old = list!("tab");
    let a = analyze_list(ListKind::Roles, old);
    let err = a.error.clone().expect("tab indentation does not parse");
    assert_eq!((err.kind, err.line), (KeyErrorKind::Syntax, Some(4)));
    assert!(err.message.contains("tab"), "{}", err.message);
    assert!(a.entries.is_empty(), "a syntax error drops the whole key");
    assert!(matches!(
        add(ListKind::Roles, old, &deployer()),
        Err(EditError::Unparseable { line: Some(4), .. })
    ));
    assert!(matches!(
        find_mapping(&a, "arn:aws:iam::111122223333:role/eks-nodes"),
        MatchKind::Unparseable { .. }
    ));
}

#[test]
fn flow_and_json_arrays_get_the_item_inside_the_brackets() {
    let (ins, _) = check_add(
        ListKind::Roles,
        list!("empty-array"),
        &deployer(),
        NEW_CANONICAL,
    );
    assert_eq!(
        ins,
        r#"{"rolearn": "arn:aws:iam::444455556666:role/ci-deployer", "username": "ci-deployer", "groups": ["deployers"]}"#
    );
    let (ins, _) = check_add(
        ListKind::Roles,
        list!("cdk-json"),
        &deployer(),
        NEW_CANONICAL,
    );
    assert_eq!(
        ins,
        r#",{"rolearn":"arn:aws:iam::444455556666:role/ci-deployer","username":"ci-deployer","groups":["deployers"]}"#
    );
    let old = list!("json-pretty");
    check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    let new = add(ListKind::Roles, old, &deployer()).unwrap().text;
    let want = "  },\n  {\n    \"rolearn\": \"arn:aws:iam::444455556666:role/ci-deployer\",\n    \"username\": \"ci-deployer\",\n    \"groups\": [\n      \"deployers\"\n    ]\n  }\n]\n";
    assert!(new.ends_with(want), "{new}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&new).is_ok(),
        "still JSON"
    );
    let (ins, _) = check_add(
        ListKind::Roles,
        list!("flow-items"),
        &deployer(),
        NEW_CANONICAL,
    );
    assert_eq!(ins, "- {rolearn: \"arn:aws:iam::444455556666:role/ci-deployer\", username: \"ci-deployer\", groups: [deployers]}");
}

#[test]
fn indented_list_with_wide_gaps() {
    let (added, _) = check_add(
        ListKind::Roles,
        list!("indented-list"),
        &deployer(),
        NEW_CANONICAL,
    );
    assert_eq!(
        added,
        lines(&[
            "    -   rolearn: arn:aws:iam::444455556666:role/ci-deployer",
            "        username: ci-deployer",
            "        groups:",
            "            -   deployers",
        ])
    );
}

#[test]
fn document_markers() {
    let old = list!("document-markers");
    check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
    let new = add(ListKind::Roles, old, &deployer()).unwrap().text;
    assert!(
        new.ends_with("    - deployers\n...\n"),
        "inserted before the end marker"
    );
}

#[test]
fn placeholders_and_wildcards_never_match() {
    let is_placeholder = |p: &Problem| matches!(p, Problem::Placeholder { .. });
    let a = analyze_list(ListKind::Roles, list!("terraform-placeholders"));
    let flagged: Vec<bool> = a
        .entries
        .iter()
        .map(|e| e.problems.iter().any(is_placeholder))
        .collect();
    assert_eq!(flagged, [true, true, true, false]);
    check_add(
        ListKind::Roles,
        list!("terraform-placeholders"),
        &deployer(),
        NEW_CANONICAL,
    );
    let a = analyze_list(ListKind::Roles, list!("prose-placeholders"));
    assert!(a.entries[0].problems.iter().any(is_placeholder));
    assert_eq!(
        a.entries[1]
            .problems
            .iter()
            .filter(|p| is_placeholder(p))
            .count(),
        3,
        "{:?}",
        a.entries[1].problems
    );
    let a = analyze_list(ListKind::Roles, list!("wildcards"));
    assert!(a
        .entries
        .iter()
        .all(|e| e.problems.contains(&Problem::Wildcard)));
    let nodes = "arn:aws:iam::111122223333:role/eks-prod-nodes";
    assert!(matches!(find_mapping(&a, nodes), MatchKind::Invalid(e) if e.index == 1));
    assert!(
        matches!(find_mapping(&a, "arn:aws:iam::111122223333:role/ci"), MatchKind::Invalid(e) if e.index == 0)
    );
    assert!(!find_mapping(&a, nodes).is_mapped());
    let m = NewMapping {
        arn: nodes.into(),
        username: "system:node:{{EC2PrivateDNSName}}".into(),
        groups: vec!["system:nodes".into()],
    };
    let (_, notes) = check_add(ListKind::Roles, list!("wildcards"), &m, nodes);
    assert_eq!(notes, [Note::WildcardCovers { line: Some(5) }]);
}

#[test]
fn duplicates_last_wins_and_adds_are_refused() {
    let old = list!("duplicates");
    let a = analyze_list(ListKind::Roles, old);
    assert_eq!(
        a.entries[0].problems,
        [
            Problem::SystemMasters,
            Problem::ShadowedBy {
                index: 2,
                line: Some(9)
            }
        ]
    );
    let admin = "arn:aws:iam::111122223333:role/Admin";
    let MatchKind::Duplicate { winner, shadowed } = find_mapping(&a, admin) else {
        panic!()
    };
    assert_eq!(
        (winner.username.as_str(), shadowed.len()),
        ("admin-restricted", 1)
    );
    let same = NewMapping {
        arn: admin.into(),
        username: "admin-restricted".into(),
        groups: vec!["edit".into()],
    };
    assert!(matches!(
        add(ListKind::Roles, old, &same),
        Err(EditError::AlreadyPresent { line: Some(9), .. })
    ));
    let other = NewMapping {
        username: "root".into(),
        ..same
    };
    assert!(matches!(
        add(ListKind::Roles, old, &other),
        Err(EditError::Conflict { line: Some(9), .. })
    ));
    let e = remove(ListKind::Roles, old, admin).unwrap();
    assert!(e.notes.contains(&Note::RemovedEntries { count: 2 }));
    assert_eq!(analyze_list(ListKind::Roles, &e.text).entries.len(), 1);
}

#[test]
fn role_paths_are_named_and_fixed_in_place() {
    let old = list!("paths");
    let a = analyze_list(ListKind::Roles, old);
    let kinds: Vec<String> = a
        .entries
        .iter()
        .map(|e| match e.problems.first() {
            Some(Problem::RolePath { path, .. }) => path.clone(),
            Some(Problem::SsoRolePath { region, .. }) => {
                format!("sso:{}", region.as_deref().unwrap_or(""))
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "service-role/",
            "aws-service-role/eks.amazonaws.com/",
            "sso:eu-west-1",
            "gitlab-ci/"
        ]
    );
    let caller = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice";
    assert!(matches!(find_mapping(&a, caller), MatchKind::WithPath(e) if e.line == Some(8)));
    let runner = "arn:aws:iam::111122223333:role/runner";
    let refused = add(
        ListKind::Roles,
        old,
        &NewMapping {
            arn: runner.into(),
            username: "x".into(),
            groups: vec![],
        },
    );
    assert!(matches!(
        refused,
        Err(EditError::Conflict { line: Some(12), .. })
    ));
    for e in &a.entries {
        let raw = e.arn.as_deref().unwrap();
        let fixed = e.canonical_arn.as_deref().unwrap();
        let edit = replace_arn(ListKind::Roles, old, raw, raw).unwrap();
        assert_eq!(
            edit.text,
            old.replacen(raw, fixed, 1),
            "only the token changes"
        );
        assert!(matches!(&edit.notes[..], [Note::RolePathStripped { to, .. }] if to == fixed));
        let after = analyze_list(ListKind::Roles, &edit.text);
        assert!(matches!(find_mapping(&after, fixed), MatchKind::Exact(x) if x.index == e.index));
    }
}

#[test]
fn fargate_node_proxier_and_node_templates_are_fine() {
    let old = list!("fargate");
    let a = analyze_list(ListKind::Roles, old);
    assert!(
        a.entries.iter().all(|e| e.problems.is_empty()),
        "{:?}",
        a.entries
    );
    assert_eq!(
        a.entries[1].groups.last().map(String::as_str),
        Some("system:node-proxier")
    );
    let fargate = NewMapping {
        arn: "arn:aws:iam::444455556666:role/FargatePods".into(),
        username: "system:node:{{SessionName}}".into(),
        groups: vec![
            "system:bootstrappers".into(),
            "system:nodes".into(),
            "system:node-proxier".into(),
        ],
    };
    let (added, notes) = check_add(
        ListKind::Roles,
        old,
        &fargate,
        "arn:aws:iam::444455556666:role/FargatePods",
    );
    assert!(added.contains("  username: system:node:{{SessionName}}\n"));
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn sso_matcher_entries() {
    let old = list!("sso-matcher");
    let a = analyze_list(ListKind::Roles, old);
    assert!(matches!(
        a.entries[0].problems[..],
        [Problem::SsoMatcher { .. }]
    ));
    assert_eq!(a.entries[1].dropped, Some(DropReason::RoleArnAndSso));
    let sso_role =
        "arn:aws:iam::111122223333:role/AWSReservedSSO_AdministratorAccess_0123456789abcdef";
    assert!(matches!(find_mapping(&a, sso_role), MatchKind::Sso(e) if e.index == 0));
    let m = NewMapping {
        arn: sso_role.into(),
        username: "admin".into(),
        groups: vec!["admins".into()],
    };
    let (_, notes) = check_add(ListKind::Roles, old, &m, sso_role);
    assert_eq!(notes, [Note::SsoMatcherCovers { line: Some(1) }]);
    let readonly = "arn:aws:iam::111122223333:role/readonly";
    assert!(matches!(find_mapping(&a, readonly), MatchKind::Invalid(e) if e.index == 1));
}

#[test]
fn map_users_keep_user_paths() {
    let m = NewMapping {
        arn: "arn:aws:iam::444455556666:user/contractors/carol".into(),
        username: "carol".into(),
        groups: vec!["view".into()],
    };
    let (added, _) = check_add(
        ListKind::Users,
        list!("mapusers"),
        &m,
        "arn:aws:iam::444455556666:user/contractors/carol",
    );
    assert_eq!(
        added,
        lines(&[
            "- userarn: arn:aws:iam::444455556666:user/contractors/carol",
            "  username: carol",
            "  groups:",
            "    - view"
        ])
    );
}

#[test]
fn unknown_fields_node_roles_and_userid_are_kept() {
    let old = list!("unknown-fields");
    let a = analyze_list(ListKind::Roles, old);
    assert_eq!(
        a.entries[0].userid.as_deref(),
        Some("AROAEXAMPLEID12345678")
    );
    assert_eq!(a.entries[1].other_keys, ["comment", "owner"]);
    check_add(ListKind::Roles, old, &deployer(), NEW_CANONICAL);
}

#[test]
fn broken_shapes_that_cost_clusters() {
    let a = analyze_list(ListKind::Users, list!("dash-no-space"));
    assert!(a.error.is_some(), "`-userarn:` is not a list item");
    assert!(matches!(
        add(ListKind::Users, list!("dash-no-space"), &deployer()),
        Err(EditError::InvalidMapping(_))
    ));
    let m = NewMapping {
        arn: "arn:aws:iam::444455556666:user/x".into(),
        username: "x".into(),
        groups: vec![],
    };
    assert!(matches!(
        add(ListKind::Users, list!("dash-no-space"), &m),
        Err(EditError::Unparseable { .. })
    ));
    let a = analyze_list(ListKind::Roles, list!("empty-username"));
    let empty: Vec<bool> = a
        .entries
        .iter()
        .map(|e| e.problems.contains(&Problem::EmptyUsername))
        .collect();
    assert_eq!(empty, [false, true, true]);
}

#[test]
fn configmap_manifests() {
    let d = manifest!("kubectl-get");
    let c = aws_auth::analyze(&d);
    assert_eq!(c.roles.as_ref().map(|r| r.entries.len()), Some(2));
    assert_eq!(c.roles.as_ref().unwrap().entries[1].line, Some(7));
    assert_eq!(c.users.as_ref().map(|u| u.entries.len()), Some(0));
    assert!(c.accounts.as_ref().unwrap().accounts[0].valid);
    assert!(matches!(
        c.find("arn:aws:iam::111122223333:role/anyone"),
        MatchKind::Account(_)
    ));
    let (added, _) = check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);
    assert_eq!(
        added,
        lines(&[
            "- groups:",
            "  - deployers",
            "  rolearn: arn:aws:iam::444455556666:role/ci-deployer",
            "  username: ci-deployer"
        ])
    );
    let m = NewMapping {
        arn: "arn:aws:iam::444455556666:user/u".into(),
        username: "u".into(),
        groups: vec![],
    };
    check_add(
        ListKind::Users,
        &d["mapUsers"],
        &m,
        "arn:aws:iam::444455556666:user/u",
    );

    let d = manifest!("kubectl-edit");
    let c = aws_auth::analyze(&d);
    assert!(matches!(
        c.roles.as_ref().unwrap().entries[1].problems[0],
        Problem::SsoRolePath { .. }
    ));
    check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);

    let d = manifest!("cdk");
    let (ins, _) = check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);
    assert!(ins.starts_with(",{\"rolearn\":"), "{ins}");
    let (ins, _) = check_add(
        ListKind::Users,
        &d["mapUsers"],
        &m,
        "arn:aws:iam::444455556666:user/u",
    );
    assert_eq!(
        ins,
        r#"{"userarn": "arn:aws:iam::444455556666:user/u", "username": "u", "groups": []}"#
    );

    let d = manifest!("double-quoted");
    assert!(
        d["mapRoles"].contains("\n  groups:\n  - system:masters\n"),
        "decoded from `\\n` escapes"
    );
    let (added, _) = check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);
    assert!(added.ends_with("  groups:\n  - deployers"), "{added}");

    let d = manifest!("block-scalars");
    assert!(
        !d["mapRoles"].ends_with('\n'),
        "|- strips the final newline"
    );
    check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);
    assert!(
        d["mapUsers"].starts_with("  - userarn") && d["mapUsers"].ends_with("\n\n"),
        "{:?}",
        d["mapUsers"]
    );
    check_add(
        ListKind::Users,
        &d["mapUsers"],
        &m,
        "arn:aws:iam::444455556666:user/u",
    );
    assert_eq!(
        aws_auth::analyze(&d).accounts.unwrap().accounts[0].value,
        "111122223333"
    );

    let d = manifest!("empty-array");
    check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);

    let d = manifest!("mapusers-only");
    let c = aws_auth::analyze(&d);
    assert!(c.roles.is_none());
    assert_eq!(
        c.find("arn:aws:iam::111122223333:role/eks-nodes"),
        MatchKind::None
    );
    assert!(matches!(
        c.find("arn:aws:iam::111122223333:user/admin"),
        MatchKind::Exact(_)
    ));

    let d = manifest!("document-markers");
    check_add(ListKind::Roles, &d["mapRoles"], &deployer(), NEW_CANONICAL);
}

// ---- properties over generated documents ----

#[derive(Debug, Clone)]
struct Gen {
    dash_indent: usize,
    gap: usize,
    /// 0: block at key column, 1: block deeper, 2: flow `[a, b]`, 3: flow `[ a,b ]`
    groups_style: u8,
    /// 0 plain, 1 double, 2 single
    quote: u8,
    keys: (&'static str, &'static str, &'static str),
    order: usize,
    crlf: bool,
    final_newline: bool,
    comments: bool,
    blank_lines: bool,
    unknown_key: bool,
    /// `-` alone on its line, keys below
    dash_alone: bool,
    /// `---` first and `...` last
    markers: bool,
    items: Vec<(String, bool, &'static str, Vec<&'static str>)>,
}

const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

fn q(s: &str, quote: u8) -> String {
    match quote {
        1 => format!("\"{s}\""),
        2 => format!("'{s}'"),
        _ => s.to_string(),
    }
}

fn render_doc(g: &Gen) -> String {
    let nl = if g.crlf { "\r\n" } else { "\n" };
    let (d, k) = (
        " ".repeat(g.dash_indent),
        " ".repeat(g.dash_indent + 1 + g.gap),
    );
    let mut out: Vec<String> = Vec::new();
    if g.markers {
        out.push("---".into());
    }
    if g.comments {
        out.push("# managed by hand".into());
    }
    for (i, (name, path, user, groups)) in g.items.iter().enumerate() {
        if i > 0 && g.blank_lines {
            out.push(String::new());
        }
        if i > 0 && g.comments {
            out.push(format!("{d}# item {i}"));
        }
        let arn = format!(
            "arn:aws:iam::111122223333:role/{}{name}",
            if *path { "team/" } else { "" }
        );
        let c = if g.comments { " # note" } else { "" };
        let mut fields: Vec<Vec<String>> = vec![
            vec![format!("{}: {}{c}", g.keys.0, q(&arn, g.quote))],
            vec![format!("{}: {}", g.keys.1, q(user, g.quote))],
            match (g.groups_style, groups.is_empty()) {
                (_, true) => vec![format!("{}: []", g.keys.2)],
                (0 | 1, _) => {
                    let gi = if g.groups_style == 0 {
                        k.clone()
                    } else {
                        format!("{k}  ")
                    };
                    std::iter::once(format!("{}:{c}", g.keys.2))
                        .chain(groups.iter().map(|x| format!("{gi}- {}", q(x, g.quote))))
                        .collect()
                }
                (2, _) => vec![format!(
                    "{}: [{}]",
                    g.keys.2,
                    groups
                        .iter()
                        .map(|x| q(x, g.quote))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
                _ => vec![format!(
                    "{}: [ {} ]",
                    g.keys.2,
                    groups
                        .iter()
                        .map(|x| q(x, g.quote))
                        .collect::<Vec<_>>()
                        .join(",")
                )],
            },
        ];
        if g.unknown_key {
            fields.push(vec!["team: platform".into()]);
        }
        let mut first = true;
        if g.dash_alone {
            out.push(format!("{d}-"));
            first = false;
        }
        for idx in ORDERS[g.order]
            .iter()
            .copied()
            .chain((3..fields.len()).collect::<Vec<_>>())
        {
            for line in &fields[idx] {
                let prefix = if first {
                    format!("{d}-{}", " ".repeat(g.gap))
                } else if line.starts_with(' ') {
                    String::new()
                } else {
                    k.clone()
                };
                out.push(format!("{prefix}{line}"));
                first = false;
            }
        }
    }
    if g.comments {
        out.push(format!("{k}# end of the last item"));
        out.push("# end".into());
    }
    if g.markers {
        out.push("...".into());
    }
    let mut s = out.join(nl);
    if g.final_newline && !s.is_empty() {
        s.push_str(nl);
    }
    s
}

fn gen_doc() -> impl Strategy<Value = Gen> {
    let item = (
        "[A-Za-z0-9][A-Za-z0-9+=,.@_-]{0,15}",
        any::<bool>(),
        prop::sample::select(vec![
            "admin",
            "system:node:{{EC2PrivateDNSName}}",
            "dev:{{SessionName}}",
            "ci-{{AccountID}}",
        ]),
        prop::sample::subsequence(
            vec![
                "system:masters",
                "system:nodes",
                "view",
                "dev-team",
                "ops@corp",
            ],
            0..3,
        ),
    );
    (
        (
            prop::sample::select(vec![0usize, 2, 4]),
            prop::sample::select(vec![1usize, 3]),
            0u8..4,
            0u8..3,
        ),
        prop::sample::select(vec![
            ("rolearn", "username", "groups"),
            ("roleARN", "userName", "Groups"),
            ("\"rolearn\"", "\"username\"", "\"groups\""),
            ("RoleArn", "Username", "Groups"),
        ]),
        0usize..6,
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (any::<bool>(), any::<bool>()),
        prop::collection::vec(item, 0..5),
    )
        .prop_map(
            |(
                (dash_indent, gap, groups_style, quote),
                keys,
                order,
                (crlf, final_newline, comments, blank_lines, unknown_key),
                (dash_alone, markers),
                items,
            )| Gen {
                dash_indent,
                gap,
                groups_style,
                quote,
                keys,
                order,
                crlf,
                final_newline,
                comments,
                blank_lines,
                unknown_key,
                dash_alone,
                markers,
                items,
            },
        )
}

fn new_mapping() -> impl Strategy<Value = NewMapping> {
    (
        "[A-Za-z][A-Za-z0-9+=,.@_-]{0,20}",
        prop::sample::select(vec![
            "deployer",
            "system:node:{{EC2PrivateDNSName}}",
            "{{SessionName}}",
            "yes",
        ]),
        prop::sample::subsequence(
            vec![
                "deployers",
                "system:nodes",
                "on",
                "x:y",
                "{{AccountID}}-team",
            ],
            0..4,
        ),
    )
        .prop_map(|(name, user, groups)| NewMapping {
            arn: format!("arn:aws:iam::999988887777:role/gen/{name}"),
            username: user.into(),
            groups: groups.into_iter().map(String::from).collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn add_keeps_every_byte_and_reads_back(g in gen_doc(), m in new_mapping()) {
        let old = render_doc(&g);
        let before = analyze_list(ListKind::Roles, &old);
        prop_assert_eq!(&before.error, &None, "generated document must be valid:\n{}", old);
        prop_assert_eq!(before.entries.len(), g.items.len());
        let arn = m.arn.replace("role/gen/", "role/");
        let (_, notes) = check_add(ListKind::Roles, &old, &m, &arn);
        let stripped = notes.iter().any(|n| matches!(n, Note::RolePathStripped { .. }));
        prop_assert!(stripped, "notes: {:?}", notes);
        let after = analyze_list(ListKind::Roles, &add(ListKind::Roles, &old, &m).unwrap().text);
        let last = after.entries.last().unwrap();
        prop_assert!(last.problems.is_empty(), "new problems: {:?}", last.problems);
    }

    #[test]
    fn replace_arn_changes_only_the_token(g in gen_doc()) {
        let old = render_doc(&g);
        let a = analyze_list(ListKind::Roles, &old);
        for e in a.entries.iter().filter(|e| e.problems.iter().any(|p| matches!(p, Problem::RolePath { .. }))) {
            let raw = e.arn.clone().unwrap();
            match replace_arn(ListKind::Roles, &old, &raw, &raw) {
                Ok(edit) => {
                    // Exactly the path's bytes are gone, in one place, and the entry now has the fixed ARN.
                    let gone = insertion(&edit.text, &old).map(str::len);
                    prop_assert_eq!(gone, Some("team/".len()));
                    let after = analyze_list(ListKind::Roles, &edit.text);
                    prop_assert_eq!(&after.entries[e.index].arn, &e.canonical_arn);
                    prop_assert_eq!(after.entries.len(), a.entries.len());
                }
                // Duplicated names in the generated list: refusals are the documented outcome.
                Err(EditError::Ambiguous { .. } | EditError::Conflict { .. } | EditError::AlreadyPresent { .. }) => {}
                Err(other) => prop_assert!(false, "{}", other),
            }
        }
    }

    #[test]
    fn json_arrays_add_and_remove_exactly(items in prop::collection::vec(("[A-Za-z0-9_-]{1,12}", "[a-z]{1,8}"), 0..4), pretty in any::<bool>(), nl in any::<bool>(), m in new_mapping()) {
        let values: Vec<serde_json::Value> = items.iter().map(|(n, u)| serde_json::json!({
            "rolearn": format!("arn:aws:iam::111122223333:role/{n}"), "username": u, "groups": ["system:masters"],
        })).collect();
        let mut old = if pretty { serde_json::to_string_pretty(&values).unwrap() } else { serde_json::to_string(&values).unwrap() };
        if nl { old.push('\n'); }
        let arn = m.arn.replace("role/gen/", "role/");
        check_add(ListKind::Roles, &old, &m, &arn);
    }

    #[test]
    fn arbitrary_text_never_panics_and_edits_stay_reversible(
        text in "([- :#,'\"|>*&!%@`{}\\[\\]\t]|\r?\n|[a-z0-9]{1,6}|rolearn: |username: |groups:|arn:aws:iam::111122223333:role/x|é✓){0,40}",
        m in new_mapping(),
    ) {
        let _ = aws_auth::analyze_roles(&text);
        let _ = aws_auth::analyze_accounts(&text);
        let arn = m.arn.replace("role/gen/", "role/");
        if let Ok(edit) = add(ListKind::Roles, &text, &m) {
            prop_assert!(insertion(&text, &edit.text).is_some(), "not a single insertion");
            let back = remove(ListKind::Roles, &edit.text, &arn).map(|e| e.text);
            prop_assert_eq!(back, Ok(text.clone()));
        }
        let _ = replace_arn(ListKind::Roles, &text, "arn:aws:iam::111122223333:role/x", "arn:aws:iam::111122223333:role/y");
        let _ = remove(ListKind::Roles, &text, "arn:aws:iam::111122223333:role/x");
    }
}
