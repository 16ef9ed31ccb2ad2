//! `k8s-aws-v1.` bearer tokens, validated the way the aws-iam-authenticator's `tokenVerifier.Verify`
//! does (pkg/token/token.go), with the same error strings: a token is the base64url (no padding)
//! of a SigV4 query-presigned `GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&...`
//! that signed the `x-k8s-aws-id` header. The cluster name is not in the URL: the authenticator
//! re-sends that header with its own cluster name, so a token made for another cluster fails at
//! STS with `SignatureDoesNotMatch`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The token prefix.
pub const V1_PREFIX: &str = "k8s-aws-v1.";
/// Tokens longer than this are rejected.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Presigned URLs are honoured this long after `X-Amz-Date`, whatever `X-Amz-Expires` says.
pub const PRESIGNED_URL_EXPIRATION_SECS: i64 = 15 * 60;
/// The signed header carrying the cluster name.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

const PARAMETER_WHITELIST: &[&str] = &[
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// A token that passed every local check; the next step is STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The decoded presigned URL.
    pub url: String,
    /// `sts.us-west-2.amazonaws.com` (with a port if the URL had one): the `stsendpoint` field.
    pub host: String,
    /// The query exactly as presigned (what verbatim replay sends).
    pub raw_query: String,
    /// Query parameters with lower-cased keys.
    pub params: BTreeMap<String, String>,
    /// The access key from `X-Amz-Credential`.
    pub access_key_id: String,
    /// `X-Amz-Security-Token`, for session credentials.
    pub session_token: Option<String>,
    /// The region named by the host (`global` for `sts.amazonaws.com`), as the authenticator puts
    /// it in `... on <region> endpoint`.
    pub sts_region: String,
    /// The credential scope's region (`us-east-1` when the scope has none).
    pub signing_region: String,
    /// `X-Amz-Date` as Unix seconds.
    pub date: i64,
}

/// Where a token is checked: the cluster's partition and region, and hosts allowed besides STS's
/// own (`sts.extra_hosts`).
#[derive(Debug, Clone)]
pub struct VerifierConfig<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub extra_hosts: &'a [String],
}

/// A rejected token: the authenticator's `FormatError` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input token was not properly formatted: {0}")]
pub struct FormatError(pub String);

fn ferr(msg: impl Into<String>) -> FormatError {
    FormatError(msg.into())
}

/// Current time in nanoseconds since the epoch.
pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The partition a region belongs to (the SDK's region patterns; anything else is `aws`).
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

/// `endpoints.GetSTSPartitionDomain`.
pub fn partition_domain(partition: &str) -> Option<&'static str> {
    Some(match partition {
        "aws" | "aws-us-gov" => "amazonaws.com",
        "aws-cn" => "amazonaws.com.cn",
        "aws-iso" => "c2s.ic.gov",
        "aws-iso-b" => "sc2s.sgov.gov",
        "aws-iso-e" => "cloud.adc-e.uk",
        "aws-iso-f" => "csp.hci.ic.gov",
        "aws-eusc" => "amazonaws.eu",
        _ => return None,
    })
}

/// `endpoints.GetSTSDualStackPartitionDomain` (empty: no dual stack).
pub fn dual_stack_domain(partition: &str) -> &'static str {
    match partition {
        "aws" | "aws-us-gov" => "api.aws",
        "aws-cn" => "api.amazonwebservices.com.cn",
        "aws-eusc" => "api.amazonwebservices.eu",
        _ => "",
    }
}

/// Go's `strconv.Quote` (what `%q` prints) for the strings that reach it here.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `base64.RawURLEncoding.DecodeString`: newlines are skipped, padding is an error, trailing
/// bits are ignored; errors are Go's `illegal base64 data at input byte N`.
pub fn go_raw_url_b64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(b: u8) -> Option<u8> {
        match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'a'..=b'z' => Some(b - b'a' + 26),
            b'0'..=b'9' => Some(b - b'0' + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let src = s.as_bytes();
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut si = 0;
    while si < src.len() {
        let mut quantum = [0u8; 4];
        let mut j = 0;
        let mut dlen = 4;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                if j == 1 {
                    return Err(format!("illegal base64 data at input byte {}", si - j));
                }
                dlen = j;
                break;
            }
            let b = src[si];
            si += 1;
            if let Some(v) = val(b) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if b == b'\n' || b == b'\r' {
                continue;
            }
            return Err(format!("illegal base64 data at input byte {}", si - 1));
        }
        let n = (u32::from(quantum[0]) << 18)
            | (u32::from(quantum[1]) << 12)
            | (u32::from(quantum[2]) << 6)
            | u32::from(quantum[3]);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
    }
    Ok(out)
}

/// `base64.RawURLEncoding.EncodeToString`.
pub fn raw_url_b64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The parts of a URL the authenticator looks at, parsed like Go's `url.Parse` for absolute URLs.
struct ParsedUrl {
    scheme: String,
    host: String,
    path: String,
    raw_query: String,
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.unescape` (path mode when `query` is false): `%XX`, and `+` as space in queries.
fn go_unescape(s: &str, query: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (h, l) = (
                    b.get(i + 1).copied().and_then(unhex),
                    b.get(i + 2).copied().and_then(unhex),
                );
                match (h, l) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        return Err(format!(
                            "invalid URL escape {}",
                            go_quote(&String::from_utf8_lossy(&b[i..end]))
                        ));
                    }
                }
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn parse_url(raw: &str) -> Result<ParsedUrl, String> {
    let wrap = |e: String| format!("parse {}: {e}", go_quote(raw));
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(wrap("net/url: invalid control character in URL".into()));
    }
    // Go drops the fragment first.
    let rest = raw.split_once('#').map_or(raw, |(a, _)| a);
    // Scheme: a letter, then letters, digits, + - . up to ':'.
    let mut scheme = String::new();
    let mut after = rest;
    for (i, c) in rest.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if i > 0 && (c.is_ascii_digit() || c == '+' || c == '-' || c == '.') {
            continue;
        }
        if c == ':' {
            if i == 0 {
                return Err(wrap("missing protocol scheme".into()));
            }
            scheme = rest[..i].to_ascii_lowercase();
            after = &rest[i + 1..];
        }
        break;
    }
    let (before_query, raw_query) = match after.split_once('?') {
        Some((a, q)) => (a, q.to_string()),
        None => (after, String::new()),
    };
    let (host, path) = if let Some(auth) = before_query.strip_prefix("//") {
        let (authority, path) = match auth.find('/') {
            Some(i) => (&auth[..i], &auth[i..]),
            None => (auth, ""),
        };
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if !host.starts_with('[') {
            if let Some((_, port)) = host.rsplit_once(':') {
                if !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(wrap(format!(
                        "invalid port {} after host",
                        go_quote(&format!(":{port}"))
                    )));
                }
            }
        }
        (host.to_string(), path)
    } else {
        (String::new(), before_query)
    };
    let path = go_unescape(path, false).map_err(wrap)?;
    Ok(ParsedUrl {
        scheme,
        host,
        path,
        raw_query,
    })
}

/// Go's `url.ParseQuery`: ordered key/value pairs, and the first error met (parsing continues).
fn parse_query(q: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut out = Vec::new();
    let mut err = None;
    for part in q.split('&') {
        if part.contains(';') {
            err.get_or_insert_with(|| "invalid semicolon separator in query".to_string());
            continue;
        }
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = match go_unescape(k, true) {
            Ok(k) => k,
            Err(e) => {
                err.get_or_insert(e);
                continue;
            }
        };
        let v = match go_unescape(v, true) {
            Ok(v) => v,
            Err(e) => {
                err.get_or_insert(e);
                continue;
            }
        };
        out.push((k, v));
    }
    (out, err)
}

/// The authenticator's `getStsRegion`.
pub fn sts_region_of_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("host is empty".into());
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() < 3 {
        return Err(format!("invalid host format: {host}"));
    }
    if host == "sts.amazonaws.com" {
        return Ok("global".into());
    }
    Ok(parts[1].to_string())
}

fn valid_region(region: &str) -> bool {
    let b = region.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The hosts the STS endpoint resolver produces for a region (plain, FIPS, dual stack).
fn resolved_sts_hosts(region: &str) -> Vec<String> {
    let partition = partition_of_region(region);
    let domain = partition_domain(partition).unwrap_or("amazonaws.com");
    let dual = dual_stack_domain(partition);
    let mut hosts = vec![
        format!("sts.{region}.{domain}"),
        format!("sts-fips.{region}.{domain}"),
    ];
    if !dual.is_empty() {
        hosts.push(format!("sts.{region}.{dual}"));
        hosts.push(format!("sts-fips.{region}.{dual}"));
    }
    hosts
}

/// The authenticator's `verifyHost` / `verifySTSHostnameFormat`, plus the configured extra hosts.
fn verify_host(host: &str, cfg: &VerifierConfig<'_>) -> Result<(), FormatError> {
    if cfg.extra_hosts.iter().any(|h| h == host) {
        return Ok(());
    }
    let region = sts_region_of_host(host).map_err(|e| {
        ferr(format!(
            "could not parse region for pre-signed URL {host}, {e}"
        ))
    })?;
    if region == "global" {
        if cfg.partition == "aws" {
            return Ok(());
        }
        return Err(ferr(format!(
            "global endpoint unsupported in partition {}",
            cfg.partition
        )));
    }
    if !valid_region(&region) {
        return Err(ferr(format!(
            "invalid region identifier format provided: {region}"
        )));
    }
    let unexpected = || {
        ferr(format!(
            "unexpected hostname {} in pre-signed URL",
            go_quote(host)
        ))
    };
    if !resolved_sts_hosts(&region).iter().any(|h| h == host) {
        // Regions the SDK doesn't know yet: the verifier's own region in its partition.
        let Some(domain) = partition_domain(cfg.partition) else {
            return Err(unexpected());
        };
        if !valid_region(cfg.region) {
            return Err(unexpected());
        }
        let dual = dual_stack_domain(cfg.partition);
        if host == format!("sts.{}.{domain}", cfg.region)
            || (!dual.is_empty() && host == format!("sts.{}.{dual}", cfg.region))
        {
            return Ok(());
        }
        return Err(unexpected());
    }
    let parts: Vec<&str> = host.split('.').collect();
    let actual = parts.get(2..).map(|p| p.join(".")).unwrap_or_default();
    let expected = partition_domain(cfg.partition).unwrap_or("");
    let dual = dual_stack_domain(cfg.partition);
    if actual != expected && (dual.is_empty() || actual != dual) {
        return Err(ferr(format!(
            "partition {{{}}} does not support hostname {host}",
            cfg.partition
        )));
    }
    Ok(())
}

/// Go's `strconv.Atoi` value on error (0 for syntax errors, clamped for range errors).
fn go_atoi(s: &str) -> Result<i64, i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(0);
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        match v.checked_mul(10).and_then(|x| {
            if neg {
                x.checked_sub(i64::from(b - b'0'))
            } else {
                x.checked_add(i64::from(b - b'0'))
            }
        }) {
            Some(n) => v = n,
            None => return Err(if neg { i64::MIN } else { i64::MAX }),
        }
    }
    Ok(v)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `time.Parse("20060102T150405Z", value)` with Go's error texts.
pub fn parse_amz_date(value: &str) -> Result<i64, String> {
    const LAYOUT: &str = "20060102T150405Z";
    let parse_err = |value_elem: &str, layout_elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            go_quote(value),
            go_quote(LAYOUT),
            go_quote(value_elem),
            go_quote(layout_elem)
        )
    };
    let range_err = |what: &str| format!("parsing time {}: {what} out of range", go_quote(value));
    // getnum: one or two digits; `fixed` requires two.
    fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
        let b = s.as_bytes();
        if b.is_empty() || !b[0].is_ascii_digit() {
            return None;
        }
        if b.len() < 2 || !b[1].is_ascii_digit() {
            if fixed {
                return None;
            }
            return Some((i64::from(b[0] - b'0'), &s[1..]));
        }
        Some((
            i64::from(b[0] - b'0') * 10 + i64::from(b[1] - b'0'),
            &s[2..],
        ))
    }
    let mut v = value;
    // 2006
    if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return Err(parse_err(v, "2006"));
    }
    let year: i64 = v[..4].parse().map_err(|_| parse_err(v, "2006"))?;
    v = &v[4..];
    // 01
    let (month, r) = getnum(v, true).ok_or_else(|| parse_err(v, "01"))?;
    if !(1..=12).contains(&month) {
        return Err(range_err("month"));
    }
    v = r;
    // 02
    let (day, r) = getnum(v, true).ok_or_else(|| parse_err(v, "02"))?;
    v = r;
    // T
    v = v.strip_prefix('T').ok_or_else(|| parse_err(v, "T"))?;
    // 15
    let (hour, r) = getnum(v, false).ok_or_else(|| parse_err(v, "15"))?;
    if !(0..24).contains(&hour) {
        return Err(range_err("hour"));
    }
    v = r;
    // 04
    let (min, r) = getnum(v, true).ok_or_else(|| parse_err(v, "04"))?;
    if !(0..60).contains(&min) {
        return Err(range_err("minute"));
    }
    v = r;
    // 05
    let (sec, r) = getnum(v, true).ok_or_else(|| parse_err(v, "05"))?;
    if !(0..60).contains(&sec) {
        return Err(range_err("second"));
    }
    v = r;
    // Z
    v = v.strip_prefix('Z').ok_or_else(|| parse_err(v, "Z"))?;
    if !v.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            go_quote(value),
            go_quote(v)
        ));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(range_err("day"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// `time.Time.String()` for a UTC time: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    let (y, m, d, h, mi, s) = crate::civil::from_unix(unix);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
}

/// Validates a token as the authenticator does before calling STS. `now_nanos` is the current
/// time in nanoseconds since the epoch.
///
/// # Errors
/// The authenticator's `FormatError`.
pub fn verify(
    token: &str,
    cfg: &VerifierConfig<'_>,
    now_nanos: i128,
) -> Result<VerifiedToken, FormatError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(ferr("token is too large"));
    }
    let Some(encoded) = token.strip_prefix(V1_PREFIX) else {
        return Err(ferr(format!(
            "token is missing expected {} prefix",
            go_quote(V1_PREFIX)
        )));
    };
    let bytes = go_raw_url_b64_decode(encoded).map_err(FormatError)?;
    let url = String::from_utf8_lossy(&bytes).into_owned();
    let parsed = parse_url(&url).map_err(FormatError)?;
    if parsed.scheme != "https" {
        return Err(ferr(format!(
            "unexpected scheme {} in pre-signed URL",
            go_quote(&parsed.scheme)
        )));
    }
    verify_host(&parsed.host, cfg)?;
    let sts_region = if cfg.extra_hosts.contains(&parsed.host) {
        String::new()
    } else {
        sts_region_of_host(&parsed.host).map_err(FormatError)?
    };
    if parsed.path != "/" {
        return Err(ferr("unexpected path in pre-signed URL"));
    }
    let (pairs, err) = parse_query(&parsed.raw_query);
    if err.is_some() {
        return Err(ferr("malformed query parameter"));
    }
    // url.Values groups values by exact key, in first-seen order here (Go's map order is random).
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in pairs {
        match grouped.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, vs)) => vs.push(v),
            None => grouped.push((k, vec![v])),
        }
    }
    let mut seen_lower: Vec<String> = Vec::new();
    for (k, _) in &grouped {
        let lower = k.to_ascii_lowercase();
        if seen_lower.contains(&lower) {
            return Err(ferr(format!(
                "duplicate query parameter found: {}",
                go_quote(k)
            )));
        }
        seen_lower.push(lower);
    }
    let mut params = BTreeMap::new();
    for (k, vs) in &grouped {
        let lower = k.to_ascii_lowercase();
        if !PARAMETER_WHITELIST.contains(&lower.as_str()) {
            return Err(ferr(format!(
                "non-whitelisted query parameter {}",
                go_quote(k)
            )));
        }
        if vs.len() != 1 {
            return Err(ferr("query parameter with multiple values not supported"));
        }
        params.insert(lower, vs[0].clone());
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("action") != "GetCallerIdentity" {
        return Err(ferr("unexpected action parameter in pre-signed URL"));
    }
    if !get("x-amz-signedheaders")
        .split(';')
        .any(|h| h.eq_ignore_ascii_case(CLUSTER_ID_HEADER))
    {
        return Err(ferr(format!(
            "client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL"
        )));
    }
    match go_atoi(get("x-amz-expires")) {
        Ok(e) if (0..=900).contains(&e) => {}
        Ok(e) | Err(e) => {
            return Err(ferr(format!(
                "invalid X-Amz-Expires parameter in pre-signed URL: {e}"
            )));
        }
    }
    let date = get("x-amz-date");
    if date.is_empty() {
        return Err(ferr(
            "X-Amz-Date parameter must be present in pre-signed URL",
        ));
    }
    let credential = get("x-amz-credential");
    let access_key_id = credential.split('/').next().unwrap_or("").to_string();
    let date_unix = parse_amz_date(date).map_err(|e| {
        ferr(format!(
            "error parsing X-Amz-Date parameter {date} into format 20060102T150405Z: {e}"
        ))
    })?;
    if now_nanos > i128::from(date_unix + PRESIGNED_URL_EXPIRATION_SECS) * 1_000_000_000 {
        return Err(ferr(format!(
            "X-Amz-Date parameter is expired (15 minute expiration) {}",
            go_time_string(date_unix)
        )));
    }
    let scope: Vec<&str> = credential.split('/').collect();
    let signing_region = scope
        .get(2)
        .filter(|r| !r.is_empty())
        .map_or_else(|| "us-east-1".to_string(), |r| (*r).to_string());
    let sts_region = if sts_region.is_empty() {
        signing_region.clone()
    } else {
        sts_region
    };
    Ok(VerifiedToken {
        host: parsed.host,
        raw_query: parsed.raw_query,
        session_token: params.get("x-amz-security-token").cloned(),
        params,
        access_key_id,
        sts_region,
        signing_region,
        date: date_unix,
        url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The authenticator's own TestGetWithSTS token (2023-04-28T00:00:00Z, us-west-2).
    const VECTOR: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BU0lBUjJURzQ0VjZBUzNaWkU3QyUyRjIwMjMwNDI4JTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyMzA0MjhUMDAwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9ZTIxMWRiYTc3YWJhOWRjNDRiMGI2YmUzOGI4ZWFhZDA5MjU5OWM1MTU3ZjYzMTQ0NDRjNWI5ZDg1NzQ3ZjVjZQ";
    const T0: i128 = 1_682_640_000 * 1_000_000_000;
    const GOOD: &str = "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20230428T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce";

    fn cfg() -> VerifierConfig<'static> {
        VerifierConfig {
            partition: "aws",
            region: "us-west-2",
            extra_hosts: &[],
        }
    }

    fn tok(url: &str) -> String {
        format!("{V1_PREFIX}{}", raw_url_b64_encode(url.as_bytes()))
    }

    fn err(url: &str) -> String {
        verify(&tok(url), &cfg(), T0).unwrap_err().to_string()
    }

    #[test]
    fn accepts_the_authenticators_test_vector() {
        assert_eq!(VECTOR, tok(GOOD));
        let t = verify(VECTOR, &cfg(), T0 + 60_000_000_000).unwrap();
        assert_eq!(t.url, GOOD);
        assert_eq!(t.host, "sts.us-west-2.amazonaws.com");
        assert_eq!(t.access_key_id, "ASIAR2TG44V6AS3ZZE7C");
        assert_eq!(t.sts_region, "us-west-2");
        assert_eq!(t.signing_region, "us-west-2");
        assert_eq!(t.session_token, None);
        assert_eq!(t.date, 1_682_640_000);
        assert_eq!(t.params["x-amz-signedheaders"], "host;x-k8s-aws-id");
        assert!(
            !t.params.contains_key("x-k8s-aws-id"),
            "the cluster name is a signed header, not a parameter"
        );
        // Exactly 15 minutes later is still fine; a nanosecond more is not.
        assert!(verify(VECTOR, &cfg(), T0 + 900_000_000_000).is_ok());
        assert_eq!(
            verify(VECTOR, &cfg(), T0 + 900_000_000_001).unwrap_err().to_string(),
            "input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration) 2023-04-28 00:00:00 +0000 UTC"
        );
    }

    #[test]
    fn size_prefix_and_base64() {
        let big = format!("{V1_PREFIX}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            verify(&big, &cfg(), T0).unwrap_err().0,
            "token is too large"
        );
        assert_eq!(
            verify("k8s-aws-v2.abc", &cfg(), T0)
                .unwrap_err()
                .to_string(),
            r#"input token was not properly formatted: token is missing expected "k8s-aws-v1." prefix"#
        );
        assert_eq!(
            verify("eyJhbGciOiJSUzI1NiJ9.x.y", &cfg(), T0)
                .unwrap_err()
                .0,
            r#"token is missing expected "k8s-aws-v1." prefix"#
        );
        assert_eq!(
            verify("k8s-aws-v1.ab+c", &cfg(), T0).unwrap_err().0,
            "illegal base64 data at input byte 2"
        );
        assert_eq!(
            verify("k8s-aws-v1.abc=", &cfg(), T0).unwrap_err().0,
            "illegal base64 data at input byte 3"
        );
        assert_eq!(
            verify("k8s-aws-v1.abcde", &cfg(), T0).unwrap_err().0,
            "illegal base64 data at input byte 4"
        );
        // Padded standard base64 of the vector is rejected (padding is not allowed).
        let padded = format!("{VECTOR}=");
        assert!(verify(&padded, &cfg(), T0)
            .unwrap_err()
            .0
            .starts_with("illegal base64 data at input byte"));
    }

    #[test]
    fn url_scheme_host_and_path() {
        assert_eq!(
            err(&GOOD.replace("https://", "http://")),
            r#"input token was not properly formatted: unexpected scheme "http" in pre-signed URL"#
        );
        assert_eq!(
            err(&GOOD.replace("sts.us-west-2.amazonaws.com", "sts.evil.example.com")),
            r#"input token was not properly formatted: unexpected hostname "sts.evil.example.com" in pre-signed URL"#
        );
        assert_eq!(
            err(&GOOD.replace("sts.us-west-2.amazonaws.com", "127.0.0.1:5000")),
            r#"input token was not properly formatted: unexpected hostname "127.0.0.1:5000" in pre-signed URL"#
        );
        assert_eq!(
            err(&GOOD.replace("sts.us-west-2.amazonaws.com", "localhost")),
            "input token was not properly formatted: could not parse region for pre-signed URL localhost, invalid host format: localhost"
        );
        assert_eq!(
            err(&GOOD.replace("sts.us-west-2.amazonaws.com", "sts.cn-north-1.amazonaws.com.cn")),
            "input token was not properly formatted: partition {aws} does not support hostname sts.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            err(&GOOD.replace(".com/?", ".com/x?")),
            "input token was not properly formatted: unexpected path in pre-signed URL"
        );
        assert_eq!(
            err(&GOOD.replace(".com/?", ".com?")),
            "input token was not properly formatted: unexpected path in pre-signed URL"
        );
        assert!(err("https://sts.us-west-2.amazonaws.com/\u{1}?a=b")
            .contains("net/url: invalid control character in URL"));
        // Other hosts STS answers on, and the global endpoint.
        for host in [
            "sts.amazonaws.com",
            "sts.eu-west-1.amazonaws.com",
            "sts-fips.us-east-1.amazonaws.com",
            "sts.us-west-2.api.aws",
        ] {
            let t = verify(
                &tok(&GOOD.replace("sts.us-west-2.amazonaws.com", host)),
                &cfg(),
                T0,
            )
            .unwrap();
            assert_eq!(t.host, host);
        }
        let g = verify(
            &tok(&GOOD.replace("sts.us-west-2.amazonaws.com", "sts.amazonaws.com")),
            &cfg(),
            T0,
        )
        .unwrap();
        assert_eq!(g.sts_region, "global");
        // A China cluster accepts .com.cn hosts and refuses the global endpoint.
        let cn = VerifierConfig {
            partition: "aws-cn",
            region: "cn-north-1",
            extra_hosts: &[],
        };
        assert!(verify(
            &tok(&GOOD.replace(
                "sts.us-west-2.amazonaws.com",
                "sts.cn-north-1.amazonaws.com.cn"
            )),
            &cn,
            T0
        )
        .is_ok());
        assert_eq!(
            verify(
                &tok(&GOOD.replace("sts.us-west-2.amazonaws.com", "sts.amazonaws.com")),
                &cn,
                T0
            )
            .unwrap_err()
            .0,
            "global endpoint unsupported in partition aws-cn"
        );
        // Configured extra hosts.
        let extra = vec!["127.0.0.1:5000".to_string()];
        let ecfg = VerifierConfig {
            partition: "aws",
            region: "us-west-2",
            extra_hosts: &extra,
        };
        let t = verify(
            &tok(&GOOD.replace("sts.us-west-2.amazonaws.com", "127.0.0.1:5000")),
            &ecfg,
            T0,
        )
        .unwrap();
        assert_eq!(t.sts_region, "us-west-2");
    }

    #[test]
    fn query_parameters() {
        assert_eq!(
            err(&format!("{GOOD}&X-Amz-Foo=1")),
            r#"input token was not properly formatted: non-whitelisted query parameter "X-Amz-Foo""#
        );
        assert_eq!(
            err(&format!("{GOOD}&x-k8s-aws-id=test-cluster")),
            r#"input token was not properly formatted: non-whitelisted query parameter "x-k8s-aws-id""#
        );
        assert_eq!(
            err(&format!("{GOOD}&Version=2011-06-15")),
            "input token was not properly formatted: query parameter with multiple values not supported"
        );
        assert_eq!(
            err(&format!("{GOOD}&version=2011-06-15")),
            r#"input token was not properly formatted: duplicate query parameter found: "version""#
        );
        assert_eq!(
            err(&format!("{GOOD}&a=%zz")),
            "input token was not properly formatted: malformed query parameter"
        );
        assert_eq!(
            err(&format!("{GOOD};a=b")),
            "input token was not properly formatted: malformed query parameter"
        );
        // Keys are matched case-insensitively.
        assert!(verify(
            &tok(&GOOD
                .replace("Action=", "ACTION=")
                .replace("X-Amz-Date", "x-amz-date")),
            &cfg(),
            T0
        )
        .is_ok());
        assert_eq!(
            err(&GOOD.replace("GetCallerIdentity", "AssumeRole")),
            "input token was not properly formatted: unexpected action parameter in pre-signed URL"
        );
        assert_eq!(
            err(&GOOD.replace("host%3Bx-k8s-aws-id", "host")),
            "input token was not properly formatted: client did not sign the x-k8s-aws-id header in the pre-signed URL"
        );
        assert!(verify(
            &tok(&GOOD.replace("host%3Bx-k8s-aws-id", "host%3BX-K8S-AWS-ID")),
            &cfg(),
            T0
        )
        .is_ok());
    }

    #[test]
    fn expires_and_date() {
        assert_eq!(
            err(&GOOD.replace("X-Amz-Expires=60", "X-Amz-Expires=901")),
            "input token was not properly formatted: invalid X-Amz-Expires parameter in pre-signed URL: 901"
        );
        assert_eq!(
            err(&GOOD.replace("X-Amz-Expires=60", "X-Amz-Expires=-1")),
            "input token was not properly formatted: invalid X-Amz-Expires parameter in pre-signed URL: -1"
        );
        assert_eq!(
            err(&GOOD.replace("X-Amz-Expires=60", "X-Amz-Expires=abc")),
            "input token was not properly formatted: invalid X-Amz-Expires parameter in pre-signed URL: 0"
        );
        assert_eq!(
            err(&GOOD.replace("&X-Amz-Expires=60", "")),
            "input token was not properly formatted: invalid X-Amz-Expires parameter in pre-signed URL: 0"
        );
        assert!(verify(
            &tok(&GOOD.replace("X-Amz-Expires=60", "X-Amz-Expires=900")),
            &cfg(),
            T0
        )
        .is_ok());
        assert_eq!(
            err(&GOOD.replace("&X-Amz-Date=20230428T000000Z", "")),
            "input token was not properly formatted: X-Amz-Date parameter must be present in pre-signed URL"
        );
        assert_eq!(
            err(&GOOD.replace("20230428T000000Z", "2023-04-28")),
            r#"input token was not properly formatted: error parsing X-Amz-Date parameter 2023-04-28 into format 20060102T150405Z: parsing time "2023-04-28" as "20060102T150405Z": cannot parse "-04-28" as "01""#
        );
        assert_eq!(
            err(&GOOD.replace("20230428T000000Z", "20231328T000000Z")),
            r#"input token was not properly formatted: error parsing X-Amz-Date parameter 20231328T000000Z into format 20060102T150405Z: parsing time "20231328T000000Z": month out of range"#
        );
        assert_eq!(
            err(&GOOD.replace("20230428T000000Z", "20230428T000000")),
            r#"input token was not properly formatted: error parsing X-Amz-Date parameter 20230428T000000 into format 20060102T150405Z: parsing time "20230428T000000" as "20060102T150405Z": cannot parse "" as "Z""#
        );
        assert_eq!(
            err(&GOOD.replace("20230428T000000Z", "20230230T000000Z")),
            r#"input token was not properly formatted: error parsing X-Amz-Date parameter 20230230T000000Z into format 20060102T150405Z: parsing time "20230230T000000Z": day out of range"#
        );
        // Twenty minutes old.
        let old = verify(VECTOR, &cfg(), T0 + 20 * 60 * 1_000_000_000).unwrap_err();
        assert!(old.to_string().contains(
            "X-Amz-Date parameter is expired (15 minute expiration) 2023-04-28 00:00:00 +0000 UTC"
        ));
        assert_eq!(parse_amz_date("20000229T235959Z"), Ok(951_868_799));
        assert_eq!(go_time_string(951_868_799), "2000-02-29 23:59:59 +0000 UTC");
    }

    #[test]
    fn session_token_and_scope() {
        let url = GOOD.replace(
            "&X-Amz-Expires=60",
            "&X-Amz-Expires=60&X-Amz-Security-Token=FQoG%2Fabc%2B%3D",
        );
        let t = verify(&tok(&url), &cfg(), T0).unwrap();
        assert_eq!(t.session_token.as_deref(), Some("FQoG/abc+="));
        assert!(
            t.raw_query
                .contains("X-Amz-Security-Token=FQoG%2Fabc%2B%3D"),
            "the raw query is kept as signed"
        );
    }
}
