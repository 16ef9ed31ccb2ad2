//! `eks-auth aws-auth check|add|remove` through the real binary: exit statuses, output formats (golden files under
//! `data/aws-auth/golden/`, regenerate with `UPDATE_GOLDEN=1`), stdin, `--dry-run` diffs that `patch` applies,
//! `--in-place` writes that keep permissions.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-auth")
}

fn configmaps() -> PathBuf {
    data().join("configmaps")
}

/// Runs `eks-auth aws-auth ARGS` in `dir` with `stdin`.
fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .arg("aws-auth")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eks-auth");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(d) = stdin {
        pipe.write_all(d).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn run(args: &[&str]) -> Output {
    run_in(&configmaps(), args, None)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn golden(name: &str, got: &str) {
    let path = data().join("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(
        got, want,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 regenerates it)"
    );
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("eks-auth-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_golden_outputs() {
    for fixture in [
        "broken",
        "kubectl-edit",
        "mapusers-only",
        "tab-and-dash",
        "double-quoted",
    ] {
        let file = format!("{fixture}.yaml");
        let human = run(&["check", &file, "--fail-on", "never"]);
        assert_eq!(code(&human), 0, "{}", err(&human));
        golden(&format!("{fixture}.txt"), &out(&human));
        let json = run(&["check", "--json", &file, "--fail-on", "never"]);
        golden(&format!("{fixture}.json"), &out(&json));
        let v: serde_json::Value = serde_json::from_str(&out(&json)).unwrap();
        let findings = v["files"][0]["findings"].as_array().unwrap();
        assert_eq!(
            findings.len(),
            out(&human).lines().count() - 1,
            "one human line per finding, plus the summary"
        );
        let gh = run(&["check", "--format", "github", &file, "--fail-on", "never"]);
        golden(&format!("{fixture}.github"), &out(&gh));
        for line in out(&gh).lines() {
            assert!(
                line.starts_with(&format!("::error file={file},line="))
                    || line.starts_with(&format!("::warning file={file},line="))
                    || line.starts_with(&format!("::notice file={file},line=")),
                "{line}"
            );
            assert!(line.contains(",title=aws-auth "), "{line}");
        }
    }
}

#[test]
fn check_exit_statuses() {
    let o = run(&[
        "check",
        "block-scalars.yaml",
        "multi-doc.yaml",
        "crlf-no-final-newline.yaml",
    ]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert!(
        out(&o).ends_with("3 files checked: 0 errors, 0 warnings, 1 info\n"),
        "{}",
        out(&o)
    );
    let o = run(&["check", "broken.yaml"]);
    assert_eq!(code(&o), 1);
    // Warnings fail only when asked to.
    assert_eq!(code(&run(&["check", "mapusers-only.yaml"])), 0);
    assert_eq!(
        code(&run(&[
            "check",
            "mapusers-only.yaml",
            "--fail-on",
            "warning"
        ])),
        1
    );
    assert_eq!(
        code(&run(&["check", "kubectl-get.yaml", "--fail-on", "warning"])),
        0
    );
    assert_eq!(
        code(&run(&["check", "kubectl-get.yaml", "--fail-on", "info"])),
        1
    );
    assert_eq!(
        code(&run(&["check", "broken.yaml", "--fail-on", "never"])),
        0
    );
    // Unreadable input wins over findings, and the other files are still checked.
    let o = run(&["check", "broken.yaml", "does-not-exist.yaml"]);
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).contains("cannot read does-not-exist.yaml"),
        "{}",
        err(&o)
    );
    assert!(out(&o).contains("broken.yaml:13: error[role-path]"));
    let dir = tmp_dir("latin1");
    std::fs::write(dir.join("x.yaml"), b"data:\n  mapRoles: \xe9\n").unwrap();
    let o = run_in(&dir, &["check", "x.yaml"], None);
    assert_eq!(
        (code(&o), err(&o).contains("not UTF-8")),
        (2, true),
        "{}",
        err(&o)
    );
    // stdin
    let text = std::fs::read(configmaps().join("kubectl-edit.yaml")).unwrap();
    let o = run_in(&configmaps(), &["check", "-"], Some(&text));
    assert_eq!(code(&o), 1);
    assert!(
        out(&o).starts_with("<stdin>:13: error[sso-role-path]"),
        "{}",
        out(&o)
    );
    // Not aws-auth at all, and a manifest that does not parse.
    let o = run_in(
        &configmaps(),
        &["check", "-"],
        Some(b"apiVersion: v1\nkind: Namespace\n"),
    );
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("<stdin>:1: error[no-aws-auth]"));
    let o = run(&["check", "unindented.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(out(&o).starts_with("unindented.yaml:8: error[manifest-syntax]"));
}

#[test]
fn add_prints_the_file_with_one_item_more() {
    let o = run(&[
        "add",
        "kubectl-edit.yaml",
        "--arn",
        "arn:aws:iam::444455556666:role/deploy/ci-deployer",
        "--username",
        "ci-deployer",
        "--group",
        "deployers",
        "--group",
        "view",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let old = std::fs::read_to_string(configmaps().join("kubectl-edit.yaml")).unwrap();
    let new = out(&o);
    let expected = old.replace(
        "        - edit\n",
        "        - edit\n    - rolearn: arn:aws:iam::444455556666:role/ci-deployer\n      username: ci-deployer\n      groups:\n        - deployers\n        - view\n",
    );
    assert_eq!(new, expected);
    assert!(err(&o).contains("note: role path stripped"), "{}", err(&o));
    // Check of the result: the only finding is the one that was there.
    let o2 = run_in(&configmaps(), &["check", "-"], Some(new.as_bytes()));
    assert_eq!(out(&o2).lines().filter(|l| l.contains("error[")).count(), 1);
    // Already present: exit 0, the file unchanged on stdout.
    let o = run_in(
        &configmaps(),
        &[
            "add",
            "-",
            "--arn",
            "arn:aws:iam::444455556666:role/ci-deployer",
            "--username",
            "ci-deployer",
            "--group",
            "view",
            "--group",
            "deployers",
        ],
        Some(new.as_bytes()),
    );
    assert_eq!(code(&o), 0);
    assert_eq!(out(&o), new);
    assert!(err(&o).contains("already present"), "{}", err(&o));
    // Conflict: exit 2 with the line; --replace swaps it.
    let args = [
        "add",
        "-",
        "--arn",
        "arn:aws:iam::444455556666:role/ci-deployer",
        "--username",
        "other",
    ];
    let o = run_in(&configmaps(), &args, Some(new.as_bytes()));
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).contains("already has a different mapping (line 17)"),
        "{}",
        err(&o)
    );
    assert!(out(&o).is_empty());
    let mut replace = args.to_vec();
    replace.push("--replace");
    let o = run_in(&configmaps(), &replace, Some(new.as_bytes()));
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("    - rolearn: arn:aws:iam::444455556666:role/ci-deployer\n      username: other\n      groups: []\nkind"), "{}", out(&o));
    assert!(
        err(&o).contains("note: replaced the earlier mapping"),
        "{}",
        err(&o)
    );
    // Refusals: invalid ARN, a file that does not parse, placeholders.
    for (file, arn) in [
        ("kubectl-edit.yaml", "arn:aws:iam::444455556666:policy/x"),
        ("kubectl-edit.yaml", "${ROLE_ARN}"),
        ("unindented.yaml", "arn:aws:iam::444455556666:role/x"),
        ("tab-and-dash.yaml", "arn:aws:iam::444455556666:role/x"),
    ] {
        let o = run(&["add", file, "--arn", arn, "--username", "x"]);
        assert_eq!(code(&o), 2, "{file} {arn}");
        assert!(out(&o).is_empty());
        assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    }
}

#[test]
fn dry_run_diffs_apply_with_patch_and_in_place_keeps_permissions() {
    let dir = tmp_dir("inplace");
    for name in [
        "crlf-no-final-newline.yaml",
        "cdk.yaml",
        "mapusers-only.yaml",
        "multi-doc.yaml",
    ] {
        let orig = std::fs::read(configmaps().join(name)).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, &orig).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let args = [
            "add",
            name,
            "--arn",
            "arn:aws:iam::444455556666:role/deployer",
            "--username",
            "deployer",
            "--group",
            "deployers",
        ];
        let printed = run_in(&dir, &args, None);
        assert_eq!(code(&printed), 0, "{}", err(&printed));
        let mut dry = args.to_vec();
        dry.push("--dry-run");
        let diff = run_in(&dir, &dry, None);
        assert_eq!(code(&diff), 0);
        assert!(
            out(&diff).starts_with(&format!("--- a/{name}\n+++ b/{name}\n@@ ")),
            "{}",
            out(&diff)
        );
        assert_eq!(std::fs::read(&file).unwrap(), orig, "--dry-run wrote");
        // The diff applies with patch(1) and gives exactly what `add` printed.
        let copy = dir.join(format!("{name}.patched"));
        std::fs::write(&copy, &orig).unwrap();
        let mut p = Command::new("patch")
            .arg(&copy)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("patch(1)");
        p.stdin.take().unwrap().write_all(&diff.stdout).unwrap();
        assert!(p.wait().unwrap().success());
        assert_eq!(std::fs::read(&copy).unwrap(), printed.stdout, "{name}");
        let mut inplace = args.to_vec();
        inplace.push("--in-place");
        let o = run_in(&dir, &inplace, None);
        assert_eq!(code(&o), 0, "{}", err(&o));
        assert!(out(&o).is_empty());
        assert_eq!(std::fs::read(&file).unwrap(), printed.stdout);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // Removing it again in place restores the original bytes (the list existed before).
        let o = run_in(
            &dir,
            &[
                "remove",
                name,
                "--arn",
                "arn:aws:iam::444455556666:role/deployer",
                "--in-place",
            ],
            None,
        );
        assert_eq!(code(&o), 0, "{}", err(&o));
        if name != "mapusers-only.yaml" {
            assert_eq!(std::fs::read(&file).unwrap(), orig, "{name}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
    let o = run_in(
        &dir,
        &[
            "add",
            "-",
            "--arn",
            "arn:aws:iam::1:role/x",
            "--username",
            "x",
            "--in-place",
        ],
        Some(b""),
    );
    assert_eq!(code(&o), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn remove_refuses_the_last_node_and_masters_mappings() {
    let nodes = "arn:aws:iam::111122223333:role/eksctl-prod-nodegroup-ng-NodeInstanceRole-1ABCDEF";
    let o = run(&["remove", "kubectl-get.yaml", "--arn", nodes]);
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).contains("refusing to remove the last node-role mapping (line 6)"),
        "{}",
        err(&o)
    );
    let o = run(&["remove", "kubectl-get.yaml", "--arn", nodes, "--force"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        err(&o).contains("note: removed a node mapping (line 6)"),
        "{}",
        err(&o)
    );
    assert!(!out(&o).contains("NodeInstanceRole"));
    let o = run(&[
        "remove",
        "mapusers-only.yaml",
        "--arn",
        "arn:aws:iam::111122223333:user/admin",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        err(&o).contains("last system:masters mapping (line 9)"),
        "{}",
        err(&o)
    );
    // Not present: exit 0, unchanged, with a hint when the entry is written with a path.
    let o = run(&[
        "remove",
        "kubectl-edit.yaml",
        "--arn",
        "arn:aws:iam::111122223333:role/AWSReservedSSO_PowerUser_fedcba9876543210",
    ]);
    assert_eq!(code(&o), 0);
    assert!(
        err(&o).contains("not present") && err(&o).contains("at line 13 names it with its path"),
        "{}",
        err(&o)
    );
    assert_eq!(
        out(&o),
        std::fs::read_to_string(configmaps().join("kubectl-edit.yaml")).unwrap()
    );
    // Broken entries can be removed by what they say.
    let o = run(&[
        "remove",
        "broken.yaml",
        "--arn",
        "arn:aws:iam::111122223333:role/*",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(!out(&o).contains("role/*"));
    let o = run(&[
        "remove",
        "broken.yaml",
        "--arn",
        "arn:aws:iam::111122223333:role/ops",
        "--dry-run",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        out(&o)
            .lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count(),
        5,
        "{}",
        out(&o)
    );
}

#[test]
fn pre_commit_hook_definition_runs_the_checker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(".pre-commit-hooks.yaml")).unwrap();
    let hooks: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let hook = hooks
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "eks-auth-aws-auth-check")
        .expect("hook eks-auth-aws-auth-check");
    assert_eq!(hook["language"], "rust");
    let entry: Vec<&str> = hook["entry"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(entry, ["eks-auth", "aws-auth", "check"]);
    // pre-commit appends the staged file names to the entry.
    let mut args: Vec<&str> = entry[2..].to_vec(); // `run` supplies `eks-auth aws-auth`
    args.extend(["kubectl-edit.yaml", "block-scalars.yaml"]);
    let o = run(&args);
    assert_eq!(code(&o), 1, "{}", out(&o));
    // The default file pattern matches aws-auth manifests and nothing else.
    let pattern = hook["files"].as_str().unwrap();
    assert_eq!(pattern, r"(^|/)aws-auth[^/]*\.ya?ml$");
}

#[test]
fn bare_lists_are_checked_too() {
    let lists = data().join("lists");
    let codes = |file: &str| -> Vec<(u64, String)> {
        let o = run_in(
            &lists,
            &["check", "--json", file, "--fail-on", "never"],
            None,
        );
        assert_eq!(code(&o), 0, "{}", err(&o));
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        v["files"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["line"].as_u64().unwrap(),
                    f["code"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let paths = codes("paths.yaml");
    let paths: Vec<(u64, &str)> = paths.iter().map(|(l, c)| (*l, c.as_str())).collect();
    assert_eq!(
        paths,
        [
            (1, "role-path"), // service-role/
            (1, "no-node-role"),
            (5, "role-path"), // aws-service-role/eks.amazonaws.com/
            (8, "sso-role-path"),
            (10, "system-masters"),
            (12, "role-path"), // gitlab-ci/
        ]
    );
    let sso = codes("sso-matcher.yaml");
    assert!(
        sso.contains(&(1, "sso-matcher".into())) && sso.contains(&(7, "entry-dropped".into())),
        "{sso:?}"
    );
    assert_eq!(
        codes("dash-no-space.yaml"),
        [(2, "manifest-syntax".to_string())]
    );
    assert_eq!(codes("document-markers.yaml"), []);
    assert_eq!(codes("fargate.yaml"), []);
}
