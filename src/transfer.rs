//! Conversations in and out: the whole conversation of a session (archive +
//! active log, in `seq` order, duplicates dropped), rendered as the plain
//! OpenAI message array, as Markdown, or as a readable transcript; and the
//! parsing of an OpenAI array (e.g. a tutorial's `agent_memory.json`) or a
//! memchat log for import. Pure functions over records; no file I/O.

use std::path::Path;

use serde::Deserialize;

use crate::memory::StoreError;
use crate::memory::format::{self, MessageRecord, Record, Role, SessionSettings};
use crate::memory::session::{LogContents, parse_log};

/// The largest file `memchat import` reads. An export of a very long
/// conversation is a few MiB; this bounds the memory an import can take.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The OpenAI message array: `[{"role": ..., "content": ...}]`.
    Json,
    /// Markdown, one section per message.
    Markdown,
}

impl ExportFormat {
    /// The format a file name implies (`.md` → Markdown, else JSON).
    pub fn for_path(path: &Path) -> ExportFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("md" | "markdown") => ExportFormat::Markdown,
            _ => ExportFormat::Json,
        }
    }
}

/// The records of a conversation in `seq` order, once each.
pub fn whole_conversation(archived: Vec<Record>, active: &LogContents) -> Vec<Record> {
    let mut all = archived;
    all.extend(active.system.iter().cloned().map(Record::Message));
    all.extend(active.summary.iter().cloned().map(Record::Summary));
    all.extend(active.messages.iter().cloned().map(Record::Message));
    all.extend(active.stale.iter().cloned());
    all.sort_by_key(Record::seq);
    all.dedup_by_key(|r| r.seq());
    all
}

/// The records of the active log only, in `seq` order.
pub fn active_records(active: &LogContents) -> Vec<Record> {
    whole_conversation(Vec::new(), active)
}

#[derive(serde::Serialize, Deserialize)]
struct PlainMessage {
    role: String,
    content: String,
}

/// The OpenAI message array: every message (summaries are memchat's own
/// bookkeeping and are left out).
pub fn to_openai_json(records: &[Record]) -> String {
    let messages: Vec<PlainMessage> = records
        .iter()
        .filter_map(|r| match r {
            Record::Message(m) => Some(PlainMessage {
                role: m.role.as_str().into(),
                content: m.content.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&messages).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// Markdown: one section per message.
pub fn to_markdown(name: &str, records: &[Record]) -> String {
    let mut out = format!("# memchat session `{name}`\n");
    for record in records {
        match record {
            Record::Message(m) => {
                let who = match m.role {
                    Role::System => "System".to_string(),
                    Role::User => "User".to_string(),
                    Role::Assistant => match &m.model {
                        Some(model) => format!("Assistant ({model})"),
                        None => "Assistant".to_string(),
                    },
                };
                let mark = if m.interrupted {
                    " *(interrupted)*"
                } else if m.truncated {
                    " *(truncated)*"
                } else {
                    ""
                };
                out.push_str(&format!("\n## {who}{mark}\n\n{}\n", m.content.trim_end()));
            }
            Record::Summary(s) => {
                out.push_str(&format!(
                    "\n> **Summary of messages {}–{}** ({})\n>\n{}\n",
                    s.covers[0],
                    s.covers[1],
                    s.method,
                    s.content
                        .lines()
                        .map(|l| format!("> {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
            Record::Header(_) | Record::Settings(_) => {}
        }
    }
    out
}

/// A readable transcript for the terminal.
pub fn to_transcript(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        match record {
            Record::Message(m) => {
                let model = m
                    .model
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                let mark = if m.interrupted {
                    " [interrupted]"
                } else if m.truncated {
                    " [truncated]"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "── {}{model}{mark} · #{} · {}\n{}\n",
                    m.role.as_str(),
                    m.seq,
                    m.at,
                    m.content.trim_end()
                ));
            }
            Record::Summary(s) => out.push_str(&format!(
                "── summary of #{}–#{} ({}) · #{} · {}\n{}\n",
                s.covers[0],
                s.covers[1],
                s.method,
                s.seq,
                s.at,
                s.content.trim_end()
            )),
            Record::Header(_) | Record::Settings(_) => {}
        }
    }
    if out.is_empty() {
        out.push_str("(no messages)\n");
    }
    out
}

/// Records as a JSON array (for tools).
pub fn to_records_json(records: &[Record]) -> String {
    let mut text = serde_json::to_string_pretty(records).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// What an import file holds, ready to become a new session.
#[derive(Debug)]
pub struct Imported {
    /// The imported session's settings (a memchat log's, else none).
    pub settings: SessionSettings,
    pub archived: Vec<Record>,
    pub active: Vec<Record>,
    pub messages: usize,
}

/// Parses an import file: a JSON array of `{"role","content"}` or a memchat
/// log. Records are renumbered from 1; older system prompts go to the archive.
pub fn parse_import(bytes: &[u8], source: &std::path::Path) -> Result<Imported, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", source.display()))?;
    let records = if text.trim_start().starts_with('[') {
        parse_openai_array(text, source)?
    } else {
        let contents = parse_log(bytes, source, "import").map_err(|e: StoreError| e.to_string())?;
        whole_conversation(Vec::new(), &contents)
    };
    check_sizes(&records, source)?;
    Ok(into_session(records))
}

/// Refuses a message over the store's cap for one message's text.
fn check_sizes(records: &[Record], source: &std::path::Path) -> Result<(), String> {
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

/// The messages of an OpenAI message array, in order.
fn parse_openai_array(text: &str, source: &std::path::Path) -> Result<Vec<Record>, String> {
    let plain: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("{}: not a JSON array of messages: {e}", source.display()))?;
    plain
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let at = |problem: String| format!("{}: message {} {problem}", source.display(), i + 1);
            Ok(Record::Message(MessageRecord {
                seq: 0,
                role: import_role(value).map_err(at)?,
                content: import_content(value).map_err(at)?,
                at: format::now(),
                model: None,
                interrupted: false,
                truncated: false,
                tokens: None,
                usage: None,
                late_tokens: None,
            }))
        })
        .collect()
}

/// A message's role; `developer` is OpenAI's newer name for `system`.
fn import_role(value: &serde_json::Value) -> Result<Role, String> {
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
fn import_content(value: &serde_json::Value) -> Result<String, String> {
    match value.get("content") {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(serde_json::Value::Null) | None => Ok(String::new()),
        Some(other) => Err(format!("has content {other}, not text")),
    }
}

/// Arranges imported records as a new session: renumbered from 1, cached
/// token counts dropped, the last system prompt and the newest summary kept
/// active, older ones archived.
fn into_session(records: Vec<Record>) -> Imported {
    let mut archived = Vec::new();
    let mut active = Vec::new();
    let last_system = records
        .iter()
        .rposition(|r| matches!(r, Record::Message(m) if m.role == Role::System));
    let mut messages = 0;
    for (i, mut record) in records.into_iter().enumerate() {
        let seq = i as u64 + 1;
        match &mut record {
            Record::Message(m) => {
                m.seq = seq;
                m.tokens = None;
                messages += 1;
                if m.role == Role::System && Some(i) != last_system {
                    archived.push(record);
                    continue;
                }
            }
            Record::Summary(s) => s.seq = seq,
            Record::Header(_) | Record::Settings(_) => continue,
        }
        active.push(record);
    }
    archive_older_summaries(&mut active, &mut archived);
    Imported {
        settings: SessionSettings::default(),
        archived,
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
    use std::path::Path;

    #[test]
    fn an_openai_array_imports_and_exports_unchanged() {
        let array = r#"[
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "My name is Ana."},
  {"role": "assistant", "content": "Nice to meet you, Ana."},
  {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}
]"#;
        let imported = parse_import(array.as_bytes(), Path::new("agent_memory.json")).unwrap();
        assert_eq!(imported.messages, 4);
        let exported = to_openai_json(&imported.active);
        let again = parse_import(exported.as_bytes(), Path::new("x.json")).unwrap();
        assert_eq!(to_openai_json(&again.active), exported);
        assert!(exported.contains("\"What is my name?\""));
    }

    #[test]
    fn unknown_roles_are_refused_with_their_position() {
        let err =
            parse_import(br#"[{"role":"tool","content":"x"}]"#, Path::new("m.json")).unwrap_err();
        assert!(err.contains("message 1 has role \"tool\""), "{err}");
        let err = parse_import(
            br#"[{"role":"user","content":"a"},{"role":"user","content":7}]"#,
            Path::new("m.json"),
        )
        .unwrap_err();
        assert_eq!(err, "m.json: message 2 has content 7, not text");
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().filter_map(Record::seq).collect()
    }

    #[test]
    fn older_system_prompts_go_to_the_archive() {
        let array = br#"[
  {"role": "developer", "content": "Be brief."},
  {"role": "user", "content": "hi"},
  {"role": "system", "content": "Be kind."},
  {"role": "assistant", "content": null}
]"#;
        let imported = parse_import(array, Path::new("a.json")).unwrap();
        assert_eq!(imported.messages, 4);
        assert_eq!(seqs(&imported.archived), [1]);
        assert_eq!(seqs(&imported.active), [2, 3, 4]);
        let Record::Message(last) = &imported.active[2] else {
            panic!("not a message");
        };
        assert_eq!(last.content, "");
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
        let imported = parse_import(log.as_bytes(), Path::new("s.jsonl")).unwrap();
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
        assert!(
            imported
                .archived
                .iter()
                .any(|r| matches!(r, Record::Summary(s) if s.content == "old"))
        );
        // Renumbered from 1 across both, with no gap or repeat.
        let mut all = seqs(&imported.archived);
        all.extend(seqs(&imported.active));
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3, 4]);
    }
}
