//! aws-auth manifest files: lists located inside ConfigMaps, edits written back keeping every other byte.

use eks_auth_remediator::aws_auth::{add_mapping, parse_manifest, remove_mapping, NewMapping};

fn role() -> NewMapping {
    NewMapping {
        arn: "arn:aws:iam::444455556666:role/deploy/ci-deployer".into(),
        username: "ci-deployer".into(),
        groups: vec!["deployers".into()],
    }
}

#[test]
fn smoke() {
    for f in std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/aws-auth/configmaps"
    ))
    .unwrap()
    {
        let p = f.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let m = parse_manifest(&text);
        for d in m.targets() {
            eprintln!(
                "{}: {:?} {:?} {:?}",
                p.display(),
                d.kind,
                d.data.keys().collect::<Vec<_>>(),
                d.values
                    .iter()
                    .map(|(k, v)| (k, v.key_line))
                    .collect::<Vec<_>>()
            );
        }
        match add_mapping(&text, &role(), false) {
            Ok(e) => {
                eprintln!("--- {}\n{}", p.display(), e.text);
                let back =
                    remove_mapping(&e.text, "arn:aws:iam::444455556666:role/ci-deployer", false)
                        .unwrap();
                assert_eq!(back.text, text, "{}", p.display());
            }
            Err(e) => eprintln!("!!! {}: {e}", p.display()),
        }
    }
}
