//! Fault injection for reliability tests: the next N matching requests get a 409, a 5xx, a
//! throttling error, extra latency, or a dropped connection.

use serde::{Deserialize, Serialize};

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "api", content = "operation")]
pub enum Target {
    /// One EKS operation by its API name (`CreateAccessEntry`), or every one with `*`.
    Eks(String),
    /// Kubernetes ConfigMap writes (PUT, PATCH, POST, DELETE).
    KubeWrite,
    /// Every Kubernetes request.
    Kube,
}

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// Kubernetes 409 Conflict (as for a stale resourceVersion).
    Conflict,
    /// An HTTP status (500, 503, ...) with the API's own error shape.
    Status { status: u16 },
    /// EKS `ThrottlingException` (HTTP 429) or Kubernetes 429 TooManyRequests.
    Throttle,
    /// Delay the response.
    Latency { millis: u64 },
    /// Close the connection without answering.
    Drop,
}

/// A rule: `fault` for the next `count` requests matching `target` (forever when `count` is None).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rule {
    pub cluster: Option<String>,
    pub target: Target,
    pub fault: Fault,
    pub count: Option<u32>,
}

/// The active rules, first match wins.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Vec<Rule>,
}

impl Faults {
    pub fn add(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Consumes and returns the fault for a request, if any rule matches.
    pub fn take(
        &mut self,
        cluster: Option<&str>,
        eks_operation: Option<&str>,
        kube_write: bool,
    ) -> Option<Fault> {
        let idx = self.rules.iter().position(|r| {
            let cluster_ok = match (&r.cluster, cluster) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
            };
            let target_ok = match (&r.target, eks_operation) {
                (Target::Eks(op), Some(got)) => op == "*" || op == got,
                (Target::Eks(_), None) => false,
                (Target::KubeWrite, None) => kube_write,
                (Target::Kube, None) => true,
                (_, Some(_)) => false,
            };
            cluster_ok && target_ok && r.count != Some(0)
        })?;
        let rule = &mut self.rules[idx];
        let fault = rule.fault.clone();
        if let Some(n) = rule.count.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(idx);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_matches() {
        let mut f = Faults::default();
        f.add(Rule {
            cluster: Some("a".into()),
            target: Target::KubeWrite,
            fault: Fault::Conflict,
            count: Some(2),
        });
        f.add(Rule {
            cluster: None,
            target: Target::Eks("CreateAccessEntry".into()),
            fault: Fault::Throttle,
            count: Some(1),
        });
        assert_eq!(f.take(Some("b"), None, true), None);
        assert_eq!(f.take(Some("a"), None, false), None);
        assert_eq!(f.take(Some("a"), None, true), Some(Fault::Conflict));
        assert_eq!(f.take(Some("a"), None, true), Some(Fault::Conflict));
        assert_eq!(f.take(Some("a"), None, true), None);
        assert_eq!(f.take(Some("x"), Some("DescribeCluster"), false), None);
        assert_eq!(
            f.take(Some("x"), Some("CreateAccessEntry"), false),
            Some(Fault::Throttle)
        );
        assert!(f.rules().is_empty());
        let json = serde_json::to_string(&Rule {
            cluster: None,
            target: Target::Eks("*".into()),
            fault: Fault::Status { status: 503 },
            count: None,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"cluster":null,"target":{"api":"eks","operation":"*"},"fault":{"kind":"status","status":503},"count":null}"#
        );
    }
}
