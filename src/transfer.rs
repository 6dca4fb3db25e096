//! Conversations out: the whole conversation of a session (archive + active
//! log, in `seq` order, duplicates dropped), rendered as the plain OpenAI
//! message array, JSON Lines, Markdown, or a readable transcript, with the
//! records a later one replaced marked. Pure functions over records; no file
//! I/O. (`import.rs` reads conversations in.)

use std::path::Path;

use crate::memory::format::{MessageRecord, Record, Role};
use crate::memory::session::LogContents;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The OpenAI message array: `[{"role": ..., "content": ...}]`.
    Json,
    /// JSON Lines: one `{"role": ..., "content": ...}` per line.
    JsonLines,
    /// Markdown, one section per message.
    Markdown,
}

/// The file extensions an export understands, as said in errors and help.
pub const EXPORT_EXTENSIONS: &str = ".md or .markdown (Markdown), .json (a JSON array of messages), \
     .jsonl (JSON Lines, one message a line)";

impl ExportFormat {
    /// The format a file name asks for by its extension; `None` for any
    /// other extension (or none), which the caller refuses rather than
    /// guess: a `.txt` silently written as JSON is a surprise.
    pub fn for_path(path: &Path) -> Option<ExportFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "md" | "markdown" => Some(ExportFormat::Markdown),
            "json" => Some(ExportFormat::Json),
            "jsonl" => Some(ExportFormat::JsonLines),
            _ => None,
        }
    }

    /// [`ExportFormat::for_path`], or the error that names the accepted
    /// extensions (`how` says how else to choose, if there is a way).
    pub fn for_path_or_refuse(path: &Path, how: &str) -> Result<ExportFormat, String> {
        ExportFormat::for_path(path).ok_or_else(|| {
            format!(
                "cannot tell which format to write {} in: name it with {EXPORT_EXTENSIONS}{how}",
                path.display()
            )
        })
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

/// One message as an export writes it.
#[derive(serde::Serialize)]
struct PlainMessage {
    role: String,
    content: String,
    /// A later record took its place (see [`replaced`]); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replaced: bool,
}

/// Why a record of the whole conversation no longer counts, if it does not:
/// a reply followed by another reply to the same message was replaced (by
/// `/retry`), and a system prompt followed by a later one was replaced (by
/// `/system` or `--system`). Both stay in the archive; exports mark them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Reply,
    SystemPrompt,
}

impl Replaced {
    /// The visible marker in a transcript and in Markdown.
    pub fn label(self) -> &'static str {
        match self {
            Replaced::Reply => "replaced by a later reply",
            Replaced::SystemPrompt => "replaced by a later system prompt",
        }
    }
}

/// For each record (in `seq` order), whether a later one replaced it.
pub fn replaced(records: &[Record]) -> Vec<Option<Replaced>> {
    let messages: Vec<(usize, &MessageRecord)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Record::Message(m) => Some((i, m)),
            _ => None,
        })
        .collect();
    let mut out = vec![None; records.len()];
    for (k, &(i, m)) in messages.iter().enumerate() {
        out[i] = match m.role {
            // The next message is another reply: this one was retried.
            Role::Assistant => messages
                .get(k + 1)
                .filter(|(_, next)| next.role == Role::Assistant)
                .map(|_| Replaced::Reply),
            Role::System => messages[k + 1..]
                .iter()
                .any(|(_, later)| later.role == Role::System)
                .then_some(Replaced::SystemPrompt),
            Role::User => None,
        };
    }
    out
}

fn plain_messages(records: &[Record]) -> Vec<PlainMessage> {
    records
        .iter()
        .zip(replaced(records))
        .filter_map(|(r, replaced)| match r {
            Record::Message(m) => Some(PlainMessage {
                role: m.role.as_str().into(),
                content: m.content.clone(),
                replaced: replaced.is_some(),
            }),
            _ => None,
        })
        .collect()
}

/// The OpenAI message array: every message (summaries are memchat's own
/// bookkeeping and are left out); a replaced one has `"replaced": true`.
pub fn to_openai_json(records: &[Record]) -> String {
    let mut text =
        serde_json::to_string_pretty(&plain_messages(records)).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// JSON Lines: the messages of [`to_openai_json`], one a line.
pub fn to_json_lines(records: &[Record]) -> String {
    plain_messages(records)
        .iter()
        .filter_map(|m| serde_json::to_string(m).ok())
        .map(|line| line + "\n")
        .collect()
}

/// Markdown: one section per message.
pub fn to_markdown(name: &str, records: &[Record]) -> String {
    let mut out = format!("# memchat session `{name}`\n");
    for (record, replaced) in records.iter().zip(replaced(records)) {
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
                let mut mark = if m.interrupted {
                    " *(interrupted)*".to_string()
                } else if m.truncated {
                    " *(truncated)*".to_string()
                } else {
                    String::new()
                };
                if let Some(replaced) = replaced {
                    mark.push_str(&format!(" *({})*", replaced.label()));
                }
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
    for (record, replaced) in records.iter().zip(replaced(records)) {
        match record {
            Record::Message(m) => {
                let model = m
                    .model
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                let mut mark = if m.interrupted {
                    " [interrupted]".to_string()
                } else if m.truncated {
                    " [truncated]".to_string()
                } else {
                    String::new()
                };
                if let Some(replaced) = replaced {
                    mark.push_str(&format!(" [{}]", replaced.label()));
                }
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
