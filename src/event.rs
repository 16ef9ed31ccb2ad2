//! Input events and bounded decoding.
//!
//! Four shapes are accepted (see the README's "Event shapes"):
//! - a CloudWatch Logs subscription event `{"awslogs":{"data":"<base64 of gzip of JSON>"}}`;
//! - a Kinesis event whose records carry the raw gzip of the same JSON (cross-account destinations);
//! - the decoded subscription JSON itself (`{"messageType":..., "logEvents":[...]}`);
//! - a manual test event `{"cluster":"prod","region":"eu-west-1","lines":["time=... msg=..."]}`.
//!
//! Every layer has a size cap, and every error names the layer that failed.

use std::borrow::Cow;
use std::io::Read;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::diagnosis::Origin;

/// Default cap on decompressed bytes per payload: a 10,000-event batch is a few MB.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 32 << 20;
/// Default cap on the raw event (Lambda allows 6 MB synchronous, 1 MB asynchronous).
pub const DEFAULT_MAX_EVENT: usize = 16 << 20;
/// At most this many log events per invocation (a PutLogEvents batch holds 10,000).
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

/// Decoding limits, configurable through the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: DEFAULT_MAX_EVENT,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

/// Which input shape an event had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Subscription,
    Kinesis,
    Decoded,
    Manual,
}

/// CloudWatch Logs' message type; `CONTROL_MESSAGE` is a reachability probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    DataMessage,
    ControlMessage,
}

/// One log line with its CloudWatch id and timestamp when known, borrowed from its batch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LogEvent<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<i64>,
    pub line: Line<'a>,
}

impl<'a> LogEvent<'a> {
    /// The log line's text.
    pub fn message(&self) -> Cow<'a, str> {
        self.line.text()
    }
}

/// Shows the message decoded, however the batch holds it.
impl std::fmt::Debug for LogEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEvent")
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .field("message", &self.message())
            .finish()
    }
}

impl Serialize for LogEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("LogEvent", 3)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("timestamp", &self.timestamp)?;
        st.serialize_field("message", &self.message())?;
        st.end()
    }
}

/// A log line as its batch holds it. Lines from the subscription JSON stay as they were written
/// there, escapes and all: most are diagnosed without ever being decoded (see
/// [`crate::authlog::scan_logfmt_json`]).
#[derive(Debug, Clone, Copy)]
pub enum Line<'a> {
    /// The text itself.
    Text(&'a str),
    /// The body of a JSON string holding escapes, with its closing quote: already checked to
    /// decode.
    Json(&'a str),
}

impl<'a> Line<'a> {
    /// The text, decoded when it is still escaped.
    pub fn text(&self) -> Cow<'a, str> {
        match *self {
            Line::Text(t) => Cow::Borrowed(t),
            Line::Json(body) => {
                let mut out = String::with_capacity(body.len());
                self.decode_into(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Appends the text to `out`.
    pub fn decode_into(&self, out: &mut String) {
        match *self {
            Line::Text(t) => out.push_str(t),
            Line::Json(body) => {
                let start = out.len();
                // Checked when the batch was parsed (jsonstr::skip accepts what decodes).
                if crate::jsonstr::unescape_into(body, 0, out).is_none() {
                    out.truncate(start);
                    out.push_str(body.strip_suffix('"').unwrap_or(body));
                }
            }
        }
    }
}

impl PartialEq for Line<'_> {
    fn eq(&self, other: &Line<'_>) -> bool {
        match (self, other) {
            (Line::Text(a), Line::Text(b)) | (Line::Json(a), Line::Json(b)) => a == b,
            _ => self.text() == other.text(),
        }
    }
}

impl Eq for Line<'_> {}

/// A batch's log lines. Ids and messages live in one buffer: decoding a 10,000-line batch makes
/// a handful of allocations, not two per line. For the subscription JSON that buffer is the JSON
/// itself, and the events are where their strings sit in it.
#[derive(Clone, Default)]
pub struct Events {
    text: String,
    spans: Vec<Span>,
}

/// Where one event's id and message sit in [`Events::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    id: Option<(usize, usize)>,
    timestamp: Option<i64>,
    message: (usize, usize),
    /// The message is a JSON string body with escapes; `message.1` is its closing quote.
    json: bool,
}

impl Events {
    /// Appends one event.
    pub fn push(&mut self, id: Option<&str>, timestamp: Option<i64>, message: &str) {
        let id = id.map(|id| self.append(id));
        let message = self.append(message);
        self.spans.push(Span {
            id,
            timestamp,
            message,
            json: false,
        });
    }

    fn append(&mut self, s: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(s);
        (start, self.text.len())
    }

    /// The events, borrowed.
    pub fn view(&self) -> EventsRef<'_> {
        EventsRef {
            text: &self.text,
            spans: &self.spans,
            capacity: self.spans.capacity(),
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<LogEvent<'_>> {
        self.view().get(i)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = LogEvent<'_>> + Clone + '_ {
        self.view().iter()
    }

    /// The events from `range` (for splitting a batch across threads).
    pub fn slice(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = LogEvent<'_>> + '_ {
        self.view().slice(range)
    }
}

/// A batch's events borrowed, also while the batch is still being parsed.
#[derive(Clone, Copy)]
pub struct EventsRef<'a> {
    text: &'a str,
    spans: &'a [Span],
    capacity: usize,
}

impl<'a> EventsRef<'a> {
    /// How many events the buffer has room for without growing.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<LogEvent<'a>> {
        self.spans.get(i).map(|s| self.event(s))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = LogEvent<'a>> + Clone + 'a {
        let this = *self;
        self.spans.iter().map(move |s| this.event(s))
    }

    /// The events from `range`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = LogEvent<'a>> + 'a {
        let this = *self;
        self.spans[range].iter().map(move |s| this.event(s))
    }

    fn event(&self, s: &Span) -> LogEvent<'a> {
        let (a, b) = s.message;
        LogEvent {
            id: s.id.map(|(a, b)| &self.text[a..b]),
            timestamp: s.timestamp,
            line: if s.json {
                Line::Json(&self.text[a..=b])
            } else {
                Line::Text(&self.text[a..b])
            },
        }
    }
}

/// Equal when they hold the same events, however the buffer is laid out.
impl PartialEq for Events {
    fn eq(&self, other: &Events) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Events {}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = LogEvent<'a>;
    type IntoIter = Box<dyn Iterator<Item = LogEvent<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl Serialize for Events {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One element of `logEvents` as serde_json reads it (the slow path).
        #[derive(Deserialize)]
        struct Owned {
            #[serde(default)]
            id: Option<String>,
            #[serde(default)]
            timestamp: Option<i64>,
            message: String,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Events;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of log events")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Events, A::Error> {
                let mut events = Events::default();
                while let Some(e) = seq.next_element::<Owned>()? {
                    events.push(e.id.as_deref(), e.timestamp, &e.message);
                }
                Ok(events)
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// A batch of lines from one log stream (or one manual event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub message_type: MessageType,
    pub origin: Origin,
    pub events: Events,
}

/// A decoded invocation payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    pub source: Source,
    pub batches: Vec<Batch>,
}

impl Decoded {
    /// True when every batch is a CONTROL_MESSAGE.
    pub fn is_control_only(&self) -> bool {
        !self.batches.is_empty()
            && self
                .batches
                .iter()
                .all(|b| b.message_type == MessageType::ControlMessage)
    }
}

/// Why an event could not be decoded. `layer` names where: `event`, `awslogs.data base64`,
/// `awslogs.data gzip`, `Records[3].kinesis.data gzip`, `logs JSON`, ...
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{layer}: input is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        layer: String,
        size: usize,
        limit: usize,
    },
    #[error("{layer}: decompressed data exceeds the {limit}-byte limit (gzip bomb or oversized batch); raise EKS_AUTH_MAX_DECOMPRESSED_BYTES if this is legitimate")]
    DecompressedTooLarge { layer: String, limit: usize },
    #[error("{layer}: invalid base64")]
    Base64 {
        layer: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{layer}: invalid gzip")]
    Gzip {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{layer}: invalid JSON")]
    Json {
        layer: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{layer}: {message}")]
    Shape { layer: String, message: String },
    #[error("event holds {count} log events, over the {limit} limit")]
    TooManyEvents { count: usize, limit: usize },
}

impl DecodeError {
    fn shape(layer: &str, message: impl Into<String>) -> Self {
        DecodeError::Shape {
            layer: layer.to_string(),
            message: message.into(),
        }
    }
}

/// Decodes raw event bytes (a file, stdin, or a Lambda payload).
///
/// # Errors
/// [`DecodeError`] naming the layer that failed.
pub fn decode_bytes(raw: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    decode_value(&parse_event(raw, limits)?, limits)
}

/// The event's JSON, size-checked.
///
/// # Errors
/// [`DecodeError::TooLarge`] or [`DecodeError::Json`], for the `event` layer.
pub fn parse_event(raw: &[u8], limits: &Limits) -> Result<serde_json::Value, DecodeError> {
    if raw.len() > limits.max_event_bytes {
        return Err(DecodeError::TooLarge {
            layer: "event".into(),
            size: raw.len(),
            limit: limits.max_event_bytes,
        });
    }
    serde_json::from_slice(raw).map_err(|source| DecodeError::Json {
        layer: "event".into(),
        source,
    })
}

/// Decodes an event already parsed as JSON (what the Lambda runtime hands us).
///
/// # Errors
/// [`DecodeError`] naming the layer that failed.
pub fn decode_value(value: &serde_json::Value, limits: &Limits) -> Result<Decoded, DecodeError> {
    decode_value_early(value, limits, None)
}

/// Work on a large subscription payload's first events while the rest is still being
/// decompressed (see [`decode_value_early`]).
pub trait Early {
    /// Called while the decoder waits for the next chunk, with the batch's origin (from the
    /// header fields CloudWatch Logs writes before `logEvents`) and the events parsed so far:
    /// does a little work and returns true, or false when there is nothing to do until more
    /// events arrive. The origin is only a forecast: a `region` key after `logEvents` changes it,
    /// so the caller compares it with the decoded batch's before using the work.
    fn step(&mut self, origin: &Origin, events: EventsRef<'_>) -> bool;
}

/// As [`decode_value`]; a subscription payload large enough to be decompressed on a second
/// thread gives `early` the events parsed so far whenever this thread would otherwise wait.
///
/// # Errors
/// As [`decode_value`].
pub fn decode_value_early(
    value: &serde_json::Value,
    limits: &Limits,
    early: Option<&mut dyn Early>,
) -> Result<Decoded, DecodeError> {
    let obj = value
        .as_object()
        .ok_or_else(|| DecodeError::shape("event", "expected a JSON object"))?;
    let region_hint = obj
        .get("region")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if let Some(awslogs) = obj.get("awslogs") {
        let data = awslogs
            .get("data")
            .and_then(|d| d.as_str())
            .ok_or_else(|| DecodeError::shape("awslogs", "missing string field 'data'"))?;
        let layer = "awslogs.data base64";
        let data = b64_checked(data, layer, limits)?;
        let (batch, _) = if streams(data.len() / 4 * 3) {
            // Decompression starts with the first decoded bytes, not after all of them.
            gunzip_logs_streamed(Gz::Base64(data), "awslogs.data", region_hint, limits, early)?
        } else {
            let gz = b64(data, layer, limits)?;
            gunzip_logs(&gz, "awslogs.data", region_hint, limits, early)?
        };
        return Ok(Decoded {
            source: Source::Subscription,
            batches: vec![batch],
        });
    }
    if let Some(records) = obj.get("Records").and_then(|r| r.as_array()) {
        let mut batches = Vec::with_capacity(records.len());
        let mut total = 0usize;
        for (i, rec) in records.iter().enumerate() {
            let data = rec
                .get("kinesis")
                .and_then(|k| k.get("data"))
                .and_then(|d| d.as_str())
                .ok_or_else(|| {
                    DecodeError::shape(
                        &format!("Records[{i}]"),
                        "not a Kinesis record: missing kinesis.data",
                    )
                })?;
            let region = rec
                .get("awsRegion")
                .and_then(|r| r.as_str())
                .map(str::to_string)
                .or_else(|| region_hint.clone());
            let gz = b64(data, &format!("Records[{i}].kinesis.data base64"), limits)?;
            // The whole invocation shares one decompression budget.
            let budget = Limits {
                max_decompressed_bytes: limits.max_decompressed_bytes.saturating_sub(total),
                ..*limits
            };
            let layer = format!("Records[{i}].kinesis.data");
            let (batch, size) = gunzip_logs(&gz, &layer, region, &budget, None)?;
            total += size;
            batches.push(batch);
        }
        count_events(&batches, limits)?;
        return Ok(Decoded {
            source: Source::Kinesis,
            batches,
        });
    }
    if obj.contains_key("logEvents") || obj.contains_key("messageType") {
        let batch = logs_from_value(value, "event", region_hint, limits)?;
        return Ok(Decoded {
            source: Source::Decoded,
            batches: vec![batch],
        });
    }
    if obj.contains_key("lines") || obj.contains_key("text") {
        return manual(value, limits).map(|batch| Decoded {
            source: Source::Manual,
            batches: vec![batch],
        });
    }
    Err(DecodeError::shape(
        "event",
        "unrecognised event: expected 'awslogs' (subscription), 'Records' (Kinesis), 'logEvents' (decoded logs) or 'lines'/'text' (manual)",
    ))
}

fn count_events(batches: &[Batch], limits: &Limits) -> Result<(), DecodeError> {
    let count: usize = batches.iter().map(|b| b.events.len()).sum();
    if count > limits.max_events {
        return Err(DecodeError::TooManyEvents {
            count,
            limit: limits.max_events,
        });
    }
    Ok(())
}

fn b64(data: &str, layer: &str, limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let data = b64_checked(data, layer, limits)?;
    b64_engine()
        .decode(data)
        .map_err(|source| DecodeError::Base64 {
            layer: layer.into(),
            source,
        })
}

/// The base64 text trimmed, unless it is over the size cap.
fn b64_checked<'d>(data: &'d str, layer: &str, limits: &Limits) -> Result<&'d str, DecodeError> {
    let data = data.trim();
    if data.len() > limits.max_event_bytes {
        return Err(DecodeError::TooLarge {
            layer: layer.into(),
            size: data.len(),
            limit: limits.max_event_bytes,
        });
    }
    Ok(data)
}

/// Accepts padded (what AWS sends) and unpadded (what some serializers write) base64.
fn b64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Decodes checked base64 (see [`b64_checked`]) in pieces, sending each piece to `to` as soon as
/// it is decoded; returns all of it. Errors are those of [`b64`] on the whole text.
fn b64_pieces(
    data: &str,
    to: std::sync::mpsc::Sender<Vec<u8>>,
    layer: &str,
    limits: &Limits,
) -> Result<Vec<u8>, DecodeError> {
    /// Base64 characters per piece: a multiple of 4, so that pieces decode on their own.
    const PIECE: usize = 64 << 10;
    let b = data.as_bytes();
    // Padding before the last two characters is an error of the whole text, which pieces could
    // each accept: the whole text is decoded at once instead.
    if memchr::memchr(b'=', &b[..b.len().saturating_sub(2)]).is_some() {
        let gz = b64(data, layer, limits)?;
        let _ = to.send(gz.clone());
        return Ok(gz);
    }
    let engine = b64_engine();
    let mut gz = Vec::with_capacity(b.len() / 4 * 3 + 3);
    for piece in b.chunks(PIECE) {
        let start = gz.len();
        if let Err(source) = engine.decode_vec(piece, &mut gz) {
            // A piece fails exactly where the whole text does: named as b64 names it.
            return Err(b64(data, layer, limits)
                .err()
                .unwrap_or(DecodeError::Base64 {
                    layer: layer.into(),
                    source,
                }));
        }
        // The decompression thread may have ended (a gzip error): its error is the one reported.
        let _ = to.send(gz[start..].to_vec());
    }
    Ok(gz)
}

/// What a streamed decode decompresses: gzip bytes, or their base64, which this thread decodes
/// while the decompression thread starts on the first pieces.
#[derive(Clone, Copy)]
enum Gz<'a> {
    Bytes(&'a [u8]),
    Base64(&'a str),
}

/// The decompression thread's input: the gzip bytes, or the pieces [`b64_pieces`] sends (the end
/// of the input when the sender is dropped).
enum GzReader<'a> {
    Bytes(&'a [u8]),
    Pieces {
        from: std::sync::mpsc::Receiver<Vec<u8>>,
        piece: Vec<u8>,
        read: usize,
    },
}

impl Read for GzReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            GzReader::Bytes(b) => b.read(buf),
            GzReader::Pieces { from, piece, read } => {
                while *read == piece.len() {
                    match from.recv() {
                        Ok(next) => (*piece, *read) = (next, 0),
                        Err(_) => return Ok(0),
                    }
                }
                let n = buf.len().min(piece.len() - *read);
                buf[..n].copy_from_slice(&piece[*read..*read + n]);
                *read += n;
                Ok(n)
            }
        }
    }
}

/// Gunzips with a hard cap on output: memory stays bounded whatever the ratio.
pub fn gunzip(gz: &[u8], layer: &str, limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let cap = limits.max_decompressed_bytes;
    let decoder = flate2::read::MultiGzDecoder::new(gz);
    let mut out = Vec::with_capacity(gz.len().saturating_mul(8).min(cap).max(1024));
    decoder
        // Saturating: a cap of usize::MAX (a valid EKS_AUTH_MAX_DECOMPRESSED_BYTES) must not wrap
        // to take(0), nor overflow in debug builds.
        .take((cap as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Gzip {
            layer: layer.into(),
            source,
        })?;
    if out.len() > cap {
        return Err(DecodeError::DecompressedTooLarge {
            layer: layer.into(),
            limit: cap,
        });
    }
    Ok(out)
}

/// Payloads at least this large are gunzipped on a second thread while this one parses.
const STREAM_MIN_GZ: usize = 32 << 10;
/// Decompressed bytes handed over at a time.
const STREAM_CHUNK: usize = 128 << 10;

/// Gunzips (bounded) and parses a logs payload; returns the batch and the decompressed size.
/// With a second core and a large payload, decompression runs on its own thread and this one
/// parses each chunk as it arrives, so the two overlap.
fn gunzip_logs(
    gz: &[u8],
    layer: &str,
    region: Option<String>,
    limits: &Limits,
    early: Option<&mut dyn Early>,
) -> Result<(Batch, usize), DecodeError> {
    if !streams(gz.len()) {
        return gunzip_then_parse(gz, layer, region, limits);
    }
    gunzip_logs_streamed(Gz::Bytes(gz), layer, region, limits, early)
}

/// The sequential path: gunzip (bounded), then parse.
fn gunzip_then_parse(
    gz: &[u8],
    layer: &str,
    region: Option<String>,
    limits: &Limits,
) -> Result<(Batch, usize), DecodeError> {
    let json = gunzip(gz, &format!("{layer} gzip"), limits)?;
    let size = json.len();
    let batch = parse_logs_json(json, &format!("{layer} JSON"), region, limits)?;
    Ok((batch, size))
}

/// Whether `gz_len` bytes of gzip are decompressed on a second thread while this one parses
/// (see [`gunzip_logs_streamed`]): with a second core, for payloads of [`STREAM_MIN_GZ`] or more.
fn streams(gz_len: usize) -> bool {
    cores() >= 2 && gz_len >= STREAM_MIN_GZ
}

/// The cores this process may use, read once (`available_parallelism` reads cgroup files on
/// Linux: not something to repeat per payload).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// What the decompression thread hands over.
enum Chunk {
    Data(Vec<u8>),
    End,
    Failed(std::io::Error),
    TooLarge,
}

fn gunzip_logs_streamed(
    input: Gz<'_>,
    layer: &str,
    region: Option<String>,
    limits: &Limits,
    mut early: Option<&mut dyn Early>,
) -> Result<(Batch, usize), DecodeError> {
    let cap = limits.max_decompressed_bytes;
    let gz_layer = || format!("{layer} gzip");
    std::thread::scope(|scope| {
        // A few chunks in flight at most: memory stays bounded when parsing falls behind.
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        // Chunks come back once parsed: a new one would be zeroed (and its pages faulted in)
        // by this thread, which sets the pace.
        let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
        // Base64 still to decode, with where its pieces go; or the gzip bytes.
        let (source, pending, given) = match input {
            Gz::Bytes(gz) => (GzReader::Bytes(gz), None, gz),
            Gz::Base64(data) => {
                let (to, from) = std::sync::mpsc::channel();
                let source = GzReader::Pieces {
                    from,
                    piece: Vec::new(),
                    read: 0,
                };
                (source, Some((data, to)), &[][..])
            }
        };
        scope.spawn(move || {
            let mut reader = flate2::read::MultiGzDecoder::new(source);
            let mut total = 0usize;
            loop {
                let mut chunk = returned.try_recv().unwrap_or_default();
                chunk.resize(STREAM_CHUNK, 0);
                let msg = match read_full(&mut reader, &mut chunk) {
                    Ok(0) => Chunk::End,
                    Ok(n) if total.saturating_add(n) > cap => Chunk::TooLarge,
                    Ok(n) => {
                        total += n;
                        chunk.truncate(n);
                        Chunk::Data(chunk)
                    }
                    Err(e) => Chunk::Failed(e),
                };
                let last = !matches!(msg, Chunk::Data(_));
                if tx.send(msg).is_err() || last {
                    return;
                }
            }
        });
        let decoded;
        let gz: &[u8] = match pending {
            Some((data, to)) => {
                decoded = b64_pieces(data, to, &format!("{layer} base64"), limits)?;
                &decoded
            }
            None => given,
        };
        // gzip's trailer holds the size mod 2^32: only a capacity hint, never trusted past the
        // cap.
        let hint = gz
            .len()
            .checked_sub(4)
            .and_then(|i| gz.get(i..))
            .and_then(|t| t.try_into().ok())
            .map_or(0, |t: [u8; 4]| u32::from_le_bytes(t) as usize)
            .min(cap);
        // The whole JSON is kept: the events are where their strings sit in it.
        let mut text = String::with_capacity(hint.max(STREAM_CHUNK));
        // The first bytes of a UTF-8 character cut by a chunk boundary.
        let mut tail: Vec<u8> = Vec::new();
        // False once the fast path gave up: the chunks are then only counted, and the payload is
        // gunzipped again for serde_json at the end (rare: not what CloudWatch Logs writes).
        let mut fast = true;
        let mut total = 0usize;
        let mut resume = fast_logs::Resume::with_capacity(hint);
        // Known once the header is parsed and `logEvents` has begun.
        let mut origin: Option<Origin> = None;
        loop {
            // Waiting for decompression is time to work on the events parsed so far.
            let received = loop {
                match rx.try_recv() {
                    Ok(m) => break Ok(m),
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break Err(()),
                    Err(std::sync::mpsc::TryRecvError::Empty) => {}
                }
                if let Some(early) = early.as_deref_mut().filter(|_| fast) {
                    if origin.is_none() {
                        origin = resume.origin(&region);
                    }
                    if let Some(o) = &origin {
                        if early.step(o, resume.view(&text)) {
                            continue;
                        }
                    }
                }
                break rx.recv().map_err(|_| ());
            };
            let chunk = match received {
                Ok(Chunk::Data(chunk)) => chunk,
                Ok(Chunk::End) => break,
                Ok(Chunk::Failed(source)) => {
                    return Err(DecodeError::Gzip {
                        layer: gz_layer(),
                        source,
                    })
                }
                Ok(Chunk::TooLarge) => {
                    return Err(DecodeError::DecompressedTooLarge {
                        layer: gz_layer(),
                        limit: cap,
                    })
                }
                Err(_) => {
                    return Err(DecodeError::Gzip {
                        layer: gz_layer(),
                        source: std::io::Error::other("decompression thread stopped"),
                    })
                }
            };
            total += chunk.len();
            if !fast {
                continue;
            }
            let appended = append_text(&mut text, &mut tail, &chunk);
            // The decompression thread may have ended: then the chunk is simply dropped.
            let _ = give_back.send(chunk);
            if !appended {
                fast = false;
                continue;
            }
            // Parses the events that arrived complete; the rest waits for the next chunk.
            let _ = fast_logs::parse_partial(&text, &mut resume, false);
        }
        if fast && tail.is_empty() {
            if let fast_logs::Partial::Done = fast_logs::parse_partial(&text, &mut resume, true) {
                return Ok((
                    batch_from_raw(resume.into_logs(text), region, limits)?,
                    total,
                ));
            }
        }
        drop((text, resume));
        gunzip_then_parse(gz, layer, region, limits)
    })
}

/// Fills `buf` from `reader` (less only at the end); returns how much it read. Reading into a
/// buffer of the chunk's size, rather than `take(..).read_to_end`, which restarts its read size
/// small for every chunk, saves gunzip 7% of its time.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Appends a chunk to the text the fast path parses; false when the chunk holds what the fast
/// path does not take (a control character, invalid UTF-8), leaving `text` and `tail` unchanged.
fn append_text(text: &mut String, tail: &mut Vec<u8>, chunk: &[u8]) -> bool {
    if chunk.iter().copied().min().is_some_and(|b| b < 0x20) {
        return false;
    }
    let joined;
    let bytes = if tail.is_empty() {
        chunk
    } else {
        joined = [tail.as_slice(), chunk].concat();
        &joined
    };
    let (valid, rest) = match std::str::from_utf8(bytes) {
        Ok(s) => (s, &[][..]),
        // A character cut at the end of the chunk: keep its first bytes for the next one.
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&bytes[..e.valid_up_to()]) {
            Ok(s) => (s, &bytes[e.valid_up_to()..]),
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    text.push_str(valid);
    *tail = rest.to_vec();
    true
}

/// The subscription JSON: `{messageType, owner, logGroup, logStream, subscriptionFilters, logEvents}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogs {
    message_type: Option<MessageType>,
    owner: Option<String>,
    log_group: Option<String>,
    log_stream: Option<String>,
    #[serde(default)]
    log_events: Events,
    /// Not part of the AWS shape: lets a pasted decoded event carry its region.
    region: Option<String>,
}

fn parse_logs_json(
    json: Vec<u8>,
    layer: &str,
    region: Option<String>,
    limits: &Limits,
) -> Result<Batch, DecodeError> {
    let raw = match fast_logs::parse(json) {
        Ok(raw) => raw,
        Err(json) => serde_json::from_slice(&json).map_err(|source| DecodeError::Json {
            layer: layer.into(),
            source,
        })?,
    };
    batch_from_raw(raw, region, limits)
}

fn logs_from_value(
    value: &serde_json::Value,
    layer: &str,
    region: Option<String>,
    limits: &Limits,
) -> Result<Batch, DecodeError> {
    let raw = RawLogs::deserialize(value).map_err(|source| DecodeError::Json {
        layer: layer.into(),
        source,
    })?;
    batch_from_raw(raw, region, limits)
}

fn batch_from_raw(
    raw: RawLogs,
    region: Option<String>,
    limits: &Limits,
) -> Result<Batch, DecodeError> {
    if raw.log_events.len() > limits.max_events {
        return Err(DecodeError::TooManyEvents {
            count: raw.log_events.len(),
            limit: limits.max_events,
        });
    }
    let message_type = raw.message_type.unwrap_or(MessageType::DataMessage);
    Ok(Batch {
        message_type,
        origin: origin_of(
            raw.owner,
            raw.log_group,
            raw.log_stream,
            raw.region.or(region),
        ),
        events: raw.log_events,
    })
}

fn origin_of(
    owner: Option<String>,
    log_group: Option<String>,
    log_stream: Option<String>,
    region: Option<String>,
) -> Origin {
    Origin {
        cluster: log_group.as_deref().and_then(cluster_of_log_group),
        account: owner.filter(|o| !o.is_empty()),
        region,
        log_group,
        log_stream,
    }
}

/// A fast path for the subscription JSON exactly as CloudWatch Logs writes it (compact, the
/// known keys, no escapes but the common ones). Messages are not decoded: each event is where its
/// strings sit in the JSON, found and checked by [`crate::jsonstr::skip`], and most lines are
/// diagnosed as they are (a message holds about twenty escaped quotes, and decoding them cost as
/// much as decompressing). Anything else (whitespace control characters, unknown or repeated
/// keys, `\u` surrogates, escaped ids, floats, invalid input) is given back, and the caller falls
/// back to serde_json, so accepted input gives the same [`RawLogs`] serde_json would and errors
/// come from serde_json alone.
mod fast_logs {
    use std::borrow::Cow;

    use super::{origin_of, Events, EventsRef, MessageType, Origin, RawLogs, Span};

    /// The logs, or the JSON given back for serde_json.
    pub(super) fn parse(json: Vec<u8>) -> Result<RawLogs, Vec<u8>> {
        // Compact JSON holds no byte below 0x20; with none, every string is free of raw control
        // characters (which JSON forbids) and whitespace is only ever a space.
        if json.iter().copied().min().is_some_and(|b| b < 0x20) {
            return Err(json);
        }
        let text = String::from_utf8(json).map_err(|e| e.into_bytes())?;
        let mut resume = Resume::default();
        match parse_partial(&text, &mut resume, true) {
            Partial::Done => Ok(resume.into_logs(text)),
            Partial::NeedMore | Partial::Fail => Err(text.into_bytes()),
        }
    }

    /// Where the parse of a growing text got to. Everything before `pos` has been parsed for
    /// good (each event once, however often the parse resumes); the events are spans of the
    /// text, which must only grow.
    #[derive(Default)]
    pub(super) struct Resume {
        pos: usize,
        phase: Phase,
        spans: Vec<Span>,
        message_type: Option<Option<MessageType>>,
        owner: Option<Option<String>>,
        log_group: Option<Option<String>>,
        log_stream: Option<Option<String>>,
        region: Option<Option<String>>,
        log_events: bool,
        filters: bool,
    }

    #[derive(Default, Clone, Copy, PartialEq, Eq)]
    enum Phase {
        /// Before the opening `{`.
        #[default]
        Begin,
        /// Expecting a key.
        Key,
        /// Inside `logEvents`, expecting an element.
        Events,
        /// After a member's value: `,` or `}`.
        AfterValue,
        /// After the closing `}`.
        Done,
    }

    impl Resume {
        pub(super) fn with_capacity(bytes: usize) -> Self {
            Resume {
                spans: Vec::with_capacity(bytes / 256),
                ..Resume::default()
            }
        }

        /// The events parsed so far from `text`.
        pub(super) fn view<'t>(&'t self, text: &'t str) -> EventsRef<'t> {
            EventsRef {
                text,
                spans: &self.spans,
                capacity: self.spans.capacity(),
            }
        }

        /// The logs, once [`parse_partial`] is [`Partial::Done`] with `text`.
        pub(super) fn into_logs(self, text: String) -> RawLogs {
            RawLogs {
                message_type: self.message_type.flatten(),
                owner: self.owner.flatten(),
                log_group: self.log_group.flatten(),
                log_stream: self.log_stream.flatten(),
                log_events: Events {
                    text,
                    spans: self.spans,
                },
                region: self.region.flatten(),
            }
        }

        /// The batch's origin, once `logEvents` has begun after an explicit `DATA_MESSAGE` type
        /// and the owner, log group and stream (the order CloudWatch Logs writes them in).
        pub(super) fn origin(&self, region: &Option<String>) -> Option<Origin> {
            let data = self.message_type == Some(Some(MessageType::DataMessage));
            let (Some(owner), Some(group), Some(stream)) =
                (&self.owner, &self.log_group, &self.log_stream)
            else {
                return None;
            };
            (data && self.log_events).then(|| {
                let region = self.region.clone().flatten().or_else(|| region.clone());
                origin_of(owner.clone(), group.clone(), stream.clone(), region)
            })
        }
    }

    pub(super) enum Partial {
        /// See [`Resume::into_logs`].
        Done,
        /// The text ends before the JSON does (or may still grow): call again with more.
        NeedMore,
        /// Not something the fast path takes: leave it to serde_json.
        Fail,
    }

    /// Parses `text` from where `resume` stopped; the text is the whole JSON when `complete`.
    pub(super) fn parse_partial(text: &str, resume: &mut Resume, complete: bool) -> Partial {
        let mut p = Parser {
            s: text,
            i: resume.pos,
            scratch: String::new(),
        };
        let stopped = p.resume(resume);
        match stopped {
            Some(()) if complete => {
                p.ws();
                if p.i != text.len() {
                    return Partial::Fail;
                }
                Partial::Done
            }
            _ if complete => Partial::Fail,
            _ => Partial::NeedMore,
        }
    }

    struct Parser<'a> {
        s: &'a str,
        i: usize,
        /// Where escaped strings are decoded before being copied out at their exact size.
        scratch: String,
    }

    impl<'a> Parser<'a> {
        fn peek(&self) -> Option<u8> {
            self.s.as_bytes().get(self.i).copied()
        }

        fn ws(&mut self) {
            while self.peek() == Some(b' ') {
                self.i += 1;
            }
        }

        /// Skips whitespace, then consumes `b`.
        fn eat(&mut self, b: u8) -> Option<()> {
            self.ws();
            (self.peek()? == b).then(|| self.i += 1)
        }

        /// After `{` or `[`: true when the container closes right away with `close`.
        fn empty(&mut self, close: u8) -> bool {
            self.ws();
            let closed = self.peek() == Some(close);
            if closed {
                self.i += 1;
            }
            closed
        }

        /// After a member or element: true for `,` (another follows), false for `close`.
        fn more(&mut self, close: u8) -> Option<bool> {
            self.ws();
            let b = self.peek()?;
            self.i += 1;
            match b {
                b',' => Some(true),
                _ if b == close => Some(false),
                _ => None,
            }
        }

        fn null(&mut self) -> bool {
            self.ws();
            let is_null = self.s[self.i..].starts_with("null");
            if is_null {
                self.i += 4;
            }
            is_null
        }

        /// A string with the escapes JSON allows, surrogates excepted.
        fn string(&mut self) -> Option<String> {
            self.str().map(Cow::into_owned)
        }

        /// Where a string's body sits in the text: its start and its closing quote, and
        /// whether it holds an escape. Not decoded: checked to decode.
        fn span(&mut self) -> Option<((usize, usize), bool)> {
            self.eat(b'"')?;
            let start = self.i;
            let (end, escaped) = crate::jsonstr::skip(self.s, start)?;
            self.i = end + 1;
            Some(((start, end), escaped))
        }

        /// A string, borrowed from the input when it holds no escape (object keys, mostly).
        fn str(&mut self) -> Option<Cow<'a, str>> {
            self.eat(b'"')?;
            let s: &'a str = self.s;
            let start = self.i;
            let at = crate::jsonstr::find_special(s.as_bytes(), start)?;
            self.i = at + 1;
            if s.as_bytes()[at] == b'"' {
                return Some(Cow::Borrowed(&s[start..at]));
            }
            let mut out = std::mem::take(&mut self.scratch);
            out.clear();
            out.push_str(&s[start..at]);
            self.i = at;
            let decoded = self
                .escaped(&mut out)
                .map(|()| Cow::Owned(out.as_str().to_string()));
            self.scratch = out;
            decoded
        }

        /// The rest of a string from `self.i` on, appended to `out`.
        fn escaped(&mut self, out: &mut String) -> Option<()> {
            self.i = crate::jsonstr::unescape_into(self.s, self.i, out)?;
            Some(())
        }

        fn opt_string(&mut self) -> Option<Option<String>> {
            if self.null() {
                return Some(None);
            }
            self.string().map(Some)
        }

        /// An integer that fits an i64; None for floats, exponents and leading zeros.
        fn opt_i64(&mut self) -> Option<Option<i64>> {
            if self.null() {
                return Some(None);
            }
            let b = self.s.as_bytes();
            let negative = self.peek() == Some(b'-');
            if negative {
                self.i += 1;
            }
            let start = self.i;
            let mut v: i64 = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                let d = i64::from(d - b'0');
                v = v
                    .checked_mul(10)?
                    .checked_add(if negative { -d } else { d })?;
                self.i += 1;
            }
            let digits = self.i - start;
            let leading_zero = digits > 1 && b[start] == b'0';
            let float = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
            // serde_json reads `-0` as a float, which is no i64.
            let negative_zero = negative && v == 0;
            (digits > 0 && !leading_zero && !float && !negative_zero).then_some(Some(v))
        }

        /// Sets a field once: a repeated key is left to serde_json (which rejects it).
        fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(v);
            Some(())
        }

        /// Runs the object's state machine from `r.phase` at `self.i`, committing `r.pos` after
        /// every complete step; `Some` once the closing `}` is read.
        fn resume(&mut self, r: &mut Resume) -> Option<()> {
            loop {
                match r.phase {
                    Phase::Begin => {
                        self.eat(b'{')?;
                        r.phase = if self.empty(b'}') {
                            Phase::Done
                        } else {
                            Phase::Key
                        };
                    }
                    Phase::Key => {
                        let key = self.str()?;
                        self.eat(b':')?;
                        r.phase = Phase::AfterValue;
                        match key.as_ref() {
                            "messageType" => {
                                let t = match self.opt_string()?.as_deref() {
                                    None => None,
                                    Some("DATA_MESSAGE") => Some(MessageType::DataMessage),
                                    Some("CONTROL_MESSAGE") => Some(MessageType::ControlMessage),
                                    Some(_) => return None,
                                };
                                Self::once(&mut r.message_type, t)?;
                            }
                            "owner" => Self::once(&mut r.owner, self.opt_string()?)?,
                            "logGroup" => Self::once(&mut r.log_group, self.opt_string()?)?,
                            "logStream" => Self::once(&mut r.log_stream, self.opt_string()?)?,
                            "region" => Self::once(&mut r.region, self.opt_string()?)?,
                            "logEvents" if !r.log_events => {
                                self.eat(b'[')?;
                                r.log_events = true;
                                if !self.empty(b']') {
                                    r.phase = Phase::Events;
                                    if r.spans.capacity() == 0 {
                                        // CloudWatch events are a few hundred bytes.
                                        r.spans.reserve((self.s.len() - self.i) / 256);
                                    }
                                }
                            }
                            "subscriptionFilters" if !r.filters => {
                                // Not kept; serde_json ignores it whatever it holds.
                                r.filters = true;
                                self.string_array()?;
                            }
                            _ => return None,
                        }
                    }
                    Phase::Events => {
                        // An element counts once the `,` or `]` after it has been read: a text
                        // that ends inside one leaves it for the next attempt.
                        let mark = r.spans.len();
                        let next = self.event(&mut r.spans).and_then(|()| self.more(b']'));
                        match next {
                            Some(true) => {}
                            Some(false) => r.phase = Phase::AfterValue,
                            None => {
                                r.spans.truncate(mark);
                                return None;
                            }
                        }
                    }
                    Phase::AfterValue => {
                        r.phase = if self.more(b'}')? {
                            Phase::Key
                        } else {
                            Phase::Done
                        };
                    }
                    Phase::Done => return Some(()),
                }
                r.pos = self.i;
            }
        }

        fn string_array(&mut self) -> Option<()> {
            self.eat(b'[')?;
            if !self.empty(b']') {
                loop {
                    self.string()?;
                    if !self.more(b']')? {
                        break;
                    }
                }
            }
            Some(())
        }

        /// One event: where its strings sit in the text.
        fn event(&mut self, spans: &mut Vec<Span>) -> Option<()> {
            let start = self.i;
            if let Some(span) = self.cloudwatch_event() {
                spans.push(span);
                return Some(());
            }
            self.i = start;
            self.event_any(spans)
        }

        /// An event exactly as CloudWatch Logs writes it, `{"id":"<digits>","timestamp":<n>,
        /// "message":"<body>"}` with no whitespace, read by matching its fixed parts instead of
        /// parsing three keys; `None` for any other element, which [`Parser::event_any`] then
        /// reads (its span for this form is the same one).
        fn cloudwatch_event(&mut self) -> Option<Span> {
            let b = self.s.as_bytes();
            let rest = b.get(self.i..)?;
            let after_id = rest.strip_prefix(b"{\"id\":\"")?;
            let id_start = self.i + (rest.len() - after_id.len());
            let id_end = crate::jsonstr::find_special(b, id_start)?;
            if b[id_end] != b'"' {
                return None;
            }
            self.i = id_end + 1;
            self.literal(b",\"timestamp\":")?;
            let timestamp = self.opt_i64()?;
            self.literal(b",\"message\":\"")?;
            let message_start = self.i;
            let (message_end, json) = crate::jsonstr::skip(self.s, message_start)?;
            self.i = message_end + 1;
            self.literal(b"}")?;
            Some(Span {
                id: Some((id_start, id_end)),
                timestamp,
                message: (message_start, message_end),
                json,
            })
        }

        /// Consumes `lit` when the text goes on with it.
        fn literal(&mut self, lit: &[u8]) -> Option<()> {
            let rest = self.s.as_bytes().get(self.i..)?;
            rest.starts_with(lit).then(|| self.i += lit.len())
        }

        /// One event in any form [`Parser::event`] takes.
        fn event_any(&mut self, spans: &mut Vec<Span>) -> Option<()> {
            self.eat(b'{')?;
            let mut id = None;
            let mut timestamp = None;
            let mut message = None;
            if !self.empty(b'}') {
                loop {
                    let key = self.str()?;
                    self.eat(b':')?;
                    match key.as_ref() {
                        "id" => {
                            let v = if self.null() {
                                None
                            } else {
                                // CloudWatch's ids are digits: one with an escape is left to
                                // serde_json.
                                match self.span()? {
                                    (span, false) => Some(span),
                                    (_, true) => return None,
                                }
                            };
                            Self::once(&mut id, v)?;
                        }
                        "timestamp" => Self::once(&mut timestamp, self.opt_i64()?)?,
                        "message" => Self::once(&mut message, self.span()?)?,
                        _ => return None,
                    }
                    if !self.more(b'}')? {
                        break;
                    }
                }
            }
            let (message, json) = message?;
            spans.push(Span {
                id: id.flatten(),
                timestamp: timestamp.flatten(),
                message,
                json,
            });
            Some(())
        }
    }
}

/// The manual test event: `{"cluster", "region"?, "account"?, "lines": [...], "text"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {
    cluster: Option<String>,
    region: Option<String>,
    account: Option<String>,
    #[serde(default)]
    lines: Vec<String>,
    /// Free text as pasted from a console (timestamp lines above records are joined).
    text: Option<String>,
}

fn manual(value: &serde_json::Value, limits: &Limits) -> Result<Batch, DecodeError> {
    let raw = RawManual::deserialize(value).map_err(|source| DecodeError::Json {
        layer: "manual event".into(),
        source,
    })?;
    let mut joined = raw.lines.join("\n");
    if let Some(t) = &raw.text {
        joined.push('\n');
        joined.push_str(t);
    }
    let mut events = Events::default();
    for line in crate::authlog::split_paste(&joined) {
        events.push(None, None, &line);
    }
    if events.len() > limits.max_events {
        return Err(DecodeError::TooManyEvents {
            count: events.len(),
            limit: limits.max_events,
        });
    }
    let cluster = raw.cluster.filter(|c| !c.is_empty());
    Ok(Batch {
        message_type: MessageType::DataMessage,
        origin: Origin {
            log_group: cluster.as_deref().map(|c| format!("/aws/eks/{c}/cluster")),
            cluster,
            account: raw.account,
            region: raw.region,
            log_stream: None,
        },
        events,
    })
}

/// `prod` from `/aws/eks/prod/cluster`.
pub fn cluster_of_log_group(group: &str) -> Option<String> {
    let rest = group.strip_prefix("/aws/eks/")?;
    let name = rest.strip_suffix("/cluster")?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn logs_json() -> String {
        serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "111122223333",
            "logGroup": "/aws/eks/prod/cluster", "logStream": "authenticator-0123",
            "subscriptionFilters": ["f"],
            "logEvents": [{"id": "1", "timestamp": 1, "message": "msg=hi"}]
        })
        .to_string()
    }

    #[test]
    fn subscription_event() {
        let data = base64::engine::general_purpose::STANDARD.encode(gz(logs_json().as_bytes()));
        let ev = serde_json::json!({"awslogs": {"data": data}}).to_string();
        let d = decode_bytes(ev.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(d.source, Source::Subscription);
        let b = &d.batches[0];
        assert_eq!(b.origin.cluster.as_deref(), Some("prod"));
        assert_eq!(b.origin.account.as_deref(), Some("111122223333"));
        assert_eq!(b.events.get(0).unwrap().message(), "msg=hi");
        // unpadded base64 is accepted too
        let unpadded =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(gz(logs_json().as_bytes()));
        let ev = serde_json::json!({"awslogs": {"data": unpadded}}).to_string();
        assert!(decode_bytes(ev.as_bytes(), &Limits::default()).is_ok());
    }

    #[test]
    fn each_layer_names_itself() {
        let lim = Limits::default();
        let err = |v: serde_json::Value| decode_value(&v, &lim).unwrap_err().to_string();
        assert!(
            err(serde_json::json!({"awslogs": {"data": "!!"}})).starts_with("awslogs.data base64")
        );
        let not_gzip = base64::engine::general_purpose::STANDARD.encode(b"plain");
        assert!(err(serde_json::json!({"awslogs": {"data": not_gzip}}))
            .starts_with("awslogs.data gzip"));
        let not_json = base64::engine::general_purpose::STANDARD.encode(gz(b"{nope"));
        assert!(err(serde_json::json!({"awslogs": {"data": not_json}}))
            .starts_with("awslogs.data JSON"));
        assert!(err(serde_json::json!([1])).starts_with("event"));
        assert!(err(serde_json::json!({"foo": 1})).contains("unrecognised event"));
        let bad = base64::engine::general_purpose::STANDARD.encode(b"x");
        assert!(
            err(serde_json::json!({"Records": [{"kinesis": {"data": bad}}]}))
                .starts_with("Records[0].kinesis.data gzip")
        );
        assert!(decode_bytes(b"{", &lim)
            .unwrap_err()
            .to_string()
            .starts_with("event: invalid JSON"));
    }

    #[test]
    fn decompression_is_capped() {
        let bomb = gz(&vec![0u8; 1 << 20]);
        let lim = Limits {
            max_decompressed_bytes: 1000,
            ..Limits::default()
        };
        let err = gunzip(&bomb, "x", &lim).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::DecompressedTooLarge { limit: 1000, .. }
        ));
        assert_eq!(gunzip(&gz(&[1u8; 1000]), "x", &lim).unwrap().len(), 1000);
    }

    #[test]
    fn gunzip_with_usize_max_cap_does_not_overflow() {
        // Found by tests/proptest_parser.rs: `cap as u64 + 1` overflowed for usize::MAX.
        let lim = Limits {
            max_decompressed_bytes: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(gunzip(&gz(b"hello"), "x", &lim).unwrap(), b"hello");
    }

    #[test]
    fn kinesis_control_and_manual() {
        let data = base64::engine::general_purpose::STANDARD.encode(gz(logs_json().as_bytes()));
        let ev =
            serde_json::json!({"Records": [{"kinesis": {"data": data}, "awsRegion": "eu-west-1"}]});
        let d = decode_value(&ev, &Limits::default()).unwrap();
        assert_eq!(d.source, Source::Kinesis);
        assert_eq!(d.batches[0].origin.region.as_deref(), Some("eu-west-1"));

        let ctl = serde_json::json!({"messageType": "CONTROL_MESSAGE", "logEvents": [{"id": "", "timestamp": 0, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
        assert!(decode_value(&ctl, &Limits::default())
            .unwrap()
            .is_control_only());

        let man = serde_json::json!({"cluster": "dev", "lines": ["2022-12-28T15:37:19Z", "msg=x"]});
        let d = decode_value(&man, &Limits::default()).unwrap();
        assert_eq!(d.source, Source::Manual);
        assert_eq!(d.batches[0].events.len(), 1);
        assert_eq!(
            d.batches[0].origin.log_group.as_deref(),
            Some("/aws/eks/dev/cluster")
        );
        let typo = serde_json::json!({"cluster": "dev", "lines": [], "clsuter": 1});
        assert!(decode_value(&typo, &Limits::default()).is_err());
    }

    /// The fast path, when it answers, answers as serde_json does.
    fn fast_agrees(json: &str) -> bool {
        let fast = fast_logs::parse(json.as_bytes().to_vec());
        let slow = serde_json::from_slice::<RawLogs>(json.as_bytes());
        if let Ok(f) = &fast {
            let s = slow
                .unwrap_or_else(|e| panic!("fast path accepted what serde rejects ({e}): {json}"));
            assert_eq!(format!("{f:?}"), format!("{s:?}"), "{json}");
        }
        fast.is_ok()
    }

    #[test]
    fn fast_logs_path_matches_serde() {
        let (ev, _) = crate::benchdata::subscription_event(300);
        let data = ev["awslogs"]["data"].as_str().unwrap();
        let json = gunzip(
            &base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
            "x",
            &Limits::default(),
        )
        .unwrap();
        assert!(fast_agrees(std::str::from_utf8(&json).unwrap()));
        assert!(fast_agrees(&logs_json()));
        let ev = |e: &str| format!(r#"{{"messageType":"DATA_MESSAGE","logEvents":[{e}]}}"#);
        // Taken by the fast path.
        for json in [
            "{}".to_string(),
            " { } ".to_string(),
            r#"{"logEvents":[],"subscriptionFilters":[]}"#.to_string(),
            r#"{"messageType":null,"owner":null,"logGroup":"g","logStream":"s","region":"eu-west-1"}"#.to_string(),
            r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","timestamp":0,"message":"CWL CONTROL MESSAGE"}]}"#.to_string(),
            ev(r#"{"message":"m"}"#),
            ev(r#"{"id":null,"timestamp":null,"message":""}"#),
            ev(r#" { "timestamp" : -12 , "message" : "x" , "id" : "7" } "#),
            ev(r#"{"message":"q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u20ac é 😀"}"#),
            ev(r#"{"message":"m","timestamp":9223372036854775807}"#),
            ev(r#"{"message":"m","timestamp":-9223372036854775808}"#),
            ev(r#"{"message":"a"},{"message":"b"}"#),
            r#"{"mess\u0061geType":"DATA_MESSAGE"}"#.to_string(),
            // CloudWatch's own form, read by its fixed parts, and near misses that the general
            // event parser reads instead.
            ev(r#"{"id":"1","timestamp":2,"message":"m"},{"id":"","timestamp":null,"message":""}"#),
            ev(r#"{"id":"1","timestamp":2,"message":"a\"b \\ \u00e9"}"#),
            ev(r#"{"id":"1","timestamp":2 ,"message":"m"}"#),
            ev(r#"{"id":"1","timestamp":2,"message":"m" }"#),
            ev(r#"{"id":"1","timestamp": 2,"message":"m"} "#),
            ev(r#"{"id":"1","message":"m","timestamp":2}"#),
            ev(r#"{"id":null,"timestamp":2,"message":"m"}"#),
        ] {
            assert!(fast_agrees(&json), "not taken: {json}");
        }
        // Left to serde_json (which accepts or rejects them on its own).
        for json in [
            String::new(),
            "{\n}".to_string(),
            "{}x".to_string(),
            "[]".to_string(),
            r#"{"logEvents":null}"#.to_string(),
            r#"{"owner":"a","owner":"b"}"#.to_string(),
            r#"{"other":1}"#.to_string(),
            r#"{"messageType":"NOPE"}"#.to_string(),
            r#"{"subscriptionFilters":[1]}"#.to_string(),
            ev(r#"{"message":"m","timestamp":-0}"#),
            ev(r#"{"message":"m","timestamp":01}"#),
            ev(r#"{"message":"m","timestamp":1.5}"#),
            ev(r#"{"message":"m","timestamp":1e3}"#),
            ev(r#"{"message":"m","timestamp":9223372036854775808}"#),
            ev(r#"{"message":"m","timestamp":"1"}"#),
            ev(r#"{"message":"\ud83d\ude00"}"#),
            ev(r#"{"message":"\ud800"}"#),
            ev(r#"{"message":"\x"}"#),
            ev(r#"{"message":"\u12"}"#),
            ev(r#"{"message":null}"#),
            ev(r#"{"id":"1"}"#),
            ev(r#"{"message":"a","message":"b"}"#),
            ev(r#"{"message":"a","extra":true}"#),
            ev(r#"{"message":"a"},"#),
            ev(r#"{"message":"tab	inside"}"#),
            ev(r#"{"id":"1\"","timestamp":2,"message":"m"}"#),
            ev(r#"{"id":"1\,"timestamp":2,"message":"m"}"#),
            ev(r#"{"id":"1","timestamp":1.5,"message":"m"}"#),
            ev(r#"{"id":"1","timestamp":2,"message":"m","id":"2"}"#),
            ev(r#"{"id":"1","timestamp":2,"message":"m"#),
        ] {
            assert!(!fast_agrees(&json), "taken: {json}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_logs_path_never_disagrees_with_serde(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("{".to_string()),
                proptest::strategy::Just("}".to_string()),
                proptest::strategy::Just("[".to_string()),
                proptest::strategy::Just("]".to_string()),
                proptest::strategy::Just(",".to_string()),
                proptest::strategy::Just(":".to_string()),
                proptest::strategy::Just(" ".to_string()),
                proptest::strategy::Just("null".to_string()),
                proptest::strategy::Just("\"logEvents\"".to_string()),
                proptest::strategy::Just("\"message\"".to_string()),
                proptest::strategy::Just("\"timestamp\"".to_string()),
                proptest::strategy::Just("\"id\"".to_string()),
                proptest::strategy::Just("\"owner\"".to_string()),
                proptest::strategy::Just("\"messageType\"".to_string()),
                proptest::strategy::Just("\"DATA_MESSAGE\"".to_string()),
                proptest::strategy::Just("\"subscriptionFilters\"".to_string()),
                // The fixed parts of CloudWatch's own event form.
                proptest::strategy::Just("{\"id\":\"".to_string()),
                proptest::strategy::Just("\",\"timestamp\":".to_string()),
                proptest::strategy::Just(",\"message\":\"".to_string()),
                "-?[0-9]{1,20}(\\.[0-9])?",
                "\"([a-z =\"é]|\\\\[\"\\\\/bfnrtux]|\\\\u[0-9a-fA-F]{4})*\"",
            ], 0..40)
        ) {
            let json: String = parts.concat();
            fast_agrees(&json);
            let wrapped = format!(r#"{{"logEvents":[{{"message":"m","id":"1"}},{json}]}}"#);
            fast_agrees(&wrapped);
            let object = format!("{{\"logEvents\":[{{{json}}}]}}");
            fast_agrees(&object);
            let after_cloudwatch = format!(
                r#"{{"logEvents":[{{"id":"1","timestamp":2,"message":"m"}},{{"id":"{json}"#
            );
            fast_agrees(&after_cloudwatch);
        }
    }

    /// The streamed decode (gunzip on a second thread, parse as chunks arrive) answers exactly
    /// as gunzip-then-parse does: same batch, or an error naming the same layer.
    fn streamed_agrees(json: &[u8], limits: &Limits) {
        let gz = gz(json);
        let whole = gunzip(&gz, "p gzip", limits).and_then(|j| {
            let n = j.len();
            parse_logs_json(j, "p JSON", None, limits).map(|b| (b, n))
        });
        let streamed = gunzip_logs_streamed(Gz::Bytes(&gz), "p", None, limits, None);
        match (whole, streamed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(
                crate::handler::format_chain(&a),
                crate::handler::format_chain(&b)
            ),
            (a, b) => panic!("whole {a:?} vs streamed {b:?}"),
        }
    }

    /// Base64 decoded in pieces while the first ones are decompressed answers as decoding it
    /// whole, then decompressing: the same batch, or the same error.
    #[test]
    fn base64_decoded_while_decompressing_matches_whole() {
        let (ev, _) = crate::benchdata::subscription_event(2_000);
        let data = ev["awslogs"]["data"].as_str().unwrap().to_string();
        let b = base64::engine::general_purpose::STANDARD;
        let mut corrupt_gz = b.decode(&data).unwrap();
        let mid = corrupt_gz.len() / 2;
        corrupt_gz[mid] ^= 0x55;
        let with = |at: usize, c: char| {
            let mut d = data.clone();
            d.replace_range(at..at + 1, &c.to_string());
            d
        };
        let limits = Limits::default();
        for (what, data) in [
            ("as sent", data.clone()),
            ("unpadded", data.trim_end_matches('=').to_string()),
            ("surrounded by whitespace", format!(" \n{data}\n")),
            ("bad byte in the first piece", with(10, '!')),
            ("bad byte in the middle", with(data.len() / 2, '!')),
            ("bad byte at the end", with(data.len() - 3, '.')),
            ("padding in the middle", with(64 << 10, '=')),
            // Each piece would decode on its own: only the whole text shows the error.
            ("padding ending a piece", {
                let mut d = data.clone();
                d.replace_range((64 << 10) - 4..64 << 10, "AA==");
                d
            }),
            ("cut mid-quad", data[..data.len() - 3].to_string()),
            ("corrupt gzip", b.encode(&corrupt_gz)),
        ] {
            let want = b64(&data, "p base64", &limits)
                .and_then(|gz| gunzip_then_parse(&gz, "p", None, &limits).map(|(b, _)| b))
                .map_err(|e| e.to_string());
            let got = b64_checked(&data, "p base64", &limits)
                .and_then(|d| gunzip_logs_streamed(Gz::Base64(d), "p", None, &limits, None))
                .map(|(b, _)| b)
                .map_err(|e| e.to_string());
            assert!(
                data.len() / 4 * 3 >= STREAM_MIN_GZ,
                "{what}: too small to stream"
            );
            assert_eq!(got, want, "{what}");
        }
        // Through the event, whichever path the machine's cores choose.
        let decoded = decode_value(&ev, &limits).unwrap();
        let gz = b.decode(&data).unwrap();
        let (whole, _) = gunzip_then_parse(&gz, "p", None, &limits).unwrap();
        assert_eq!(decoded.batches, vec![whole]);
    }

    #[test]
    fn streamed_decode_matches_whole() {
        let (ev, _) = crate::benchdata::subscription_event(2_000);
        let data = ev["awslogs"]["data"].as_str().unwrap();
        let gzipped = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let json = gunzip(&gzipped, "x", &Limits::default()).unwrap();
        let limits = Limits::default();
        streamed_agrees(&json, &limits);
        // Multi-byte characters cut by every chunk boundary, escapes and \u sequences.
        let msg = "é€😀 \"q\" \\u00e9 ".repeat(40_000);
        let logs = format!(
            r#"{{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/p/cluster","logEvents":[{{"id":"1","timestamp":1,"message":"{msg}"}},{{"id":"2","message":"{msg}"}}]}}"#
        );
        streamed_agrees(logs.as_bytes(), &limits);
        // What the fast path leaves to serde_json: pretty-printed, invalid, truncated, trailing.
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&json).unwrap())
                .unwrap();
        streamed_agrees(&pretty, &limits);
        let mut broken = json.clone();
        let at = broken.len() / 2;
        broken[at] = b'\xff';
        streamed_agrees(&broken, &limits);
        streamed_agrees(&json[..json.len() - 3], &limits);
        let mut trailing = json.clone();
        trailing.extend_from_slice(b" x");
        streamed_agrees(&trailing, &limits);
        // Caps: too large to decompress, too many events.
        let small = Limits {
            max_decompressed_bytes: json.len() - 1,
            ..limits
        };
        streamed_agrees(&json, &small);
        let exact = Limits {
            max_decompressed_bytes: json.len(),
            ..limits
        };
        streamed_agrees(&json, &exact);
        let few = Limits {
            max_events: 10,
            ..limits
        };
        streamed_agrees(&json, &few);
        // A corrupt gzip stream.
        let mut bad = gz(&json);
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        let whole = gunzip(&bad, "p gzip", &limits).map(|_| ());
        let streamed = gunzip_logs_streamed(Gz::Bytes(&bad), "p", None, &limits, None).map(|_| ());
        assert_eq!(whole.is_err(), streamed.is_err());
    }

    /// A character cut by a chunk boundary waits for the rest of its bytes.
    #[test]
    fn origin_is_forecast_from_the_header() {
        let o = crate::benchdata::options();
        let text = "level=info msg=a\nlevel=info msg=b";
        let region = Some("eu-west-1".to_string());
        let forecast = |json: &str, upto: usize| {
            let mut r = fast_logs::Resume::default();
            let _ = fast_logs::parse_partial(&json[..upto], &mut r, false);
            r.origin(&region)
        };
        let wire = crate::eventgen::wire(text, &o);
        let (batch, _) = gunzip_then_parse(
            &gz(wire.as_bytes()),
            "p",
            region.clone(),
            &Limits::default(),
        )
        .unwrap();
        let events_at = wire.find(r#""logEvents":["#).unwrap();
        // Known once the events begin, and right.
        assert_eq!(forecast(&wire, events_at), None);
        assert_eq!(forecast(&wire, events_at + 20), Some(batch.origin.clone()));
        // Keys in another order (events first): no forecast.
        let sorted = crate::eventgen::decoded(text, &o).to_string();
        assert_eq!(forecast(&sorted, sorted.len() / 2), None);
        // A CONTROL_MESSAGE: none either.
        let control = crate::eventgen::Options { control: true, ..o };
        let control = crate::eventgen::wire("", &control);
        assert_eq!(forecast(&control, control.len() - 5), None);
    }

    #[test]
    fn append_text_joins_characters_cut_between_chunks() {
        let whole = "aé€😀b".as_bytes();
        for cut in 0..=whole.len() {
            let (mut text, mut tail) = (String::new(), Vec::new());
            assert!(append_text(&mut text, &mut tail, &whole[..cut]));
            assert!(append_text(&mut text, &mut tail, &whole[cut..]));
            assert!(tail.is_empty(), "cut at {cut}");
            assert_eq!(text, "aé€😀b");
        }
        let (mut text, mut tail) = (String::new(), Vec::new());
        assert!(!append_text(&mut text, &mut tail, b"ok\xff"));
        assert!(!append_text(&mut text, &mut tail, b"tab\there"));
        assert!(text.is_empty() && tail.is_empty());
    }

    #[test]
    fn cluster_names() {
        assert_eq!(
            cluster_of_log_group("/aws/eks/prod-1/cluster").as_deref(),
            Some("prod-1")
        );
        assert_eq!(cluster_of_log_group("/aws/lambda/x"), None);
        assert_eq!(cluster_of_log_group("/aws/eks//cluster"), None);
    }
}
