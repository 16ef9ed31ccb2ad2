//! A small unified diff for `--dry-run`: the edits here change one contiguous run of lines, so one hunk (common
//! prefix and suffix lines as context) is exact and minimal for them.

use std::fmt::Write as _;

/// A unified diff of `old` to `new` (empty when equal), `patch`/`git apply` compatible.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    let (ol, nl): (Vec<&str>, Vec<&str>) = (
        old.split_inclusive('\n').collect(),
        new.split_inclusive('\n').collect(),
    );
    let lp = ol.iter().zip(&nl).take_while(|(a, b)| a == b).count();
    let max = ol.len().min(nl.len()) - lp;
    let ls = ol
        .iter()
        .rev()
        .zip(nl.iter().rev())
        .take(max)
        .take_while(|(a, b)| a == b)
        .count();
    const CONTEXT: usize = 3;
    let start = lp.saturating_sub(CONTEXT);
    let tail = ls.min(CONTEXT);
    let (old_end, new_end) = (ol.len() - ls + tail, nl.len() - ls + tail);
    let range = |s: usize, e: usize| {
        let n = e - s;
        format!("{},{n}", if n == 0 { s } else { s + 1 })
    };
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    let _ = writeln!(
        out,
        "@@ -{} +{} @@",
        range(start, old_end),
        range(start, new_end)
    );
    let mut line = |prefix: char, l: &str| {
        out.push(prefix);
        match l.strip_suffix('\n') {
            Some(body) => {
                out.push_str(body);
                out.push('\n');
            }
            None => {
                out.push_str(l);
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    };
    for l in &ol[start..lp] {
        line(' ', l);
    }
    for l in &ol[lp..ol.len() - ls] {
        line('-', l);
    }
    for l in &nl[lp..nl.len() - ls] {
        line('+', l);
    }
    for l in &ol[ol.len() - ls..old_end] {
        line(' ', l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hunk_with_context() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "a\nb\nc\nd\nX\ne\nf\n";
        assert_eq!(
            unified_diff(old, new, "a/f", "b/f"),
            "--- a/f\n+++ b/f\n@@ -2,5 +2,6 @@\n b\n c\n d\n+X\n e\n f\n"
        );
        assert_eq!(unified_diff(old, old, "a", "b"), "");
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let d = unified_diff("a\nb", "a\nb\nc", "x", "y");
        assert_eq!(
            d,
            "--- x\n+++ y\n@@ -1,2 +1,3 @@\n a\n-b\n\\ No newline at end of file\n+b\n+c\n\\ No newline at end of file\n"
        );
        assert_eq!(
            unified_diff("", "a\n", "x", "y"),
            "--- x\n+++ y\n@@ -0,0 +1,1 @@\n+a\n"
        );
    }
}
