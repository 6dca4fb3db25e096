//! The memory store: a directory of sessions, each an active log plus an archive.
//!
//! This module owns session names, the directory's creation and permissions,
//! and the store's typed errors. `session.rs` owns one open session (lock, load,
//! append, atomic rewrite); `format.rs` the records; `files.rs` the low-level,
//! durability-minded file operations; `repair.rs` the quarantine path.

pub mod files;
pub mod format;
pub mod repair;
pub mod session;

use std::path::{Path, PathBuf};

pub use session::Session;

/// The name used when the user names no session.
pub const DEFAULT_SESSION: &str = "default";
const MAX_NAME_LEN: usize = 64;

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
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        // Shown in the message, not chained: the chain would print it twice.
        source: std::io::Error,
    },
    #[error("no session named {0:?} (`memchat sessions` lists them)")]
    NotFound(String),
    #[error("a session named {0:?} already exists; pick another name")]
    Exists(String),
}

impl StoreError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A session name that failed validation (a usage error, not a store error).
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid session name {name:?}: {why} (use 1-64 of the characters A-Z a-z 0-9 . _ -, not \
     starting with a dot)"
)]
pub struct BadSessionName {
    pub name: String,
    pub why: &'static str,
}

/// Checks a session name: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
/// This is what keeps names from reaching outside the memory directory.
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
        return bad("it contains a character other than letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// The files of one session inside the memory directory.
#[derive(Debug, Clone)]
pub struct SessionPaths {
    pub dir: PathBuf,
    pub log: PathBuf,
    pub archive: PathBuf,
    pub lock: PathBuf,
}

impl SessionPaths {
    /// Paths for a validated name.
    pub fn new(dir: &Path, name: &str) -> Self {
        SessionPaths {
            dir: dir.to_path_buf(),
            log: dir.join(format!("{name}.jsonl")),
            archive: dir.join(format!("{name}.archive.jsonl")),
            lock: dir.join(format!("{name}.lock")),
        }
    }

    /// A fresh quarantine file name for bad or torn lines.
    pub fn quarantine(&self, name: &str) -> PathBuf {
        let stamp = format::now().replace(':', "");
        let mut path = self.dir.join(format!("{name}.corrupt-{stamp}"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = self.dir.join(format!("{name}.corrupt-{stamp}-{n}"));
        }
        path
    }
}

/// Deletes every file of session `name` (log, archive, quarantine copies),
/// holding its lock so no writer is mid-append. Returns the files removed.
pub fn delete_session(
    dir: &Path,
    name: &str,
    lock_wait: std::time::Duration,
) -> Result<Vec<PathBuf>, StoreError> {
    let paths = SessionPaths::new(dir, name);
    if !paths.log.exists() && !paths.archive.exists() {
        return Err(StoreError::NotFound(name.to_string()));
    }
    let _lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
    let mut removed = Vec::new();
    for path in session_files(dir, name)? {
        std::fs::remove_file(&path).map_err(|e| StoreError::io("cannot delete", &path, e))?;
        removed.push(path);
    }
    let _ = std::fs::remove_file(&paths.lock);
    files::sync_dir(dir)?;
    Ok(removed)
}

/// Renames session `from` to `to` (log, archive, quarantine copies).
pub fn rename_session(
    dir: &Path,
    from: &str,
    to: &str,
    lock_wait: std::time::Duration,
) -> Result<(), StoreError> {
    let old = SessionPaths::new(dir, from);
    let new = SessionPaths::new(dir, to);
    if !old.log.exists() {
        return Err(StoreError::NotFound(from.to_string()));
    }
    let _old_lock = files::lock_exclusive(&old.lock, from, lock_wait)?;
    let _new_lock = files::lock_exclusive(&new.lock, to, lock_wait)?;
    if new.log.exists() || new.archive.exists() {
        return Err(StoreError::Exists(to.to_string()));
    }
    for path in session_files(dir, from)? {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = dir.join(format!("{to}{}", &file_name[from.len()..]));
        std::fs::rename(&path, &target).map_err(|e| StoreError::io("cannot rename", &path, e))?;
    }
    let _ = std::fs::remove_file(&old.lock);
    files::sync_dir(dir)
}

/// The data files of a session: log, archive and quarantine copies.
fn session_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>, StoreError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::io("cannot read the memory directory", dir, e))?;
    let exact = [format!("{name}.jsonl"), format!("{name}.archive.jsonl")];
    let quarantine = format!("{name}.corrupt-");
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let is_quarantine = file_name.starts_with(&quarantine)
            && !file_name.ends_with(".jsonl")
            && !file_name.ends_with(".lock");
        if exact.contains(&file_name) || is_quarantine {
            out.push(entry.path());
        }
    }
    Ok(out)
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
        for good in ["default", "work-2026", "a.b_c", &"x".repeat(64)] {
            assert!(validate_session_name(good).is_ok(), "{good:?} refused");
        }
    }
}
