//! The authenticator's log line parser.
//!
//! Accepts logrus text (logfmt) exactly as logrus writes it, the JSON formatter's output, the TTY
//! format (`INFO[...] msg   k=v`), and the wrappers people paste: Docker json-file lines, `kubectl
//! logs`/stern prefixes, CloudWatch Insights CSV rows and console copies with a timestamp line above.
//! Parsing borrows from the input where it can and never panics.

use std::borrow::Cow;

use serde::Serialize;

/// Longest line we try to parse; CloudWatch events are at most 256 KiB.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// How many token boundaries we try when looking for the record behind a prefix.
const MAX_PREFIX_TOKENS: usize = 16;

/// The log format of the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Logfmt,
    Json,
    Tty,
}

/// What the record arrived wrapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wrapper {
    None,
    /// Docker json-file: `{"log":"...\n","stream":"stderr","time":"..."}`.
    Docker,
    /// `kubectl logs --prefix`, stern, `kubectl logs --timestamps` or any other leading text.
    Prefix,
    /// A CloudWatch Logs Insights CSV export row (doubled quotes).
    Csv,
    /// A console copy: a line holding only a timestamp, above the record.
    ConsoleTimestamp,
}

/// One parsed authenticator line: its fields in order, unknown keys included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRecord<'a> {
    pub format: Format,
    pub wrapper: Wrapper,
    /// Leading text removed by a [`Wrapper::Prefix`] or [`Wrapper::ConsoleTimestamp`].
    pub prefix: Option<Cow<'a, str>>,
    pub fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Why a line is not an authenticator record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("line is {0} bytes, over the {MAX_LINE_BYTES}-byte limit")]
    TooLong(usize),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("no key=value fields found")]
    NoFields,
    #[error("CSV header or row without a log message")]
    Csv,
}

impl<'a> AuthRecord<'a> {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn msg(&self) -> Option<&str> {
        self.get("msg")
    }

    pub fn level(&self) -> Option<&str> {
        self.get("level")
    }

    pub fn time(&self) -> Option<&str> {
        self.get("time")
    }

    /// Detaches the record from the input it borrows.
    pub fn into_owned(self) -> AuthRecord<'static> {
        AuthRecord {
            format: self.format,
            wrapper: self.wrapper,
            prefix: self.prefix.map(|p| Cow::Owned(p.into_owned())),
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        }
    }

    fn with_wrapper(mut self, wrapper: Wrapper, prefix: Option<Cow<'a, str>>) -> Self {
        // The innermost wrapper is the most informative except for a plain record.
        if self.wrapper == Wrapper::None {
            self.wrapper = wrapper;
        }
        if self.prefix.is_none() {
            self.prefix = prefix;
        }
        self
    }

    fn fill_time(&mut self, time: &str) {
        let time = time.trim();
        if self.time().is_none() && !time.is_empty() {
            self.fields
                .push((Cow::Borrowed("time"), Cow::Owned(time.to_string())));
        }
    }
}

/// Parses one line in any supported format or wrapper.
///
/// # Errors
/// [`ParseError`] when the line holds no authenticator record; never panics.
pub fn parse_line(line: &str) -> Result<AuthRecord<'_>, ParseError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseError::TooLong(line.len()));
    }
    let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    if memchr::memchr(0x1b, line.as_bytes()).is_some() {
        let clean = strip_ansi(line);
        return parse_line(&clean).map(AuthRecord::into_owned);
    }
    parse_trimmed(line, 0)
}

fn parse_trimmed(line: &str, depth: u8) -> Result<AuthRecord<'_>, ParseError> {
    if depth > 4 {
        return Err(ParseError::NoFields);
    }
    match line.as_bytes().first() {
        Some(b'{') => return parse_json_line(line, depth),
        Some(b'"') => return parse_csv_row(line, depth),
        _ => {}
    }
    if let Some(rec) = parse_tty(line) {
        return Ok(rec);
    }
    if let Some(fields) = parse_logfmt(line) {
        return Ok(AuthRecord {
            format: Format::Logfmt,
            wrapper: Wrapper::None,
            prefix: None,
            fields,
        });
    }
    parse_after_prefix(line, depth)
}

/// Finds the record behind a `kubectl logs`/stern/timestamp prefix.
fn parse_after_prefix(line: &str, depth: u8) -> Result<AuthRecord<'_>, ParseError> {
    let bytes = line.as_bytes();
    let mut tried = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b' ' || b == b'\t') || i + 1 >= bytes.len() {
            continue;
        }
        let next = bytes[i + 1];
        if next == b' ' || next == b'\t' {
            continue;
        }
        tried += 1;
        if tried > MAX_PREFIX_TOKENS {
            break;
        }
        let rest = &line[i + 1..];
        let prefix = line[..i].trim_end();
        let candidate = if next == b'{' {
            parse_json_line(rest, depth + 1).ok()
        } else if let Some(rec) = parse_tty(rest) {
            Some(rec)
        } else if starts_with_key(rest) {
            parse_logfmt(rest).map(|fields| AuthRecord {
                format: Format::Logfmt,
                wrapper: Wrapper::None,
                prefix: None,
                fields,
            })
        } else {
            None
        };
        if let Some(rec) = candidate {
            // A record needs a message to be worth un-prefixing; "pod container" alone is not one.
            if rec.msg().is_some() || rec.level().is_some() {
                let mut rec = rec.with_wrapper(Wrapper::Prefix, Some(Cow::Borrowed(prefix)));
                if let Some(ts) = prefix.split_whitespace().find(|t| looks_like_timestamp(t)) {
                    rec.fill_time(ts);
                }
                return Ok(rec);
            }
        }
    }
    Err(ParseError::NoFields)
}

fn starts_with_key(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'@'))
        .count();
    n > 0 && b.get(n) == Some(&b'=')
}

/// Bytes that end a logfmt key (`=`, or a space or quote that makes the token invalid).
const ENDS_KEY: [bool; 256] = byte_set(b"= \"");
/// Bytes that end a bare logfmt value.
const ENDS_VALUE: [bool; 256] = byte_set(b" \t");
/// The same for a line still JSON-escaped: a backslash starts an escape, which ends the fast scan.
const ENDS_KEY_JSON: [bool; 256] = byte_set(b"= \"\\");
const ENDS_VALUE_JSON: [bool; 256] = byte_set(b" \t\\");

const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// Parses a whole line as logfmt; `None` unless every token is `key=value`.
pub fn parse_logfmt(line: &str) -> Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> {
    let mut unescaped = String::new();
    // Authenticator records carry up to a dozen fields (`STS response`): one allocation.
    let mut fields = Vec::with_capacity(16);
    if !logfmt_fields::<false>(line, &mut unescaped, |k, v| fields.push((k, v)))
        || fields.is_empty()
    {
        return None;
    }
    let fields = fields.into_iter().map(|(k, v)| {
        let v = match v {
            Scanned::Line(v) => Cow::Borrowed(v),
            Scanned::Scratch(a, b) => Cow::Owned(unescaped[a..b].to_string()),
        };
        (Cow::Borrowed(k), v)
    });
    Some(fields.collect())
}

/// A value [`scan_logfmt`] found: a slice of the line, or (when it had escapes) a range of the
/// scratch buffer it was decoded into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned<'a> {
    Line(&'a str),
    Scratch(usize, usize),
}

/// Calls `field(key, value)` for each field of a line that [`parse_entry`] reads as plain logfmt
/// (nearly every authenticator line), in one pass; values with escapes are decoded onto the end
/// of `scratch`, so nothing is allocated once it has grown. Returns false for any other line
/// (wrappers, other formats, surrounding whitespace), possibly after some calls: the caller then
/// takes the general path, which gives the same fields for the lines this accepts.
pub fn scan_logfmt<'a>(
    line: &'a str,
    scratch: &mut String,
    field: impl FnMut(&'a str, Scanned<'a>),
) -> bool {
    let b = line.as_bytes();
    // A console timestamp (0x1f, see split_paste) or ANSI escapes (0x1b) need the general path.
    if !plain_ends(b) || memchr::memchr2(0x1f, 0x1b, b).is_some() {
        return false;
    }
    // The first byte is a key's: a line that is well formed has at least one field.
    logfmt_fields::<false>(line, scratch, field)
}

/// [`scan_logfmt`] on a line still escaped as the body of a JSON string (as the subscription
/// JSON holds it, without its quotes): the fields it reports are those [`scan_logfmt`] reports
/// for the decoded line. It reads logfmt's quotes (`\"`) and the common Go escapes in quoted
/// values (see [`unescape_go_json_into`]); for any other escape it returns false, possibly after
/// some calls, and the caller decodes the line and scans that. Lines need not be decoded at all
/// this way, and most never are.
pub fn scan_logfmt_json<'a>(
    body: &'a str,
    scratch: &mut String,
    field: impl FnMut(&'a str, Scanned<'a>),
) -> bool {
    // The ends hold for the decoded line too: the last byte is either the quote of a closing
    // `\"` (the decoded line ends in that quote) or a byte of a bare value, the same byte decoded,
    // since any other escape makes the scan return false. Escaped is never shorter than decoded,
    // so the length holds too. Control bytes are always escaped in JSON: the console and ANSI
    // markers cannot be here, and a line with them returns false at their escape.
    if !plain_ends(body.as_bytes()) {
        return false;
    }
    logfmt_fields::<true>(body, scratch, field)
}

/// A lower-case first byte rules out trimming, JSON, CSV and TTY levels; an ASCII non-whitespace
/// last byte rules out trimming at the end ('\x0b' is whitespace to `trim`); and the line is
/// within the length limit.
fn plain_ends(b: &[u8]) -> bool {
    match (b.first(), b.last()) {
        (Some(first), Some(&last)) => {
            first.is_ascii_lowercase()
                && last.is_ascii()
                && !last.is_ascii_whitespace()
                && last != 0x0b
                && b.len() <= MAX_LINE_BYTES
        }
        _ => false,
    }
}

/// The logfmt tokenizer [`parse_logfmt`] and [`scan_logfmt`] share: calls `field` for each
/// `key=value` (escaped values decoded onto the end of `scratch`); false unless every token is
/// one. With `JSON`, `line` is the body of a JSON string (see [`scan_logfmt_json`]): a quote is
/// `\"`, and a backslash outside a quoted value ends the scan with false.
fn logfmt_fields<'a, const JSON: bool>(
    line: &'a str,
    scratch: &mut String,
    mut field: impl FnMut(&'a str, Scanned<'a>),
) -> bool {
    let (ends_key, ends_value) = if JSON {
        (&ENDS_KEY_JSON, &ENDS_VALUE_JSON)
    } else {
        (&ENDS_KEY, &ENDS_VALUE)
    };
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && !ends_key[usize::from(b[i])] {
            i += 1;
        }
        if i == key_start || i >= b.len() || b[i] != b'=' {
            return false;
        }
        let key = &line[key_start..i];
        // Past the '='. Where a quote starts, and how long it is: `"`, or `\"` in JSON.
        i += 1;
        let quote_at = |at: usize| {
            if JSON {
                b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'"')
            } else {
                b.get(at) == Some(&b'"')
            }
        };
        let quote_len = if JSON { 2 } else { 1 };
        if quote_at(i) {
            let start = i + quote_len;
            let Some(end) = crate::jsonstr::find_special(b, start) else {
                return false;
            };
            if quote_at(end) {
                field(key, Scanned::Line(&line[start..end]));
                i = end + quote_len;
            } else {
                // An escape in the value: decoded onto the end of `scratch`.
                let from = scratch.len();
                let next = if JSON {
                    unescape_go_json_into(line, start, end, scratch)
                } else {
                    unescape_go_into(line, start, end, scratch)
                };
                let Some(next) = next else {
                    return false;
                };
                field(key, Scanned::Scratch(from, scratch.len()));
                i = next;
            }
            if i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                return false;
            }
        } else {
            let v_start = i;
            while i < b.len() && !ends_value[usize::from(b[i])] {
                i += 1;
            }
            if JSON && b.get(i) == Some(&b'\\') {
                return false;
            }
            field(key, Scanned::Line(&line[v_start..i]));
        }
    }
    true
}

/// Decodes a Go `%q` string whose text starts at `start` and whose first backslash is at
/// `escape`, appending it to `out`; returns the index after the closing quote. On `None` (an
/// invalid escape, no closing quote) `out` holds a part of the value.
fn unescape_go_into(s: &str, start: usize, escape: usize, out: &mut String) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = escape;
    out.push_str(&s[start..i]);
    let mut bytes_out: Vec<u8> = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                flush_bytes(&mut bytes_out, out);
                return Some(i + 1);
            }
            b'\\' => {
                let esc = *b.get(i + 1)?;
                i += 2;
                let ch = match esc {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'\'' => '\'',
                    b'n' => '\n',
                    b't' => '\t',
                    b'r' => '\r',
                    b'a' => '\u{7}',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'v' => '\u{b}',
                    b'x' => {
                        let v = hex_value(b.get(i..i + 2)?)?;
                        i += 2;
                        // \xNN are raw bytes, possibly parts of a UTF-8 sequence.
                        bytes_out.push(v as u8);
                        continue;
                    }
                    b'u' | b'U' => {
                        let n = if esc == b'u' { 4 } else { 8 };
                        let v = hex_value(b.get(i..i + n)?)?;
                        i += n;
                        char::from_u32(v).unwrap_or('\u{fffd}')
                    }
                    _ => return None,
                };
                flush_bytes(&mut bytes_out, out);
                out.push(ch);
            }
            _ => {
                flush_bytes(&mut bytes_out, out);
                let run_start = i;
                i = crate::jsonstr::find_special(b, i).unwrap_or(b.len());
                out.push_str(&s[run_start..i]);
            }
        }
    }
    None
}

/// [`unescape_go_into`] for a value still escaped as a JSON string's body: its text starts at
/// `start`, the first backslash (of a JSON escape) is at `escape`; returns the index after the
/// closing `\"`. Go's escapes arrive as `\\` and the escaped letter (`\\n`, `\\\"`,
/// `\\\\`). `None` for what it leaves to the decoded line (`\x`, `\u` in either form, any other
/// JSON escape), with `out` holding a part of the value.
fn unescape_go_json_into(s: &str, start: usize, escape: usize, out: &mut String) -> Option<usize> {
    let b = s.as_bytes();
    out.push_str(&s[start..escape]);
    let mut i = escape;
    loop {
        // `b[i]` starts a JSON escape (a quote would end the JSON string: not in a body).
        if b.get(i) != Some(&b'\\') {
            return None;
        }
        if b.get(i + 1)? == &b'"' {
            return Some(i + 2);
        }
        if b[i + 1] != b'\\' {
            return None;
        }
        // A backslash: Go's, whose escape is the next JSON character.
        let (ch, len) = match *b.get(i + 2)? {
            b'\\' => match *b.get(i + 3)? {
                b'"' => ('"', 4),
                b'\\' => ('\\', 4),
                _ => return None,
            },
            b'\'' => ('\'', 3),
            b'n' => ('\n', 3),
            b't' => ('\t', 3),
            b'r' => ('\r', 3),
            b'a' => ('\u{7}', 3),
            b'b' => ('\u{8}', 3),
            b'f' => ('\u{c}', 3),
            b'v' => ('\u{b}', 3),
            _ => return None,
        };
        out.push(ch);
        let run = i + len;
        i = crate::jsonstr::find_special(b, run)?;
        out.push_str(&s[run..i]);
    }
}

#[inline]
fn flush_bytes(pending: &mut Vec<u8>, out: &mut String) {
    if !pending.is_empty() {
        out.push_str(&String::from_utf8_lossy(pending));
        pending.clear();
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &d in digits {
        v = v.checked_mul(16)? + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// logrus TTY format: `INFO[2019-06-16T01:38:19Z] mapping IAM role   k=v k2="v 2"`.
fn parse_tty(line: &str) -> Option<AuthRecord<'_>> {
    // The level is at most 7 bytes ("WARNING"): no need to look further for its bracket.
    let head = &line.as_bytes()[..line.len().min(8)];
    let open = memchr::memchr(b'[', head)?;
    let level = match &line[..open] {
        "INFO" => "info",
        "WARN" | "WARNING" => "warning",
        "ERRO" | "ERROR" => "error",
        "DEBU" | "DEBUG" => "debug",
        "TRAC" | "TRACE" => "trace",
        "FATA" | "FATAL" => "fatal",
        "PANI" | "PANIC" => "panic",
        _ => return None,
    };
    let close = open + line[open..].find(']')?;
    let time = &line[open + 1..close];
    let rest = line.get(close + 1..)?.trim_start();
    // The message is padded to 44 columns and may hold spaces: it ends at the first boundary
    // after which everything is key=value.
    let (msg, fields) = split_tty_message(rest);
    let mut all = Vec::with_capacity(fields.len() + 3);
    all.push((Cow::Borrowed("level"), Cow::Borrowed(level)));
    all.push((Cow::Borrowed("msg"), Cow::Borrowed(msg)));
    all.push((Cow::Borrowed("time"), Cow::Borrowed(time)));
    all.extend(fields);
    Some(AuthRecord {
        format: Format::Tty,
        wrapper: Wrapper::None,
        prefix: None,
        fields: all,
    })
}

type Fields<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn split_tty_message(rest: &str) -> (&str, Fields<'_>) {
    let b = rest.as_bytes();
    let mut tried = 0;
    for i in 0..b.len() {
        if b[i] != b' ' || i + 1 >= b.len() || b[i + 1] == b' ' {
            continue;
        }
        tried += 1;
        if tried > 64 {
            break;
        }
        let tail = &rest[i + 1..];
        if starts_with_key(tail) {
            if let Some(fields) = parse_logfmt(tail) {
                return (rest[..i].trim_end(), fields);
            }
        }
    }
    (rest.trim_end(), Vec::new())
}

fn parse_json_line(line: &str, depth: u8) -> Result<AuthRecord<'_>, ParseError> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| ParseError::Json(e.to_string()))?;
    // Docker json-file wraps the original line in "log".
    if !map.contains_key("msg") {
        if let Some(serde_json::Value::String(inner)) = map.get("log") {
            let inner = inner.trim();
            let mut rec = parse_trimmed(inner, depth + 1)?.into_owned();
            if let Some(serde_json::Value::String(t)) = map.get("time") {
                rec.fill_time(t);
            }
            return Ok(rec.with_wrapper(Wrapper::Docker, None));
        }
    }
    if map.is_empty() {
        return Err(ParseError::NoFields);
    }
    let fields = map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (Cow::Owned(k), Cow::Owned(v))
        })
        .collect();
    Ok(AuthRecord {
        format: Format::Json,
        wrapper: Wrapper::None,
        prefix: None,
        fields,
    })
}

/// A CloudWatch Logs Insights CSV row: `"2022-12-28 15:37:19.000","time=""..."" level=warning ..."`.
fn parse_csv_row(line: &str, depth: u8) -> Result<AuthRecord<'static>, ParseError> {
    let cells = split_csv(line).ok_or(ParseError::Csv)?;
    let mut timestamp = None;
    for cell in &cells {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        if looks_like_timestamp(cell) && !cell.contains('=') {
            timestamp.get_or_insert(cell);
            continue;
        }
        if let Ok(rec) = parse_trimmed(cell, depth + 1) {
            if rec.msg().is_some() {
                let mut rec = rec.into_owned();
                if let Some(t) = timestamp {
                    rec.fill_time(t);
                }
                return Ok(rec.with_wrapper(Wrapper::Csv, None));
            }
        }
    }
    Err(ParseError::Csv)
}

/// RFC 4180 cells of one row; quotes inside quoted cells are doubled.
fn split_csv(line: &str) -> Option<Vec<Cow<'_, str>>> {
    let b = line.as_bytes();
    let mut cells = Vec::new();
    let mut i = 0;
    loop {
        if i < b.len() && b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            let mut owned: Option<String> = None;
            loop {
                let q = j + memchr::memchr(b'"', b.get(j..)?)?;
                if b.get(q + 1) == Some(&b'"') {
                    owned.get_or_insert_with(String::new).push_str(&line[j..=q]);
                    j = q + 2;
                    continue;
                }
                let cell = match owned {
                    Some(mut s) => {
                        s.push_str(&line[j..q]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&line[start..q]),
                };
                cells.push(cell);
                i = q + 1;
                break;
            }
        } else {
            let end = memchr::memchr(b',', &b[i..]).map_or(b.len(), |p| i + p);
            cells.push(Cow::Borrowed(&line[i..end]));
            i = end;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            None => return Some(cells),
            Some(_) => return None,
        }
    }
}

/// True for `2022-12-28T15:37:19Z`, `2022-12-28 15:37:19.000`, `2022-12-28T15:37:19.000+00:00`.
pub fn looks_like_timestamp(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() >= 10
        && b.len() <= 40
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && !b.contains(&b'=')
}

/// Splits pasted text into records: a line holding only a timestamp (console copy) is joined to
/// the line below it.
pub fn split_paste(text: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    let mut pending: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if looks_like_timestamp(t) && !t.contains(' ') || is_date_time_only(t) {
            if let Some(p) = pending.replace(t) {
                out.push(Cow::Borrowed(p));
            }
            continue;
        }
        match pending.take() {
            Some(ts) => out.push(Cow::Owned(format!("{ts}\u{1f}{line}"))),
            None => out.push(Cow::Borrowed(line)),
        }
    }
    if let Some(p) = pending {
        out.push(Cow::Borrowed(p));
    }
    out
}

fn is_date_time_only(t: &str) -> bool {
    // "2022-12-28 15:37:19.000" (a space between date and time, nothing else).
    looks_like_timestamp(t) && t.split(' ').count() == 2 && t.len() <= 32
}

/// Parses one record produced by [`split_paste`], honouring a console timestamp joined to it.
///
/// # Errors
/// As [`parse_line`].
pub fn parse_entry(entry: &str) -> Result<AuthRecord<'_>, ParseError> {
    let split = memchr::memchr(0x1f, entry.as_bytes()).map(|i| (&entry[..i], &entry[i + 1..]));
    match split {
        Some((ts, line)) => {
            let mut rec = parse_line(line)?;
            rec.fill_time(ts);
            Ok(rec.with_wrapper(Wrapper::ConsoleTimestamp, Some(Cow::Borrowed(ts))))
        }
        None => parse_line(entry),
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Writes a value as logrus does: bare when it holds only `[A-Za-z0-9-._/@^+]` (empty included),
/// else Go-quoted.
pub fn quote_value(v: &str) -> Cow<'_, str> {
    let bare = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._/@^+".contains(&b));
    if bare {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENIED: &str = r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:iam::111122223333:role/dev" client="127.0.0.1:33384" error="ARN is not mapped" method=POST path=/authenticate"#;

    #[test]
    fn logfmt_as_logrus_writes_it() {
        let r = parse_line(DENIED).unwrap();
        assert_eq!(r.format, Format::Logfmt);
        assert_eq!(r.wrapper, Wrapper::None);
        assert_eq!(r.msg(), Some("access denied"));
        assert_eq!(r.get("arn"), Some("arn:aws:iam::111122223333:role/dev"));
        assert_eq!(r.get("method"), Some("POST"));
        assert_eq!(r.get("path"), Some("/authenticate"));
        assert_eq!(r.time(), Some("2022-12-28T15:37:19Z"));
    }

    #[test]
    fn escapes_and_empty_values() {
        let line = r#"a="say \"hi\" \\ there" b= c="" d="\x41\u00e9\n" e=plain"#;
        let r = parse_line(line).unwrap();
        assert_eq!(r.get("a"), Some(r#"say "hi" \ there"#));
        assert_eq!(r.get("b"), Some(""));
        assert_eq!(r.get("c"), Some(""));
        assert_eq!(r.get("d"), Some("Aé\n"));
        assert_eq!(r.get("e"), Some("plain"));
    }

    #[test]
    fn quote_round_trip() {
        for v in [
            "simple",
            "",
            "with space",
            "q\"uote",
            "back\\slash",
            "tab\tnl\n",
            "é",
        ] {
            let line = format!("k={}", quote_value(v));
            let r = parse_line(&line).unwrap();
            assert_eq!(r.get("k"), Some(v), "{line}");
        }
    }

    #[test]
    fn unterminated_quote_is_an_error_not_a_panic() {
        assert!(parse_line(r#"msg="access denied"#).is_err());
        assert!(parse_line(r#"msg="\x4"#).is_err());
        assert!(parse_line(r#"msg="\"#).is_err());
    }

    #[test]
    fn tty_format() {
        let line = "INFO[2019-06-16T01:38:19Z] mapping IAM role                              groups=\"[system:bootstrappers system:nodes]\" role=\"arn:aws:iam::111122223333:role/node\" username=\"system:node:{{EC2PrivateDNSName}}\"";
        let r = parse_line(line).unwrap();
        assert_eq!(r.format, Format::Tty);
        assert_eq!(r.level(), Some("info"));
        assert_eq!(r.msg(), Some("mapping IAM role"));
        assert_eq!(r.time(), Some("2019-06-16T01:38:19Z"));
        assert_eq!(r.get("username"), Some("system:node:{{EC2PrivateDNSName}}"));
        let colored = "\u{1b}[33mWARN\u{1b}[0m[0042] access denied                                 \u{1b}[33marn\u{1b}[0m=\"arn:aws:iam::111122223333:role/x\" \u{1b}[33merror\u{1b}[0m=\"ARN is not mapped\"";
        let r = parse_line(colored).unwrap();
        assert_eq!(r.level(), Some("warning"));
        assert_eq!(r.msg(), Some("access denied"));
        assert_eq!(r.get("error"), Some("ARN is not mapped"));
    }

    #[test]
    fn wrappers() {
        let docker = serde_json::json!({"log": format!("{DENIED}\n"), "stream": "stderr", "time": "2022-12-28T15:37:19.1Z"}).to_string();
        let r = parse_line(&docker).unwrap();
        assert_eq!(r.wrapper, Wrapper::Docker);
        assert_eq!(r.msg(), Some("access denied"));

        let kubectl = format!("aws-iam-authenticator-ip-10-0-0-1 aws-iam-authenticator {DENIED}");
        let r = parse_line(&kubectl).unwrap();
        assert_eq!(r.wrapper, Wrapper::Prefix);
        assert_eq!(
            r.prefix.as_deref(),
            Some("aws-iam-authenticator-ip-10-0-0-1 aws-iam-authenticator")
        );
        assert_eq!(r.get("error"), Some("ARN is not mapped"));

        let bracket = format!("[pod/aws-iam-authenticator-x/aws-iam-authenticator] {DENIED}");
        assert_eq!(parse_line(&bracket).unwrap().wrapper, Wrapper::Prefix);

        let csv = format!(
            "\"2022-12-28 15:37:19.000\",\"{}\"",
            DENIED.replace('"', "\"\"")
        );
        let r = parse_line(&csv).unwrap();
        assert_eq!(r.wrapper, Wrapper::Csv);
        assert_eq!(r.get("arn"), Some("arn:aws:iam::111122223333:role/dev"));

        let pasted = format!("2022-12-28T15:37:19.000+00:00\n{DENIED}\n");
        let entries = split_paste(&pasted);
        assert_eq!(entries.len(), 1);
        let r = parse_entry(&entries[0]).unwrap();
        assert_eq!(r.wrapper, Wrapper::ConsoleTimestamp);
        assert_eq!(r.msg(), Some("access denied"));

        let json = r#"{"arn":"arn:aws:iam::111122223333:role/dev","error":"ARN is not mapped","level":"warning","msg":"access denied","time":"2022-12-28T15:37:19Z","extra":3}"#;
        let r = parse_line(json).unwrap();
        assert_eq!(r.format, Format::Json);
        assert_eq!(r.get("extra"), Some("3"));
    }

    #[test]
    fn not_log_lines() {
        assert_eq!(parse_line("   "), Err(ParseError::Empty));
        assert_eq!(parse_line("hello world"), Err(ParseError::NoFields));
        assert!(parse_line("\"@timestamp\",\"@message\"").is_err());
        assert!(parse_line("{not json").is_err());
    }
}
