//! events/ is generated from events/lines by `eks-auth event` (scripts/gen-events.sh): regenerate
//! every sample in-process and compare what it decodes to, so a stale sample fails the build.

use std::path::Path;

use eks_auth_remediator::event::{decode_value, Limits};
use eks_auth_remediator::eventgen::{self, Options};
use serde_json::Value;

#[test]
fn samples_match_their_lines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let manifest = std::fs::read_to_string(dir.join("events.tsv")).unwrap();
    let mut checked = 0;
    for row in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = row.split('\t').collect();
        let (out, shape, lines, extra) = (
            cols[0],
            cols[1],
            cols[2],
            cols.get(3).copied().unwrap_or(""),
        );
        let text = if lines == "-" {
            String::new()
        } else {
            std::fs::read_to_string(dir.join("lines").join(lines)).unwrap()
        };
        let opts = Options {
            cluster: "prod".into(),
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            control: extra.contains("--control"),
        };
        let fresh = match shape {
            "subscription" => eventgen::subscription(&text, &opts),
            "kinesis" => eventgen::kinesis(&text, &opts),
            "decoded" => eventgen::decoded(&text, &opts),
            "manual" => eventgen::manual(&text, &opts),
            other => panic!("unknown shape {other} in events.tsv"),
        };
        let path = dir.join(out);
        let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let limits = Limits::default();
        // Compare decoded content, not gzip bytes: a codec upgrade may change the compressed form.
        assert_eq!(
            decode_value(&stored, &limits).unwrap(),
            decode_value(&fresh, &limits).unwrap(),
            "{out} is stale: run scripts/gen-events.sh"
        );
        checked += 1;
    }
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(
        checked, on_disk,
        "every events/*.json is listed in events/events.tsv"
    );
}
