//! The file store's full-text index: a cache of every message in the memory
//! directory (archives and active logs) in SQLite FTS5, ranked by BM25.
//!
//! The logs are the only truth. The index may be deleted, stale or damaged
//! at any moment, and is then brought up to date from them: each log and
//! archive it has read is remembered by its inode, the length read and a
//! hash of the bytes just before that length. An archive only ever grows
//! (new lines at its end), so when the file is the same one and those bytes
//! are unchanged only its new lines are read; anything else (a new file from
//! a rename, delete, import or repair) reindexes that file alone. A file's
//! rows and its mark change in one transaction, so a crash at any point
//! leaves an index that is behind or current, never one that is half-way;
//! SQLite's own journal covers the rest. A damaged or foreign database file
//! is removed and built again.
//!
//! Why SQLite FTS5 and not tantivy: BENCHMARKS.md, "Search index".

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{Hit, Scope, SearchQuery, TermStats};
use crate::memory::format::{self, Record, Role};
use crate::memory::lines::Lines;
use crate::memory::session::read_log;
use crate::memory::{SessionPaths, StoreError, files};

/// The index's file in the memory directory (hidden, like the other
/// bookkeeping files; `-wal` and `-shm` files sit beside it while in use).
pub const INDEX_FILE: &str = ".search-index.sqlite";

/// The layout of the tables; another value means the file is rebuilt.
const INDEX_VERSION: i64 = 4;

/// How many bytes before the indexed length identify an archive's prefix.
const TAIL_BYTES: u64 = 64;

/// How long to wait for another memchat writing the index.
const BUSY_WAIT_MS: u64 = 5000;

const SCHEMA: &str = "
CREATE TABLE sources (
    session TEXT NOT NULL,
    part    TEXT NOT NULL CHECK (part IN ('archive', 'log')),
    ino     INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    mark    BLOB NOT NULL,
    PRIMARY KEY (session, part)
);
CREATE TABLE docs (
    id       INTEGER PRIMARY KEY,
    session  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    archived INTEGER NOT NULL,
    role     TEXT NOT NULL,
    at       TEXT NOT NULL,
    content  TEXT NOT NULL,
    UNIQUE (session, archived, seq)
);
CREATE VIRTUAL TABLE fts USING fts5(content, content='docs', content_rowid='id');
-- How many rows `docs` has, kept by its triggers: counting the table
-- itself reads every page of it (15 ms at 100,000 messages), on every turn.
CREATE TABLE totals (docs INTEGER NOT NULL);
INSERT INTO totals (docs) VALUES (0);
CREATE TRIGGER docs_added AFTER INSERT ON docs BEGIN
    INSERT INTO fts(rowid, content) VALUES (new.id, new.content);
    UPDATE totals SET docs = docs + 1;
END;
CREATE TRIGGER docs_removed AFTER DELETE ON docs BEGIN
    INSERT INTO fts(fts, rowid, content) VALUES ('delete', old.id, old.content);
    UPDATE totals SET docs = docs - 1;
END;
";

/// The open index of one memory directory.
pub struct SearchIndex {
    db: Connection,
    path: PathBuf,
    /// What happened while opening (a damaged index rebuilt), for the user.
    pub notices: Vec<String>,
}

fn failed(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Refused {
        path: path.to_path_buf(),
        reason: format!("the search index failed: {error}"),
    }
}

/// Whether an SQLite error says the file is not a usable database.
fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl SearchIndex {
    /// Opens the index of `dir`, creating it when missing and building it
    /// again when it is damaged or of another layout.
    pub fn open(dir: &Path) -> Result<SearchIndex, StoreError> {
        let path = dir.join(INDEX_FILE);
        match Self::try_open(&path) {
            Ok(index) => Ok(index),
            Err(e) if e.damaged => {
                remove_index_files(&path)?;
                let mut index = Self::try_open(&path).map_err(|e| failed(&path, e.error))?;
                index.notices.push(format!(
                    "the search index {} was damaged ({}); it was removed and is rebuilt from the \
                     logs",
                    path.display(),
                    e.error
                ));
                Ok(index)
            }
            Err(e) => Err(failed(&path, e.error)),
        }
    }

    fn try_open(path: &Path) -> Result<SearchIndex, OpenError> {
        // Created here 0600 and never through a link; SQLite then opens the
        // existing file and gives its journal files the same mode.
        match path.symlink_metadata() {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(OpenError::damaged("it is not a regular file"));
            }
            Ok(_) => {}
            Err(_) => {
                files::create_new_private(path).map_err(OpenError::other)?;
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let db = Connection::open_with_flags(path, flags).map_err(OpenError::sqlite)?;
        db.busy_timeout(std::time::Duration::from_millis(BUSY_WAIT_MS))
            .map_err(OpenError::sqlite)?;
        // WAL: readers never wait for a writer; NORMAL: a crash may lose the
        // last transaction (the index is then behind, and catches up), never
        // corrupt the file.
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(OpenError::sqlite)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(OpenError::sqlite)?;
        let version: i64 = db
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(OpenError::sqlite)?;
        if version != INDEX_VERSION {
            let tables: i64 = db
                .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
                .map_err(OpenError::sqlite)?;
            if tables != 0 {
                return Err(OpenError::damaged(format!(
                    "layout {version}, this memchat uses {INDEX_VERSION}"
                )));
            }
            db.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {INDEX_VERSION}; COMMIT;"
            ))
            .map_err(OpenError::sqlite)?;
        }
        Ok(SearchIndex {
            db,
            path: path.to_path_buf(),
            notices: Vec::new(),
        })
    }

    /// Whether `error` came from a damaged database file, so the caller
    /// should remove it and build it again.
    pub fn damaged(error: &StoreError) -> bool {
        matches!(error, StoreError::Refused { reason, .. } if reason.contains(DAMAGE_MARK))
    }

    fn sql(&self, error: rusqlite::Error) -> StoreError {
        sql_error(&self.path, error)
    }

    /// Removes the index files of `dir` (to build them again).
    pub fn remove(dir: &Path) -> Result<(), StoreError> {
        remove_index_files(&dir.join(INDEX_FILE))
    }

    /// Brings the rows of `name`'s archive up to date with its file.
    pub fn sync_archive(&mut self, name: &str, paths: &SessionPaths) -> Result<(), StoreError> {
        let Some(mut file) = files::open_read(&paths.archive)? else {
            return self.forget(name, "archive");
        };
        let meta = file
            .metadata()
            .map_err(|e| StoreError::io("cannot read", &paths.archive, e))?;
        let known = self.source(name, "archive")?;
        let from = match known {
            Some((ino, len, mark))
                if ino == meta.ino()
                    && len <= meta.len()
                    && read_mark(&mut file, len).ok().as_deref() == Some(&mark[..]) =>
            {
                if len == meta.len() {
                    return Ok(());
                }
                len
            }
            _ => 0,
        };
        let (records, end) = read_lines_from(&mut file, &paths.archive, from)?;
        let mark = read_mark(&mut file, end)
            .map_err(|e| StoreError::io("cannot read", &paths.archive, e))?;
        let tx = self
            .db
            .transaction()
            .map_err(|e| sql_error(&self.path, e))?;
        if from == 0 {
            tx.execute(
                "DELETE FROM docs WHERE session = ?1 AND archived = 1",
                params![name],
            )
            .map_err(|e| sql_error(&self.path, e))?;
        }
        insert(&tx, name, true, &records).map_err(|e| sql_error(&self.path, e))?;
        set_source(&tx, name, "archive", meta.ino(), end, &mark)
            .map_err(|e| sql_error(&self.path, e))?;
        tx.commit().map_err(|e| sql_error(&self.path, e))
    }

    /// Brings the rows of `name`'s active log up to date: the log is
    /// rewritten by compaction, so any change reindexes it (it is small:
    /// the budget bounds it).
    pub fn sync_log(&mut self, name: &str, paths: &SessionPaths) -> Result<(), StoreError> {
        let meta = match paths.log.symlink_metadata() {
            Ok(meta) => meta,
            Err(_) => return self.forget(name, "log"),
        };
        let mark = meta.mtime_nsec().to_le_bytes().to_vec();
        if let Some((ino, len, known)) = self.source(name, "log")?
            && ino == meta.ino()
            && len == meta.len()
            && known == mark
        {
            return Ok(());
        }
        let contents = read_log(paths, name)?;
        let records: Vec<Record> = contents
            .system
            .into_iter()
            .chain(contents.messages)
            .map(Record::Message)
            .collect();
        let tx = self
            .db
            .transaction()
            .map_err(|e| sql_error(&self.path, e))?;
        tx.execute(
            "DELETE FROM docs WHERE session = ?1 AND archived = 0",
            params![name],
        )
        .map_err(|e| sql_error(&self.path, e))?;
        insert(&tx, name, false, &records).map_err(|e| sql_error(&self.path, e))?;
        set_source(&tx, name, "log", meta.ino(), meta.len(), &mark)
            .map_err(|e| sql_error(&self.path, e))?;
        tx.commit().map_err(|e| sql_error(&self.path, e))
    }

    /// Drops every row of sessions not in `names` (deleted or renamed).
    pub fn keep_only(&mut self, names: &[String]) -> Result<(), StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT DISTINCT session FROM sources")
            .map_err(|e| self.sql(e))?;
        let known: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.sql(e))?;
        drop(stmt);
        for gone in known.iter().filter(|k| !names.contains(k)) {
            self.forget(gone, "archive")?;
            self.forget(gone, "log")?;
        }
        Ok(())
    }

    fn forget(&mut self, name: &str, part: &str) -> Result<(), StoreError> {
        let archived = part == "archive";
        let tx = self
            .db
            .transaction()
            .map_err(|e| sql_error(&self.path, e))?;
        tx.execute(
            "DELETE FROM docs WHERE session = ?1 AND archived = ?2",
            params![name, archived],
        )
        .and_then(|_| {
            tx.execute(
                "DELETE FROM sources WHERE session = ?1 AND part = ?2",
                params![name, part],
            )
        })
        .map_err(|e| sql_error(&self.path, e))?;
        tx.commit().map_err(|e| sql_error(&self.path, e))
    }

    fn source(&self, name: &str, part: &str) -> Result<Option<(u64, u64, Vec<u8>)>, StoreError> {
        self.db
            .query_row(
                "SELECT ino, len, mark FROM sources WHERE session = ?1 AND part = ?2",
                params![name, part],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get(2)?)),
            )
            .optional()
            .map(|found| found.map(|(ino, len, mark)| (ino as u64, len as u64, mark)))
            .map_err(|e| self.sql(e))
    }

    /// The best matches of `query`, best first.
    pub fn query(&self, query: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
        if query.terms.is_empty() {
            return Ok(Vec::new());
        }
        // Terms are letters and digits only (`terms::query_terms`); quoted,
        // each is a plain word to FTS5, never its query syntax.
        let expression = query
            .terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" OR ");
        let (first, last, recall) = match query.scope {
            Scope::Everything => (0, i64::MAX, false),
            Scope::Recall { covers } => (to_sql(covers[0]), to_sql(covers[1]), true),
        };
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT d.session, d.seq, d.archived, d.role, d.at, d.content, -bm25(fts) \
                 FROM fts JOIN docs d ON d.id = fts.rowid \
                 WHERE fts MATCH ?1 \
                   AND (?2 IS NULL OR d.session = ?2) \
                   AND (?3 = 0 OR (d.archived = 1 AND d.role IN ('user', 'assistant'))) \
                   AND d.seq BETWEEN ?4 AND ?5 \
                 ORDER BY bm25(fts), d.session, d.seq LIMIT ?6",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(
                params![
                    expression,
                    query.session,
                    recall,
                    first,
                    last,
                    i64::try_from(query.limit).unwrap_or(i64::MAX)
                ],
                |row| {
                    let role: String = row.get(3)?;
                    Ok(Hit {
                        session: row.get(0)?,
                        seq: row.get::<_, i64>(1)? as u64,
                        archived: row.get(2)?,
                        role: match role.as_str() {
                            "system" => Role::System,
                            "assistant" => Role::Assistant,
                            _ => Role::User,
                        },
                        at: row.get(4)?,
                        content: row.get(5)?,
                        score: row.get(6)?,
                    })
                },
            )
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }
}

fn sql_error(path: &Path, error: rusqlite::Error) -> StoreError {
    if is_damage(&error) {
        failed(path, format!("{DAMAGE_MARK}: {error}"))
    } else {
        failed(path, error)
    }
}

impl SearchIndex {
    /// How many indexed messages there are, and how many hold each term
    /// (over every session: a word's rarity is a property of the user's
    /// language), each count stopping at [`HOLDING_CAP`]: past it a term is
    /// common whatever the exact figure, and counting on would cost time on
    /// every turn (the vocabulary table would read the whole index).
    pub fn term_stats(&self, terms: &[String]) -> Result<TermStats, StoreError> {
        let messages: i64 = self
            .db
            .query_row("SELECT docs FROM totals", [], |row| row.get(0))
            .map_err(|e| self.sql(e))?;
        let mut stmt = self
            .db
            .prepare_cached("SELECT count(*) FROM (SELECT 1 FROM fts WHERE fts MATCH ?1 LIMIT ?2)")
            .map_err(|e| self.sql(e))?;
        let mut holding = Vec::with_capacity(terms.len());
        for term in terms {
            let count: i64 = stmt
                .query_row(
                    params![format!("\"{}\"", term.replace('"', "")), HOLDING_CAP],
                    |row| row.get(0),
                )
                .map_err(|e| self.sql(e))?;
            holding.push(count.max(0) as u64);
        }
        Ok(TermStats {
            messages: messages.max(0) as u64,
            holding,
        })
    }
}

/// Where counting the messages that hold a term stops (the PostgreSQL
/// store stops at the same figure).
pub const HOLDING_CAP: i64 = 5000;

/// Marks an error as coming from a damaged file (see [`SearchIndex::damaged`]).
const DAMAGE_MARK: &str = "the index file is damaged";

fn to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

struct OpenError {
    error: String,
    damaged: bool,
}

impl OpenError {
    fn damaged(why: impl std::fmt::Display) -> Self {
        OpenError {
            error: why.to_string(),
            damaged: true,
        }
    }
    fn other(error: impl std::fmt::Display) -> Self {
        OpenError {
            error: error.to_string(),
            damaged: false,
        }
    }
    fn sqlite(error: rusqlite::Error) -> Self {
        OpenError {
            damaged: is_damage(&error),
            error: error.to_string(),
        }
    }
}

fn remove_index_files(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("cannot remove", &file, e)),
        }
    }
    Ok(())
}

/// The [`TAIL_BYTES`] bytes before `end` (fewer at the file's start).
fn read_mark(file: &mut File, end: u64) -> std::io::Result<Vec<u8>> {
    let start = end.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut mark = vec![0; (end - start) as usize];
    file.read_exact(&mut mark)?;
    Ok(mark)
}

/// The message records of the complete lines from byte `from` on, and where
/// the last complete line ends. A torn last line is left for a later read;
/// a damaged line is skipped (the index is not where damage is reported:
/// `memchat repair` and the session's own reader do that).
fn read_lines_from(
    file: &mut File,
    path: &Path,
    from: u64,
) -> Result<(Vec<Record>, u64), StoreError> {
    file.seek(SeekFrom::Start(from))
        .map_err(|e| StoreError::io("cannot read", path, e))?;
    let mut lines = Lines::new(BufReader::new(&mut *file), format::MAX_LINE_BYTES);
    let mut records = Vec::new();
    let mut end = from;
    while let Some(line) = lines
        .next_line()
        .map_err(|e| StoreError::io("cannot read", path, e))?
    {
        if !line.terminated {
            break;
        }
        end = from + line.offset + line.len + 1;
        if let Ok(record @ Record::Message(_)) = format::parse_read_line(&line, false) {
            records.push(record);
        }
    }
    Ok((records, end))
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    archived: bool,
    records: &[Record],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO docs (session, seq, archived, role, at, content) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for record in records {
        if let Record::Message(m) = record {
            stmt.execute(params![
                name,
                to_sql(m.seq),
                archived,
                m.role.as_str(),
                m.at,
                m.content
            ])?;
        }
    }
    Ok(())
}

fn set_source(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    part: &str,
    ino: u64,
    len: u64,
    mark: &[u8],
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO sources (session, part, ino, len, mark) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (session, part) DO UPDATE SET ino = ?3, len = ?4, mark = ?5",
        params![name, part, ino as i64, len as i64, mark],
    )?;
    Ok(())
}
