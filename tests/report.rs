//! `eks-auth report`: golden output for the sample events at two widths, through the library and
//! the binary (no ANSI when stdout is not a terminal).

use eks_auth_remediator::event::{decode_bytes, Limits};
use eks_auth_remediator::report::{collect, render, Options};

const FILES: [&str; 4] = [
    "events/mixed.json",
    "events/not-mapped.json",
    "events/config-error.json",
    "events/decoded-mixed.json",
];

fn path(f: &str) -> String {
    format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))
}

fn library(width: usize) -> String {
    let decoded: Vec<_> = FILES
        .iter()
        .map(|f| decode_bytes(&std::fs::read(path(f)).unwrap(), &Limits::default()).unwrap())
        .collect();
    let (entries, unparsed) = collect(&decoded);
    render(
        &entries,
        unparsed,
        &Options {
            width,
            color: false,
        },
    )
}

#[test]
fn golden_output() {
    for (width, golden) in [
        (100, include_str!("data/report-100.golden")),
        (60, include_str!("data/report-60.golden")),
    ] {
        let out = library(width);
        assert_eq!(out, golden, "width {width}:\n{out}");
        assert!(out.lines().all(|l| l.chars().count() <= width));
    }
}

#[test]
fn the_binary_prints_the_same_without_ansi() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .arg("report")
        .args(FILES.iter().map(|f| path(f)))
        .env("COLUMNS", "60")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "stdout is a pipe: no colour");
    assert_eq!(text, include_str!("data/report-60.golden"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args(["report", "/nonexistent.json"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
