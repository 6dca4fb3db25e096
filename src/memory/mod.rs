//! The memory store: a directory of sessions, each an active log plus an archive.
//!
//! This module owns session names (and why no name can reach another
//! session's files), the paths of a session's files, and the store's typed
//! errors. `session.rs` owns one open session (lock, load, append, atomic
//! rewrite); `log.rs` reading an active log; `archive.rs` the archive;
//! `format.rs` the records; `lines.rs` reading lines with a bounded memory
//! cost; `files.rs` the low-level, durability- and privacy-minded file
//! operations; `pending.rs` crash-safe rename and delete; `repair.rs` the
//! quarantine path.

pub mod archive;
pub mod files;
pub mod format;
pub mod lines;
pub mod log;
pub mod pending;
pub mod repair;
pub mod session;

use std::path::{Path, PathBuf};

pub use pending::{delete_session, rename_session};
pub use session::Session;

/// The name used when the user names no session.
pub const DEFAULT_SESSION: &str = "default";
const MAX_NAME_LEN: usize = 64;

/// The file that marks a directory as a memchat memory directory. The
/// repository ships `memory/` with it, so `cargo run` keeps its conversations
/// there, while an unrelated folder that happens to be called `memory` is
/// never adopted. Its name starts with a dot, which no session name can.
pub const MARKER_FILE: &str = ".memchat-memory";

/// Errors of the store. Every variant maps to exit code 3, and every message
/// names the file or session concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}:{line}: {reason}\nmemchat will not open session {session:?} while this line is \
         there; run `memchat repair {session}` to move bad lines to a quarantine file and keep \
         every good one"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
        session: String,
    },
    #[error("{path}:1: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error(
        "session {session:?} is in use by another memchat process (waited {waited_secs}s for its \
         lock); close the other one or pick another session with --session"
    )]
    Locked { session: String, waited_secs: u64 },
    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        // Shown in the message, not chained: the chain would print it twice.
        // (Named `error`, not `source`: thiserror chains a field named
        // `source` whatever its attribute says.)
        error: std::io::Error,
    },
    #[error("no session named {0:?} (`memchat sessions` lists them)")]
    NotFound(String),
    #[error("a session named {0:?} already exists; pick another name")]
    Exists(String),
    #[error(
        "{path} is a symbolic link; memchat never reads or writes a session file through a link \
         (put the real file in the memory directory, or point --memory-dir at the directory \
         that holds it)"
    )]
    Symlink { path: PathBuf },
    #[error(
        "the memory directory {path} belongs to another user (uid {owner}, you are uid {me}); \
         memchat only keeps conversations in a directory of your own (set --memory-dir or \
         MEMCHAT_MEMORY_DIR)"
    )]
    NotYours { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "other users can write to the memory directory {path} (mode {mode:04o}), so they could \
         change what the model is sent; memchat will not use it. Use a private directory \
         (`chmod 700` one of yours, or set --memory-dir)"
    )]
    OpenToOthers { path: PathBuf, mode: u32 },
    #[error(transparent)]
    BadName(#[from] BadSessionName),
    #[error(
        "{path}: a record of {len} bytes is over the cap of {cap} bytes for one line; nothing \
         was written",
        cap = format::MAX_LINE_BYTES
    )]
    TooLarge { path: PathBuf, len: usize },
    #[error("{path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    /// The PostgreSQL store failed; `target` is its URL with the password
    /// masked, `reason` one line.
    #[error("{target}: {reason}")]
    Database { target: String, reason: String },
}

impl StoreError {
    pub fn io(action: &'static str, path: &Path, error: std::io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_path_buf(),
            error,
        }
    }
}

/// A session name that failed validation (a usage error, not a store error).
#[derive(Debug, thiserror::Error)]
#[error("invalid session name {name:?}: {why} (use 1-64 of the characters A-Z a-z 0-9 _ -)")]
pub struct BadSessionName {
    pub name: String,
    pub why: &'static str,
}

/// Checks a session name's shape: 1-64 of `A-Z a-z 0-9 _ -`. This is what
/// keeps names from reaching outside the memory directory.
///
/// A dot is accepted here only so that sessions created by earlier versions
/// (which allowed `.`) stay usable; [`check_session_name`] refuses a dot in
/// the name of a session that does not exist yet, and no name may end in
/// `.archive` (its log would be another session's archive).
pub fn validate_session_name(name: &str) -> Result<(), BadSessionName> {
    let bad = |why| {
        Err(BadSessionName {
            name: name.chars().take(80).collect(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 64 characters");
    }
    if name.starts_with('.') {
        return bad("it starts with a dot");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("it contains a character other than letters, digits, '_' or '-'");
    }
    if name.ends_with(".archive") {
        return bad("NAME.archive.jsonl is the archive of session NAME, not a session of its own");
    }
    Ok(())
}

/// Checks a name for a session that may not exist yet: the shape of
/// [`validate_session_name`], and no dot unless the session already exists
/// (an earlier version created it).
pub fn check_session_name(dir: &Path, name: &str) -> Result<(), BadSessionName> {
    validate_session_name(name)?;
    if name.contains('.') && !SessionPaths::new(dir, name).exists() {
        return Err(new_name_with_a_dot(name));
    }
    Ok(())
}

/// The refusal of a new session named `name`, which has a dot, said the same
/// way by both stores.
pub fn new_name_with_a_dot(name: &str) -> BadSessionName {
    BadSessionName {
        name: name.to_string(),
        why: "a new session's name cannot contain '.' (earlier versions allowed it; such \
              sessions still open)",
    }
}

/// Checks the name of a session about to be created (rename target, import).
pub fn validate_new_session_name(name: &str) -> Result<(), BadSessionName> {
    validate_session_name(name)?;
    if name.contains('.') {
        return Err(BadSessionName {
            name: name.to_string(),
            why: "it contains '.'",
        });
    }
    Ok(())
}

/// The files of one session inside the memory directory.
///
/// Every file of session `NAME` is `NAME` followed by a suffix that starts
/// with a dot (`.jsonl`, `.archive.jsonl`, `.lock`, `.pending`,
/// `.corrupt-STAMP`); temp files are `.` + one of those + `.tmp-PID`. New
/// names have no dot, so the session a file belongs to is the part of its
/// name before the first dot: no name can produce another session's file.
/// (Names with a dot from earlier versions: of all these suffixes only
/// `.archive.jsonl` ends in another, `.jsonl`, and names ending in
/// `.archive` are refused, so they cannot either.)
#[derive(Debug, Clone)]
pub struct SessionPaths {
    pub dir: PathBuf,
    pub log: PathBuf,
    pub archive: PathBuf,
    pub lock: PathBuf,
    /// The intent of an unfinished rename or delete (`pending.rs`).
    pub pending: PathBuf,
}

impl SessionPaths {
    /// Paths for a validated name.
    pub fn new(dir: &Path, name: &str) -> Self {
        SessionPaths {
            dir: dir.to_path_buf(),
            log: dir.join(format!("{name}.jsonl")),
            archive: dir.join(format!("{name}.archive.jsonl")),
            lock: dir.join(format!("{name}.lock")),
            pending: dir.join(format!("{name}.pending")),
        }
    }

    /// When the session was last used: its log's modification time (every
    /// write touches it); `None` without a log.
    pub fn last_used(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(&self.log).and_then(|m| m.modified()).ok()
    }

    /// Whether the session has a log or an archive (a link counts: it is
    /// there, and refused when used).
    pub fn exists(&self) -> bool {
        self.log.symlink_metadata().is_ok() || self.archive.symlink_metadata().is_ok()
    }

    /// A fresh quarantine file name for bad or torn lines.
    pub fn quarantine(&self, name: &str) -> PathBuf {
        let stamp = format::now().replace(':', "");
        let mut path = self.dir.join(format!("{name}.corrupt-{stamp}"));
        let mut n = 1;
        while path.symlink_metadata().is_ok() {
            n += 1;
            path = self.dir.join(format!("{name}.corrupt-{stamp}-{n}"));
        }
        path
    }
}

/// Whether `file_name` is a quarantine file of session `name`:
/// `NAME.corrupt-` and a stamp of digits, `T`, `Z` and `-` (no dot, so a
/// session called `NAME.corrupt-x` of an earlier version is not one).
pub fn is_quarantine_of(file_name: &str, name: &str) -> bool {
    file_name
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(".corrupt-"))
        .is_some_and(|stamp| {
            !stamp.is_empty()
                && stamp
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b'-'))
        })
}

/// The data files of a session: archive, quarantine copies, then the log.
pub fn session_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>, StoreError> {
    let paths = SessionPaths::new(dir, name);
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::io("cannot read the memory directory", dir, e))?;
    let mut out = Vec::new();
    if paths.archive.symlink_metadata().is_ok() {
        out.push(paths.archive.clone());
    }
    let mut quarantined: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| is_quarantine_of(&e.file_name().to_string_lossy(), name))
        .map(|e| e.path())
        .collect();
    quarantined.sort();
    out.extend(quarantined);
    if paths.log.symlink_metadata().is_ok() {
        out.push(paths.log.clone());
    }
    Ok(out)
}

/// Whether `dir` is a memchat memory directory: it holds the marker file, or
/// (made by an earlier version) a log that starts with a memchat header.
/// Used to adopt `./memory`, and only that.
pub fn is_memory_dir(dir: &Path) -> bool {
    if dir
        .join(MARKER_FILE)
        .symlink_metadata()
        .is_ok_and(|m| m.is_file())
    {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let is_log = name.to_string_lossy().ends_with(".jsonl");
        is_log
            && files::open_read(&entry.path())
                .ok()
                .flatten()
                .is_some_and(starts_with_header)
    })
}

fn starts_with_header(file: std::fs::File) -> bool {
    use std::io::Read;
    let mut start = Vec::new();
    let _ = file.take(64).read_to_end(&mut start);
    start.starts_with(br#"{"type":"header","format":"memchat""#)
}

/// Names of the sessions in `dir` (those with an active log), sorted.
pub fn list_session_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("cannot read the memory directory", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::io("cannot read the memory directory", dir, e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if let Some(name) = file_name.strip_suffix(".jsonl")
            && !name.ends_with(".archive")
            && validate_session_name(name).is_ok()
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_is_printed_once_in_the_chain() {
        let error = StoreError::io(
            "cannot write to",
            Path::new("/m/s.jsonl"),
            std::io::Error::other("disk full"),
        );
        let chain = format!("{:#}", anyhow::Error::new(error));
        assert_eq!(chain, "cannot write to /m/s.jsonl: disk full");
    }

    #[test]
    fn session_names_cannot_escape_the_directory() {
        for bad in [
            "",
            "../x",
            "/",
            "a/b",
            ".hidden",
            "..",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(validate_session_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["default", "work-2026", "a_b-c", &"x".repeat(64)] {
            assert!(validate_new_session_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn no_name_reaches_another_sessions_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(validate_session_name("foo.archive").is_err());
        assert!(
            check_session_name(dir, "foo.bar").is_err(),
            "a new dotted name"
        );
        std::fs::write(dir.join("foo.bar.jsonl"), "").unwrap();
        assert!(
            check_session_name(dir, "foo.bar").is_ok(),
            "an existing one"
        );
        assert!(is_quarantine_of("a.corrupt-2026-11-22T101010Z-2", "a"));
        assert!(!is_quarantine_of("a.corrupt-x.jsonl", "a"));
        assert!(!is_quarantine_of("a.corrupt-x.corrupt-2026", "a"));
    }
}
