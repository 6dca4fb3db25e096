//! Renaming and deleting a session, crash-safe.
//!
//! A session is several files (log, archive, quarantine copies); no single
//! system call moves or removes them all. So the operation is first written
//! down: `FROM.pending` holds `{"op":"rename","from":…,"to":…}` or
//! `{"op":"delete","name":…}`, written atomically (temp, fsync, rename, fsync
//! the directory) while the session's lock (both sessions' locks for a
//! rename) is held. Only then are files renamed or removed, then the intent
//! file is removed. After a kill at any step the state is one of:
//!
//! - no intent file: nothing has moved yet (or everything has): the session
//!   is whole under one name;
//! - an intent file: the operation was decided; the next memchat that
//!   touches the directory finishes it ([`settle`]): renames the files still
//!   under the old name, or removes the ones not yet removed. Every step is
//!   idempotent, so a kill during the finishing is finished again later.
//!
//! Nothing is ever left split between two names, and a new session under the
//! old name never adopts an orphaned archive.
//!
//! Lock files are removed while held; `files::lock_exclusive` re-validates
//! after acquiring, so a process that waited on a removed lock file never
//! holds a lock next to another process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{SessionPaths, StoreError, files, session_files};

/// What an intent file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Intent {
    Rename { from: String, to: String },
    Delete { name: String },
}

impl Intent {
    /// The sessions whose locks the operation needs, in the order to take
    /// them (sorted, so two processes never wait on each other in a cycle).
    fn sessions(&self) -> Vec<String> {
        let mut names = match self {
            Intent::Rename { from, to } => vec![from.clone(), to.clone()],
            Intent::Delete { name } => vec![name.clone()],
        };
        names.sort();
        names
    }
}

fn write_intent(paths: &SessionPaths, intent: &Intent) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec(intent).unwrap_or_default();
    bytes.push(b'\n');
    files::replace_atomically(&paths.pending, &bytes)
}

fn read_intent(path: &Path) -> Result<Option<Intent>, StoreError> {
    use std::io::Read;
    let Some(file) = files::open_read(path)? else {
        return Ok(None);
    };
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| StoreError::io("cannot read", path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Refused {
            path: path.to_path_buf(),
            reason: format!(
                "not a memchat rename or delete record ({e}); move it out of the memory directory"
            ),
        })
}

/// Takes the locks of `names` in order.
fn lock_all(
    dir: &Path,
    names: &[String],
    wait: Duration,
) -> Result<Vec<std::fs::File>, StoreError> {
    names
        .iter()
        .map(|name| files::lock_exclusive(&SessionPaths::new(dir, name).lock, name, wait))
        .collect()
}

/// Finishes every rename or delete that a crash interrupted in `dir`. For
/// the session `wanted` (about to be used) it waits for the locks like an
/// open would; other operations are finished only if their locks are free (a
/// live process holding them is finishing them itself). Returns notices.
pub fn settle(
    dir: &Path,
    wanted: Option<&str>,
    lock_wait: Duration,
) -> Result<Vec<String>, StoreError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let intents: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.ends_with(".pending") && !n.starts_with('.'))
        })
        .collect();
    let mut notices = Vec::new();
    for path in intents {
        let Some(intent) = read_intent(&path)? else {
            continue;
        };
        let names = intent.sessions();
        let is_wanted = wanted.is_some_and(|w| names.iter().any(|n| n == w));
        let wait = if is_wanted { lock_wait } else { Duration::ZERO };
        let _locks = match lock_all(dir, &names, wait) {
            Ok(locks) => locks,
            Err(StoreError::Locked { .. }) if !is_wanted => continue,
            Err(e) => return Err(e),
        };
        // Under the locks: another process may have finished it meanwhile.
        if read_intent(&path)?.as_ref() != Some(&intent) {
            continue;
        }
        match &intent {
            Intent::Rename { from, to } => {
                finish_rename(dir, from, to)?;
                notices.push(format!(
                    "finished renaming session {from:?} to {to:?}, which an earlier memchat was \
                     interrupted in"
                ));
            }
            Intent::Delete { name } => {
                finish_delete(dir, name)?;
                notices.push(format!(
                    "finished deleting session {name:?}, which an earlier memchat was \
                     interrupted in"
                ));
            }
        }
    }
    Ok(notices)
}

/// Deletes every file of session `name` (log, archive, quarantine copies),
/// holding its lock so no writer is mid-append. Returns the files removed.
pub fn delete_session(
    dir: &Path,
    name: &str,
    lock_wait: Duration,
) -> Result<Vec<PathBuf>, StoreError> {
    super::validate_session_name(name)?;
    files::check_dir(dir)?;
    settle(dir, Some(name), lock_wait)?;
    let paths = SessionPaths::new(dir, name);
    if !paths.exists() {
        return Err(StoreError::NotFound(name.to_string()));
    }
    let _lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
    if !paths.exists() {
        return Err(StoreError::NotFound(name.to_string()));
    }
    write_intent(
        &paths,
        &Intent::Delete {
            name: name.to_string(),
        },
    )?;
    finish_delete(dir, name)
}

/// Removes what is left of session `name` and its intent file, then its lock
/// file (held by the caller).
fn finish_delete(dir: &Path, name: &str) -> Result<Vec<PathBuf>, StoreError> {
    let paths = SessionPaths::new(dir, name);
    let mut removed = Vec::new();
    for path in session_files(dir, name)? {
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("cannot delete", &path, e)),
        }
    }
    files::sync_dir(dir)?;
    remove_intent_and_lock(&paths, dir)?;
    Ok(removed)
}

/// Renames session `from` to `to` (log, archive, quarantine copies).
pub fn rename_session(
    dir: &Path,
    from: &str,
    to: &str,
    lock_wait: Duration,
) -> Result<(), StoreError> {
    super::validate_session_name(from)?;
    super::validate_new_session_name(to)?;
    files::check_dir(dir)?;
    settle(dir, Some(from), lock_wait)?;
    settle(dir, Some(to), lock_wait)?;
    let old = SessionPaths::new(dir, from);
    let new = SessionPaths::new(dir, to);
    if !old.exists() {
        return Err(StoreError::NotFound(from.to_string()));
    }
    let intent = Intent::Rename {
        from: from.to_string(),
        to: to.to_string(),
    };
    let _locks = lock_all(dir, &intent.sessions(), lock_wait)?;
    if !old.exists() {
        return Err(StoreError::NotFound(from.to_string()));
    }
    if new.exists() || !session_files(dir, to)?.is_empty() {
        return Err(StoreError::Exists(to.to_string()));
    }
    write_intent(&old, &intent)?;
    finish_rename(dir, from, to)
}

/// Moves what is still under `from` to `to`, then removes the intent file
/// and `from`'s lock file (held by the caller).
fn finish_rename(dir: &Path, from: &str, to: &str) -> Result<(), StoreError> {
    let old = SessionPaths::new(dir, from);
    for path in session_files(dir, from)? {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = dir.join(format!("{to}{}", &file_name[from.len()..]));
        if target.symlink_metadata().is_ok() {
            return Err(StoreError::Refused {
                path: old.pending.clone(),
                reason: format!(
                    "cannot finish renaming session {from:?} to {to:?}: both {} and {} exist; \
                     move one of them out of the memory directory and run memchat again",
                    path.display(),
                    target.display()
                ),
            });
        }
        std::fs::rename(&path, &target).map_err(|e| StoreError::io("cannot rename", &path, e))?;
    }
    files::sync_dir(dir)?;
    remove_intent_and_lock(&old, dir)
}

fn remove_intent_and_lock(paths: &SessionPaths, dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(&paths.pending) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("cannot remove", &paths.pending, e)),
    }
    // Safe while held: a process waiting on this lock file re-validates.
    let _ = std::fs::remove_file(&paths.lock);
    files::sync_dir(dir)
}
