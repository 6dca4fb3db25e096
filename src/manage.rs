//! Managing sessions outside a chat: list, show, export, import, delete,
//! rename, repair, through the store boundary ([`crate::store::Store`]), so
//! each works on either store. Reading commands take no lock, so they work
//! while another process chats; writing ones lock the session like a chat
//! does. Output goes to any `Write` so tests can read it.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::budget::Budget;
use crate::config::{ManageCommand, Management, StoreUrl, UsageError};
use crate::memory::format::Record;
use crate::memory::session::LogContents;
use crate::memory::{self, StoreError};
use crate::render::Output;
use crate::session_settings::Sizing;
use crate::store::{FileStore, Store};
use crate::summary_text;
use crate::tokens::{REPLY_PRIMING, TokenCounter};
use crate::usage::{Prices, UsageTotals};
use crate::{import, search, transfer};
use std::sync::Arc;

/// One row of `memchat sessions`.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub name: String,
    /// The session's own budget (its recorded model and window).
    pub budget: Budget,
    pub messages: usize,
    pub tokens: u64,
    pub archived: usize,
    pub last_used: SystemTime,
    /// Its title: the one set, else its first user message shortened.
    pub title: String,
    /// What the server reported over the whole conversation.
    pub usage: UsageTotals,
}

/// What the model would be sent for this log, in tokens (exact).
pub fn history_tokens(contents: &LogContents, counter: &TokenCounter) -> u64 {
    let system = summary_text::compose_system(
        contents.system.as_ref().map(|m| m.content.as_str()),
        contents.summary.as_ref().map(|s| s.content.as_str()),
    );
    let mut total = u64::from(REPLY_PRIMING);
    total += system.map_or(0, |s| u64::from(counter.message_tokens(&s)));
    for message in &contents.messages {
        let raw = counter
            .cached(message.tokens.as_ref())
            .unwrap_or_else(|| counter.count_raw(&message.content));
        total += u64::from(counter.message_cost(raw));
    }
    total
}

/// Facts about every session in the store, most recently used first, each
/// sized by its own recorded model and window (`sizing` for one without).
/// Each session's usage is priced by `prices`.
pub fn session_infos(
    store: &dyn Store,
    sizing: &Sizing,
    prices: &Prices,
) -> anyhow::Result<Vec<SessionInfo>> {
    let mut infos = Vec::new();
    let mut counters: HashMap<String, TokenCounter> = HashMap::new();
    for name in store.list_sessions()? {
        let read = store.read_session(&name, true)?;
        let (contents, archived) = (read.active, read.archived);
        let (model, budget) = sizing.for_session(&contents.settings)?;
        let counter = counters
            .entry(model.clone())
            .or_insert_with(|| TokenCounter::for_model(&model));
        let last_used = read.last_used.unwrap_or(SystemTime::UNIX_EPOCH);
        let whole = transfer::whole_conversation(archived.clone(), &contents);
        infos.push(SessionInfo {
            title: crate::titles::title_of(&contents.settings, &whole),
            usage: UsageTotals::of(&whole, prices),
            budget,
            messages: contents.messages.len(),
            tokens: history_tokens(&contents, counter),
            archived: archived
                .iter()
                .filter(|r| matches!(r, Record::Message(_)))
                .count(),
            last_used,
            name,
        });
    }
    infos.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.name.cmp(&b.name)));
    Ok(infos)
}

/// `memchat sessions`: a table, newest first, each session's title last.
/// With `usage` (`--usage`), each session's use as the server reported it,
/// and its cost by these prices.
pub fn list(
    store: &dyn Store,
    sizing: &Sizing,
    usage: Option<&Prices>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let no_prices = Prices::new();
    let infos = session_infos(store, sizing, usage.unwrap_or(&no_prices))?;
    if infos.is_empty() {
        writeln!(out, "no sessions yet in {}", store.location())?;
        return Ok(());
    }
    let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4).max(7);
    let usage_head = if usage.is_some() {
        format!(
            "  {:>10}  {:>10}  {:>5}  {:>9}  {:>8}",
            "PROMPT", "COMPLETION", "TURNS", "COMPACTED", "COST"
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "{:<width$}  {:>8}  {:>22}  {:>8}{usage_head}  {:<20}  TITLE",
        "SESSION", "MESSAGES", "TOKENS / BUDGET", "ARCHIVED", "LAST USED"
    )?;
    for info in infos {
        let cap = info.budget.cap;
        let pct = info.tokens * 100 / u64::from(cap.max(1));
        let tokens = format!("{} / {cap} {pct:>3}%", info.tokens);
        let when = last_used_shown(info.last_used);
        let usage_cells = if usage.is_some() {
            let u = &info.usage;
            format!(
                "  {:>10}  {:>10}  {:>5}  {:>9}  {:>8}",
                u.prompt_tokens,
                u.completion_tokens,
                u.turns,
                u.compactions,
                u.cost_cell()
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<width$}  {:>8}  {tokens:>22}  {:>8}{usage_cells}  {when:<20}  {}",
            info.name, info.messages, info.archived, info.title
        )?;
    }
    if usage.is_some() {
        writeln!(
            out,
            "(tokens and turns as the server reported them, archive included; COST only for \
             models priced in the config file, + when some replies were not priced)"
        )?;
    }
    Ok(())
}

fn records_of(store: &dyn Store, name: &str, all: bool) -> anyhow::Result<Vec<Record>> {
    let read = store.read_session(name, all)?;
    Ok(if all {
        transfer::whole_conversation(read.archived, &read.active)
    } else {
        transfer::active_records(&read.active)
    })
}

/// `memchat show NAME`: the transcript (the active log, or everything;
/// with `around`, the messages around one, archive included).
pub fn show(
    store: &dyn Store,
    name: &str,
    all: bool,
    json: bool,
    around: Option<(u64, usize)>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut records = records_of(store, name, all || around.is_some())?;
    if let Some((seq, context)) = around {
        records = messages_around(records, name, seq, context)?;
    }
    let mut text = if json {
        transfer::to_records_json(&records)
    } else {
        transfer::to_transcript(&records)
    };
    if let Some((seq, _)) = around
        && !json
    {
        text = mark_message(&text, seq);
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The messages of a whole conversation within `context` of message `seq`.
fn messages_around(
    records: Vec<Record>,
    name: &str,
    seq: u64,
    context: usize,
) -> anyhow::Result<Vec<Record>> {
    let messages: Vec<Record> = records
        .into_iter()
        .filter(|r| matches!(r, Record::Message(_)))
        .collect();
    let Some(at) = messages.iter().position(|r| r.seq() == Some(seq)) else {
        let range = match (messages.first(), messages.last()) {
            (Some(first), Some(last)) => format!(
                "its messages are #{} to #{}",
                first.seq().unwrap_or(0),
                last.seq().unwrap_or(0)
            ),
            _ => "it holds no messages".to_string(),
        };
        return Err(UsageError(format!(
            "session {name:?} has no message #{seq} ({range}); `memchat search` gives message \
             numbers"
        ))
        .into());
    };
    let start = at.saturating_sub(context);
    let end = (at + context + 1).min(messages.len());
    Ok(messages[start..end].to_vec())
}

/// Marks the heading line of message `seq` in a transcript, so the message
/// asked for stands out among its neighbours.
fn mark_message(transcript: &str, seq: u64) -> String {
    let needle = format!(" · #{seq} · ");
    let mut marked = false;
    transcript
        .split_inclusive('\n')
        .map(|line| {
            if !marked && line.starts_with("── ") && line.contains(&needle) {
                marked = true;
                line.replacen("── ", "──▶ ", 1)
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Export formats live with the formats themselves, in `transfer.rs`.
pub use crate::transfer::ExportFormat;

/// The whole conversation rendered for export.
pub fn export_text(store: &dyn Store, name: &str, format: ExportFormat) -> anyhow::Result<String> {
    let records = records_of(store, name, true)?;
    Ok(match format {
        ExportFormat::Json => transfer::to_openai_json(&records),
        ExportFormat::JsonLines => transfer::to_json_lines(&records),
        ExportFormat::Markdown => transfer::to_markdown(name, &records),
    })
}

/// Writes an export to `path` (0600: it is the user's conversation).
pub fn write_export(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `memchat import FILE --as NAME`.
pub fn import(
    store: &dyn Store,
    file: &Path,
    name: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if file.to_string_lossy().contains("://") {
        // Not echoed: a store URL may carry a password the mask of free
        // text cannot bound (a raw space in it).
        return Err(UsageError(
            "`import` reads a file (an export, or a memchat log); to copy the sessions of a \
             store, use `memchat migrate --from URL --to …`"
                .into(),
        )
        .into());
    }
    let bytes = read_capped(file, import::MAX_IMPORT_BYTES)?;
    let mut from_archive = None;
    let imported = if import::is_memchat_log(&bytes) {
        let archive = log_archive(file)?;
        let archived = match &archive {
            Some(path) => read_import_archive(path)?,
            None => Vec::new(),
        };
        let count = archived
            .iter()
            .filter(|r| matches!(r, Record::Message(_)))
            .count();
        from_archive = archive.map(|path| (path, count));
        import::from_log(&bytes, file, archived)
    } else {
        import::parse_messages(&bytes, file)
    }
    .map_err(UsageError)?;
    store.create_session(
        name,
        &imported.settings,
        &imported.archived,
        &imported.active,
    )?;
    let with_archive = from_archive
        .map(|(path, n)| format!(" ({n} of them from its archive {})", path.display()))
        .unwrap_or_default();
    writeln!(
        out,
        "imported {} from {}{with_archive} into session {name:?}",
        crate::render::counted(imported.messages as u64, "message"),
        file.display()
    )?;
    Ok(())
}

/// The archive that belongs with a memchat log being imported: `X.jsonl`'s
/// is `X.archive.jsonl` beside it, if there is one. An archive named for
/// import is refused: its log holds the rest of the conversation.
fn log_archive(file: &Path) -> Result<Option<PathBuf>, UsageError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(session) = name.strip_suffix(".archive.jsonl") {
        return Err(UsageError(format!(
            "{} is the archive of session {session:?}; import {} instead (its archive comes \
             with it)",
            file.display(),
            file.with_file_name(format!("{session}.jsonl")).display()
        )));
    }
    let Some(stem) = name.strip_suffix(".jsonl") else {
        return Ok(None);
    };
    let archive = file.with_file_name(format!("{stem}.archive.jsonl"));
    Ok(archive.exists().then_some(archive))
}

/// The records of an archive being imported, within the import size cap;
/// damage is reported with file:line (and no advice to repair a session
/// that is not one).
fn read_import_archive(path: &Path) -> Result<Vec<Record>, UsageError> {
    let len = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?
        .len();
    if len > import::MAX_IMPORT_BYTES as u64 {
        return Err(UsageError(format!(
            "{} is over {} MiB, the most memchat imports at once",
            path.display(),
            import::MAX_IMPORT_BYTES / (1024 * 1024)
        )));
    }
    let (records, _) =
        memory::session::read_archive(path).map_err(|e| UsageError(import::import_error(&e)))?;
    Ok(records)
}

/// Reads a file to import, refusing one over `cap` bytes without reading
/// more than that (a device or a growing file has no trustworthy size).
fn read_capped(file: &Path, cap: usize) -> Result<Vec<u8>, UsageError> {
    use std::io::Read;
    let cannot = |e: std::io::Error| UsageError(format!("cannot read {}: {e}", file.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(cannot)?
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > cap {
        return Err(UsageError(format!(
            "{} is over {} MiB, the most memchat imports at once",
            file.display(),
            cap / (1024 * 1024)
        )));
    }
    Ok(bytes)
}

/// `memchat delete NAME`: asks on a terminal unless `--yes`.
pub fn delete(
    store: &dyn Store,
    name: &str,
    yes: bool,
    ask: Option<&mut dyn BufRead>,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    memory::validate_session_name(name).map_err(|e| UsageError(e.to_string()))?;
    if !store.exists(name)? {
        return Err(StoreError::NotFound(name.to_string()).into());
    }
    if !yes {
        let Some(input) = ask else {
            return Err(UsageError(format!(
                "deleting session {name:?} cannot be undone; add --yes to confirm"
            ))
            .into());
        };
        let records = records_of(store, name, true).unwrap_or_default();
        let messages = records
            .iter()
            .filter(|r| matches!(r, Record::Message(_)))
            .count();
        eprint!(
            "Delete session {name:?} and all {messages} of its messages? This cannot be undone. [y/N] "
        );
        let mut answer = String::new();
        input.read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            writeln!(out, "kept session {name:?}")?;
            return Ok(false);
        }
    }
    let removed = store.delete_session(name)?;
    writeln!(out, "deleted session {name:?} ({removed})")?;
    Ok(true)
}

/// Default export file name for `/export` without an argument.
pub fn default_export_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.md"))
}

/// Writes an export to a new file named after the session: `NAME.md`, or
/// `NAME-1.md`, `NAME-2.md`, ... when that name is taken. memchat chose the
/// name, so nothing already there is replaced, and nothing is written
/// through a link planted at it (a new file is created exclusively).
/// Returns the path written.
pub fn write_new_export(name: &str, text: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    for n in 0..1000u32 {
        let path = if n == 0 {
            default_export_path(name)
        } else {
            PathBuf::from(format!("{name}-{n}.md"))
        };
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match opened {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    Err(UsageError(format!(
        "{name}.md and 999 numbered names after it are taken; name the file: /export FILE"
    ))
    .into())
}

/// Runs a management command (`memchat sessions`, `show`, ...), writing its
/// output to `out` and notices through `output`. Deleting asks on a
/// terminal unless `--yes`.
pub fn run(management: Management, output: &Output, out: &mut dyn Write) -> anyhow::Result<()> {
    let Management {
        memory_dir,
        store,
        lock_wait,
        command,
    } = management;
    if let ManageCommand::Migrate { from, to } = &command {
        return migrate(from, to, lock_wait, out);
    }
    let store = open_store(store.as_ref(), &memory_dir, lock_wait, None)?;
    let store: &dyn Store = store.as_ref();
    match command {
        ManageCommand::Sessions(sizing, usage) => {
            list(store, &Sizing(sizing), usage.as_ref(), out)?;
        }
        ManageCommand::Show {
            name,
            all,
            json,
            around,
        } => show(store, &name, all, json, around, out)?,
        ManageCommand::Search {
            query,
            session,
            json,
            limit,
        } => {
            let session = session.as_deref();
            if output.stdout_is_styled() && !json {
                // Its own escape codes must reach the terminal: the search
                // shows the stored text harmless itself (`search::Look`).
                let mut raw = std::io::stdout().lock();
                search::run(store, &query, session, limit, json, output, &mut raw)?;
            } else {
                search::run(store, &query, session, limit, json, output, out)?;
            }
        }
        ManageCommand::Export {
            name,
            format,
            output,
        } => {
            let text = export_text(store, &name, format)?;
            match output {
                Some(path) => {
                    write_export(&path, &text)?;
                    eprintln!("memchat: exported session {name:?} to {}", path.display());
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
        ManageCommand::Import { source, name } => import(store, &source, &name, out)?,
        ManageCommand::Delete { name, yes } => {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let ask: Option<&mut dyn BufRead> = if stdin.is_terminal() {
                Some(&mut lock)
            } else {
                None
            };
            delete(store, &name, yes, ask, out)?;
        }
        ManageCommand::Rename { from, to } => {
            if from == to {
                // Before the store: the file store would wait on the lock
                // it holds itself, and report the session in use.
                return Err(UsageError(format!(
                    "`rename {from} {to}`: the new name is the session's own; pick another"
                ))
                .into());
            }
            store.rename_session(&from, &to)?;
            writeln!(out, "renamed session {from:?} to {to:?}")?;
        }
        ManageCommand::Repair { name } => {
            out.write_all(store.repair(&name)?.as_bytes())?;
        }
        ManageCommand::Migrate { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// The store chosen: PostgreSQL for a `--store` URL (connecting in the
/// background from here on), else the memory directory. One place, for the
/// chat and the management commands alike.
///
/// `first` is what a chat about to start will do first: PostgreSQL does it
/// with its first round trip (the file store has no use for it).
pub fn open_store(
    url: Option<&StoreUrl>,
    memory_dir: &Path,
    lock_wait: Duration,
    first: Option<crate::pg::Prefetch>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        Some(url) => Arc::from(crate::pg::store_impl::open_store(
            url.url(),
            lock_wait,
            first,
        )?),
        None => Arc::new(FileStore::new(memory_dir, lock_wait)),
    })
}

/// When a session was last used, as `sessions` lists it: RFC 3339 in UTC,
/// or `-` for a time the format cannot show (a file's modification time
/// before 1970 or after 9999, which the formatter would panic on).
fn last_used_shown(at: std::time::SystemTime) -> String {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) if since <= crate::store::LATEST_LAST_USE => {
            humantime::format_rfc3339_seconds(at).to_string()
        }
        _ => "-".to_string(),
    }
}

/// `memchat migrate --from A --to B`: one of them a directory, the other a
/// `postgres://` URL (checked by the configuration).
fn migrate(from: &str, to: &str, lock_wait: Duration, out: &mut dyn Write) -> anyhow::Result<()> {
    use crate::pg::{PgStore, copy, url::is_postgres_url};
    let (url, dir) = if is_postgres_url(from) {
        (from, to)
    } else {
        (to, from)
    };
    let store = PgStore::open(url, lock_wait)?;
    let dir = Path::new(dir);
    let (source, destination) = if is_postgres_url(from) {
        (copy::Side::Pg(&store), copy::Side::Dir(dir))
    } else {
        (copy::Side::Dir(dir), copy::Side::Pg(&store))
    };
    let report = copy::copy(source, destination, lock_wait)?;
    writeln!(out, "{report}")?;
    if !report.complete() {
        return Err(memory::StoreError::Database {
            target: destination.shown(),
            reason: "some sessions were not copied (see above); run migrate again once fixed"
                .to_string(),
        }
        .into());
    }
    Ok(())
}
