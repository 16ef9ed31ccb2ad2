//! Classify authenticator records and group a batch into findings.
//!
//! Each record gets an [`Outcome`]; denials also get a [`Cause`] from the taxonomy in DOMAIN.md
//! section 2. A batch becomes [`Finding`]s keyed by (cluster, principal, cause), so the work that
//! follows scales with distinct principals, not with log lines.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::OnceLock;

use memchr::memmem;
use serde::Serialize;

use crate::arn::{self, Arn, PrincipalKind};
use crate::authlog::{self, AuthRecord};
use crate::event::Line;
use crate::timefmt;

/// What a line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Denied,
    Granted,
    StsResponse,
    ConfigError,
    Other,
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    NotMapped,
    InvalidClientToken,
    ExpiredToken,
    SignatureMismatch,
    StsRejected,
    StsThrottled,
    StsUnreachable,
    TokenExpired,
    MalformedToken,
    TemplateError,
    ReservedUsername,
    InvalidArn,
    StalePrincipal,
    #[default]
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 14] = [
        Cause::NotMapped,
        Cause::InvalidClientToken,
        Cause::ExpiredToken,
        Cause::SignatureMismatch,
        Cause::StsRejected,
        Cause::StsThrottled,
        Cause::StsUnreachable,
        Cause::TokenExpired,
        Cause::MalformedToken,
        Cause::TemplateError,
        Cause::ReservedUsername,
        Cause::InvalidArn,
        Cause::StalePrincipal,
        Cause::Unknown,
    ];

    /// The snake_case name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NotMapped => "not_mapped",
            Cause::InvalidClientToken => "invalid_client_token",
            Cause::ExpiredToken => "expired_token",
            Cause::SignatureMismatch => "signature_mismatch",
            Cause::StsRejected => "sts_rejected",
            Cause::StsThrottled => "sts_throttled",
            Cause::StsUnreachable => "sts_unreachable",
            Cause::TokenExpired => "token_expired",
            Cause::MalformedToken => "malformed_token",
            Cause::TemplateError => "template_error",
            Cause::ReservedUsername => "reserved_username",
            Cause::InvalidArn => "invalid_arn",
            Cause::StalePrincipal => "stale_principal",
            Cause::Unknown => "unknown",
        }
    }

    /// One sentence on what the cause means.
    pub fn meaning(self) -> &'static str {
        match self {
            Cause::NotMapped => "the token is valid and the identity is known, but no aws-auth mapping or access entry matches it",
            Cause::InvalidClientToken => "STS does not recognise the access key: the user or role was deleted, the key deactivated, or it belongs to another partition",
            Cause::ExpiredToken => "the caller's session credentials had expired when the token was made",
            Cause::SignatureMismatch => "the token's signature does not verify: most often it was made for another cluster name, or the secret key is wrong",
            Cause::StsRejected => "STS rejected the presigned GetCallerIdentity request",
            Cause::StsThrottled => "STS throttled the authenticator's GetCallerIdentity call (transient)",
            Cause::StsUnreachable => "the control plane could not reach STS",
            Cause::TokenExpired => "the token is older than 15 minutes: a cached token or client clock skew",
            Cause::MalformedToken => "the bearer token is not a well-formed k8s-aws-v1 presigned URL",
            Cause::TemplateError => "a mapping's username template could not be rendered (node role whose EC2 instance lookup failed)",
            Cause::ReservedUsername => "the mapping's username starts with a prefix the authenticator reserves",
            Cause::InvalidArn => "the identity's ARN is invalid or has no recognised partition",
            Cause::StalePrincipal => "the IAM entity was deleted and recreated: its access entry still names the old unique ID",
            Cause::Unknown => "the authenticator's error is not one we recognise",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// The snake_case name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Denied => "denied",
            Outcome::Granted => "granted",
            Outcome::StsResponse => "sts_response",
            Outcome::ConfigError => "config_error",
            Outcome::Other => "other",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one record tells us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub outcome: Outcome,
    pub cause: Option<Cause>,
    /// Canonical ARN (assumed-role -> role), when the line names one.
    pub principal: Option<String>,
    /// The ARN exactly as logged, when it differs from `principal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts_error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A cause-specific detail: the instance ID of a template error, the reserved username, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl Diagnosis {
    /// A one-line human summary.
    pub fn summary(&self) -> String {
        let who = self
            .principal
            .as_deref()
            .unwrap_or("an unidentified caller");
        match (self.outcome, self.cause) {
            (Outcome::Denied, Some(cause)) => {
                let mut s = format!("{who} was denied ({cause}): {}", cause.meaning());
                if let Some(code) = &self.sts_error_code {
                    s.push_str(&format!(" [STS {code}]"));
                }
                s
            }
            (Outcome::Granted, _) => format!(
                "{who} was granted access as {}",
                self.username.as_deref().unwrap_or("?")
            ),
            (Outcome::StsResponse, _) => format!("STS identified the caller as {who}"),
            (Outcome::ConfigError, _) => {
                "aws-auth holds entries the authenticator could not parse; they were dropped".into()
            }
            _ => "not an authentication decision".into(),
        }
    }
}

/// Classifies one record.
pub fn diagnose(rec: &AuthRecord<'_>) -> Diagnosis {
    diagnose_ref(&KnownFields::of(rec), &mut Vec::new(), &mut String::new()).to_owned()
}

/// A [`Diagnosis`] borrowing from its record: [`Aggregator::add`] runs once per log line, and
/// this way only an assumed-role ARN (canonicalised to its role) costs an allocation.
#[derive(Debug)]
struct DiagnosisRef<'r> {
    outcome: Outcome,
    cause: Option<Cause>,
    principal: Option<&'r str>,
    raw_arn: Option<&'r str>,
    sts_error_code: Option<&'r str>,
    region: Option<&'r str>,
    client: Option<&'r str>,
    error: Option<&'r str>,
    detail: Option<&'r str>,
    username: Option<&'r str>,
    time: Option<&'r str>,
}

impl DiagnosisRef<'_> {
    fn to_owned(&self) -> Diagnosis {
        let own = |v: Option<&str>| v.map(str::to_string);
        Diagnosis {
            outcome: self.outcome,
            cause: self.cause,
            principal: own(self.principal),
            raw_arn: own(self.raw_arn),
            sts_error_code: own(self.sts_error_code),
            region: own(self.region),
            client: own(self.client),
            error: own(self.error),
            detail: own(self.detail),
            username: own(self.username),
            time: own(self.time),
        }
    }
}

/// The first value of each field [`diagnose`] reads, found in one pass over the record.
#[derive(Debug, Default, PartialEq, Eq)]
struct KnownFields<'r> {
    msg: Option<&'r str>,
    error: Option<&'r str>,
    err: Option<&'r str>,
    arn: Option<&'r str>,
    stsendpoint: Option<&'r str>,
    sts: Option<&'r str>,
    client: Option<&'r str>,
    username: Option<&'r str>,
    time: Option<&'r str>,
    groups: Option<&'r str>,
}

/// The keys [`KnownFields`] keeps, in the order of its fields.
const KNOWN_KEYS: usize = 10;

impl<'r> KnownFields<'r> {
    fn of(rec: &'r AuthRecord<'_>) -> Self {
        let mut slots = [None; KNOWN_KEYS];
        for (k, v) in &rec.fields {
            if let Some(i) = Self::slot(k) {
                // As AuthRecord::get: the first value of a key wins.
                slots[i] = slots[i].or(Some(v.as_ref()));
            }
        }
        Self::from_slots(slots)
    }

    /// The fields of a plain logfmt line, read straight from the line (no [`AuthRecord`]), with
    /// escaped values decoded into `scratch`: what [`KnownFields::of`] gives for it. `None` for
    /// any other line.
    fn scan(line: &'r str, scratch: &'r mut String) -> Option<Self> {
        Self::scan_as(line, false, scratch)
    }

    /// [`KnownFields::scan`] for a line still escaped as a JSON string's body (see
    /// [`authlog::scan_logfmt_json`]): `None` also for escapes that scan leaves to the decoded
    /// line.
    fn scan_json(body: &'r str, scratch: &'r mut String) -> Option<Self> {
        Self::scan_as(body, true, scratch)
    }

    fn scan_as(text: &'r str, json: bool, scratch: &'r mut String) -> Option<Self> {
        scratch.clear();
        let mut slots = [None; KNOWN_KEYS];
        let collect = |k, v| {
            if let Some(i) = Self::slot(k) {
                slots[i] = slots[i].or(Some(v));
            }
        };
        let plain = if json {
            authlog::scan_logfmt_json(text, scratch, collect)
        } else {
            authlog::scan_logfmt(text, scratch, collect)
        };
        if !plain {
            return None;
        }
        let scratch: &'r String = scratch;
        Some(Self::from_slots(slots.map(|v| {
            v.map(|v| match v {
                authlog::Scanned::Line(s) => s,
                authlog::Scanned::Scratch(a, b) => &scratch[a..b],
            })
        })))
    }

    /// Where `key` goes. Runs for every field of every line: the key is compared as one or two
    /// integers (by length first), where a match on strings calls `memcmp` per candidate.
    fn slot(key: &str) -> Option<usize> {
        const fn word(s: &[u8]) -> u64 {
            let mut w = 0u64;
            let mut i = 0;
            while i < s.len() && i < 8 {
                w |= (s[i] as u64) << (8 * i);
                i += 1;
            }
            w
        }
        let k = key.as_bytes();
        let head = word(k);
        Some(match k.len() {
            3 if head == word(b"msg") => 0,
            3 if head == word(b"err") => 2,
            3 if head == word(b"arn") => 3,
            3 if head == word(b"sts") => 5,
            4 if head == word(b"time") => 8,
            5 if head == word(b"error") => 1,
            6 if head == word(b"client") => 6,
            6 if head == word(b"groups") => 9,
            8 if head == word(b"username") => 7,
            11 if head == word(b"stsendpo") && word(&k[8..]) == word(b"int") => 4,
            _ => return None,
        })
    }

    fn from_slots(s: [Option<&'r str>; KNOWN_KEYS]) -> Self {
        let [msg, error, err, arn, stsendpoint, sts, client, username, time, groups] = s;
        KnownFields {
            msg,
            error,
            err,
            arn,
            stsendpoint,
            sts,
            client,
            username,
            time,
            groups,
        }
    }
}

/// `scratch` is reused across calls to hold a lower-cased copy of the error.
fn diagnose_ref<'r>(
    f: &KnownFields<'r>,
    scratch: &mut Vec<u8>,
    arn_buf: &'r mut String,
) -> DiagnosisRef<'r> {
    let msg = f.msg.unwrap_or("");
    let error = f.error.or(f.err);
    let outcome = if msg.eq_ignore_ascii_case("access denied") {
        Outcome::Denied
    } else if msg.eq_ignore_ascii_case("access granted") {
        Outcome::Granted
    } else if msg == "STS response" {
        Outcome::StsResponse
    } else if msg.starts_with("Errors parsing configmap")
        || msg.contains("error parsing the config map")
    {
        Outcome::ConfigError
    } else {
        Outcome::Other
    };
    let raw_arn = f.arn.filter(|a| !a.is_empty());
    let mut d = DiagnosisRef {
        outcome,
        cause: None,
        principal: None,
        raw_arn: None,
        sts_error_code: None,
        region: f.stsendpoint.or(f.sts).and_then(region_of_endpoint),
        client: f.client,
        error,
        detail: None,
        username: f.username,
        time: f.time,
    };
    // Without an `arn=` field, a denial may name the principal in its error.
    let mut named = raw_arn;
    if outcome == Outcome::Denied {
        let c = classify_error_ref(error.unwrap_or(""), scratch);
        d.cause = Some(c.cause);
        d.sts_error_code = c.sts_code;
        d.region = c.region.or(d.region);
        d.detail = c.detail;
        named = named.or(c.arn);
    }
    d.principal = named.map(|a| canonical_arn_in(a, arn_buf));
    if let (Some(raw), Some(p)) = (raw_arn, d.principal) {
        if !std::ptr::eq(raw, p) && raw != p {
            d.raw_arn = Some(raw);
        }
    }
    d
}

/// [`arn::canonicalize`] without allocating (once `buf` has grown), run on every line: only a
/// valid `arn:P:sts::A:assumed-role/R/S` changes (to `arn:P:iam::A:role/R`, written into `buf`);
/// any other input, valid or not, canonicalises to itself, trimmed.
/// `canonical_arn_matches_arn_canonicalize` holds the two to the same answers.
fn canonical_arn_in<'r>(s: &'r str, buf: &'r mut String) -> &'r str {
    match canonical_parts(s) {
        Ok(same) => same,
        Err(parts) => {
            buf.clear();
            for part in parts {
                buf.push_str(part);
            }
            buf
        }
    }
}

/// `Ok(s trimmed)` when `s` is its own canonical form, else the parts of the role ARN.
fn canonical_parts(s: &str) -> Result<&str, [&str; 6]> {
    let t = s.trim();
    // `arn:partition:service:region:account:resource`, as Arn::parse splits it.
    let Some(after_arn) = t.strip_prefix("arn:") else {
        return Ok(t);
    };
    let Some((partition, rest)) = split_at_byte(after_arn, b':') else {
        return Ok(t);
    };
    // Most ARNs are IAM ones: they never change.
    let Some(rest) = rest.strip_prefix("sts:") else {
        return Ok(t);
    };
    let Some((_region, rest)) = split_at_byte(rest, b':') else {
        return Ok(t);
    };
    let Some((account, resource)) = split_at_byte(rest, b':') else {
        return Ok(t);
    };
    // assumed-role/<role>/<session>: the role is the second segment ("" when missing).
    let role = match resource.strip_prefix("assumed-role") {
        Some("") => "",
        Some(path) => match path.strip_prefix('/') {
            Some(path) => split_at_byte(path, b'/').map_or(path, |(role, _)| role),
            None => return Ok(t),
        },
        None => return Ok(t),
    };
    // What Arn::parse checks: anything it rejects canonicalises to itself.
    let valid = arn::PARTITIONS.contains(&partition)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Ok(t);
    }
    Err(["arn:", partition, ":iam::", account, ":role/", role])
}

/// `s` split around the first `sep` (an ASCII byte), without a searcher's setup cost.
fn split_at_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// What an `error=` value means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorClass {
    pub cause: Cause,
    pub sts_code: Option<String>,
    pub region: Option<String>,
    pub arn: Option<String>,
    pub detail: Option<String>,
}

/// [`ErrorClass`] borrowing from the error string.
#[derive(Debug, Default)]
struct ErrorClassRef<'e> {
    cause: Cause,
    sts_code: Option<&'e str>,
    region: Option<&'e str>,
    arn: Option<&'e str>,
    detail: Option<&'e str>,
}

/// Maps an authenticator error string to its cause, keeping the STS code and region as evidence.
pub fn classify_error(error: &str) -> ErrorClass {
    let c = classify_error_ref(error, &mut Vec::new());
    let own = |v: Option<&str>| v.map(str::to_string);
    ErrorClass {
        cause: c.cause,
        sts_code: own(c.sts_code),
        region: own(c.region),
        arn: own(c.arn),
        detail: own(c.detail),
    }
}

/// The phrases [`classify_error`] looks for (lower case), with searchers built once.
struct Phrases {
    stale: memmem::Finder<'static>,
    throttled: memmem::Finder<'static>,
    sts_get: memmem::Finder<'static>,
    partition: memmem::Finder<'static>,
    sts_arn: memmem::Finder<'static>,
    is_invalid: memmem::Finder<'static>,
    sts_failed: memmem::Finder<'static>,
    from_aws: memmem::Finder<'static>,
    amz_date: memmem::Finder<'static>,
    render: [memmem::Finder<'static>; 4],
    reserved: memmem::Finder<'static>,
    endpoint: memmem::Finder<'static>,
    colon_space: memmem::Finder<'static>,
    code_markers: [memmem::Finder<'static>; 4],
    on: memmem::FinderRev<'static>,
}

fn phrases() -> &'static Phrases {
    static PHRASES: OnceLock<Phrases> = OnceLock::new();
    PHRASES.get_or_init(|| Phrases {
        stale: memmem::Finder::new("arn does not match user id"),
        throttled: memmem::Finder::new("getcalleridentity was throttled"),
        sts_get: memmem::Finder::new("sts getcalleridentity failed: error during get"),
        partition: memmem::Finder::new("does not have a recognized partition"),
        sts_arn: memmem::Finder::new("sts getcalleridentity failed: arn '"),
        is_invalid: memmem::Finder::new("is invalid"),
        sts_failed: memmem::Finder::new("sts getcalleridentity failed"),
        from_aws: memmem::Finder::new("error from aws"),
        amz_date: memmem::Finder::new("x-amz-date parameter is expired"),
        render: [
            memmem::Finder::new("rendertemplates error"),
            memmem::Finder::new("error rendering username template"),
            memmem::Finder::new("failed mapping username"),
            memmem::Finder::new("failed querying private dns"),
        ],
        reserved: memmem::Finder::new("username must not begin with"),
        endpoint: memmem::Finder::new(" endpoint"),
        colon_space: memmem::Finder::new(": "),
        code_markers: [
            memmem::Finder::new("\"Code\":\""),
            memmem::Finder::new("\\\"Code\\\":\\\""),
            memmem::Finder::new("\"Code\": \""),
            memmem::Finder::new("<Code>"),
        ],
        on: memmem::FinderRev::new(" on "),
    })
}

fn classify_error_ref<'e>(error: &'e str, scratch: &mut Vec<u8>) -> ErrorClassRef<'e> {
    let e = error.trim();
    // The ASCII-lowercase copy the phrases are matched against.
    scratch.clear();
    scratch.extend_from_slice(e.as_bytes());
    scratch.make_ascii_lowercase();
    let lower: &[u8] = scratch;
    let has = |f: &memmem::Finder<'_>| f.find(lower).is_some();
    let p = phrases();
    let mut c = ErrorClassRef {
        region: region_of_error(e),
        ..ErrorClassRef::default()
    };
    c.cause = if has(&p.stale) {
        Cause::StalePrincipal
    } else if lower.starts_with(b"arn is not mapped")
        || lower.starts_with(b"identity is not mapped")
    {
        c.arn = p
            .colon_space
            .find(e.as_bytes())
            .map(|i| e[i + 2..].trim())
            .filter(|a| a.starts_with("arn:"));
        Cause::NotMapped
    } else if has(&p.throttled) {
        c.sts_code = sts_code(e);
        Cause::StsThrottled
    } else if has(&p.sts_get) {
        Cause::StsUnreachable
    } else if has(&p.partition) || (has(&p.sts_arn) && has(&p.is_invalid)) {
        c.arn = quoted_after(e, "arn '");
        Cause::InvalidArn
    } else if has(&p.sts_failed) || has(&p.from_aws) {
        c.sts_code = sts_code(e);
        match c.sts_code {
            Some("InvalidClientTokenId") => Cause::InvalidClientToken,
            Some("ExpiredToken") => Cause::ExpiredToken,
            Some("SignatureDoesNotMatch") => Cause::SignatureMismatch,
            Some("Throttling") | Some("ThrottlingException") | Some("RequestLimitExceeded") => {
                Cause::StsThrottled
            }
            _ => Cause::StsRejected,
        }
    } else if has(&p.amz_date) {
        Cause::TokenExpired
    } else if lower.starts_with(b"input token was not properly formatted") {
        Cause::MalformedToken
    } else if p.render.iter().any(has) {
        c.detail = instance_id(e);
        Cause::TemplateError
    } else if has(&p.reserved) || lower.starts_with(b"invalid username") {
        c.detail = quoted_after(e, "username '");
        Cause::ReservedUsername
    } else {
        Cause::Unknown
    };
    c
}

/// `Code` from an STS error body, JSON (`"Code":"X"`, possibly with escaped quotes) or XML.
fn sts_code(e: &str) -> Option<&str> {
    for marker in &phrases().code_markers {
        if let Some(pos) = marker.find(e.as_bytes()) {
            let rest = &e[pos + marker.needle().len()..];
            let n = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.')
                .count();
            if n > 0 {
                return Some(&rest[..n]);
            }
        }
    }
    None
}

/// `us-west-2` from `... got 403) on us-west-2 endpoint ...`.
fn region_of_error(e: &str) -> Option<&str> {
    let p = phrases();
    let pos = p.endpoint.find(e.as_bytes())?;
    let before = &e[..pos];
    let on = p.on.rfind(before.as_bytes())?;
    let region = &before[on + 4..];
    is_region(region).then_some(region)
}

/// `us-west-2` from `sts.us-west-2.amazonaws.com` (or a URL of it).
fn region_of_endpoint(ep: &str) -> Option<&str> {
    // As trim_start_matches("https://") then ("http://"), without a searcher's setup.
    let mut host = ep;
    while let Some(rest) = host.strip_prefix("https://") {
        host = rest;
    }
    while let Some(rest) = host.strip_prefix("http://") {
        host = rest;
    }
    let host = &host[..host
        .bytes()
        .position(|b| b == b'/' || b == b':')
        .unwrap_or(host.len())];
    // sts.<region>.amazonaws.com
    let rest = host.strip_prefix("sts.")?;
    let region = split_at_byte(rest, b'.').map_or(rest, |(region, _)| region);
    if region == "amazonaws" {
        return Some("us-east-1");
    }
    is_region(region).then_some(region)
}

/// Three or more non-empty `-`-separated alphanumeric parts, the last all digits (`eu-west-1`).
fn is_region(s: &str) -> bool {
    let (mut parts, mut len, mut digits) = (1, 0, true);
    for b in s.bytes() {
        if b == b'-' {
            if len == 0 {
                return false;
            }
            (parts, len, digits) = (parts + 1, 0, true);
        } else if b.is_ascii_alphanumeric() {
            len += 1;
            digits &= b.is_ascii_digit();
        } else {
            return false;
        }
    }
    parts >= 3 && len > 0 && digits
}

fn quoted_after<'e>(e: &'e str, marker: &str) -> Option<&'e str> {
    let pos = e.find(marker)? + marker.len();
    let rest = &e[pos..];
    let end = rest.find('\'')?;
    Some(&rest[..end])
}

fn instance_id(e: &str) -> Option<&str> {
    let pos = e.find("i-")?;
    let n = e[pos..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
        .count();
    (n > 2).then_some(&e[pos..pos + n])
}

// ---------------------------------------------------------------------------------------------
// Grouping.

/// Where a batch of lines came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub cluster: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
}

/// One denial pattern (or aws-auth parse error) for one principal on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable across batches: same cluster, principal and cause give the same id.
    pub id: String,
    pub cluster: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub outcome: Outcome,
    pub cause: Option<Cause>,
    pub principal: Option<String>,
    pub principal_type: Option<PrincipalKind>,
    pub count: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub distinct_clients: usize,
    pub clients: Vec<String>,
    pub sts_error_codes: Vec<String>,
    pub sts_regions: Vec<String>,
    pub details: Vec<String>,
    pub errors: Vec<String>,
    pub log_group: Option<String>,
    pub log_streams: Vec<String>,
    pub samples: Vec<String>,
}

/// Counts over a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Log events received, redeliveries included.
    pub events: u64,
    /// Events skipped because their `logEvents[].id` was already seen.
    pub duplicates: u64,
    pub parsed: u64,
    pub unparsed: u64,
    pub blank: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub causes: BTreeMap<String, u64>,
    pub unparsed_samples: Vec<UnparsedSample>,
}

/// A line that did not parse, kept so nothing is silently lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnparsedSample {
    pub id: Option<String>,
    pub error: String,
    pub line: String,
}

/// Caps that keep a finding's evidence small however large the burst.
pub const MAX_SAMPLES: usize = 3;
pub const MAX_CLIENTS: usize = 20;
pub const MAX_EVIDENCE: usize = 10;
pub const MAX_UNPARSED_SAMPLES: usize = 5;
const MAX_SAMPLE_CHARS: usize = 2000;

#[derive(Debug)]
struct Group {
    finding: Finding,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    clients: Capped,
    codes: Capped,
    regions: Capped,
    details: Capped,
    errors: Capped,
    streams: Capped,
    /// The group's key in [`Aggregator::index`] (merging finds groups by it).
    key: String,
}

/// Group keys and evidence values are hashed once per line: foldhash, seeded per process (so
/// crafted ARNs cannot aim at collisions), costs a fraction of SipHash on keys this short.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The hasher of [`Capped`]'s index: foldhash, seeded once per process.
fn value_hasher() -> &'static foldhash::fast::RandomState {
    static HASHER: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    HASHER.get_or_init(foldhash::fast::RandomState::default)
}

/// The first `cap` distinct values seen, in the order they came, so that two aggregators over
/// consecutive parts of a batch merge into exactly what one aggregator would have kept.
#[derive(Debug)]
struct Capped {
    cap: usize,
    order: Vec<String>,
    /// Only for large caps (small ones are searched linearly): indices into `order`, by the hash
    /// of their value. The values are stored once, in `order`.
    lookup: hashbrown::HashTable<u32>,
}

impl Capped {
    const LINEAR: usize = 16;

    fn new(cap: usize) -> Self {
        Capped {
            cap,
            order: Vec::new(),
            lookup: hashbrown::HashTable::new(),
        }
    }

    fn insert(&mut self, v: Option<&str>) {
        let Some(v) = v else { return };
        if self.order.len() >= self.cap {
            return;
        }
        // A burst repeats its values: the newest one is checked first.
        if self.order.last().is_some_and(|o| o == v) {
            return;
        }
        if self.cap <= Self::LINEAR {
            if !self.order.iter().any(|o| o == v) {
                self.order.push(v.to_string());
            }
        } else if self.add_to_lookup(v) {
            self.order.push(v.to_string());
        }
    }

    /// Indexes `v` as the next value of `order` unless it is there; true when it was not.
    fn add_to_lookup(&mut self, v: &str) -> bool {
        let hasher = value_hasher();
        let order = &self.order;
        let entry = self.lookup.entry(
            hasher.hash_one(v),
            |&i| order[i as usize] == v,
            |&i| hasher.hash_one(order[i as usize].as_str()),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                // Caps are far below u32::MAX values.
                slot.insert(order.len() as u32);
                true
            }
        }
    }

    /// As inserting `later`'s values in order, moving them instead of copying.
    fn absorb(&mut self, later: Capped) {
        for v in later.order {
            if self.order.len() >= self.cap {
                return;
            }
            let new = if self.cap <= Self::LINEAR {
                !self.order.contains(&v)
            } else {
                self.add_to_lookup(&v)
            };
            if new {
                self.order.push(v);
            }
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn into_sorted(mut self) -> Vec<String> {
        self.order.sort_unstable();
        self.order
    }
}

/// Groups a batch into findings; feed it lines, then call [`Aggregator::finish`].
#[derive(Debug, Default)]
pub struct Aggregator {
    /// Findings in first-seen order.
    groups: Vec<Group>,
    /// A group's key (see [`group_key`]) -> its index in `groups`.
    index: Map<usize>,
    /// Where each line's key is built: looking a group up allocates nothing.
    key: String,
    /// Scratch space for [`diagnose_ref`]: a lower-cased error and a canonicalised ARN.
    scratch: Vec<u8>,
    arn_buf: String,
    /// Where [`KnownFields::scan`] decodes escaped values.
    unescaped: String,
    /// Where a JSON-escaped line is decoded when it must be.
    decoded: String,
    seen: IdSet,
    /// Regions seen anywhere in the batch, per cluster: every line of a cluster shares one. A
    /// batch names a cluster or a few: a list, checked for every line with a region.
    cluster_regions: Vec<(Option<String>, String)>,
    /// Per-line counters, indexed by `Outcome as usize` / `Cause as usize`; [`Aggregator::finish`]
    /// moves them into `stats.outcomes` / `stats.causes`.
    outcome_counts: [u64; OUTCOMES.len()],
    cause_counts: [u64; Cause::ALL.len()],
    stats: Stats,
    /// Principals granted access in the batch (evidence of "granted before" for incidents).
    grants: Vec<Grant>,
    grant_index: Map<usize>,
}

/// A principal the authenticator granted in the batch, with the username and groups it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub cluster: Option<String>,
    pub principal: String,
    pub usernames: Vec<String>,
    pub groups: Vec<String>,
    pub count: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

impl Grant {
    /// A node role: granted as `system:node:...` or in the `system:nodes` group.
    pub fn is_node(&self) -> bool {
        self.usernames.iter().any(|u| u.starts_with("system:node:"))
            || self.groups.iter().any(|g| g == "system:nodes")
    }
}

/// Every outcome, in declaration order (`Outcome as usize` indexes it).
const OUTCOMES: [Outcome; 5] = [
    Outcome::Denied,
    Outcome::Granted,
    Outcome::StsResponse,
    Outcome::ConfigError,
    Outcome::Other,
];

/// The event ids seen in a batch, to count redeliveries once: what a `HashSet<String>` does, with
/// the ids in one arena (no allocation per id) and each id hashed once (SipHash with a random key,
/// as `HashSet` does, so crafted ids cannot degrade it). CloudWatch Logs delivers a batch's ids in
/// increasing order, and while each id is greater than the one before, none can repeat: hashing
/// starts only once an id arrives out of order.
#[derive(Debug, Default)]
struct IdSet<S = std::collections::hash_map::RandomState> {
    state: S,
    /// An id's hash -> the newest entry in `ids` with that hash.
    heads: HashMap<u64, usize, std::hash::BuildHasherDefault<HashIsKey>>,
    /// (start, end) of each id in `arena`, and the previous entry with the same hash.
    ids: Vec<(usize, usize, Option<usize>)>,
    arena: String,
    /// False while the ids arrived in increasing order: `heads` is still empty.
    hashed: bool,
}

impl<S: std::hash::BuildHasher> IdSet<S> {
    /// Adds `id`; false when it was already there.
    fn insert(&mut self, id: &str) -> bool {
        use std::collections::hash_map::Entry;
        if !self.hashed {
            let last = self
                .ids
                .last()
                .map(|&(start, end, _)| &self.arena[start..end]);
            if last.is_none_or(|last| id > last) {
                let start = self.arena.len();
                self.arena.push_str(id);
                self.ids.push((start, self.arena.len(), None));
                return true;
            }
            // Out of order: index the (distinct) ids so far, then go on hashing.
            self.hashed = true;
            for i in 0..self.ids.len() {
                let (start, end, _) = self.ids[i];
                let hash = self.state.hash_one(&self.arena[start..end]);
                self.ids[i].2 = self.heads.insert(hash, i);
            }
        }
        let hash = self.state.hash_one(id);
        let new = self.ids.len();
        let prev = match self.heads.entry(hash) {
            Entry::Occupied(mut head) => {
                let mut at = Some(*head.get());
                while let Some(i) = at {
                    let (start, end, older) = self.ids[i];
                    if &self.arena[start..end] == id {
                        return false;
                    }
                    at = older;
                }
                Some(std::mem::replace(head.get_mut(), new))
            }
            Entry::Vacant(slot) => {
                slot.insert(new);
                None
            }
        };
        let start = self.arena.len();
        self.arena.push_str(id);
        self.ids.push((start, self.arena.len(), prev));
        true
    }
}

impl<S> IdSet<S> {
    /// True while every id arrived greater than the one before.
    fn in_order(&self) -> bool {
        !self.hashed
    }

    fn first(&self) -> Option<&str> {
        self.ids.first().map(|&(a, b, _)| &self.arena[a..b])
    }

    fn last(&self) -> Option<&str> {
        self.ids.last().map(|&(a, b, _)| &self.arena[a..b])
    }

    /// Appends the ids of a later, in-order set whose first id is greater than our last.
    fn append(&mut self, later: &IdSet<S>) {
        assert!(self.in_order() && later.in_order());
        // In order, an arena holds exactly its ids, one after the other.
        let offset = self.arena.len();
        self.arena.push_str(&later.arena);
        self.ids.extend(
            later
                .ids
                .iter()
                .map(|&(a, b, _)| (a + offset, b + offset, None)),
        );
    }
}

/// A hasher for keys that already are hashes.
#[derive(Debug, Default)]
struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with this; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Writes the grouping key of (cluster, principal, outcome, cause) into `buf`. IAM names are
/// case-insensitive and so is the authenticator's match: the principal is compared lower-cased.
/// The cluster is length-prefixed and the principal comes last, so distinct keys never collide.
fn group_key(
    buf: &mut String,
    cluster: Option<&str>,
    principal: Option<&str>,
    outcome: Outcome,
    cause: Option<Cause>,
) {
    buf.clear();
    buf.push_str(outcome.as_str());
    buf.push('/');
    buf.push_str(cause.map_or("-", Cause::as_str));
    match cluster {
        Some(c) => {
            buf.push('/');
            push_decimal(buf, c.len());
            buf.push(':');
            buf.push_str(c);
        }
        None => buf.push_str("/-"),
    }
    match principal {
        Some(p) => {
            buf.push('/');
            let start = buf.len();
            buf.push_str(p);
            buf[start..].make_ascii_lowercase();
        }
        None => buf.push('-'),
    }
}

fn push_decimal(buf: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(buf, n / 10);
    }
    buf.push(char::from(b'0' + (n % 10) as u8));
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `lines` more lines' event ids (CloudWatch ids are 56 characters): a large
    /// batch's id set then grows without copying itself over and over.
    pub fn reserve(&mut self, lines: usize) {
        self.seen.ids.reserve(lines);
        self.seen.arena.reserve(lines.saturating_mul(56));
    }

    /// Adds one log line. `id` is the CloudWatch event id (redeliveries are counted once);
    /// `timestamp_ms` the event's ingestion timestamp when known.
    pub fn add(
        &mut self,
        origin: &Origin,
        id: Option<&str>,
        timestamp_ms: Option<i64>,
        line: &str,
    ) {
        self.add_line(origin, id, timestamp_ms, Line::Text(line));
    }

    /// As [`Aggregator::add`], for a line as its batch holds it: one still escaped as JSON is
    /// scanned as it is, and only decoded when that scan cannot read it.
    pub fn add_line(
        &mut self,
        origin: &Origin,
        id: Option<&str>,
        timestamp_ms: Option<i64>,
        line: Line<'_>,
    ) {
        self.stats.events += 1;
        if let Some(id) = id {
            if !self.seen.insert(id) {
                self.stats.duplicates += 1;
                return;
            }
        }
        let text = match line {
            Line::Text(text) => text,
            Line::Json(body) => {
                let mut unescaped = std::mem::take(&mut self.unescaped);
                let inner = body.strip_suffix('"').unwrap_or(body);
                let fields = KnownFields::scan_json(inner, &mut unescaped);
                if let Some(fields) = fields {
                    self.add_parsed(origin, &fields, timestamp_ms, line);
                    self.unescaped = unescaped;
                    return;
                }
                self.unescaped = unescaped;
                // Escapes the scan does not read (a Go-quoted STS body, say): decoded first.
                let mut decoded = std::mem::take(&mut self.decoded);
                decoded.clear();
                line.decode_into(&mut decoded);
                self.add_text(origin, id, timestamp_ms, &decoded);
                self.decoded = decoded;
                return;
            }
        };
        self.add_text(origin, id, timestamp_ms, text);
    }

    /// Parses, diagnoses and groups a line (already counted and checked for redelivery).
    fn add_text(
        &mut self,
        origin: &Origin,
        id: Option<&str>,
        timestamp_ms: Option<i64>,
        line: &str,
    ) {
        // Nearly every line takes the fast path; the rest is parsed in full.
        let mut unescaped = std::mem::take(&mut self.unescaped);
        let rec;
        let fields = match KnownFields::scan(line, &mut unescaped) {
            Some(f) => f,
            None => {
                rec = match authlog::parse_entry(line) {
                    Ok(r) => r,
                    Err(authlog::ParseError::Empty) => {
                        self.stats.blank += 1;
                        self.unescaped = unescaped;
                        return;
                    }
                    Err(e) => {
                        self.unescaped = unescaped;
                        self.stats.unparsed += 1;
                        if self.stats.unparsed_samples.len() < MAX_UNPARSED_SAMPLES {
                            self.stats.unparsed_samples.push(UnparsedSample {
                                id: id.map(str::to_string),
                                error: e.to_string(),
                                line: truncate(line, 300),
                            });
                        }
                        return;
                    }
                };
                KnownFields::of(&rec)
            }
        };
        self.add_parsed(origin, &fields, timestamp_ms, Line::Text(line));
        self.unescaped = unescaped;
    }

    /// Counts a line whose fields were read, then diagnoses and groups it.
    fn add_parsed(
        &mut self,
        origin: &Origin,
        fields: &KnownFields<'_>,
        timestamp_ms: Option<i64>,
        line: Line<'_>,
    ) {
        self.stats.parsed += 1;
        let mut arn_buf = std::mem::take(&mut self.arn_buf);
        self.add_fields(origin, fields, timestamp_ms, line, &mut arn_buf);
        self.arn_buf = arn_buf;
    }

    fn add_fields(
        &mut self,
        origin: &Origin,
        fields: &KnownFields<'_>,
        timestamp_ms: Option<i64>,
        line: Line<'_>,
        arn_buf: &mut String,
    ) {
        let d = diagnose_ref(fields, &mut self.scratch, arn_buf);
        self.outcome_counts[d.outcome as usize] += 1;
        if let Some(c) = d.cause {
            self.cause_counts[c as usize] += 1;
        }
        if let Some(r) = d.region {
            if !self
                .cluster_regions
                .iter()
                .any(|(c, _)| *c == origin.cluster)
            {
                self.cluster_regions
                    .push((origin.cluster.clone(), r.to_string()));
            }
        }
        if d.outcome == Outcome::Granted {
            let at = timestamp_ms.or_else(|| d.time.and_then(timefmt::parse_ms));
            self.record_grant(origin, &d, fields.groups, at);
            return;
        }
        if !matches!(d.outcome, Outcome::Denied | Outcome::ConfigError) {
            return;
        }
        let at = timestamp_ms.or_else(|| d.time.and_then(timefmt::parse_ms));
        self.record(origin, &d, at, line);
    }

    fn record(&mut self, origin: &Origin, d: &DiagnosisRef<'_>, at: Option<i64>, line: Line<'_>) {
        group_key(
            &mut self.key,
            origin.cluster.as_deref(),
            d.principal,
            d.outcome,
            d.cause,
        );
        let i = match self.index.get(self.key.as_str()) {
            Some(&i) => i,
            None => {
                let i = self.groups.len();
                self.index.insert(self.key.clone(), i);
                let principal = d.principal;
                let finding = Finding {
                    // Set by `finish`: a group merged into an earlier part's never needs one.
                    id: String::new(),
                    cluster: origin.cluster.clone(),
                    account: origin.account.clone(),
                    region: origin.region.clone(),
                    outcome: d.outcome,
                    cause: d.cause,
                    principal: principal.map(str::to_string),
                    principal_type: principal.and_then(|p| Arn::parse(p).ok()).map(|a| a.kind()),
                    count: 0,
                    first_seen: None,
                    last_seen: None,
                    distinct_clients: 0,
                    clients: Vec::new(),
                    sts_error_codes: Vec::new(),
                    sts_regions: Vec::new(),
                    details: Vec::new(),
                    errors: Vec::new(),
                    log_group: origin.log_group.clone(),
                    log_streams: Vec::new(),
                    samples: Vec::new(),
                };
                self.groups.push(Group {
                    finding,
                    first_ms: None,
                    last_ms: None,
                    clients: Capped::new(MAX_CLIENTS * 50),
                    codes: Capped::new(MAX_EVIDENCE),
                    regions: Capped::new(MAX_EVIDENCE),
                    details: Capped::new(MAX_EVIDENCE),
                    errors: Capped::new(MAX_EVIDENCE),
                    streams: Capped::new(MAX_EVIDENCE),
                    key: self.key.clone(),
                });
                i
            }
        };
        let g = &mut self.groups[i];
        g.finding.count += 1;
        if let Some(ms) = at {
            widen(&mut g.first_ms, &mut g.last_ms, Some(ms), Some(ms));
        }
        if let Some(c) = d.client {
            // Count distinct hosts, not ephemeral ports.
            let host = c.rsplit_once(':').map_or(c, |(h, _)| h);
            g.clients.insert(Some(host));
        }
        g.codes.insert(d.sts_error_code);
        g.regions.insert(d.region);
        g.details.insert(d.detail);
        g.errors.insert(d.error.map(|e| truncate_str(e, 500)));
        g.streams.insert(origin.log_stream.as_deref());
        if g.finding.samples.len() < MAX_SAMPLES {
            g.finding
                .samples
                .push(truncate(&line.text(), MAX_SAMPLE_CHARS));
        }
    }

    /// True when `later`, fed the lines right after ours, can be merged by [`Aggregator::absorb`]
    /// with the result one aggregator fed every line would give: both saw their event ids in
    /// increasing order (as CloudWatch Logs delivers them) and ours all come before its, so no
    /// redelivery crosses the two.
    pub fn can_absorb(&self, later: &Aggregator) -> bool {
        self.seen.in_order()
            && later.seen.in_order()
            && match (self.seen.last(), later.seen.first()) {
                (Some(last), Some(first)) => last < first,
                _ => true,
            }
    }

    /// Merges an aggregator that was fed the lines right after ours (check
    /// [`Aggregator::can_absorb`] first): lets a large batch be diagnosed on several threads.
    pub fn absorb(&mut self, later: Aggregator) {
        self.seen.append(&later.seen);
        let st = &mut self.stats;
        st.events += later.stats.events;
        st.duplicates += later.stats.duplicates;
        st.parsed += later.stats.parsed;
        st.unparsed += later.stats.unparsed;
        st.blank += later.stats.blank;
        for u in later.stats.unparsed_samples {
            if st.unparsed_samples.len() < MAX_UNPARSED_SAMPLES {
                st.unparsed_samples.push(u);
            }
        }
        for (mine, theirs) in self.outcome_counts.iter_mut().zip(later.outcome_counts) {
            *mine += theirs;
        }
        for (mine, theirs) in self.cause_counts.iter_mut().zip(later.cause_counts) {
            *mine += theirs;
        }
        for (cluster, region) in later.cluster_regions {
            if !self.cluster_regions.iter().any(|(c, _)| *c == cluster) {
                self.cluster_regions.push((cluster, region));
            }
        }
        for g in later.groups {
            let Some(&i) = self.index.get(g.key.as_str()) else {
                self.index.insert(g.key.clone(), self.groups.len());
                self.groups.push(g);
                continue;
            };
            let mine = &mut self.groups[i];
            mine.finding.count += g.finding.count;
            widen(&mut mine.first_ms, &mut mine.last_ms, g.first_ms, g.last_ms);
            mine.clients.absorb(g.clients);
            mine.codes.absorb(g.codes);
            mine.regions.absorb(g.regions);
            mine.details.absorb(g.details);
            mine.errors.absorb(g.errors);
            mine.streams.absorb(g.streams);
            for sample in g.finding.samples {
                if mine.finding.samples.len() < MAX_SAMPLES {
                    mine.finding.samples.push(sample);
                }
            }
        }
        for g in later.grants {
            self.absorb_grant(g);
        }
    }

    fn record_grant(
        &mut self,
        origin: &Origin,
        d: &DiagnosisRef<'_>,
        groups: Option<&str>,
        at: Option<i64>,
    ) {
        let Some(principal) = d.principal else {
            return;
        };
        group_key(
            &mut self.key,
            origin.cluster.as_deref(),
            Some(principal),
            Outcome::Granted,
            None,
        );
        let i = match self.grant_index.get(self.key.as_str()) {
            Some(&i) => i,
            None => {
                self.grant_index.insert(self.key.clone(), self.grants.len());
                self.grants.push(Grant {
                    cluster: origin.cluster.clone(),
                    principal: principal.to_string(),
                    usernames: Vec::new(),
                    groups: Vec::new(),
                    count: 0,
                    first_ms: None,
                    last_ms: None,
                });
                self.grants.len() - 1
            }
        };
        let g = &mut self.grants[i];
        g.count += 1;
        if let Some(ms) = at {
            widen(&mut g.first_ms, &mut g.last_ms, Some(ms), Some(ms));
        }
        if let Some(u) = d.username {
            push_capped(&mut g.usernames, u);
        }
        if let Some(groups) = groups {
            for grp in groups
                .trim_matches(|c| c == '[' || c == ']')
                .split_whitespace()
            {
                push_capped(&mut g.groups, grp);
            }
        }
    }

    /// Merges a grant record of a later part (see [`Aggregator::absorb`]).
    fn absorb_grant(&mut self, g: Grant) {
        group_key(
            &mut self.key,
            g.cluster.as_deref(),
            Some(&g.principal),
            Outcome::Granted,
            None,
        );
        let Some(&i) = self.grant_index.get(self.key.as_str()) else {
            self.grant_index.insert(self.key.clone(), self.grants.len());
            self.grants.push(g);
            return;
        };
        let mine = &mut self.grants[i];
        mine.count += g.count;
        widen(&mut mine.first_ms, &mut mine.last_ms, g.first_ms, g.last_ms);
        for (list, more) in [
            (&mut mine.usernames, g.usernames),
            (&mut mine.groups, g.groups),
        ] {
            for v in more {
                push_capped(list, &v);
            }
        }
    }

    /// As [`Aggregator::finish`], with the principals granted in the batch.
    pub fn finish_with_grants(mut self) -> (Vec<Finding>, Stats, Vec<Grant>) {
        let grants = std::mem::take(&mut self.grants);
        let (f, s) = self.finish();
        (f, s, grants)
    }

    /// The findings in first-seen order, and the batch's counts.
    pub fn finish(mut self) -> (Vec<Finding>, Stats) {
        for (o, &n) in OUTCOMES.iter().zip(&self.outcome_counts) {
            if n > 0 {
                *self
                    .stats
                    .outcomes
                    .entry(o.as_str().to_string())
                    .or_default() += n;
            }
        }
        for (c, &n) in Cause::ALL.iter().zip(&self.cause_counts) {
            if n > 0 {
                *self.stats.causes.entry(c.as_str().to_string()).or_default() += n;
            }
        }
        let mut out = Vec::with_capacity(self.groups.len());
        for mut g in self.groups {
            let f = &g.finding;
            g.finding.id = finding_id(
                f.cluster.as_deref(),
                f.principal.as_deref(),
                f.outcome,
                f.cause,
            );
            g.finding.first_seen = g.first_ms.map(timefmt::format_ms);
            g.finding.last_seen = g.last_ms.map(timefmt::format_ms);
            g.finding.distinct_clients = g.clients.len();
            let mut clients = g.clients.into_sorted();
            clients.truncate(MAX_CLIENTS);
            g.finding.clients = clients;
            g.finding.sts_error_codes = g.codes.into_sorted();
            g.finding.sts_regions = g.regions.into_sorted();
            if g.finding.region.is_none() {
                g.finding.region = g.finding.sts_regions.first().cloned().or_else(|| {
                    self.cluster_regions
                        .iter()
                        .find(|(c, _)| *c == g.finding.cluster)
                        .map(|(_, r)| r.clone())
                });
            }
            g.finding.details = g.details.into_sorted();
            g.finding.errors = g.errors.into_sorted();
            g.finding.log_streams = g.streams.into_sorted();
            out.push(g.finding);
        }
        (out, self.stats)
    }
}

/// Widens the time span `first..=last` to cover `from..=to` (either side may be unknown).
fn widen(first: &mut Option<i64>, last: &mut Option<i64>, from: Option<i64>, to: Option<i64>) {
    *first = match (*first, from) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    *last = match (*last, to) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

/// Appends `v` unless it is there already or the list holds [`MAX_EVIDENCE`] values.
fn push_capped(list: &mut Vec<String>, v: &str) {
    if list.len() < MAX_EVIDENCE && !list.iter().any(|x| x == v) {
        list.push(v.to_string());
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate(s: &str, max: usize) -> String {
    let t = truncate_str(s, max);
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t.to_string()
    }
}

/// A deterministic id for (cluster, principal, outcome/cause): the ticket id derives from it.
pub fn finding_id(
    cluster: Option<&str>,
    principal: Option<&str>,
    outcome: Outcome,
    cause: Option<Cause>,
) -> String {
    use sha2::{Digest, Sha256};
    let what = match cause {
        Some(c) => c.as_str(),
        None => outcome.as_str(),
    };
    let mut h = Sha256::new();
    h.update(cluster.unwrap_or("").as_bytes());
    h.update([0]);
    // The principal lower-cased, a block at a time (hashing is the same in pieces).
    for piece in principal.unwrap_or("").as_bytes().chunks(64) {
        let mut block = [0u8; 64];
        let block = &mut block[..piece.len()];
        block.copy_from_slice(piece);
        block.make_ascii_lowercase();
        h.update(&*block);
    }
    h.update([0]);
    h.update(what.as_bytes());
    let digest = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(16);
    for &b in &digest[..8] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(e: &str) -> Cause {
        classify_error(e).cause
    }

    #[test]
    fn sts_codes_from_escaped_and_plain_bodies() {
        let e = r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: {"Error":{"Code":"InvalidClientTokenId","Message":"The security token included in the request is invalid.","Type":"Sender"},"RequestId":"x"}"#;
        let c = classify_error(e);
        assert_eq!(c.cause, Cause::InvalidClientToken);
        assert_eq!(c.sts_code.as_deref(), Some("InvalidClientTokenId"));
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            class(
                r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403). Body: {\"Error\":{\"Code\":\"ExpiredToken\"}}"#
            ),
            Cause::ExpiredToken
        );
        assert_eq!(
            class("sts getCallerIdentity failed: error from AWS (expected 200, got 403). Body: <ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"),
            Cause::SignatureMismatch
        );
        assert_eq!(
            class("sts getCallerIdentity failed: error from AWS (expected 200, got 403)"),
            Cause::StsRejected
        );
        assert_eq!(
            class(
                r#"sts getCallerIdentity failed: error from AWS (expected 200, got 400). Body: {"Error":{"Code":"Throttling"}}"#
            ),
            Cause::StsThrottled
        );
    }

    proptest::proptest! {
        /// Evidence sets keep the first `cap` distinct values in order, linear or indexed, and
        /// merging the sets of two halves keeps what one set fed everything keeps.
        #[test]
        fn capped_keeps_the_first_distinct_values(
            values in proptest::collection::vec(0u8..40, 0..200),
            split in 0usize..200,
            cap in proptest::sample::select(vec![3usize, 16, 17, 25, 1000]),
        ) {
            let values: Vec<String> = values.iter().map(|v| format!("10.0.0.{v}")).collect();
            let mut want: Vec<String> = Vec::new();
            for v in &values {
                if want.len() < cap && !want.contains(v) {
                    want.push(v.clone());
                }
            }
            let mut one = Capped::new(cap);
            for v in &values {
                one.insert(Some(v));
            }
            proptest::prop_assert_eq!(&one.order, &want);
            let split = split.min(values.len());
            let (mut first, mut second) = (Capped::new(cap), Capped::new(cap));
            for v in &values[..split] {
                first.insert(Some(v));
            }
            for v in &values[split..] {
                second.insert(Some(v));
            }
            first.absorb(second);
            proptest::prop_assert_eq!(&first.order, &want);
            // And the merged set goes on as a set.
            for v in &values {
                first.insert(Some(v));
            }
            proptest::prop_assert_eq!(first.order, want);
        }
    }

    #[test]
    fn id_set_is_a_set_even_when_every_hash_collides() {
        #[derive(Default)]
        struct Collide;
        impl std::hash::Hasher for Collide {
            fn finish(&self) -> u64 {
                7
            }
            fn write(&mut self, _: &[u8]) {}
        }
        let mut real = IdSet::<std::collections::hash_map::RandomState>::default();
        let mut colliding = IdSet::<std::hash::BuildHasherDefault<Collide>>::default();
        let ids = ["1", "2", "", "10", "1", "2", "3", "", "10", "01"];
        let want = [
            true, true, true, true, false, false, true, false, false, true,
        ];
        for (id, want) in ids.iter().zip(want) {
            assert_eq!(real.insert(id), want, "{id:?}");
            assert_eq!(colliding.insert(id), want, "{id:?}");
        }
        // In order (no hashing), then a repeat of the last one, or of an earlier one.
        for ids in [["a", "b", "c", "c", "d"], ["a", "b", "c", "b", "d"]] {
            let mut real = IdSet::<std::collections::hash_map::RandomState>::default();
            let mut colliding = IdSet::<std::hash::BuildHasherDefault<Collide>>::default();
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(real.insert(id), i != 3, "{ids:?} {id}");
                assert_eq!(colliding.insert(id), i != 3, "{ids:?} {id}");
            }
            assert!(!real.insert("a") && !colliding.insert("a"));
        }
    }

    #[test]
    fn finding_ids_are_stable() {
        // Ticket ids derive from these: the straightforward definition must keep holding.
        let reference = |cluster: Option<&str>, p: Option<&str>, what: &str| {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(cluster.unwrap_or("").as_bytes());
            h.update([0]);
            h.update(p.unwrap_or("").to_ascii_lowercase().as_bytes());
            h.update([0]);
            h.update(what.as_bytes());
            h.finalize()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let long = format!("arn:aws:iam::111122223333:role/{}", "Ab".repeat(70));
        for cluster in [None, Some("prod")] {
            for p in [
                None,
                Some(""),
                Some("arn:aws:iam::111122223333:role/Dev"),
                Some(long.as_str()),
            ] {
                assert_eq!(
                    finding_id(cluster, p, Outcome::Denied, Some(Cause::NotMapped)),
                    reference(cluster, p, "not_mapped")
                );
                assert_eq!(
                    finding_id(cluster, p, Outcome::ConfigError, None),
                    reference(cluster, p, "config_error")
                );
            }
        }
    }

    #[test]
    fn canonical_arn_matches_arn_canonicalize() {
        for s in [
            "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com",
            " arn:aws-cn:sts::111122223333:assumed-role/dev/s ",
            "arn:aws:sts::111122223333:assumed-role/dev",
            "arn:aws:sts::111122223333:assumed-role/",
            "arn:aws:sts::111122223333:assumed-role",
            "arn:aws:sts::111122223333:assumed-role/a/b/c:d",
            "arn:aws:sts:eu-west-1:111122223333:assumed-role/r/s",
            "arn:aws-mars:sts::111122223333:assumed-role/r/s",
            "arn:aws:sts::12:assumed-role/r/s",
            "arn:aws:sts::11112222333x:assumed-role/r/s",
            "arn:aws:sts::111122223333:federated-user/dan",
            "arn:aws:iam::111122223333:role/gitlab-ci/runner",
            "arn:aws:iam::111122223333:user/ops/carol",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::12:role/x",
            "ARN:aws:sts::111122223333:assumed-role/r/s",
            "arn:aws:STS::111122223333:assumed-role/r/s",
            "arn:aws:sts::111122223333:Assumed-Role/r/s",
            "arn::sts::111122223333:assumed-role/r/s",
            "arn:aws:sts:::assumed-role/r/s",
            "arn:aws:sts::111122223333",
            "not-an-arn",
            "",
            "  ",
        ] {
            assert_eq!(
                canonical_arn_in(s, &mut String::new()),
                arn::canonicalize(s),
                "{s:?}"
            );
        }
    }

    /// The straightforward definitions the byte-level helpers replace.
    fn is_region_by_split(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() >= 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
            && parts
                .last()
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    }

    fn region_of_endpoint_by_split(ep: &str) -> Option<String> {
        let host = ep
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let host = host.split(['/', ':']).next()?;
        let mut parts = host.split('.');
        if parts.next()? != "sts" {
            return None;
        }
        let region = parts.next()?;
        if region == "amazonaws" {
            return Some("us-east-1".into());
        }
        is_region_by_split(region).then(|| region.to_string())
    }

    #[test]
    fn region_of_endpoint_examples() {
        for ep in [
            "sts.amazonaws.com",
            "https://sts.amazonaws.com/",
            "sts.eu-west-1.amazonaws.com",
            "https://sts.us-gov-west-1.amazonaws.com:443/path",
            "sts",
            "sts.",
            "ec2.eu-west-1.amazonaws.com",
            "",
        ] {
            assert_eq!(
                region_of_endpoint(ep).map(str::to_string),
                region_of_endpoint_by_split(ep),
                "{ep:?}"
            );
        }
        assert_eq!(region_of_endpoint("sts.amazonaws.com"), Some("us-east-1"));
    }

    proptest::proptest! {
        #[test]
        fn region_helpers_agree_with_split_definitions(
            region in "[a-z0-9-]{0,4}(-[a-z]{0,5}){0,3}(-[0-9x]{0,2})?",
            scheme in proptest::prop_oneof!["", "https://", "http://", "https://https://"],
            head in proptest::prop_oneof!["sts", "sts.", "stsx", "", "STS"],
            tail in proptest::prop_oneof!["", ".amazonaws.com", ".amazonaws.com:443/x", "/path", ":443"],
        ) {
            proptest::prop_assert_eq!(is_region(&region), is_region_by_split(&region));
            let ep = format!("{scheme}{head}.{region}{tail}");
            proptest::prop_assert_eq!(
                region_of_endpoint(&ep).map(str::to_string),
                region_of_endpoint_by_split(&ep)
            );
        }

        #[test]
        fn canonical_arn_agrees_on_generated_arns(
            head in proptest::prop_oneof!["arn", "ARN", "", " arn"],
            partition in proptest::prop_oneof!["aws", "aws-cn", "aws-iso-b", "aws-mars", ""],
            service in proptest::prop_oneof!["sts", "iam", "STS", ""],
            region in proptest::prop_oneof!["", "us-east-1"],
            account in "[0-9x]{0,13}",
            resource in "(assumed-role|role|user|federated-user)?(/[a-zA-Z0-9+=,.@:_-]{0,8}){0,3}[ ]?",
        ) {
            let s = format!("{head}:{partition}:{service}:{region}:{account}:{resource}");
            let mut buf = String::new();
            proptest::prop_assert_eq!(canonical_arn_in(&s, &mut buf), arn::canonicalize(&s));
        }
    }

    /// The fast path reads exactly what the full parse would: same fields, and only for lines
    /// the full parse accepts.
    fn assert_scan_agrees(line: &str) {
        if let Some(fast) = KnownFields::scan(line, &mut String::from("left over")) {
            let rec = authlog::parse_entry(line)
                .unwrap_or_else(|e| panic!("scan took a line parse_entry rejects ({e}): {line:?}"));
            assert_eq!(fast, KnownFields::of(&rec), "{line:?}");
        }
        // The line as the subscription JSON holds it: its scan, when it answers, answers alike.
        let json = serde_json::to_string(line).unwrap();
        let body = &json[1..json.len() - 1];
        if let Some(escaped) = KnownFields::scan_json(body, &mut String::from("left over")) {
            let mut scratch = String::new();
            let plain = KnownFields::scan(line, &mut scratch);
            assert_eq!(Some(escaped), plain, "{line:?} as {body}");
        }
    }

    #[test]
    fn known_keys_and_near_misses() {
        let keys = [
            "msg",
            "error",
            "err",
            "arn",
            "stsendpoint",
            "sts",
            "client",
            "username",
            "time",
            "groups",
        ];
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(KnownFields::slot(k), Some(i), "{k}");
        }
        for k in [
            "",
            "ms",
            "msgs",
            "Msg",
            "MSG",
            "errors",
            "stsendpoinx",
            "stsendpoint2",
            "stsendpoin",
            "usernam",
            "usernames",
            "clients",
            "group",
            "tim",
            "level",
            "arn\0",
            "m\0g",
        ] {
            assert_eq!(KnownFields::slot(k), None, "{k:?}");
        }
    }

    #[test]
    fn scan_agrees_with_the_full_parse() {
        let lines = crate::benchdata::realistic_lines(3000);
        let fast = lines
            .iter()
            .filter(|l| KnownFields::scan(l, &mut String::new()).is_some())
            .count();
        // Every generated line is plain logfmt, escaped quotes (STS bodies) included; and it
        // is read as the subscription JSON holds it, without being decoded.
        assert_eq!(fast, lines.len());
        let escaped = lines
            .iter()
            .filter(|l| {
                let json = serde_json::to_string(l).unwrap();
                KnownFields::scan_json(&json[1..json.len() - 1], &mut String::new()).is_some()
            })
            .count();
        assert_eq!(escaped, lines.len());
        for line in &lines {
            assert_scan_agrees(line);
        }
        for line in [
            r#"msg="access denied" arn=a arn=b"#,
            r#"time="t" msg="x" error="" client= k"#,
            r#"msg="x"y=1"#,
            r#"msg="unterminated"#,
            "msg=x \u{b}",
            "msg=x ",
            "msg=x\t",
            "msg=x\u{b}",
            "msg=x\u{a0}",
            "msg=x\u{3000}",
            "msg=\"a\\\"b\"",
            "level=info msg=x\u{1f}more",
            "level=info msg=x\u{1b}[0m",
            "level=info msg=\"é\" user=ü",
            "a=1 =2",
            "a",
            "INFO[0000] msg=x",
            "info[0000] msg=x",
            r#"msg="q \"x\" \\ \n \t \r \a \b \f \v \' end" k=v"#,
            r#"msg="hex \x41 and \u00e9 and \U0001F600" k=v"#,
            r#"msg="bad \q" k=v"#,
            "msg=\"plain\"",
            "msg=a\\b k=\"x\"",
            "msg=\"a\"\"",
            "msg=\"a\" \"",
            "msg=\"x\"\u{7}",
            "msg=\"é/\" path=/a\u{2028}b",
        ] {
            assert_scan_agrees(line);
        }
    }

    proptest::proptest! {
        #[test]
        fn scan_agrees_on_generated_lines(
            line in "[a-z \t=\"\\\\\u{b}\u{1f}\u{1b}\u{feff}é\\[\\]{}]{0,40}",
        ) {
            assert_scan_agrees(&line);
        }

        #[test]
        fn scan_agrees_on_generated_records(
            fields in proptest::collection::vec(
                (
                    proptest::prop_oneof!["msg", "arn", "error", "err", "client", "time", "groups", "x-y", ""],
                    "[ -~]{0,12}",
                    proptest::bool::ANY,
                ),
                0..6,
            ),
            lead in proptest::prop_oneof!["", " ", "pod "],
            trail in proptest::prop_oneof!["", " ", "\t", "\u{b}", "\u{a0}", "\u{feff}"],
        ) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v, quote)| if *quote { format!("{k}={}", authlog::quote_value(v)) } else { format!("{k}={v}") })
                .collect();
            assert_scan_agrees(&format!("{lead}{}{trail}", body.join(" ")));
        }
    }

    #[test]
    fn json_lines_read_in_place_or_decoded() {
        let origin = Origin::default();
        let line = r#"msg="access denied" arn="arn:aws:iam::111122223333:role/dev" error="sts getCallerIdentity failed: Body: {\"Code\":\"ExpiredToken\"}""#;
        let json = serde_json::to_string(line).unwrap();
        let (mut text, mut escaped) = (Aggregator::new(), Aggregator::new());
        text.add(&origin, Some("1"), None, line);
        escaped.add_line(&origin, Some("1"), None, Line::Json(&json[1..]));
        let (a, b) = (text.finish(), escaped.finish());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.0[0].cause, Some(Cause::ExpiredToken));
        // Bodies that were never checked (the variant is public): counted, never a panic.
        let mut odd = Aggregator::new();
        for body in ["", "é", "msg=x", "\"", "msg=\\q\"", r#"a=\u00e9""#] {
            odd.add_line(&origin, None, None, Line::Json(body));
        }
        assert_eq!(odd.finish().1.events, 6);
    }

    #[test]
    fn grouping_counts_redeliveries_once() {
        let origin = Origin {
            cluster: Some("prod".into()),
            ..Origin::default()
        };
        let line = r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:iam::111122223333:role/Dev" client="10.0.0.1:1" error="ARN is not mapped" method=POST path=/authenticate"#;
        let lower = line
            .replace("role/Dev", "role/dev")
            .replace("10.0.0.1:1", "10.0.0.1:2");
        let mut agg = Aggregator::new();
        agg.add(&origin, Some("1"), Some(1000), line);
        agg.add(&origin, Some("1"), Some(1000), line);
        agg.add(&origin, Some("2"), Some(3000), &lower);
        agg.add(&origin, Some("3"), None, "garbage");
        agg.add(&origin, Some("4"), None, "");
        let (findings, stats) = agg.finish();
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.count, 2);
        assert_eq!(f.distinct_clients, 1);
        assert_eq!(f.first_seen.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(f.last_seen.as_deref(), Some("1970-01-01T00:00:03.000Z"));
        assert_eq!(f.principal_type, Some(PrincipalKind::Role));
        assert_eq!(stats.events, 5);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.unparsed, 1);
        assert_eq!(stats.blank, 1);
        assert_eq!(stats.unparsed_samples[0].line, "garbage");
        assert_eq!(
            f.id,
            finding_id(
                Some("prod"),
                Some("ARN:aws:iam::111122223333:role/dev"),
                Outcome::Denied,
                Some(Cause::NotMapped)
            )
        );
    }
}
