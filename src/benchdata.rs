//! Deterministic, realistic authenticator batches for benchmarks, examples and tests.
//!
//! [`realistic_lines`] writes logrus text lines as the EKS control plane's `authenticator` stream
//! holds them during a denial storm: mostly `access denied` / `ARN is not mapped` for about 200
//! principals (assumed roles, IAM Identity Center roles with and without their path, roles with
//! paths, users), STS errors with their escaped JSON bodies, expired and malformed tokens, and the
//! `STS response` / `access granted` / start-up lines around them. Clients, ports, request ids and
//! timestamps vary; timestamps only increase. A tiny PRNG (splitmix64) with a fixed seed makes the
//! output identical on every run and platform.
//!
//! [`subscription_event`] wraps the lines into a CloudWatch Logs subscription event with
//! [`crate::eventgen`]; 10,000 lines decompress to about 4 MB of subscription JSON.

use serde_json::{json, Value};

use crate::{eventgen, timefmt};

/// The cluster, account and region the generated events claim.
pub const CLUSTER: &str = "prod";
pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "eu-west-1";

/// Distinct principals in the pool the denials are drawn from.
pub const PRINCIPALS: usize = 200;

/// 2024-05-14T08:00:00Z: the first line's time.
const START_MS: i64 = 1_715_673_600_000;

const ACCOUNTS: [&str; 4] = [ACCOUNT, "444455556666", "777788889999", "123456789012"];
const TEAMS: [&str; 10] = [
    "developer",
    "platform",
    "data-eng",
    "payments",
    "search",
    "ml-training",
    "frontend",
    "sre-oncall",
    "analytics",
    "security-audit",
];
const PERMISSION_SETS: [&str; 5] = [
    "AdministratorAccess",
    "PowerUserAccess",
    "ReadOnlyAccess",
    "EKSClusterAdmin",
    "DeveloperAccess",
];
const PEOPLE: [&str; 12] = [
    "alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar",
];
const SURNAMES: [&str; 8] = [
    "smith", "jones", "garcia", "chen", "novak", "okafor", "schmidt", "tanaka",
];

/// splitmix64: tiny, fast and good enough to vary synthetic log lines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, len: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| HEX[self.below(16) as usize] as char)
            .collect()
    }

    /// Upper-case alphanumerics, as in access key and unique ids.
    fn id(&mut self, len: usize) -> String {
        const ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALNUM[self.below(36) as usize] as char)
            .collect()
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }
}

/// One principal of the pool.
struct Principal {
    account: &'static str,
    /// `role/...` or `user/...` (IAM) or the role name of an assumed role.
    resource: String,
    /// True when lines name it as `sts::...:assumed-role/<role>/<session>`.
    assumed: bool,
    /// IAM unique id (AROA... or AIDA...).
    unique_id: String,
}

impl Principal {
    /// The ARN as one line logs it (assumed roles get a fresh-looking session name).
    fn logged_arn(&self, rng: &mut Rng) -> String {
        if self.assumed {
            format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                self.account,
                self.resource,
                session(rng)
            )
        } else {
            format!("arn:aws:iam::{}:{}", self.account, self.resource)
        }
    }
}

fn session(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 | 1 => format!("{}.{}@example.com", rng.pick(&PEOPLE), rng.pick(&SURNAMES)),
        2 => format!("botocore-session-{}", 1_715_600_000 + rng.below(80_000)),
        3 => format!("i-0{}", rng.hex(16)),
        _ => format!("GitHubActions-{}", 8_000_000_000 + rng.below(999_999_999)),
    }
}

fn pool(rng: &mut Rng) -> Vec<Principal> {
    (0..PRINCIPALS)
        .map(|i| {
            let account = ACCOUNTS[i % ACCOUNTS.len()];
            let team = TEAMS[i % TEAMS.len()];
            let set = PERMISSION_SETS[i % PERMISSION_SETS.len()];
            let (resource, assumed) = match i % 10 {
                // Team roles assumed through the CLI, CI or an instance profile.
                0..=3 => (format!("{team}-{i:03}"), true),
                // IAM Identity Center: assumed (no path in the session ARN) ...
                4 | 5 => (format!("AWSReservedSSO_{set}_{}", rng.hex(16)), true),
                // ... and the IAM role with its path, as people paste it into aws-auth.
                6 => (
                    format!(
                        "role/aws-reserved/sso.amazonaws.com/{REGION}/AWSReservedSSO_{set}_{}",
                        rng.hex(16)
                    ),
                    false,
                ),
                7 => (format!("role/gitlab-ci/{team}-runner-{i:03}"), false),
                8 => (format!("user/ci/{team}-deployer-{i:03}"), false),
                _ => (
                    format!("user/{}.{}{i:03}", rng.pick(&PEOPLE), rng.pick(&SURNAMES)),
                    false,
                ),
            };
            let unique_id = if resource.starts_with("user/") {
                format!("AIDA{}", rng.id(17))
            } else {
                format!("AROA{}", rng.id(17))
            };
            Principal {
                account,
                resource,
                assumed,
                unique_id,
            }
        })
        .collect()
}

fn client(rng: &mut Rng) -> String {
    let port = 30_000 + rng.below(35_000);
    if rng.below(100) < 85 {
        format!("127.0.0.1:{port}")
    } else {
        format!("10.0.{}.{}:{port}", rng.below(16), 2 + rng.below(250))
    }
}

/// `2024-05-14T08:00:00Z`, as logrus writes `time=`.
fn logrus_time(ms: i64) -> String {
    let full = timefmt::format_ms(ms - ms.rem_euclid(1000));
    full.replace(".000Z", "Z")
}

/// The error value of an STS rejection, with its escaped JSON body as the authenticator logs it.
fn sts_error(rng: &mut Rng, code: &str, message: &str, status: u32, throttled: bool) -> String {
    let verb = if throttled { "was throttled" } else { "failed" };
    format!(
        "sts getCallerIdentity {verb}: error from AWS (expected 200, got {status}) on {REGION} endpoint. Body: {{\\\"Error\\\":{{\\\"Code\\\":\\\"{code}\\\",\\\"Message\\\":\\\"{message}\\\",\\\"Type\\\":\\\"Sender\\\"}},\\\"RequestId\\\":\\\"{}\\\"}}",
        rng.uuid()
    )
}

/// `n` realistic authenticator lines (logrus text format), identical on every call.
pub fn realistic_lines(n: usize) -> Vec<String> {
    let mut rng = Rng(0x00E1_5A07_4B3E_2024);
    let principals = pool(&mut rng);
    let mut now = START_MS;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        now += rng.below(120) as i64;
        let t = logrus_time(now);
        let c = client(&mut rng);
        let tail = "method=POST path=/authenticate";
        let denied = |error: &str| {
            format!(
                "time=\"{t}\" level=warning msg=\"access denied\" client=\"{c}\" error=\"{error}\" {tail}"
            )
        };
        let roll = rng.below(1000);
        let line = match roll {
            // ARN is not mapped: the bulk of a denial storm.
            0..=599 => {
                let p = &principals[rng.below(PRINCIPALS as u64) as usize];
                let arn = p.logged_arn(&mut rng);
                let error = match rng.below(10) {
                    0 => "Identity is not mapped".to_string(),
                    1 => format!("ARN is not mapped: {arn}"),
                    _ => "ARN is not mapped".to_string(),
                };
                format!(
                    "time=\"{t}\" level=warning msg=\"access denied\" arn=\"{arn}\" client=\"{c}\" error=\"{error}\" {tail}"
                )
            }
            600..=639 => denied(&sts_error(
                &mut rng,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                403,
                false,
            )),
            640..=679 => denied(&sts_error(
                &mut rng,
                "ExpiredToken",
                "The security token included in the request is expired",
                403,
                false,
            )),
            680..=709 => denied(&sts_error(
                &mut rng,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                403,
                false,
            )),
            710..=729 => {
                let throttled = rng.below(2) == 0;
                denied(&sts_error(
                    &mut rng,
                    "Throttling",
                    "Rate exceeded",
                    400,
                    throttled,
                ))
            }
            730..=769 => {
                let signed = logrus_time(now - 900_000 - rng.below(3_600_000) as i64)
                    .replace('T', " ")
                    .replace('Z', " +0000 UTC");
                denied(&format!(
                    "input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration) {signed}"
                ))
            }
            770..=789 => denied(match rng.below(3) {
                0 => "input token was not properly formatted: token is missing expected \\\"k8s-aws-v1.\\\" prefix",
                1 => "input token was not properly formatted: client did not sign the x-k8s-aws-id header in the pre-signed URL",
                _ => "input token was not properly formatted: unexpected hostname \\\"sts.example.com\\\" in pre-signed URL",
            }),
            790..=879 => {
                let p = &principals[rng.below(PRINCIPALS as u64) as usize];
                let arn = p.logged_arn(&mut rng);
                let session = arn.rsplit('/').next().unwrap_or("").to_string();
                // logrus writes an empty value bare: `session=`.
                let session = if p.assumed { session } else { String::new() };
                format!(
                    "time=\"{t}\" level=info msg=\"STS response\" accesskeyid=ASIA{} accountid={} arn=\"{arn}\" client=\"{c}\" {tail} session={} stsendpoint=sts.{REGION}.amazonaws.com userid={}",
                    rng.id(16),
                    p.account,
                    session,
                    p.unique_id
                )
            }
            880..=969 => {
                let uid = format!("AROA{}", rng.id(17));
                if rng.below(3) == 0 {
                    format!(
                        "time=\"{t}\" level=info msg=\"access granted\" arn=\"arn:aws:iam::{ACCOUNT}:role/admin\" client=\"{c}\" groups=\"[system:masters]\" {tail} stsendpoint=sts.{REGION}.amazonaws.com uid=\"aws-iam-authenticator:{ACCOUNT}:{uid}\" username=kubernetes-admin"
                    )
                } else {
                    format!(
                        "time=\"{t}\" level=info msg=\"access granted\" arn=\"arn:aws:iam::{ACCOUNT}:role/eks-node-group-role\" client=\"{c}\" groups=\"[system:bootstrappers system:nodes]\" {tail} stsendpoint=sts.{REGION}.amazonaws.com uid=\"aws-iam-authenticator:{ACCOUNT}:{uid}\" username=\"system:node:ip-10-0-{}-{}.{REGION}.compute.internal\"",
                        rng.below(16),
                        2 + rng.below(250)
                    )
                }
            }
            _ => match rng.below(4) {
                0 => format!(
                    "time=\"{t}\" level=info msg=\"mapping IAM role\" groups=\"[system:bootstrappers system:nodes]\" role=\"arn:aws:iam::{ACCOUNT}:role/eks-node-group-role\" username=\"system:node:{{{{EC2PrivateDNSName}}}}\""
                ),
                1 => format!(
                    "time=\"{t}\" level=info msg=\"mapping IAM user\" groups=\"[system:masters]\" user=\"arn:aws:iam::{ACCOUNT}:user/break-glass\" username=break-glass"
                ),
                2 => format!("time=\"{t}\" level=info msg=\"starting mapper \\\"MapperConfigMap\\\"\""),
                _ => format!(
                    "time=\"{t}\" level=info msg=\"listening on https://127.0.0.1:21362/authenticate\""
                ),
            },
        };
        out.push(line);
    }
    out
}

/// Where the generated events claim to come from (`/aws/eks/prod/cluster`, eu-west-1).
pub fn options() -> eventgen::Options {
    eventgen::Options {
        cluster: CLUSTER.into(),
        account: ACCOUNT.into(),
        region: REGION.into(),
        control: false,
    }
}

/// A CloudWatch Logs subscription event (`{"awslogs":{"data":...}}`) holding
/// [`realistic_lines`]`(n)`, and the size in bytes of its decompressed JSON.
pub fn subscription_event(n: usize) -> (Value, usize) {
    let text = realistic_lines(n).join("\n");
    let inner = eventgen::wire(&text, &options());
    let data = eventgen::b64(&eventgen::gzip(inner.as_bytes()));
    (json!({"awslogs": {"data": data}}), inner.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::Cause;
    use crate::{event, handler};

    #[test]
    fn deterministic_and_increasing() {
        let a = realistic_lines(500);
        assert_eq!(a.len(), 500);
        assert_eq!(a, realistic_lines(500));
        // A prefix of a longer batch: benches and tests agree on the first lines.
        assert_eq!(a[..100], realistic_lines(100)[..]);
        let times: Vec<i64> = a
            .iter()
            .map(|l| {
                let rec = crate::authlog::parse_line(l).unwrap();
                timefmt::parse_ms(rec.time().unwrap()).unwrap()
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn ten_thousand_events_make_a_realistic_batch() {
        let (ev, size) = subscription_event(10_000);
        assert!((3_500_000..4_800_000).contains(&size), "{size} bytes");
        let decoded = event::decode_value(&ev, &event::Limits::default()).unwrap();
        assert_eq!(decoded.batches[0].events.len(), 10_000);
        let (findings, stats) = handler::diagnose_decoded(&decoded, &handler::Config::default());
        assert_eq!(stats.parsed, 10_000);
        assert_eq!(stats.unparsed + stats.duplicates + stats.blank, 0);
        for cause in [
            Cause::NotMapped,
            Cause::InvalidClientToken,
            Cause::ExpiredToken,
            Cause::SignatureMismatch,
            Cause::StsThrottled,
            Cause::TokenExpired,
            Cause::MalformedToken,
        ] {
            assert!(stats.causes.contains_key(cause.as_str()), "{cause}");
        }
        assert!(!stats.causes.contains_key("unknown"));
        let not_mapped = findings
            .iter()
            .filter(|f| f.cause == Some(Cause::NotMapped))
            .count();
        assert_eq!(not_mapped, PRINCIPALS);
        for kind in ["granted", "sts_response", "other"] {
            assert!(stats.outcomes[kind] > 0, "{kind}");
        }
    }
}
