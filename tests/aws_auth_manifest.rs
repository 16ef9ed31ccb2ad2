//! aws-auth manifest files (`eks-auth aws-auth add/remove/check` through the library): every shape of DOMAIN.md
//! section 4 as a whole manifest under `data/aws-auth/configmaps/`, and properties over generated manifests.
//!
//! For every edit: the old file's lines stay, in order; the file re-parses to exactly the old entries plus (or
//! minus) the one changed; every other document and key reads back the same; removing what was added restores the
//! original bytes.

use eks_auth_remediator::aws_auth::check::{check, Finding};
use eks_auth_remediator::aws_auth::{
    add_mapping, analyze_list, parse_manifest, remove_mapping, target, DocKind, EditError,
    ListKind, ManifestError, NewMapping, Note,
};
use proptest::prelude::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("data/aws-auth/configmaps/", $name, ".yaml"))
    };
}

const ROLE: &str = "arn:aws:iam::444455556666:role/deploy/ci-deployer";
const ROLE_CANONICAL: &str = "arn:aws:iam::444455556666:role/ci-deployer";
const USER: &str = "arn:aws:iam::444455556666:user/bob";

fn role() -> NewMapping {
    NewMapping {
        arn: ROLE.into(),
        username: "ci-deployer".into(),
        groups: vec!["deployers".into()],
    }
}

fn user() -> NewMapping {
    NewMapping {
        arn: USER.into(),
        username: "bob".into(),
        groups: vec!["view".into(), "edit".into()],
    }
}

/// The list `kind` of the file's aws-auth document, as the authenticator reads it.
fn list(text: &str, kind: ListKind) -> Option<String> {
    let m = parse_manifest(text);
    target(&m).ok()?.data.get(kind.data_key()).cloned()
}

/// True when every line of `old` appears in `new`, in order, and `new` only adds whole lines.
fn lines_kept(old: &str, new: &str) -> bool {
    let mut it = new.split_inclusive('\n');
    old.split_inclusive('\n').all(|l| {
        let l = l.trim_end_matches(['\r', '\n']);
        it.by_ref().any(|n| n.trim_end_matches(['\r', '\n']) == l)
    })
}

/// Adds `m`, checks the result, removes it again and checks the original bytes come back (when the list existed).
fn round_trip(text: &str, m: &NewMapping, arn: &str, kind: ListKind, block: bool) -> String {
    let before = list(text, kind);
    let e = add_mapping(text, m, false).unwrap_or_else(|e| panic!("add: {e}\n{text}"));
    assert_eq!(e.kind, kind);
    let after = list(&e.text, kind).expect("list after add");
    let (old, new) = (
        analyze_list(kind, before.as_deref().unwrap_or("")),
        analyze_list(kind, &after),
    );
    assert_eq!(new.error, None);
    assert_eq!(new.entries.len(), old.entries.len() + 1, "{}", e.text);
    for (a, b) in old.entries.iter().zip(&new.entries) {
        assert_eq!(
            (&a.arn, &a.username, &a.groups, &a.problems),
            (&b.arn, &b.username, &b.groups, &b.problems)
        );
    }
    let last = new.entries.last().unwrap();
    assert_eq!(last.arn.as_deref(), Some(arn));
    assert_eq!(last.username, m.username);
    assert_eq!(last.groups, m.groups);
    // Every other key and document reads back the same.
    let (a, b) = (parse_manifest(text), parse_manifest(&e.text));
    assert_eq!(a.docs.len(), b.docs.len());
    for (x, y) in a.docs.iter().zip(&b.docs) {
        for (k, v) in &x.data {
            if k != kind.data_key() {
                assert_eq!(y.data.get(k), Some(v), "{k} changed");
            }
        }
    }
    if block
        && !before
            .as_deref()
            .unwrap_or("")
            .trim_start()
            .starts_with('[')
    {
        assert!(
            lines_kept(text, &e.text),
            "an old line changed:\n{}",
            e.text
        );
    }
    assert_eq!(
        text.ends_with('\n'),
        e.text.ends_with('\n'),
        "final newline state"
    );
    assert_eq!(text.contains("\r\n"), e.text.contains("\r\n"));
    if text.contains("\r\n") {
        assert_eq!(e.text.matches('\n').count(), e.text.matches("\r\n").count());
    }
    // Adding again is "already present"; removing restores the original.
    assert!(matches!(
        add_mapping(&e.text, m, false),
        Err(ManifestError::Edit(EditError::AlreadyPresent { .. }))
    ));
    let back = remove_mapping(&e.text, arn, true).unwrap_or_else(|e| panic!("remove: {e}"));
    if before.is_some() {
        assert_eq!(back.text, text, "remove did not restore the original");
    } else {
        assert_eq!(list(&back.text, kind).as_deref(), Some(""));
    }
    e.text
}

fn codes(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.code).collect()
}

#[test]
fn every_configmap_fixture_takes_a_role_and_a_user() {
    // (fixture, block style: old lines kept verbatim)
    let all = [
        ("block-scalars", fixture!("block-scalars"), true),
        ("cdk", fixture!("cdk"), false),
        ("document-markers", fixture!("document-markers"), true),
        ("double-quoted", fixture!("double-quoted"), false),
        ("empty-array", fixture!("empty-array"), false),
        ("kubectl-edit", fixture!("kubectl-edit"), true),
        ("kubectl-get", fixture!("kubectl-get"), true),
        ("mapusers-only", fixture!("mapusers-only"), true),
        (
            "crlf-no-final-newline",
            fixture!("crlf-no-final-newline"),
            true,
        ),
        ("multi-doc", fixture!("multi-doc"), true),
        ("bare-data", fixture!("bare-data"), false),
    ];
    for (name, text, block) in all {
        eprintln!("{name}");
        round_trip(text, &role(), ROLE_CANONICAL, ListKind::Roles, block);
        round_trip(text, &user(), USER, ListKind::Users, block);
    }
}

#[test]
fn block_scalar_adds_follow_the_neighbours() {
    let new = round_trip(
        fixture!("kubectl-edit"),
        &role(),
        ROLE_CANONICAL,
        ListKind::Roles,
        true,
    );
    assert!(new.contains(
        "        - edit\n    - rolearn: arn:aws:iam::444455556666:role/ci-deployer\n      username: ci-deployer\n      groups:\n        - deployers\nkind: ConfigMap\n"
    ));
    // `|-` keeps no final line break; `|2+` keeps its explicit indentation and trailing blank line.
    let new = round_trip(
        fixture!("block-scalars"),
        &user(),
        USER,
        ListKind::Users,
        true,
    );
    assert!(new.contains("          - view\n      - userarn: arn:aws:iam::444455556666:user/bob\n        username: bob\n        groups:\n          - view\n          - edit\n\n  mapAccounts"), "{new}");
    // CRLF, quoted keys, key order, flow groups, comments: all copied.
    let new = round_trip(
        fixture!("crlf-no-final-newline"),
        &role(),
        ROLE_CANONICAL,
        ListKind::Roles,
        true,
    );
    // (spelling and quoting of each key and value from the first item)
    assert!(new.contains("      groups: [deployers]\r\n    - username: ci-deployer\r\n      \"rolearn\": \"arn:aws:iam::444455556666:role/ci-deployer\"\r\n      groups: [deployers]\r\n  mapUsers"), "{new:?}");
    let new = round_trip(
        fixture!("crlf-no-final-newline"),
        &user(),
        USER,
        ListKind::Users,
        true,
    );
    assert!(new.ends_with("        - ops\r\n    - userarn: arn:aws:iam::444455556666:user/bob\r\n      username: bob\r\n      groups:\r\n        - view\r\n        - edit"), "{new:?}");
}

#[test]
fn quoted_and_json_lists_are_extended_inside_their_string() {
    let new = round_trip(
        fixture!("cdk"),
        &role(),
        ROLE_CANONICAL,
        ListKind::Roles,
        false,
    );
    assert!(new.contains(r#"["system:masters"]},{"rolearn":"arn:aws:iam::444455556666:role/ci-deployer","username":"ci-deployer","groups":["deployers"]}]'"#), "{new}");
    let new = round_trip(fixture!("cdk"), &user(), USER, ListKind::Users, false);
    assert!(new.contains(r#"  mapUsers: '[{"userarn": "arn:aws:iam::444455556666:user/bob", "username": "bob", "groups": ["view", "edit"]}]'"#), "{new}");
    let new = round_trip(
        fixture!("double-quoted"),
        &role(),
        ROLE_CANONICAL,
        ListKind::Roles,
        false,
    );
    assert!(new.ends_with("  - system:masters\\n- rolearn: arn:aws:iam::444455556666:role/ci-deployer\\n  username: ci-deployer\\n  groups:\\n  - deployers\\n\"\n"), "{new}");
    // Only the one line holding the string changed.
    let old = fixture!("double-quoted");
    let changed = old.lines().zip(new.lines()).filter(|(a, b)| a != b).count();
    assert_eq!((changed, old.lines().count()), (1, new.lines().count()));
}

#[test]
fn a_missing_list_is_added_after_the_other_keys() {
    let new = round_trip(
        fixture!("mapusers-only"),
        &role(),
        ROLE_CANONICAL,
        ListKind::Roles,
        true,
    );
    assert!(new.ends_with("        - system:masters\n  mapRoles: |\n    - rolearn: arn:aws:iam::444455556666:role/ci-deployer\n      username: ci-deployer\n      groups:\n        - deployers\n"), "{new}");
    let new = round_trip(fixture!("multi-doc"), &user(), USER, ListKind::Users, true);
    assert!(new.contains("        - system:node-proxier\n  mapUsers: |\n    - userarn: arn:aws:iam::444455556666:user/bob\n"), "{new}");
    assert!(new.contains("...\n---\napiVersion: rbac.authorization.k8s.io/v1"));
}

#[test]
fn notes_refusals_and_replace() {
    let text = fixture!("kubectl-edit");
    let e = add_mapping(text, &role(), false).unwrap();
    assert!(matches!(&e.notes[..], [Note::RolePathStripped { to, .. }] if to == ROLE_CANONICAL));
    // The SSO entry is named with its path: adding the role without it conflicts, --replace fixes it.
    let sso = NewMapping {
        arn: "arn:aws:iam::111122223333:role/AWSReservedSSO_PowerUser_fedcba9876543210".into(),
        username: "poweruser:{{SessionName}}".into(),
        groups: vec!["edit".into()],
    };
    let err = add_mapping(text, &sso, false).unwrap_err();
    assert!(
        matches!(
            &err,
            ManifestError::Edit(EditError::Conflict { line: Some(13), .. })
        ),
        "{err}"
    );
    let fixed = add_mapping(text, &sso, true).unwrap();
    assert!(matches!(
        &fixed.notes[0],
        Note::Replaced { line: Some(13), .. }
    ));
    assert!(!fixed.text.contains("aws-reserved"));
    // Same username and groups: the ARN is fixed where it is, nothing else moves.
    assert_eq!(
        fixed.text,
        text.replace(
            "role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO",
            "role/AWSReservedSSO"
        )
    );
    assert!(check(&fixed.text).is_empty(), "{:?}", check(&fixed.text));
    // A different mapping of the same ARN.
    let admin = NewMapping {
        arn: "arn:aws:iam::111122223333:role/eks-nodes".into(),
        username: "admin".into(),
        groups: vec!["system:masters".into()],
    };
    assert!(matches!(
        add_mapping(text, &admin, false),
        Err(ManifestError::Edit(EditError::Conflict {
            line: Some(8),
            ..
        }))
    ));
    // Unparseable, several documents, nothing there.
    assert!(matches!(
        add_mapping(fixture!("unindented"), &role(), false),
        Err(ManifestError::Syntax { line: 8, .. })
    ));
    assert!(matches!(
        add_mapping(fixture!("tab-and-dash"), &role(), false),
        Err(ManifestError::Edit(EditError::Unparseable {
            line: Some(9),
            ..
        }))
    ));
    let two = format!(
        "{}---\n{}",
        fixture!("kubectl-get"),
        fixture!("kubectl-edit")
    );
    assert!(matches!(
        add_mapping(&two, &role(), false),
        Err(ManifestError::Several { .. })
    ));
    assert!(matches!(
        add_mapping(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
            &role(),
            false
        ),
        Err(ManifestError::NoAwsAuth)
    ));
}

#[test]
fn remove_guards_the_last_node_and_masters_mappings() {
    let text = fixture!("kubectl-get");
    let nodes = "arn:aws:iam::111122223333:role/eksctl-prod-nodegroup-ng-NodeInstanceRole-1ABCDEF";
    let err = remove_mapping(text, nodes, false).unwrap_err();
    assert!(
        err.to_string().contains("last node-role mapping (line 6)"),
        "{err}"
    );
    let forced = remove_mapping(text, nodes, true).unwrap();
    assert!(matches!(
        &forced.notes[..],
        [Note::RemovedNodeMapping { line: Some(6) }]
    ));
    assert!(lines_kept(&forced.text, text));
    let err = remove_mapping(text, "arn:aws:iam::111122223333:role/breakglass", false).unwrap_err();
    assert!(
        err.to_string()
            .contains("last system:masters mapping (line 12)"),
        "{err}"
    );
    // The comment above the removed item stays; the list reads back as the old one minus the entry.
    let e = remove_mapping(text, "arn:aws:iam::111122223333:role/breakglass", true).unwrap();
    let (old, new) = (
        analyze_list(ListKind::Roles, &list(text, ListKind::Roles).unwrap()),
        analyze_list(ListKind::Roles, &list(&e.text, ListKind::Roles).unwrap()),
    );
    assert_eq!(new.entries.len(), 1);
    assert_eq!(
        (
            &new.entries[0].arn,
            &new.entries[0].username,
            &new.entries[0].groups
        ),
        (
            &old.entries[0].arn,
            &old.entries[0].username,
            &old.entries[0].groups
        )
    );
    assert!(lines_kept(&e.text, text));
    assert!(e
        .text
        .contains("    # added by hand during the 2023 incident\n  mapUsers: |\n"));
    // Not there: a hint when the ARN is written differently.
    let err = remove_mapping(
        fixture!("kubectl-edit"),
        "arn:aws:iam::111122223333:role/AWSReservedSSO_PowerUser_fedcba9876543210",
        false,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ManifestError::NotFound { hint: Some(h), .. } if h.contains("line 13")),
        "{err}"
    );
    // Removing a broken entry from a ConfigMap with others.
    let e = remove_mapping(fixture!("broken"), "${node_role_arn}", false).unwrap();
    assert_eq!(
        codes(&check(&e.text))
            .iter()
            .filter(|c| **c == "placeholder")
            .count(),
        codes(&check(fixture!("broken")))
            .iter()
            .filter(|c| **c == "placeholder")
            .count()
            - 1
    );
}

#[test]
fn check_covers_every_published_shape() {
    let clean = [
        fixture!("block-scalars"),
        fixture!("document-markers"),
        fixture!("empty-array"),
        fixture!("crlf-no-final-newline"),
        fixture!("multi-doc"),
        fixture!("bare-data"),
    ];
    for text in clean {
        let f = check(text);
        assert!(f.iter().all(|f| f.code == "map-accounts"), "{text}\n{f:#?}");
    }
    let got: Vec<(usize, &str)> = check(fixture!("kubectl-edit"))
        .iter()
        .map(|f| (f.line, f.code))
        .collect();
    assert_eq!(got, [(13, "sso-role-path")]);
    let got: Vec<(usize, &str)> = check(fixture!("mapusers-only"))
        .iter()
        .map(|f| (f.line, f.code))
        .collect();
    assert_eq!(got, [(6, "no-node-role"), (11, "system-masters")]);
    let got: Vec<(usize, &str)> = check(fixture!("unindented"))
        .iter()
        .map(|f| (f.line, f.code))
        .collect();
    assert_eq!(got, [(8, "manifest-syntax")]);
    let got: Vec<(usize, &str)> = check(fixture!("tab-and-dash"))
        .iter()
        .map(|f| (f.line, f.code))
        .collect();
    assert_eq!(got, [(9, "yaml-syntax"), (14, "yaml-syntax")]);
    let got: Vec<(usize, &str)> = check(fixture!("double-quoted"))
        .iter()
        .map(|f| (f.line, f.code))
        .collect();
    assert_eq!(
        got,
        [(7, "system-masters")],
        "the line inside the quoted string"
    );
    let m = parse_manifest(fixture!("multi-doc"));
    let kinds: Vec<&DocKind> = m.docs.iter().map(|d| &d.kind).collect();
    assert!(matches!(
        kinds[..],
        [DocKind::Other, DocKind::ConfigMap { .. }, DocKind::Other]
    ));
}

// ---- properties over generated manifests ----

#[derive(Debug, Clone)]
struct Gen {
    entries: Vec<(u8, bool, bool)>, // (role number, groups flow, masters)
    indent: usize,
    // 0: `|`, 1: `|-`, 2: bare data block, 3: double-quoted string, 4: with other documents,
    // 5: CDK-style JSON in a single-quoted string, 6: `|+` with a blank line and a comment after it
    wrapper: u8,
    crlf: bool,
    final_newline: bool,
    comments: bool,
    users: bool,
}

fn render_list(g: &Gen) -> String {
    let mut s = String::new();
    for (i, (n, flow, masters)) in g.entries.iter().enumerate() {
        if g.comments && i == 1 {
            s.push_str("# a comment between items\n");
        }
        let group = if *masters { "system:masters" } else { "view" };
        s.push_str(&format!(
            "- rolearn: arn:aws:iam::111122223333:role/r{n}\n  username: u{n}\n"
        ));
        if *flow {
            s.push_str(&format!("  groups: [{group}]\n"));
        } else {
            s.push_str(&format!("  groups:\n  - {group}\n"));
        }
    }
    s
}

fn render(g: &Gen) -> String {
    let list = render_list(g);
    let pad = " ".repeat(g.indent);
    let block = |body: &str, key_pad: &str| -> String {
        body.lines()
            .map(|l| format!("{key_pad}{pad}{l}\n"))
            .collect()
    };
    let users = if g.users {
        "  mapUsers: |\n    - userarn: arn:aws:iam::111122223333:user/admin\n      username: admin\n      groups:\n        - system:masters\n"
    } else {
        ""
    };
    let head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n";
    let mut doc = match g.wrapper {
        0 | 4 => format!("{head}{users}  mapRoles: |\n{}", block(&list, "  ")),
        1 => format!("{head}{users}  mapRoles: |-\n{}", block(&list, "  ")),
        2 => format!("mapRoles: |\n{}", block(&list, "")),
        3 => format!(
            "{head}{users}  mapRoles: {}\n",
            serde_json::to_string(&list).unwrap()
        ),
        5 => {
            let items: Vec<serde_json::Value> = g
                .entries
                .iter()
                .map(|(n, _, masters)| {
                    serde_json::json!({
                        "rolearn": format!("arn:aws:iam::111122223333:role/r{n}"),
                        "username": format!("u{n}"),
                        "groups": [if *masters { "system:masters" } else { "view" }],
                    })
                })
                .collect();
            format!(
                "{head}{users}  mapRoles: '{}'\n",
                serde_json::to_string(&items).unwrap()
            )
        }
        _ => format!(
            "{head}  mapRoles: |+\n{}\n  # kept after the list\n{users}",
            block(&list, "  ")
        ),
    };
    if g.comments {
        doc = format!("# generated\n{doc}");
    }
    if g.wrapper == 4 {
        doc = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\n{doc}---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: y\n");
    }
    if !g.final_newline {
        doc.pop();
    }
    if g.crlf {
        doc = doc.replace('\n', "\r\n");
    }
    doc
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        prop::collection::vec((0u8..6, any::<bool>(), any::<bool>()), 1..5),
        prop::sample::select(vec![2usize, 4]),
        0u8..7,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(mut entries, indent, wrapper, crlf, final_newline, comments, users)| {
                entries.sort();
                entries.dedup_by_key(|e| e.0);
                Gen {
                    entries,
                    indent,
                    wrapper,
                    crlf,
                    final_newline,
                    comments,
                    users,
                }
            },
        )
}

fn new_mapping() -> impl Strategy<Value = (NewMapping, String)> {
    (
        "[a-z][a-z0-9-]{0,10}",
        prop::option::of("[a-z][a-z-]{0,8}"),
        "[a-z][a-z0-9:._-]{0,12}",
        prop::collection::vec("[a-z][a-z0-9-]{0,8}", 0..3),
    )
        .prop_map(|(name, path, username, groups)| {
            let arn = match &path {
                Some(p) => format!("arn:aws:iam::444455556666:role/{p}/{name}"),
                None => format!("arn:aws:iam::444455556666:role/{name}"),
            };
            let canonical = format!("arn:aws:iam::444455556666:role/{name}");
            (
                NewMapping {
                    arn,
                    username,
                    groups,
                },
                canonical,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn add_keeps_everything_and_checks_clean(g in gen(), (m, canonical) in new_mapping()) {
        let text = render(&g);
        let before = check(&text);
        let e = add_mapping(&text, &m, false).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        // No new findings (the node-role warning stays as it was: the new entry is no node role).
        let mut a = codes(&before);
        let mut b = codes(&check(&e.text));
        a.sort();
        b.sort();
        prop_assert_eq!(a, b, "{}", e.text);
        if g.wrapper != 3 && g.wrapper != 5 {
            prop_assert!(lines_kept(&text, &e.text), "old lines changed:\n{}", e.text);
        } else {
            let changed = text.lines().zip(e.text.lines()).filter(|(x, y)| x != y).count();
            prop_assert_eq!(changed, 1);
        }
        let roles = analyze_list(ListKind::Roles, &list(&e.text, ListKind::Roles).unwrap());
        prop_assert_eq!(roles.entries.len(), g.entries.len() + 1);
        let last = roles.entries.last().unwrap();
        prop_assert_eq!(last.arn.as_deref(), Some(canonical.as_str()));
        let back = remove_mapping(&e.text, &canonical, false).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.text, text);
    }

    #[test]
    fn user_adds_keep_everything(g in gen(), name in "[a-z][a-z0-9.@_-]{0,12}", groups in prop::collection::vec("[a-z][a-z0-9-]{0,8}", 0..3)) {
        let text = render(&g);
        let arn = format!("arn:aws:iam::444455556666:user/{name}");
        let m = NewMapping { arn: arn.clone(), username: name.clone(), groups };
        let e = add_mapping(&text, &m, false).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(e.kind, ListKind::Users);
        if g.wrapper != 3 && g.wrapper != 5 {
            prop_assert!(lines_kept(&text, &e.text), "old lines changed:\n{}", e.text);
        }
        let roles = |t: &str| list(t, ListKind::Roles).map(|l| l.trim_end_matches('\n').to_string());
        prop_assert_eq!(roles(&text), roles(&e.text));
        let users = analyze_list(ListKind::Users, &list(&e.text, ListKind::Users).unwrap());
        prop_assert_eq!(users.entries.last().and_then(|u| u.arn.clone()), Some(arn.clone()));
        let back = remove_mapping(&e.text, &arn, true).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if list(&text, ListKind::Users).is_some() {
            prop_assert_eq!(back.text, text);
        } else {
            prop_assert_eq!(list(&back.text, ListKind::Users), Some(String::new()));
        }
    }
}

#[test]
fn forms_that_cannot_be_extended_are_refused_but_still_checked() {
    let folded = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: >\n    - rolearn: arn:aws:iam::111122223333:role/team/a\n\n      username: a\n";
    let err = add_mapping(folded, &role(), false).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Layout { key, .. } if key == "mapRoles"),
        "{err}"
    );
    let f = check(folded);
    assert!(
        f.iter().any(|f| f.code == "role-path" && f.line == 7),
        "{f:?}"
    );
    let flow = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: aws-auth}\ndata: {mapRoles: \"- rolearn: arn:aws:iam::111122223333:role/a\\n  username: a\\n\"}\n";
    assert!(matches!(
        add_mapping(flow, &role(), false),
        Err(ManifestError::Layout { .. })
    ));
    assert_eq!(codes(&check(flow)), ["no-node-role"]);
    let empty =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\n";
    assert_eq!(codes(&check(empty)), ["no-mappings"]);
    assert!(matches!(
        add_mapping(empty, &role(), false),
        Err(ManifestError::Layout { .. })
    ));
    let not_string = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapAccounts:\n    - \"111122223333\"\n";
    assert_eq!(codes(&check(not_string)), ["not-a-string"]);
}

/// Pieces of aws-auth manifests, so random concatenations hit the scanner's interesting paths.
fn piece() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "apiVersion: v1\n",
        "kind: ConfigMap\n",
        "metadata:\n  name: aws-auth\n",
        "data:\n",
        "  mapRoles: |\n",
        "  mapRoles: |-\n",
        "  mapUsers: |2+\n",
        "  mapRoles: \"",
        "  mapRoles: '",
        "\\n",
        "\\\n",
        "''",
        "\"\n",
        "'\n",
        "    - rolearn: arn:aws:iam::111122223333:role/a\n",
        "      username: a\n",
        "      groups: [x]\n",
        "    - userarn: arn:aws:iam::111122223333:user/u\n",
        "---\n",
        "...\n",
        "# c\n",
        "\n",
        "\r\n",
        "\t",
        " ",
        "[{\"rolearn\":\"r\"}]",
        "mapRoles: |\n",
        "- rolearn: x\n",
        "  ",
        ">\n",
        "é",
        "{",
        "}",
        ":",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the file holds, checking and editing never panic, and an edit that succeeds re-parses.
    #[test]
    fn never_panics(pieces in prop::collection::vec(piece(), 0..24)) {
        let text: String = pieces.concat();
        let _ = check(&text);
        if let Ok(e) = add_mapping(&text, &role(), true) {
            prop_assert!(list(&e.text, ListKind::Roles).is_some());
        }
        let _ = remove_mapping(&text, "arn:aws:iam::111122223333:role/a", false);
        let _ = remove_mapping(&text, "arn:aws:iam::111122223333:user/u", true);
    }
}
