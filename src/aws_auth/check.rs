//! `eks-auth aws-auth check`: what the authenticator would do with a manifest, as findings with file lines.
//!
//! The findings come from the same analysis the remediator runs on live clusters ([`super::analyze_list`]); this
//! module only places them in the file and ranks them.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::analyze::{analyze_accounts, analyze_list, Entry, KeyErrorKind, ListAnalysis, ListKind};
use super::layout::{self, Shape};
use super::manifest::{parse_manifest, DocKind, Document};
use super::problems::{Field, Problem};

/// How bad a finding is. `--fail-on` compares against this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing (`system:masters` grants, account-wide mappings).
    Info,
    /// Probably not what was meant, but nothing is lost (duplicates, ignored keys, no node role).
    Warning,
    /// The authenticator drops or never matches something, or the manifest is unusable.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One thing the checker found, placed in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// 1-based line in the file.
    pub line: usize,
    pub severity: Severity,
    /// Stable identifier (`role-path`, `duplicate-arn`, ...).
    pub code: &'static str,
    pub message: String,
    /// The data key concerned (`mapRoles`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// 1-based item number within the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
}

impl Finding {
    /// A short title for annotations.
    pub fn title(&self) -> String {
        format!("aws-auth {}", self.code)
    }
}

/// Checks a manifest file's text: every aws-auth document in it.
pub fn check(text: &str) -> Vec<Finding> {
    let manifest = parse_manifest(text);
    let mut out = Vec::new();
    let mut any = false;
    for doc in manifest.targets() {
        any = true;
        check_doc(text, doc, &mut out);
    }
    if !any {
        let error = manifest.docs.iter().find_map(|d| d.error.as_ref());
        out.push(match error {
            Some(e) => Finding {
                line: e.line,
                severity: Severity::Error,
                code: "manifest-syntax",
                message: format!("the file does not parse as YAML: {}", e.message),
                key: None,
                entry: None,
            },
            None => Finding {
                line: 1,
                severity: Severity::Error,
                code: "no-aws-auth",
                message: "no aws-auth ConfigMap, data block or mapRoles/mapUsers list found".into(),
                key: None,
                entry: None,
            },
        });
    }
    out.sort_by(|a, b| a.line.cmp(&b.line).then(b.severity.cmp(&a.severity)));
    out
}

fn check_doc(text: &str, doc: &Document, out: &mut Vec<Finding>) {
    let doc_line = doc.data_line.unwrap_or(doc.first_line);
    let mut push = |line: usize, severity, code, message: String, key: Option<&str>, entry| {
        out.push(Finding {
            line,
            severity,
            code,
            message,
            key: key.map(str::to_string),
            entry,
        });
    };
    if let Some(e) = &doc.error {
        push(
            e.line,
            Severity::Error,
            "manifest-syntax",
            format!(
                "the manifest does not parse as YAML, so it cannot be applied: {}",
                e.message
            ),
            None,
            None,
        );
        return;
    }
    if let DocKind::ConfigMap {
        name, namespace, ..
    } = &doc.kind
    {
        if name.as_deref() != Some("aws-auth")
            || namespace.as_deref().is_some_and(|n| n != "kube-system")
        {
            push(
                doc.first_line,
                Severity::Warning,
                "not-aws-auth",
                format!(
                    "this ConfigMap is {}/{}: the authenticator reads only kube-system/aws-auth",
                    namespace.as_deref().unwrap_or("<no namespace>"),
                    name.as_deref().unwrap_or("<no name>")
                ),
                None,
                None,
            );
        }
    }
    let key_line = |k: &str| doc.values.get(k).map_or(doc_line, |l| l.key_line);
    for k in &doc.not_strings {
        push(
            doc_line,
            Severity::Error,
            "not-a-string",
            format!("data.{k} is not a string: ConfigMap data values must be strings (use `{k}: |`), so the API server rejects this manifest"),
            Some(k),
            None,
        );
    }
    for k in doc.data.keys() {
        let exact = ["mapRoles", "mapUsers", "mapAccounts"];
        if exact.contains(&k.as_str()) {
            continue;
        }
        if let Some(real) = exact.iter().find(|e| e.eq_ignore_ascii_case(k)) {
            push(
                key_line(k),
                Severity::Error,
                "case-variant-key",
                format!("'{k}' is ignored: the authenticator reads only '{real}' (exact case), so none of its mappings apply"),
                Some(k),
                None,
            );
        }
    }
    let mut lists: Vec<(ListKind, ListAnalysis)> = Vec::new();
    for kind in [ListKind::Roles, ListKind::Users] {
        let key = kind.data_key();
        let Some(inner) = doc.data.get(key) else {
            continue;
        };
        let analysis = analyze_list(kind, inner);
        let at = |inner_line: Option<usize>| match (inner_line, doc.values.get(key)) {
            (Some(l), Some(loc)) => loc.file_line(text, l),
            _ => key_line(key),
        };
        if let Some(e) = &analysis.error {
            let (code, what) = match e.kind {
                KeyErrorKind::Syntax => ("yaml-syntax", "does not parse as YAML"),
                KeyErrorKind::Type => ("key-type", "has a value of the wrong type"),
            };
            push(
                at(e.line),
                Severity::Error,
                code,
                format!(
                    "{key} {what} ({}): the authenticator drops the whole key",
                    strip_positions(&e.message)
                ),
                Some(key),
                None,
            );
        }
        let fields = field_lines(kind, inner, analysis.entries.len());
        for entry in &analysis.entries {
            let lines = fields.as_ref().and_then(|f| f.get(entry.index));
            let line_of = |f: Option<Field>| {
                let inner_line = f
                    .and_then(|f| lines.and_then(|l| l[slot(f)]))
                    .or(entry.line);
                at(inner_line)
            };
            let n = entry.index + 1;
            if let Some(reason) = &entry.dropped {
                push(
                    line_of(None),
                    Severity::Error,
                    "entry-dropped",
                    format!("{key} entry {n} is dropped by the authenticator: {reason}"),
                    Some(key),
                    Some(n),
                );
            }
            for p in &entry.problems {
                let Some((severity, code, field)) = classify(p) else {
                    continue;
                };
                let message = match p {
                    Problem::ShadowedBy { index, line } => format!(
                        "{key} entry {n}: duplicate ARN {}: entry {} (line {}) maps it too and wins, so this one is ignored",
                        entry.arn.as_deref().unwrap_or_default(),
                        index + 1,
                        at(*line)
                    ),
                    other => format!("{key} entry {n}: {other}"),
                };
                push(line_of(field), severity, code, message, Some(key), Some(n));
            }
        }
        lists.push((kind, analysis));
    }
    if let Some(inner) = doc.data.get("mapAccounts") {
        let a = analyze_accounts(inner);
        let loc = doc.values.get("mapAccounts");
        let at = |l: Option<usize>| match (l, loc) {
            (Some(l), Some(loc)) => loc.file_line(text, l),
            _ => key_line("mapAccounts"),
        };
        if let Some(e) = &a.error {
            push(
                at(e.line),
                Severity::Error,
                "yaml-syntax",
                format!(
                    "mapAccounts does not parse ({}): the authenticator drops the whole key",
                    strip_positions(&e.message)
                ),
                Some("mapAccounts"),
                None,
            );
        }
        for acc in &a.accounts {
            let (severity, code, message) = if acc.valid {
                (
                    Severity::Info,
                    "map-accounts",
                    format!("every IAM identity of account {} is mapped (username = its ARN, no groups)", acc.value),
                )
            } else {
                (
                    Severity::Error,
                    "invalid-account",
                    format!(
                        "mapAccounts item '{}' is not a 12-digit account ID: it never matches",
                        acc.value
                    ),
                )
            };
            push(
                at(acc.line),
                severity,
                code,
                message,
                Some("mapAccounts"),
                Some(acc.index + 1),
            );
        }
    }
    let exact = ["mapRoles", "mapUsers", "mapAccounts"];
    if !exact
        .iter()
        .any(|k| doc.data.contains_key(*k) || doc.not_strings.iter().any(|n| n == k))
    {
        push(
            doc_line,
            Severity::Warning,
            "no-mappings",
            "no mapRoles, mapUsers or mapAccounts: no IAM identity is mapped (only the cluster creator and access entries get in)".into(),
            None,
            None,
        );
    }
    let has_entries = lists.iter().any(|(_, l)| !l.entries.is_empty());
    let has_node = lists
        .iter()
        .any(|(k, l)| *k == ListKind::Roles && l.effective().any(is_node));
    if has_entries && !has_node {
        let line = doc.values.get("mapRoles").map_or(doc_line, |l| l.key_line);
        push(
            line,
            Severity::Warning,
            "no-node-role",
            "no node-role mapping (username system:node:{{EC2PrivateDNSName}}, groups system:bootstrappers and system:nodes): nodes cannot join unless they have EKS access entries".into(),
            Some("mapRoles"),
            None,
        );
    }
}

/// Drops the parser's ` at line N column M` (positions inside the list, not the file; the finding's line is the
/// file's).
fn strip_positions(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(tail);
        let after = &tail[n..];
        match after.strip_prefix(" column ") {
            Some(c) if n > 0 && digits(c) > 0 => rest = &c[digits(c)..],
            _ if n > 0 => rest = after,
            _ => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_node(e: &Entry) -> bool {
    e.groups.iter().any(|g| g == "system:nodes")
}

/// Severity, code and the field whose line to report, per problem (`None`: not reported on its own).
fn classify(p: &Problem) -> Option<(Severity, &'static str, Option<Field>)> {
    use Severity::{Error, Info, Warning};
    Some(match p {
        Problem::InvalidArn { .. } => (Error, "invalid-arn", Some(Field::Arn)),
        Problem::Placeholder { field, .. } => (Error, "placeholder", Some(*field)),
        Problem::Wildcard => (Error, "wildcard", Some(Field::Arn)),
        Problem::Whitespace => (Error, "arn-whitespace", Some(Field::Arn)),
        Problem::RolePath { .. } => (Error, "role-path", Some(Field::Arn)),
        Problem::SsoRolePath { .. } => (Error, "sso-role-path", Some(Field::Arn)),
        Problem::AssumedRoleArn { .. } => (Error, "assumed-role-arn", Some(Field::Arn)),
        Problem::EmptyUsername => (Error, "empty-username", Some(Field::Username)),
        Problem::ReservedUsername { .. } => (Error, "reserved-username", Some(Field::Username)),
        Problem::UnknownTemplate { field, .. } => (Warning, "unknown-template", Some(*field)),
        Problem::SystemMasters => (Info, "system-masters", Some(Field::Group)),
        Problem::ShadowedBy { .. } => (Warning, "duplicate-arn", Some(Field::Arn)),
        Problem::Overrides { .. } => return None,
        Problem::AmbiguousKey { .. } => (Warning, "case-variant-key", None),
        Problem::UnknownKey { .. } => (Warning, "unknown-key", None),
        Problem::SsoMatcher { .. } => (Warning, "sso-matcher", None),
    })
}

fn slot(f: Field) -> usize {
    match f {
        Field::Arn => 0,
        Field::Username => 1,
        Field::Group => 2,
    }
}

/// Per item, the 1-based list lines of its ARN, username and groups keys, when the scanner follows the list.
fn field_lines(kind: ListKind, text: &str, count: usize) -> Option<Vec<[Option<usize>; 3]>> {
    let items = match layout::scan(text) {
        Shape::Block(b) => b.items,
        Shape::Flow(f) => f.items,
        _ => return None,
    };
    (items.len() == count).then(|| {
        items
            .iter()
            .map(|item| {
                let mut out = [None; 3];
                for p in &item.pairs {
                    if let Some(f) = p
                        .key
                        .as_deref()
                        .and_then(|k| super::analyze::field_kind(kind, k))
                    {
                        out[slot(f)].get_or_insert(layout::line_of(text, p.key_raw.start));
                    }
                }
                out
            })
            .collect()
    })
}

/// Counts of findings per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub error: usize,
    pub warning: usize,
    pub info: usize,
}

impl Summary {
    /// Counts `findings`.
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Summary {
        let mut s = Summary::default();
        for f in findings {
            match f.severity {
                Severity::Error => s.error += 1,
                Severity::Warning => s.warning += 1,
                Severity::Info => s.info += 1,
            }
        }
        s
    }
}

/// Human-readable lines: `FILE:LINE: severity[code]: message`.
pub fn format_human(file: &str, findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(
            out,
            "{file}:{}: {}[{}]: {}",
            f.line, f.severity, f.code, f.message
        );
    }
    out
}

/// GitHub Actions workflow commands (`::error file=F,line=L,title=T::msg`); info becomes `notice`.
pub fn format_github(file: &str, findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let _ = writeln!(
            out,
            "::{level} file={},line={},title={}::{}",
            gh_property(file),
            f.line,
            gh_property(&f.title()),
            gh_data(&f.message)
        );
    }
    out
}

fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_findings_on_file_lines() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/team/admin\n      username: admin\n      groups:\n        - system:masters\n";
        let f = check(text);
        let codes: Vec<(usize, &str)> = f.iter().map(|f| (f.line, f.code)).collect();
        assert_eq!(
            codes,
            [
                (7, "no-node-role"),
                (8, "role-path"),
                (10, "system-masters")
            ]
        );
    }

    #[test]
    fn positions_inside_the_list_are_dropped() {
        assert_eq!(
            strip_positions(
                "found a tab at line 2 column 1, while scanning at line 1 column 12 (x)"
            ),
            "found a tab, while scanning (x)"
        );
    }

    #[test]
    fn github_escapes() {
        assert_eq!(gh_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(gh_data("x\ny"), "x%0Ay");
    }
}
