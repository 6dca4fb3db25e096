//! The on-disk record format, version 2: JSON Lines, one record per line.
//!
//! This module owns the record types, their (de)serialisation, and the rules
//! for parsing one line. It does no I/O: `Session` reads and writes the bytes.
//! Readers ignore unknown fields so later versions can add optional ones; an
//! unknown `version` is refused so a newer file is never rewritten by an older
//! program.

use serde::{Deserialize, Serialize};

/// The format version this program writes. Version 2 added the `settings`
/// record; a version 1 reader takes an unknown record type for damage (a torn
/// last line, or a corrupt one to repair), so a log that may hold one says 2,
/// and an older memchat refuses it with "upgrade memchat" instead.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this program reads: version 1 is version 2 without
/// `settings` records. A version 1 log is rewritten as version 2 when a
/// `settings` record is first written to it.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// The `format` field of every header: guards against loading a random JSONL file.
pub const FORMAT_NAME: &str = "memchat";

/// The most bytes of text one message may hold: a user's input, a reply (the
/// client stops a stream here and keeps what came, marked truncated), one
/// imported message. 4 MiB is about a million tokens, the largest context
/// window of any model memchat knows, so no message that could be sent is
/// refused, while one absurd message cannot take the machine's memory.
pub const MAX_CONTENT_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes one line of a log or archive may hold. A message of
/// [`MAX_CONTENT_BYTES`] fits even at JSON's worst escaping (6 bytes per
/// control character) with room for the other fields; a longer line is damage,
/// reported with file:line and quarantined by `repair` without being read
/// into memory whole.
pub const MAX_LINE_BYTES: usize = 6 * MAX_CONTENT_BYTES + 64 * 1024;

/// The highest `seq` a record may carry: 2^53 - 1, the largest integer every
/// JSON reader represents exactly. No conversation reaches it (a message a
/// microsecond for 285 years); a higher one can only be forged or damaged, and
/// is refused with file:line rather than wrapped.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Roles live on the bottom floor (the client speaks them too); the records
/// here store them.
pub use crate::message::Role;

/// One line of a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Header(Header),
    Message(MessageRecord),
    Summary(SummaryRecord),
    Settings(SettingsRecord),
}

impl Record {
    /// The sequence number of a message or summary; headers and settings
    /// have none.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Record::Header(_) | Record::Settings(_) => None,
            Record::Message(m) => Some(m.seq),
            Record::Summary(s) => Some(s.seq),
        }
    }
}

/// First line of every log and archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub session: String,
    pub created_at: String,
    /// Highest `seq` ever assigned when the file was written. The active log
    /// can be empty after `/clear` while the archive holds high numbers; this
    /// keeps `seq` rising without reading the archive on start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

impl Header {
    pub fn new(session: &str, created_at: String) -> Self {
        Header {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            session: session.to_string(),
            created_at,
            last_seq: None,
        }
    }
}

/// The session's own settings, each optional: what it was made with or last
/// switched to (`/model`). A later record changes only the fields it carries,
/// so the settings in force are every record's fields, latest wins. Readers
/// ignore fields they do not know, so a field can be added without a new
/// format version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    /// The model the session talks to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The context window it is sized for, when set explicitly
    /// (`--context-limit`); absent, the model's known window applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_limit: Option<u32>,
    /// The title set for it (`/title`); absent, its first message stands
    /// in (see `titles.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The role (`-r`, `/role`) it was started with or last took; its
    /// sampling settings apply on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl SessionSettings {
    /// Nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == SessionSettings::default()
    }

    /// Takes every field `later` sets (latest wins, field by field).
    pub fn merge(&mut self, later: &SessionSettings) {
        if later.model.is_some() {
            self.model.clone_from(&later.model);
        }
        if later.context_limit.is_some() {
            self.context_limit = later.context_limit;
        }
        if later.title.is_some() {
            self.title.clone_from(&later.title);
        }
        if later.role.is_some() {
            self.role.clone_from(&later.role);
        }
    }

    /// The fields of `self` that differ from `current`: what a new record
    /// must carry (empty: nothing to write).
    pub fn changes_from(&self, current: &SessionSettings) -> SessionSettings {
        SessionSettings {
            model: self
                .model
                .clone()
                .filter(|m| current.model.as_ref() != Some(m)),
            context_limit: self
                .context_limit
                .filter(|&c| current.context_limit != Some(c)),
            title: self
                .title
                .clone()
                .filter(|t| current.title.as_ref() != Some(t)),
            role: self
                .role
                .clone()
                .filter(|r| current.role.as_ref() != Some(r)),
        }
    }
}

/// A `settings` line: `{"type":"settings","at":…,"model":…,"context_limit":…}`.
/// It has no `seq` (it is not part of the conversation) and is never
/// archived: a rewrite of the active log writes the settings in force as one
/// record right after the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub at: String,
    #[serde(flatten)]
    pub settings: SessionSettings,
}

/// A message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub seq: u64,
    pub role: Role,
    pub content: String,
    pub at: String,
    /// The model that wrote an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The reply was cut short (Ctrl-C, a dropped stream): the text is partial.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// memchat stopped the reply at its size cap (the server ignored
    /// `max_tokens`): the text is the reply's beginning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Cached exact token count of `content` (no per-message overhead) in
    /// `encoding`, so start-up need not load the tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenCache>,
    /// What the server reported for the request that produced this reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageRecord>,
    /// Counts of earlier records of the active log, made after those were
    /// written (the tokenizer was not loaded yet). They ride on the next
    /// append so the log stays append-only; the loader moves them into each
    /// record's `tokens`, and a rewrite writes them there (never this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_tokens: Option<LateTokens>,
}

/// Token counts of earlier records, keyed by their `seq`, all in one
/// encoding (see [`MessageRecord::late_tokens`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateTokens {
    pub encoding: String,
    /// `seq` to count; JSON object keys are strings, so `"12"` on disk.
    #[serde(with = "seq_keys")]
    pub counts: std::collections::BTreeMap<u64, u32>,
}

/// A map keyed by `seq` as a JSON object. Written by hand because records
/// are an internally tagged enum, whose buffered fields do not turn string
/// keys back into numbers on their own.
mod seq_keys {
    use std::collections::BTreeMap;

    use serde::de::{Error, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<u64, u32>, s: S) -> Result<S::Ok, S::Error> {
        let keyed: BTreeMap<String, u32> = map.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        keyed.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, u32>, D::Error> {
        d.deserialize_map(CountsVisitor)
    }

    /// Reads the keys in place: a log primed in one go carries thousands
    /// of counts on one record, and a `String` per key was a fifth of
    /// loading it.
    struct CountsVisitor;

    impl<'de> Visitor<'de> for CountsVisitor {
        type Value = BTreeMap<u64, u32>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of token counts keyed by seq")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut counts = BTreeMap::new();
            while let Some(SeqKey(seq)) = map.next_key()? {
                counts.insert(seq, map.next_value::<u32>()?);
            }
            Ok(counts)
        }
    }

    /// A `seq` written as an object key (a string of digits).
    struct SeqKey(u64);

    impl<'de> Deserialize<'de> for SeqKey {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeqKey, D::Error> {
            d.deserialize_str(SeqKeyVisitor)
        }
    }

    struct SeqKeyVisitor;

    impl Visitor<'_> for SeqKeyVisitor {
        type Value = SeqKey;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a seq")
        }

        fn visit_str<E: Error>(self, key: &str) -> Result<SeqKey, E> {
            match key.parse::<u64>() {
                Ok(seq) if (1..=super::MAX_SEQ).contains(&seq) => Ok(SeqKey(seq)),
                _ => Err(E::custom(format!("late_tokens: {key:?} is not a seq"))),
            }
        }
    }
}

impl LateTokens {
    /// The late count for `seq` into `tokens`, unless `tokens` already holds
    /// a count in the same encoding (written with the record itself). A count
    /// in another encoding is replaced: the late one is the newer.
    pub fn apply(&self, seq: u64, tokens: &mut Option<TokenCache>) {
        let Some(&count) = self.counts.get(&seq) else {
            return;
        };
        if tokens.as_ref().is_some_and(|t| t.encoding == self.encoding) {
            return;
        }
        *tokens = Some(TokenCache {
            encoding: self.encoding.clone(),
            count,
        });
    }
}

/// Token usage reported by the server for one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// The running summary of everything compaction moved to the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub seq: u64,
    pub content: String,
    /// First and last `seq` of the records this summary stands for.
    pub covers: [u64; 2],
    pub at: String,
    /// `"model"` when the model wrote it, `"extractive"` for the local fallback.
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenCache>,
}

fn default_method() -> String {
    "model".to_string()
}

/// A token count together with the encoding that produced it: a count made
/// with another encoding is ignored, never trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCache {
    pub encoding: String,
    pub count: u32,
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    NotUtf8,
    Json(String),
    NotAHeader,
    UnexpectedHeader,
    WrongFormat(String),
    UnsupportedVersion(u32),
    /// The line is longer than [`MAX_LINE_BYTES`] (its length in bytes).
    TooLong(u64),
    /// A `seq` (or `last_seq`, or a summary's `covers`) of 0 or over [`MAX_SEQ`].
    ImpossibleSeq(u64),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::NotUtf8 => write!(f, "the line is not valid UTF-8"),
            LineError::Json(e) => write!(f, "not a valid record: {e}"),
            LineError::NotAHeader => write!(f, "the first line must be a memchat header"),
            LineError::UnexpectedHeader => write!(f, "a header may only be the first line"),
            LineError::WrongFormat(name) => {
                write!(f, "the header says format {name:?}, not {FORMAT_NAME:?}")
            }
            LineError::UnsupportedVersion(v) => write!(
                f,
                "format version {v} is not supported by this memchat (it reads versions \
                 {MIN_FORMAT_VERSION} to {FORMAT_VERSION}); upgrade memchat to open it"
            ),
            LineError::TooLong(len) => write!(
                f,
                "the line is {len} bytes, over the cap of {MAX_LINE_BYTES} bytes for one record"
            ),
            LineError::ImpossibleSeq(seq) => write!(
                f,
                "seq {seq} is impossible (a seq is between 1 and {MAX_SEQ})"
            ),
        }
    }
}

/// Parses one line (without its `\n`). `first` says whether it is line 1,
/// which must be a header of a version this program understands.
pub fn parse_line(bytes: &[u8], first: bool) -> Result<Record, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LineError::NotUtf8)?;
    let parsed = match (first, parse_by_leading_type(text)) {
        (false, Some(parsed)) => parsed,
        _ => serde_json::from_str(text),
    };
    let record: Record = match parsed {
        Ok(record) => record,
        Err(e) => {
            // A header of a future version may carry fields or record types we
            // do not know; report the version, which is the real problem.
            if first
                && let Some(v) = peek_version(text)
                && !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&v)
            {
                return Err(LineError::UnsupportedVersion(v));
            }
            return Err(LineError::Json(e.to_string()));
        }
    };
    match (&record, first) {
        (Record::Header(h), true) => {
            if h.format != FORMAT_NAME {
                return Err(LineError::WrongFormat(h.format.clone()));
            }
            if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&h.version) {
                return Err(LineError::UnsupportedVersion(h.version));
            }
        }
        (_, true) => return Err(LineError::NotAHeader),
        (Record::Header(_), false) => return Err(LineError::UnexpectedHeader),
        _ => {}
    }
    check_seqs(&record)?;
    Ok(record)
}

/// Parses one kind of record from a whole line.
type ParseRecord = fn(&str) -> serde_json::Result<Record>;

/// The record types whose lines memchat writes as `{"type":"<name>",…`
/// (serde writes an internally tagged enum's tag first), each with the
/// parser of its struct.
const LEADING_TYPES: [(&str, ParseRecord); 3] = [
    ("{\"type\":\"message\",", |text| {
        serde_json::from_str(text).map(Record::Message)
    }),
    ("{\"type\":\"summary\",", |text| {
        serde_json::from_str(text).map(Record::Summary)
    }),
    ("{\"type\":\"settings\",", |text| {
        serde_json::from_str(text).map(Record::Settings)
    }),
];

/// Parses a line that opens with its `type`, as every line memchat writes
/// does, straight into that record's struct (the struct ignores the `type`
/// field as it ignores any unknown one). Why: serde's internally tagged
/// enum cannot know where the tag is, so it first buffers every field of
/// every record into a generic tree and only then builds the variant; that
/// was 70% of loading an active log. `None` when the line opens otherwise
/// (written by hand, or by another program): the general path takes it.
fn parse_by_leading_type(text: &str) -> Option<serde_json::Result<Record>> {
    let (prefix, parse) = LEADING_TYPES
        .iter()
        .find(|(prefix, _)| text.starts_with(prefix))?;
    // A second `type` key (or the word in a text, quoted): the general path
    // decides, which refuses a duplicate key as it always did.
    if text[prefix.len()..].contains("\"type\"") {
        return None;
    }
    Some(parse(text))
}

/// Parses a line read by [`super::lines::Lines`]: one over the cap is
/// [`LineError::TooLong`] without its bytes ever being held.
pub fn parse_read_line(line: &super::lines::Line, first: bool) -> Result<Record, LineError> {
    match &line.bytes {
        Some(bytes) => parse_line(bytes, first),
        None => Err(LineError::TooLong(line.len)),
    }
}

/// Refuses a `seq` that no memchat could have given: 0 or over [`MAX_SEQ`].
fn check_seqs(record: &Record) -> Result<(), LineError> {
    let seqs: Vec<u64> = match record {
        Record::Header(h) => h.last_seq.into_iter().filter(|&s| s != 0).collect(),
        Record::Settings(_) => Vec::new(),
        Record::Message(m) => vec![m.seq],
        Record::Summary(s) => vec![s.seq, s.covers[0], s.covers[1]],
    };
    match seqs.into_iter().find(|&s| s == 0 || s > MAX_SEQ) {
        Some(bad) => Err(LineError::ImpossibleSeq(bad)),
        None => Ok(()),
    }
}

fn peek_version(text: &str) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != "header" {
        return None;
    }
    u32::try_from(value.get("version")?.as_u64()?).ok()
}

/// Serialises a record as one `\n`-terminated line.
pub fn to_line(record: &Record) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string
    // keys, no custom serializers.
    let mut line = serde_json::to_vec(record).unwrap_or_default();
    line.push(b'\n');
    line
}

/// A whole log: the header line, then one line per record.
pub fn log_bytes<'a>(header: &Header, records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let mut bytes = to_line(&Record::Header(header.clone()));
    for record in records {
        bytes.extend(to_line(record));
    }
    bytes
}

/// Current time as RFC 3339 UTC with second precision.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_matches_the_documented_shape() {
        let header = Record::Header(Header::new("default", "2026-11-22T10:00:00Z".into()));
        let line = to_line(&header);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "{\"type\":\"header\",\"format\":\"memchat\",\"version\":2,\"session\":\"default\",\"created_at\":\"2026-11-22T10:00:00Z\"}\n"
        );
        assert_eq!(parse_line(&line[..line.len() - 1], true).unwrap(), header);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let line =
            br#"{"type":"message","seq":3,"role":"user","content":"hi","at":"x","future":42}"#;
        match parse_line(line, false).unwrap() {
            Record::Message(m) => assert_eq!((m.seq, m.content.as_str()), (3, "hi")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lines_that_open_with_their_type_parse_as_the_general_path_does() {
        let message = Record::Message(MessageRecord {
            seq: 7,
            role: Role::Assistant,
            content: "a \"quoted\" reply\nwith lines".into(),
            at: "2026-11-22T10:00:00Z".into(),
            model: Some("gpt-4o-mini".into()),
            interrupted: true,
            truncated: false,
            tokens: Some(TokenCache {
                encoding: "o200k_base".into(),
                count: 9,
            }),
            usage: None,
            late_tokens: Some(LateTokens {
                encoding: "o200k_base".into(),
                counts: [(5, 3), (6, 4)].into_iter().collect(),
            }),
        });
        let summary = Record::Summary(SummaryRecord {
            seq: 8,
            covers: [1, 6],
            content: "what was said".into(),
            at: "x".into(),
            method: "model".into(),
            tokens: None,
        });
        let settings = Record::Settings(SettingsRecord {
            at: "x".into(),
            settings: SessionSettings {
                model: Some("m".into()),
                ..SessionSettings::default()
            },
        });
        for record in [message, summary, settings] {
            let line = to_line(&record);
            let text = std::str::from_utf8(&line[..line.len() - 1]).unwrap();
            // What memchat writes takes the direct path...
            assert!(parse_by_leading_type(text).is_some(), "{text}");
            let general: Record = serde_json::from_str(text).unwrap();
            assert_eq!(general, record);
            assert_eq!(parse_line(text.as_bytes(), false).unwrap(), record);
        }
        // ...and a line written by hand with `type` elsewhere takes the other.
        let by_hand = br#"{"seq":3,"role":"user","type":"message","content":"hi","at":"x"}"#;
        assert!(parse_by_leading_type(std::str::from_utf8(by_hand).unwrap()).is_none());
        assert!(matches!(
            parse_line(by_hand, false).unwrap(),
            Record::Message(m) if m.seq == 3
        ));
        // A duplicate `type` is refused, as the general path refuses it.
        let twice =
            br#"{"type":"message","seq":3,"role":"user","content":"hi","at":"x","type":"header"}"#;
        assert!(matches!(parse_line(twice, false), Err(LineError::Json(_))));
        // A quoted "type" inside a text still parses.
        let quoted =
            br#"{"type":"message","seq":4,"role":"user","content":"{\"type\":1}","at":"x"}"#;
        assert!(matches!(
            parse_line(quoted, false).unwrap(),
            Record::Message(m) if m.content == r#"{"type":1}"#
        ));
        // A broken line is refused on either path.
        let broken = br#"{"type":"message","seq":3,"role":"user"}"#;
        assert!(matches!(parse_line(broken, false), Err(LineError::Json(_))));
        let header_late =
            br#"{"type":"header","format":"memchat","version":2,"session":"s","created_at":"x"}"#;
        assert!(matches!(
            parse_line(header_late, false),
            Err(LineError::UnexpectedHeader)
        ));
    }

    #[test]
    fn newer_versions_are_refused_even_with_unknown_shapes() {
        let line =
            br#"{"type":"header","format":"memchat","version":3,"session":"s","created_at":"x"}"#;
        assert_eq!(
            parse_line(line, true),
            Err(LineError::UnsupportedVersion(3))
        );
        let v1 =
            br#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"x"}"#;
        assert!(parse_line(v1, true).is_ok(), "version 1 is still read");
        let odd = br#"{"type":"header","format":"memchat","version":7}"#;
        assert_eq!(parse_line(odd, true), Err(LineError::UnsupportedVersion(7)));
    }

    #[test]
    fn settings_records_round_trip_and_merge_field_by_field() {
        let line = br#"{"type":"settings","at":"x","model":"llama3","context_limit":8192}"#;
        let Record::Settings(first) = parse_line(line, false).unwrap() else {
            panic!("not settings");
        };
        assert_eq!(first.settings.model.as_deref(), Some("llama3"));
        assert_eq!(first.settings.context_limit, Some(8192));
        let written = to_line(&Record::Settings(first.clone()));
        assert_eq!(&written[..written.len() - 1], &line[..]);

        let later = br#"{"type":"settings","at":"y","model":"gpt-4o","future":1}"#;
        let Record::Settings(later) = parse_line(later, false).unwrap() else {
            panic!("not settings");
        };
        let mut merged = first.settings.clone();
        merged.merge(&later.settings);
        assert_eq!(merged.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            merged.context_limit,
            Some(8192),
            "absent fields keep theirs"
        );
        assert_eq!(merged.changes_from(&merged), SessionSettings::default());
        assert_eq!(
            merged.changes_from(&first.settings).model.as_deref(),
            Some("gpt-4o")
        );
    }

    #[test]
    fn impossible_seqs_are_refused() {
        let max = format!(
            r#"{{"type":"message","seq":{MAX_SEQ},"role":"user","content":"hi","at":"x"}}"#
        );
        assert!(parse_line(max.as_bytes(), false).is_ok());
        for seq in ["0", "9007199254740992", "18446744073709551615"] {
            let line = format!(
                r#"{{"type":"message","seq":{seq},"role":"user","content":"hi","at":"x"}}"#
            );
            assert!(
                matches!(
                    parse_line(line.as_bytes(), false),
                    Err(LineError::ImpossibleSeq(_))
                ),
                "{seq}"
            );
        }
    }

    #[test]
    fn first_line_must_be_a_header_and_only_the_first() {
        let msg = br#"{"type":"message","seq":1,"role":"user","content":"hi","at":"x"}"#;
        assert_eq!(parse_line(msg, true), Err(LineError::NotAHeader));
        let header =
            br#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"x"}"#;
        assert_eq!(parse_line(header, false), Err(LineError::UnexpectedHeader));
        assert_eq!(parse_line(b"\xff\xfe", false), Err(LineError::NotUtf8));
    }

    #[test]
    fn late_counts_are_keyed_by_seq_and_keep_a_count_written_with_the_record() {
        let line = br#"{"type":"message","seq":9,"role":"assistant","content":"hi","at":"x","late_tokens":{"encoding":"o200k_base","counts":{"3":12,"7":4}}}"#;
        let Record::Message(m) = parse_line(line, false).unwrap() else {
            panic!("not a message");
        };
        let late = m.late_tokens.clone().unwrap();
        assert_eq!(
            late.counts.into_iter().collect::<Vec<_>>(),
            [(3, 12), (7, 4)]
        );
        let written = to_line(&Record::Message(m.clone()));
        assert_eq!(&written[..written.len() - 1], &line[..], "round trips");

        let late = m.late_tokens.unwrap();
        let mut none = None;
        late.apply(3, &mut none);
        assert_eq!(
            none.map(|t| (t.encoding, t.count)),
            Some(("o200k_base".into(), 12))
        );
        let mut other_seq = None;
        late.apply(4, &mut other_seq);
        assert_eq!(other_seq, None);
        let own = TokenCache {
            encoding: "o200k_base".into(),
            count: 5,
        };
        let mut kept = Some(own.clone());
        late.apply(7, &mut kept);
        assert_eq!(kept, Some(own), "the record's own count stands");
        let mut stale = Some(TokenCache {
            encoding: "cl100k_base".into(),
            count: 5,
        });
        late.apply(7, &mut stale);
        assert_eq!(
            stale.map(|t| t.count),
            Some(4),
            "the newer encoding's count"
        );

        for bad in ["\"0\"", "\"x\"", "\"9007199254740992\""] {
            let line = format!(
                r#"{{"type":"message","seq":9,"role":"user","content":"hi","at":"x","late_tokens":{{"encoding":"e","counts":{{{bad}:1}}}}}}"#
            );
            assert!(
                matches!(parse_line(line.as_bytes(), false), Err(LineError::Json(_))),
                "{bad}"
            );
        }
    }
}
