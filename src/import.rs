//! Conversations in: what `memchat import` reads, each shape told by its
//! first bytes, and refused with the file (and line) and the shapes it takes
//! when it is none of them:
//! - a JSON array of `{"role","content"}` messages (OpenAI's shape, and
//!   memchat's JSON export);
//! - a JSON object with a `messages` array (what APIs and agent frameworks
//!   save);
//! - JSON Lines, one message a line (memchat's `.jsonl` export);
//! - a memchat log, with its archive when it lies next to it: the whole
//!   conversation, renumbered, each summary's `covers` following the
//!   messages it stands for, and the log's settings.
//!
//! Pure functions over bytes and records; the caller reads the files.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::memory::StoreError;
use crate::memory::format::{self, MessageRecord, Record, Role, SessionSettings};
use crate::memory::session::parse_log;
use crate::transfer::whole_conversation;

/// The largest file `memchat import` reads. An export of a very long
/// conversation is a few MiB; this bounds the memory an import can take.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

/// The shapes import reads, as errors name them.
pub const SHAPES: &str = "a JSON array of {\"role\",\"content\"} messages, a JSON object with a \
     \"messages\" array, JSON Lines with one message a line, or a memchat log";

/// What an import file holds, ready to become a new session.
#[derive(Debug)]
pub struct Imported {
    /// The imported session's settings (a memchat log's, else none).
    pub settings: SessionSettings,
    pub archived: Vec<Record>,
    pub active: Vec<Record>,
    /// Messages imported, archive included.
    pub messages: usize,
}

/// Whether the file is a memchat log: its first line is a memchat header.
/// (A log's archive is read with it; the caller finds it.)
pub fn is_memchat_log(bytes: &[u8]) -> bool {
    let first = bytes
        .split(|&b| b == b'\n')
        .find(|line| !line.iter().all(u8::is_ascii_whitespace));
    first
        .and_then(|line| serde_json::from_slice::<Value>(line).ok())
        .is_some_and(|v| v["type"] == "header" && v["format"] == format::FORMAT_NAME)
}

/// Reads messages in any shape but a memchat log. A message with
/// `"replaced": true` (a reply `/retry` replaced, an old system prompt, as
/// memchat's export marks them) goes to the archive, where it was.
pub fn parse_messages(bytes: &[u8], source: &Path) -> Result<Imported, String> {
    let file = source.display();
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("{file}: not UTF-8 text; memchat imports {SHAPES}"))?;
    let trimmed = text.trim_start();
    let values: Vec<(String, Value)> = if trimmed.starts_with('[') {
        let array: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| format!("{file}: not a JSON array of messages ({e})"))?;
        numbered(array, |i| format!("{file}: message {i}"))
    } else if trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) if object.contains_key("messages") => {
                let Value::Array(array) = &object["messages"] else {
                    return Err(format!("{file}: \"messages\" is not an array of messages"));
                };
                numbered(array.clone(), |i| format!("{file}: messages[{}]", i - 1))
            }
            // One line holding one message is JSON Lines too.
            Ok(Value::Object(object)) if object.contains_key("role") => {
                vec![(format!("{file}:1"), Value::Object(object))]
            }
            Ok(Value::Object(object)) => {
                let keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
                return Err(format!(
                    "{file}: a JSON object without a \"messages\" array (its keys: {}); memchat \
                     imports {SHAPES}",
                    keys.join(", ")
                ));
            }
            _ => json_lines(text, source)?,
        }
    } else {
        return Err(format!(
            "{file}: {}; memchat imports {SHAPES}",
            if trimmed.is_empty() {
                "the file is empty"
            } else {
                "not a shape memchat reads"
            }
        ));
    };
    let mut records = Vec::new();
    let mut replaced = Vec::new();
    for (at, value) in &values {
        let Value::Object(_) = value else {
            return Err(format!(
                "{at} is {value}, not a message {{\"role\": …, \"content\": …}}"
            ));
        };
        records.push(Record::Message(MessageRecord {
            seq: 0,
            role: import_role(value).map_err(|e| format!("{at} {e}"))?,
            content: import_content(value).map_err(|e| format!("{at} {e}"))?,
            at: format::now(),
            model: None,
            interrupted: false,
            truncated: false,
            tokens: None,
            usage: None,
            late_tokens: None,
        }));
        replaced.push(value.get("replaced") == Some(&Value::Bool(true)));
    }
    if records.is_empty() {
        return Err(format!("{file} holds no messages; nothing to import"));
    }
    check_sizes(&records, source)?;
    let archived: Vec<bool> = replaced;
    Ok(into_session(records, &archived, SessionSettings::default()))
}

/// Array items with the place each is named by in errors (1-based).
fn numbered(array: Vec<Value>, at: impl Fn(usize) -> String) -> Vec<(String, Value)> {
    array
        .into_iter()
        .enumerate()
        .map(|(i, v)| (at(i + 1), v))
        .collect()
}

/// JSON Lines: one message object a line; blank lines are skipped.
fn json_lines(text: &str, source: &Path) -> Result<Vec<(String, Value)>, String> {
    let file = source.display();
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{file}:{}", i + 1);
        let value: Value = serde_json::from_str(line).map_err(|e| {
            format!("{at}: not JSON ({e}); expected one message {{\"role\", \"content\"}} a line")
        })?;
        if value.get("role").is_none() {
            return Err(format!(
                "{at}: expected a message {{\"role\": …, \"content\": …}} on each line; memchat \
                 imports {SHAPES}"
            ));
        }
        values.push((at, value));
    }
    Ok(values)
}

/// Reads a memchat log and the records of its archive (empty when it has
/// none): the whole conversation, renumbered from 1. What was in the
/// archive stays there; each summary's `covers` names the renumbered
/// messages it stands for; the log's settings come along.
pub fn from_log(bytes: &[u8], source: &Path, archived: Vec<Record>) -> Result<Imported, String> {
    let contents = parse_log(bytes, source, "import").map_err(|e| import_error(&e))?;
    let mut active_seqs: BTreeSet<u64> = BTreeSet::new();
    active_seqs.extend(contents.system.iter().map(|m| m.seq));
    active_seqs.extend(contents.summary.iter().map(|s| s.seq));
    active_seqs.extend(contents.messages.iter().map(|m| m.seq));
    let records = whole_conversation(archived, &contents);
    let old_seqs: Vec<u64> = records.iter().filter_map(Record::seq).collect();
    let was_archived: Vec<bool> = old_seqs.iter().map(|s| !active_seqs.contains(s)).collect();
    let mut records = records;
    for record in &mut records {
        if let Record::Summary(summary) = record {
            summary.covers = renumbered_span(&old_seqs, summary.covers);
        }
    }
    if !records.iter().any(|r| matches!(r, Record::Message(_))) {
        return Err(format!(
            "{} holds no messages; nothing to import",
            source.display()
        ));
    }
    check_sizes(&records, source)?;
    Ok(into_session(records, &was_archived, contents.settings))
}

/// A span of old `seq`s as new ones (`old_seqs` sorted; record `i` becomes
/// `i + 1`): from the first record at or after its start to the last at or
/// before its end.
fn renumbered_span(old_seqs: &[u64], [first, last]: [u64; 2]) -> [u64; 2] {
    let start = old_seqs.partition_point(|&s| s < first);
    let end = old_seqs.partition_point(|&s| s <= last);
    let new = |i: usize| i as u64 + 1;
    if start < end {
        [new(start), new(end - 1)]
    } else {
        // It covers nothing that is left: an empty span where it was.
        let at = new(start.min(old_seqs.len().saturating_sub(1)));
        [at, at]
    }
}

/// A store error about a file being imported, without the store's advice
/// (`memchat repair NAME` is for sessions; this file is not one yet).
pub fn import_error(error: &StoreError) -> String {
    match error {
        StoreError::Corrupt {
            path, line, reason, ..
        } => format!(
            "{}:{line}: {reason}; memchat imports {SHAPES}",
            path.display()
        ),
        other => other.to_string(),
    }
}

/// Refuses a message over the store's cap for one message's text.
fn check_sizes(records: &[Record], source: &Path) -> Result<(), String> {
    let cap = format::MAX_CONTENT_BYTES;
    for (i, record) in records.iter().enumerate() {
        let content = match record {
            Record::Message(m) => &m.content,
            Record::Summary(s) => &s.content,
            Record::Header(_) | Record::Settings(_) => continue,
        };
        if content.len() > cap {
            return Err(format!(
                "{}: message {} is {} bytes, over the {cap} bytes one message may hold",
                source.display(),
                i + 1,
                content.len()
            ));
        }
    }
    Ok(())
}

/// A message's role; `developer` is OpenAI's newer name for `system`.
fn import_role(value: &Value) -> Result<Role, String> {
    match value.get("role").and_then(|r| r.as_str()) {
        Some("system" | "developer") => Ok(Role::System),
        Some("user") => Ok(Role::User),
        Some("assistant") => Ok(Role::Assistant),
        other => Err(format!(
            "has role {:?}; memchat imports system, user and assistant messages",
            other.unwrap_or("(none)")
        )),
    }
}

/// A message's text: a string, or the text parts of the array-of-parts form.
fn import_content(value: &Value) -> Result<String, String> {
    match value.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(Value::Null) | None => Ok(String::new()),
        Some(other) => Err(format!("has content {other}, not text")),
    }
}

/// Arranges imported records as a new session: renumbered from 1 in order,
/// cached token counts dropped; `archived[i]` sends record `i` to the
/// archive; of the rest, the last system prompt and the newest summary stay
/// active and older ones are archived too.
fn into_session(records: Vec<Record>, archived: &[bool], settings: SessionSettings) -> Imported {
    let mut to_archive = Vec::new();
    let mut active = Vec::new();
    let last_system = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !archived.get(*i).copied().unwrap_or(false))
        .filter(|(_, r)| matches!(r, Record::Message(m) if m.role == Role::System))
        .map(|(i, _)| i)
        .next_back();
    let mut messages = 0;
    for (i, mut record) in records.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let mut archive = archived.get(i).copied().unwrap_or(false);
        match &mut record {
            Record::Message(m) => {
                m.seq = seq;
                m.tokens = None;
                m.late_tokens = None;
                messages += 1;
                archive |= m.role == Role::System && Some(i) != last_system;
            }
            Record::Summary(s) => {
                s.seq = seq;
                s.tokens = None;
            }
            Record::Header(_) | Record::Settings(_) => continue,
        }
        if archive {
            to_archive.push(record);
        } else {
            active.push(record);
        }
    }
    archive_older_summaries(&mut active, &mut to_archive);
    to_archive.sort_by_key(Record::seq);
    Imported {
        settings,
        archived: to_archive,
        active,
        messages,
    }
}

/// An active log holds at most one summary: keep the newest, archive the rest.
fn archive_older_summaries(active: &mut Vec<Record>, archived: &mut Vec<Record>) {
    let is_summary = |r: &Record| matches!(r, Record::Summary(_));
    let Some(newest) = active.iter().rposition(is_summary) else {
        return;
    };
    let mut i = 0;
    active.retain(|r| {
        let keep = !is_summary(r) || i == newest;
        if !keep {
            archived.push(r.clone());
        }
        i += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::to_openai_json;

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().filter_map(Record::seq).collect()
    }

    #[test]
    fn an_openai_array_imports_and_exports_unchanged() {
        let array = r#"[
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "My name is Ana."},
  {"role": "assistant", "content": "Nice to meet you, Ana."},
  {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}
]"#;
        let imported = parse_messages(array.as_bytes(), Path::new("agent_memory.json")).unwrap();
        assert_eq!(imported.messages, 4);
        let exported = to_openai_json(&imported.active);
        let again = parse_messages(exported.as_bytes(), Path::new("x.json")).unwrap();
        assert_eq!(to_openai_json(&again.active), exported);
        assert!(exported.contains("\"What is my name?\""));
    }

    #[test]
    fn every_message_shape_reads_the_same() {
        let shapes = [
            r#"[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]"#,
            r#"{"model":"x","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}"#,
            "{\"role\":\"user\",\"content\":\"hi\"}\n\n{\"role\":\"assistant\",\"content\":\"hello\"}\n",
        ];
        for shape in shapes {
            let imported = parse_messages(shape.as_bytes(), Path::new("f")).unwrap();
            assert_eq!(imported.messages, 2, "{shape}");
            assert_eq!(seqs(&imported.active), [1, 2], "{shape}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_refused_with_where_and_what_was_expected() {
        for (bytes, needle) in [
            (
                &b""[..],
                "f: the file is empty; memchat imports a JSON array",
            ),
            (b"[]", "f holds no messages"),
            (br#"{"messages":[]}"#, "f holds no messages"),
            (br#"{"messages":"x"}"#, "\"messages\" is not an array"),
            (
                br#"{"chat":[1]}"#,
                "without a \"messages\" array (its keys: chat)",
            ),
            (b"hello", "f: not a shape memchat reads"),
            (
                b"{\"role\":\"user\",\"content\":\"a\"}\n{\"x\":1}\n",
                "f:2: expected a message",
            ),
            (
                b"{\"role\":\"user\",\"content\":\"a\"}\nnope\n",
                "f:2: not JSON",
            ),
            (
                br#"[{"role":"tool","content":"x"}]"#,
                "message 1 has role \"tool\"",
            ),
            (
                br#"[{"role":"user","content":"a"},{"role":"user","content":7}]"#,
                "f: message 2 has content 7, not text",
            ),
            (br#"[1]"#, "f: message 1 is 1, not a message"),
        ] {
            let err = parse_messages(bytes, Path::new("f")).unwrap_err();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn older_system_prompts_and_replaced_replies_go_to_the_archive() {
        let array = br#"[
  {"role": "developer", "content": "Be brief."},
  {"role": "user", "content": "hi"},
  {"role": "assistant", "content": "first try", "replaced": true},
  {"role": "system", "content": "Be kind."},
  {"role": "assistant", "content": null}
]"#;
        let imported = parse_messages(array, Path::new("a.json")).unwrap();
        assert_eq!(imported.messages, 5);
        assert_eq!(seqs(&imported.archived), [1, 3]);
        assert_eq!(seqs(&imported.active), [2, 4, 5]);
    }

    #[test]
    fn a_log_with_its_archive_imports_whole_and_covers_follow_the_renumbering() {
        let log = concat!(
            r#"{"type":"header","format":"memchat","version":2,"session":"s","created_at":"t","last_seq":31}"#,
            "\n",
            r#"{"type":"settings","at":"t","model":"llama3","context_limit":8192}"#,
            "\n",
            r#"{"type":"summary","seq":30,"content":"new","covers":[10,25],"at":"t"}"#,
            "\n",
            r#"{"type":"message","seq":31,"role":"user","content":"now","at":"t"}"#,
            "\n",
        );
        let message = |seq: u64, role: Role| {
            Record::Message(MessageRecord {
                seq,
                role,
                content: format!("m{seq}"),
                at: "t".into(),
                model: None,
                interrupted: false,
                truncated: false,
                tokens: None,
                usage: None,
                late_tokens: None,
            })
        };
        let archived = vec![
            message(10, Role::User),
            message(11, Role::Assistant),
            message(24, Role::User),
            message(25, Role::Assistant),
        ];
        let imported = from_log(log.as_bytes(), Path::new("s.jsonl"), archived).unwrap();
        assert_eq!(imported.messages, 5);
        assert_eq!(seqs(&imported.archived), [1, 2, 3, 4]);
        assert_eq!(seqs(&imported.active), [5, 6]);
        let Record::Summary(summary) = &imported.active[0] else {
            panic!("no summary");
        };
        assert_eq!(summary.covers, [1, 4], "covers the same four messages");
        assert_eq!(imported.settings.model.as_deref(), Some("llama3"));
        assert_eq!(imported.settings.context_limit, Some(8192));
    }

    #[test]
    fn a_log_with_two_summaries_keeps_the_newest_active() {
        let log = concat!(
            r#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"t"}"#,
            "\n",
            r#"{"type":"message","seq":3,"role":"user","content":"a","at":"t"}"#,
            "\n",
            r#"{"type":"summary","seq":5,"content":"old","covers":[1,2],"at":"t"}"#,
            "\n",
            r#"{"type":"summary","seq":8,"content":"new","covers":[1,7],"at":"t"}"#,
            "\n",
            r#"{"type":"message","seq":9,"role":"assistant","content":"b","at":"t"}"#,
            "\n",
        );
        let imported = from_log(log.as_bytes(), Path::new("s.jsonl"), Vec::new()).unwrap();
        let summaries: Vec<&str> = imported
            .active
            .iter()
            .filter_map(|r| match r {
                Record::Summary(s) => Some(s.content.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(summaries, ["new"]);
        assert_eq!(imported.messages, 2);
        let mut all = seqs(&imported.archived);
        all.extend(seqs(&imported.active));
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3, 4]);
    }

    #[test]
    fn a_damaged_log_names_its_line_and_no_repair() {
        let log = concat!(
            r#"{"type":"header","format":"memchat","version":2,"session":"s","created_at":"t"}"#,
            "\n",
            "garbage\n",
            r#"{"type":"message","seq":9,"role":"assistant","content":"b","at":"t"}"#,
            "\n",
        );
        let err = from_log(log.as_bytes(), Path::new("s.jsonl"), Vec::new()).unwrap_err();
        assert!(err.starts_with("s.jsonl:2: "), "{err}");
        assert!(!err.contains("repair"), "{err}");
        assert!(is_memchat_log(log.as_bytes()));
        assert!(!is_memchat_log(br#"{"role":"user","content":"x"}"#));
    }
}
