//! The subscription filter patterns in infra/ pass exactly the lines the function needs: every
//! line under events/lines/ (plus the authenticator's JSON and TTY formats) is run through a
//! matcher for CloudWatch Logs' term syntax and through the library's own diagnosis, and the two
//! must agree. The SAM template and the CDK app must carry the same two patterns.
//!
//! What passes (infra/README.md): `access denied` lines (every cause, with or without an ARN),
//! the aws-auth parse errors (`Errors parsing configmap`, `There was an error parsing the config
//! maps`), and with ForwardGrantedLines `access granted` lines. `STS response` lines never pass:
//! each is followed by a granted or denied line for the same request that carries what the
//! function uses, and they are as frequent as every authentication.

use std::path::Path;

use eks_auth_remediator::authlog;
use eks_auth_remediator::diagnosis::{self, Outcome};

/// One term of a CloudWatch Logs filter pattern for unstructured events.
#[derive(Debug)]
enum Term {
    All(String),
    Any(String),
    Not(String),
}

/// Parses the term syntax (`"phrase"`, `?"phrase"`, `-"phrase"`); JSON (`{...}`), space-delimited
/// (`[...]`) and regex (`%...%`) patterns, and unquoted words, are not needed here and rejected.
fn parse_pattern(p: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut rest = p.trim();
    while !rest.is_empty() {
        let (kind, after) = match rest.as_bytes()[0] {
            b'?' => ('?', &rest[1..]),
            b'-' => ('-', &rest[1..]),
            _ => (' ', rest),
        };
        let after = after
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("only quoted phrases are supported: {rest:?}"));
        let end = after.find('"').expect("unterminated phrase");
        let phrase = after[..end].to_string();
        assert!(!phrase.contains('\\'), "escapes are not supported");
        terms.push(match kind {
            '?' => Term::Any(phrase),
            '-' => Term::Not(phrase),
            _ => Term::All(phrase),
        });
        rest = after[end + 1..].trim_start();
    }
    let any = terms.iter().any(|t| matches!(t, Term::Any(_)));
    let other = terms.iter().any(|t| !matches!(t, Term::Any(_)));
    assert!(
        !(any && other),
        "?terms cannot be mixed with other terms: {p}"
    );
    terms
}

/// Case-sensitive substring matching, as CloudWatch Logs does for quoted phrases.
fn matches(terms: &[Term], message: &str) -> bool {
    if terms.iter().any(|t| matches!(t, Term::Any(_))) {
        return terms
            .iter()
            .any(|t| matches!(t, Term::Any(p) if message.contains(p.as_str())));
    }
    terms.iter().all(|t| match t {
        Term::All(p) => message.contains(p.as_str()),
        Term::Not(p) => !message.contains(p.as_str()),
        Term::Any(_) => unreachable!(),
    })
}

/// The text between the first and the last `'` on the line of `file` that contains `key`.
fn quoted_after(file: &str, key: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("{file}: no line with {key}"));
    let (start, end) = (line.find('\'').unwrap(), line.rfind('\'').unwrap());
    assert!(end > start, "{file}: {key} is not a single-quoted string");
    line[start + 1..end].to_string()
}

fn patterns() -> [(&'static str, String, bool); 2] {
    let sam = "infra/sam/template.yaml";
    let cdk = "infra/cdk/lib/filter-pattern.ts";
    let denials = quoted_after(sam, "DenialsOnly:");
    let granted = quoted_after(sam, "WithGranted:");
    assert_eq!(
        denials,
        quoted_after(cdk, "DENIALS_ONLY ="),
        "SAM and CDK differ"
    );
    assert_eq!(
        granted,
        quoted_after(cdk, "WITH_GRANTED ="),
        "SAM and CDK differ"
    );
    [
        ("DenialsOnly", denials, false),
        ("WithGranted", granted, true),
    ]
}

/// Lines as CloudWatch Logs stores them: every sample line, plus the other formats.
fn sample_lines() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/lines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for (i, l) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            if !l.trim().is_empty() {
                out.push((format!("{name}:{}", i + 1), l.to_string()));
            }
        }
    }
    let extra = [
        r#"{"arn":"arn:aws:iam::111122223333:role/dev","client":"127.0.0.1:1","error":"ARN is not mapped","level":"warning","msg":"access denied","time":"2022-12-28T15:37:19Z"}"#,
        r#"{"arn":"arn:aws:iam::111122223333:role/dev","groups":"[a]","level":"info","msg":"access granted","time":"2022-12-28T15:37:19Z","username":"dev"}"#,
        r#"WARN[2022-12-28T15:37:19Z] access denied                                 arn="arn:aws:iam::111122223333:role/dev" error="ARN is not mapped""#,
        r#"time="2022-12-28T15:37:19Z" level=info msg="STS response" accesskeyid=AKIA accountid=111122223333 arn="arn:aws:iam::111122223333:user/bob" client="127.0.0.1:1" method=POST path=/authenticate session= stsendpoint=sts.eu-west-1.amazonaws.com userid=AIDA"#,
        r#"time="2022-12-28T15:37:19Z" level=info msg="mapping IAM role" groups="[]" role="arn:aws:iam::111122223333:role/dev" username=dev"#,
    ];
    for (i, l) in extra.iter().enumerate() {
        out.push((format!("extra:{}", i + 1), l.to_string()));
    }
    out
}

/// Whether the function uses the line: findings come from denials and config errors; granted
/// lines feed incident detection when forwarded.
fn needed(line: &str, with_granted: bool) -> bool {
    let Ok(rec) = authlog::parse_line(line) else {
        return false;
    };
    match diagnosis::diagnose(&rec).outcome {
        Outcome::Denied | Outcome::ConfigError => true,
        Outcome::Granted => with_granted,
        Outcome::StsResponse | Outcome::Other => false,
    }
}

#[test]
fn patterns_pass_exactly_the_lines_the_function_needs() {
    let lines = sample_lines();
    assert!(lines.len() > 40, "too few sample lines: {}", lines.len());
    for (name, pattern, with_granted) in patterns() {
        let terms = parse_pattern(&pattern);
        let mut passed = 0;
        for (at, line) in &lines {
            let want = needed(line, with_granted);
            assert_eq!(
                matches(&terms, line),
                want,
                "{name} pattern {pattern:?} on {at}: expected {}\n{line}",
                if want { "pass" } else { "drop" }
            );
            passed += usize::from(want);
        }
        assert!(passed > 20, "{name}: only {passed} lines pass");
        assert!(passed < lines.len(), "{name}: every line passes");
    }
}

#[test]
fn matcher_follows_cloudwatch_term_semantics() {
    let any = parse_pattern(r#"?"access denied" ?"Errors parsing""#);
    assert!(matches(&any, "x access denied y"));
    assert!(matches(&any, "Errors parsing configmap"));
    assert!(
        !matches(&any, "Access Denied"),
        "matching is case-sensitive"
    );
    let all = parse_pattern(r#""access" "denied" -"granted""#);
    assert!(matches(&all, "denied access"));
    assert!(!matches(&all, "access denied, then granted"));
}
