//! `eks-auth report`: a terminal summary of one or more decoded events (pure).
//!
//! A table of (cause, principal) with counts and first/last seen, then the denials over time as
//! a text histogram (per-minute buckets when the span is at most two hours, else per hour).
//! Output fits `width` columns; colour (ANSI) only when asked for, never when not a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::authlog;
use crate::diagnosis::{self, Outcome};
use crate::event::Decoded;
use crate::timefmt;

/// One denial (or aws-auth parse error) from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The cause, or `config_error`.
    pub cause: String,
    pub principal: Option<String>,
    pub cluster: Option<String>,
    pub ms: Option<i64>,
}

/// How to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Terminal width in columns (at least 40 is used).
    pub width: usize,
    /// ANSI colour (bold headers, coloured causes).
    pub color: bool,
}

/// The denials and aws-auth parse errors of decoded events, redeliveries counted once.
pub fn collect(decoded: &[Decoded]) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut unparsed = 0;
    let mut seen = std::collections::HashSet::new();
    for d in decoded {
        for b in &d.batches {
            for ev in &b.events {
                if let Some(id) = ev.id {
                    if !id.is_empty() && !seen.insert(id) {
                        continue;
                    }
                }
                let message = ev.message();
                let rec = match authlog::parse_entry(&message) {
                    Ok(r) => r,
                    Err(authlog::ParseError::Empty) => continue,
                    Err(_) => {
                        unparsed += 1;
                        continue;
                    }
                };
                let dx = diagnosis::diagnose(&rec);
                let cause = match (dx.outcome, dx.cause) {
                    (Outcome::Denied, Some(c)) => c.as_str().to_string(),
                    (Outcome::ConfigError, _) => "config_error".to_string(),
                    _ => continue,
                };
                out.push(Entry {
                    cause,
                    principal: dx.principal.clone(),
                    cluster: b.origin.cluster.clone(),
                    ms: ev
                        .timestamp
                        .or_else(|| dx.time.as_deref().and_then(timefmt::parse_ms)),
                });
            }
        }
    }
    (out, unparsed)
}

fn paint(s: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn cause_color(cause: &str) -> &'static str {
    match cause {
        "not_mapped" | "config_error" => "31",
        "sts_throttled" => "90",
        "invalid_client_token" | "expired_token" | "token_expired" => "33",
        _ => "35",
    }
}

/// Cuts `s` to `max` characters, marking the cut with `…`.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{keep}…")
}

/// Cuts `s` to `max` characters from the left: an ARN's end (the name) is what tells them apart.
fn fit_left(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let keep: String = s.chars().skip(n + 1 - max.max(1)).collect();
    format!("…{keep}")
}

fn short_time(ms: Option<i64>) -> String {
    // 2022-12-28T15:37:19.000Z -> 2022-12-28 15:37:19
    ms.map(timefmt::format_ms)
        .map(|t| t.replace('T', " ").chars().take(19).collect())
        .unwrap_or_else(|| "-".into())
}

/// Count, first and last time of one table row.
type Span = (u64, Option<i64>, Option<i64>);

/// Renders the summary.
pub fn render(entries: &[Entry], unparsed: u64, o: &Options) -> String {
    let width = o.width.max(40);
    let mut s = String::new();
    let clusters: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e.cluster.as_deref())
        .collect();
    let _ = writeln!(
        s,
        "{}",
        paint(
            &fit(
                &format!(
                    "{} denial(s) in {} cluster(s){}",
                    entries.len(),
                    clusters.len(),
                    if clusters.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", clusters.into_iter().collect::<Vec<_>>().join(", "))
                    }
                ),
                width
            ),
            "1",
            o.color
        )
    );
    if unparsed > 0 {
        let _ = writeln!(s, "{unparsed} line(s) were not authenticator records");
    }
    if entries.is_empty() {
        return s;
    }
    // (cause, principal) -> count, first, last
    let mut rows: BTreeMap<(&str, &str), Span> = BTreeMap::new();
    for e in entries {
        let r = rows
            .entry((e.cause.as_str(), e.principal.as_deref().unwrap_or("-")))
            .or_insert((0, None, None));
        r.0 += 1;
        if let Some(ms) = e.ms {
            r.1 = Some(r.1.map_or(ms, |f: i64| f.min(ms)));
            r.2 = Some(r.2.map_or(ms, |l: i64| l.max(ms)));
        }
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    let cause_w = rows
        .iter()
        .map(|((c, _), _)| c.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let count_w = rows
        .iter()
        .map(|(_, (n, _, _))| n.to_string().len())
        .max()
        .unwrap_or(5)
        .max(5);
    // cause  principal  count  first  last: times take 19 columns each.
    let fixed = cause_w + count_w + 19 * 2 + 4 * 2;
    let show_times = width >= fixed + 20;
    let principal_w = if show_times {
        width - fixed
    } else {
        width.saturating_sub(cause_w + count_w + 4).max(10)
    };
    let longest = rows
        .iter()
        .map(|((_, p), _)| p.chars().count())
        .max()
        .unwrap_or(9);
    let principal_w = principal_w.min(longest.max(9));
    let mut header = format!(
        "{:<cause_w$}  {:<principal_w$}  {:>count_w$}",
        "CAUSE", "PRINCIPAL", "COUNT"
    );
    if show_times {
        let _ = write!(header, "  {:<19}  {:<19}", "FIRST SEEN", "LAST SEEN");
    }
    let _ = writeln!(s, "\n{}", paint(header.trim_end(), "1", o.color));
    for ((cause, principal), (n, first, last)) in &rows {
        let mut line = format!(
            "{}  {:<principal_w$}  {:>count_w$}",
            paint(&format!("{cause:<cause_w$}"), cause_color(cause), o.color),
            fit_left(principal, principal_w),
            n
        );
        if show_times {
            let _ = write!(
                line,
                "  {:<19}  {:<19}",
                short_time(*first),
                short_time(*last)
            );
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    // Histogram.
    let times: Vec<i64> = entries.iter().filter_map(|e| e.ms).collect();
    let (Some(&min), Some(&max)) = (times.iter().min(), times.iter().max()) else {
        return s;
    };
    let (bucket, label_len, unit) = if max - min <= 2 * 3_600_000 {
        (60_000, 16, "minute")
    } else {
        (3_600_000, 13, "hour")
    };
    let mut buckets: BTreeMap<i64, u64> = BTreeMap::new();
    for t in &times {
        *buckets.entry(t.div_euclid(bucket)).or_default() += 1;
    }
    let first = min.div_euclid(bucket);
    let last = max.div_euclid(bucket);
    // Empty buckets in between are shown, up to a screenful.
    let all: Vec<(i64, u64)> = if last - first < 120 {
        (first..=last)
            .map(|b| (b, buckets.get(&b).copied().unwrap_or(0)))
            .collect()
    } else {
        buckets.into_iter().collect()
    };
    let peak = all.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let n_w = peak.to_string().len();
    let bar_w = width.saturating_sub(label_len + n_w + 4).max(5);
    let _ = writeln!(
        s,
        "\n{}",
        paint(&format!("Denials per {unit} (UTC)"), "1", o.color)
    );
    for (b, n) in all {
        let label: String = timefmt::format_ms(b * bucket)
            .replace('T', " ")
            .chars()
            .take(label_len)
            .collect();
        let len = if n == 0 {
            0
        } else {
            ((n as usize * bar_w) / peak as usize).max(1)
        };
        let bar = "#".repeat(len);
        let _ = writeln!(s, "{label}  {n:>n_w$}  {}", paint(&bar, "36", o.color));
    }
    s.lines()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(cause: &str, p: &str, ms: i64) -> Entry {
        Entry {
            cause: cause.into(),
            principal: Some(p.into()),
            cluster: Some("prod".into()),
            ms: Some(ms),
        }
    }

    #[test]
    fn fits_the_width_and_has_no_ansi_without_color() {
        let entries = vec![
            e(
                "not_mapped",
                "arn:aws:iam::111122223333:role/a-very-long-role-name-that-goes-on-and-on",
                0,
            ),
            e(
                "not_mapped",
                "arn:aws:iam::111122223333:role/a-very-long-role-name-that-goes-on-and-on",
                60_000,
            ),
            e(
                "expired_token",
                "arn:aws:iam::111122223333:user/bob",
                180_000,
            ),
        ];
        for width in [40, 80, 120] {
            let out = render(
                &entries,
                0,
                &Options {
                    width,
                    color: false,
                },
            );
            assert!(!out.contains('\x1b'));
            for l in out.lines() {
                assert!(l.chars().count() <= width.max(40), "{width}: {l}");
            }
            assert!(out.contains("Denials per minute"));
        }
        let colored = render(
            &entries,
            0,
            &Options {
                width: 80,
                color: true,
            },
        );
        assert!(colored.contains("\x1b[1m"));
    }
}
