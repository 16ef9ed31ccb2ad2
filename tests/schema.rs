//! The documented JSON Schemas (schemas/) describe what the code emits: every response to every
//! sample event, and every ticket in them, validates.
//!
//! A small validator for the keywords the schemas use (type, enum, const, required, properties,
//! additionalProperties, items, minItems, minimum, $ref); `pattern` is checked by direct assertions.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

struct Validator {
    dir: std::path::PathBuf,
}

impl Validator {
    fn load(&self, file: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join(file)).unwrap()).unwrap()
    }

    fn check(&self, root: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            if let Some(ptr) = r.strip_prefix('#') {
                let target = root.pointer(ptr).unwrap_or_else(|| panic!("bad $ref {r}"));
                return self.check(root, target, v, at, errs);
            }
            let other = self.load(r);
            return self.check(&other, &other, v, at, errs);
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                errs.push(format!("{at}: expected const {c}, got {v}"));
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errs.push(format!("{at}: {v} not in enum {e:?}"));
            }
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "string" => v.is_string(),
                "integer" => v.is_u64() || v.is_i64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => false,
            });
            if !ok {
                errs.push(format!("{at}: {v} is not of type {t}"));
            }
        }
        if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
            if n < min {
                errs.push(format!("{at}: {n} < minimum {min}"));
            }
        }
        if let Some(obj) = v.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !obj.contains_key(req.as_str().unwrap()) {
                    errs.push(format!("{at}: missing required {req}"));
                }
            }
            for (k, val) in obj {
                let sub = props.and_then(|p| p.get(k));
                match (sub, schema.get("additionalProperties")) {
                    (Some(s), _) => self.check(root, s, val, &format!("{at}.{k}"), errs),
                    (None, Some(Value::Bool(false))) => {
                        errs.push(format!("{at}: unexpected property {k}"))
                    }
                    (None, Some(s @ Value::Object(_))) => {
                        self.check(root, s, val, &format!("{at}.{k}"), errs)
                    }
                    _ => {}
                }
            }
        }
        if let Some(arr) = v.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (arr.len() as u64) < min {
                    errs.push(format!("{at}: fewer than {min} items"));
                }
            }
            if let Some(items) = schema.get("items") {
                for (i, item) in arr.iter().enumerate() {
                    self.check(root, items, item, &format!("{at}[{i}]"), errs);
                }
            }
        }
    }

    fn validate(&self, file: &str, v: &Value) -> Vec<String> {
        let schema = self.load(file);
        let mut errs = Vec::new();
        self.check(&schema, &schema, v, "$", &mut errs);
        errs
    }
}

#[test]
fn responses_and_tickets_match_the_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let v = Validator {
        dir: root.join("schemas"),
    };
    let mut tickets_seen = 0;
    let mut causes = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root.join("events")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
            .args(["invoke", path.to_str().unwrap(), "--offline"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
        let errs = v.validate("response.schema.json", &resp);
        assert!(errs.is_empty(), "{}: {errs:#?}", path.display());
        assert_eq!(
            resp["delivery"]["enabled"], false,
            "--offline never delivers"
        );
        assert!(resp["delivery"]["note"]
            .as_str()
            .unwrap()
            .contains("--offline"));
        for t in resp["tickets"].as_array().unwrap() {
            let id = t["id"].as_str().unwrap();
            assert!(
                id.len() == 20
                    && id.starts_with("EAR-")
                    && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
            );
            assert_eq!(&id[4..], t["finding_id"].as_str().unwrap());
            causes.insert(t["cause"].as_str().unwrap_or("config_error").to_string());
            tickets_seen += 1;
        }
    }
    assert!(tickets_seen >= 15);
    // Every ticket-producing cause is exercised by a sample.
    assert_eq!(causes.len(), 14, "{causes:?}");
}

#[test]
fn the_validator_rejects_what_it_should() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let v = Validator {
        dir: root.join("schemas"),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .env("EKS_AUTH_OFFLINE", "true")
        .args([
            "invoke",
            root.join("events/not-mapped.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut t = resp["tickets"][0].clone();
    assert!(v.validate("ticket.schema.json", &t).is_empty());
    t["cause"] = "nope".into();
    t["extra"] = 1.into();
    t.as_object_mut().unwrap().remove("severity");
    let errs = v.validate("ticket.schema.json", &t);
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

/// The `delivery` object with opened, suppressed, delivered and failed entries validates too.
#[tokio::test]
async fn a_delivery_report_matches_the_schema() {
    use eks_auth_remediator::edge::Edge;
    use eks_auth_remediator::facts::OfflineFacts;
    use eks_auth_remediator::handler::{self, Config, Deps, HandlerError};
    use eks_auth_remediator::sinks::{Delivery, Dispatcher, Outgoing, Sink, SinkError};
    use eks_auth_remediator::suppress::{BoxFuture, MemoryStore};

    struct Down;
    impl Sink for Down {
        fn name(&self) -> &'static str {
            "webhook"
        }
        fn deliver<'a>(&'a self, _: &'a Outgoing<'a>) -> BoxFuture<'a, Result<(), SinkError>> {
            Box::pin(async {
                Err(SinkError::Status {
                    status: 503,
                    attempts: 4,
                })
            })
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let v = Validator {
        dir: root.join("schemas"),
    };
    let deps = Deps {
        delivery: Delivery::Enabled(Dispatcher::new(
            vec![Box::new(Down)],
            Some(Box::new(MemoryStore::default())),
            std::time::Duration::from_secs(3600),
        )),
        ..Deps::new(Config::default(), Edge::Offline(OfflineFacts))
    };
    let raw = std::fs::read(root.join("events/not-mapped.json")).unwrap();
    let err = handler::handle_bytes(&raw, &deps).await.unwrap_err();
    let HandlerError::TicketDelivery { response, .. } = err else {
        panic!("{err:?}")
    };
    let resp = serde_json::to_value(&response).unwrap();
    assert_eq!(resp["delivery"]["sinks"][0]["status"], "failed");
    assert_eq!(resp["delivery"]["tickets"][0]["status"], "opened");
    let errs = v.validate("response.schema.json", &resp);
    assert!(errs.is_empty(), "{errs:#?}");
}
