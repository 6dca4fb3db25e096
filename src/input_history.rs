//! The REPL's input history file (`.input-history` in the memory directory),
//! read and written by memchat itself: rustyline opens its history file by
//! path, so a symlink planted there had it truncate and rewrite a file
//! anywhere. The same rules as for session files hold here: never read or
//! written through a symlink (`O_NOFOLLOW`), only a regular file of this
//! user, created 0600. Each entry is one append under an advisory lock, so
//! two REPLs interleave whole entries; the history is trimmed to its newest
//! [`MAX_ENTRIES`] by writing a new file (created exclusively, never through
//! a link) and renaming it over the old one. The format is rustyline's (a
//! `#V2` line, then one entry a line with line feeds and backslashes
//! escaped), so an existing history carries over.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The most entries kept (and offered by the editor).
pub const MAX_ENTRIES: usize = 10_000;
/// The most of the file's end read at start: a history file of any size
/// costs at most this much memory.
const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;
/// First line of the format.
const V2: &str = "#V2";
/// Mode of the history file.
const FILE_MODE: u32 = 0o600;

/// `O_NOFOLLOW`, and `O_NONBLOCK` so that a FIFO planted at the path cannot
/// hang the opening (a regular file ignores it).
fn open_flags() -> i32 {
    // Small positive bits on every Unix; the cast cannot change them.
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

/// Why the history cannot be used, said once; nothing is then read or
/// written at its path for the rest of the run.
fn unusable(path: &Path, why: &str) -> String {
    format!(
        "{}: {why}; the input history is not loaded or saved this run",
        path.display()
    )
}

/// Describes an open error, naming a symlink as such.
fn open_error(path: &Path, e: &io::Error) -> String {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        unusable(
            path,
            "it is a symbolic link, and memchat never reads or writes through a link (remove the \
             link to keep an input history)",
        )
    } else {
        unusable(path, &format!("cannot open it: {e}"))
    }
}

/// Checks that an opened file is a regular file of this user.
fn check_file(path: &Path, file: &File) -> Result<fs::Metadata, String> {
    let meta = file
        .metadata()
        .map_err(|e| unusable(path, &format!("cannot inspect it: {e}")))?;
    if !meta.is_file() {
        return Err(unusable(path, "it is not a regular file"));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(unusable(path, "it belongs to another user"));
    }
    Ok(meta)
}

/// Escapes one entry as a line of the `#V2` format (without its line feed).
fn escape(entry: &str) -> String {
    entry.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Undoes [`escape`]; an unknown escape is kept as it stands.
fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The entries of a history file's text (its start cut off when `partial`),
/// oldest first, at most [`MAX_ENTRIES`].
fn parse(text: &str, partial: bool) -> Vec<String> {
    let mut lines = text.split('\n');
    if partial {
        // The first line was cut by the read's start: not an entry.
        lines.next();
    }
    let mut v2 = partial;
    let mut entries: Vec<String> = Vec::new();
    for (i, line) in lines.enumerate() {
        if i == 0 && !partial && line == V2 {
            v2 = true;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        entries.push(if v2 { unescape(line) } else { line.to_string() });
    }
    let excess = entries.len().saturating_sub(MAX_ENTRIES);
    entries.drain(..excess);
    entries
}

/// The input history file of one REPL run.
#[derive(Debug)]
pub struct InputHistory {
    path: PathBuf,
    /// Whether entries are still saved (false after a warning).
    saving: bool,
}

/// What [`InputHistory::open`] found.
#[derive(Debug)]
pub struct Loaded {
    pub history: InputHistory,
    /// The entries to offer, oldest first.
    pub entries: Vec<String>,
    /// Why the file cannot be used, if it cannot.
    pub warning: Option<String>,
}

impl InputHistory {
    /// Reads the history at `path` (missing: empty), trimming the file when
    /// it holds more than [`MAX_ENTRIES`].
    pub fn open(path: &Path) -> Loaded {
        let history = |saving| InputHistory {
            path: path.to_path_buf(),
            saving,
        };
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(open_flags())
            .open(path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Loaded {
                    history: history(true),
                    entries: Vec::new(),
                    warning: None,
                };
            }
            Err(e) => {
                return Loaded {
                    history: history(false),
                    entries: Vec::new(),
                    warning: Some(open_error(path, &e)),
                };
            }
        };
        match read_and_trim(path, file) {
            Ok(entries) => Loaded {
                history: history(true),
                entries,
                warning: None,
            },
            Err(warning) => Loaded {
                history: history(false),
                entries: Vec::new(),
                warning: Some(warning),
            },
        }
    }

    /// Appends one entry. The first failure is returned as a warning and
    /// ends saving for this run.
    pub fn append(&mut self, entry: &str) -> Result<(), String> {
        if !self.saving {
            return Ok(());
        }
        let result = append_entry(&self.path, entry);
        if result.is_err() {
            self.saving = false;
        }
        result
    }
}

/// Reads the file's newest entries under its lock, and rewrites it with
/// them alone when it holds more than [`MAX_ENTRIES`] (or more bytes than
/// are read).
fn read_and_trim(path: &Path, mut file: File) -> Result<Vec<String>, String> {
    let meta = check_file(path, &file)?;
    let read_error = |e: io::Error| unusable(path, &format!("cannot read it: {e}"));
    // Appenders wait meanwhile; a trim below renames under this lock.
    file.lock().map_err(read_error)?;
    let partial = meta.len() > MAX_READ_BYTES;
    if partial {
        file.seek(SeekFrom::Start(meta.len() - MAX_READ_BYTES))
            .map_err(read_error)?;
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_READ_BYTES)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let text = String::from_utf8_lossy(&bytes);
    let entries = parse(&text, partial);
    let lines = text.split('\n').filter(|l| !l.is_empty()).count();
    if partial || lines > MAX_ENTRIES + 1 {
        // Failing to trim loses nothing: the file just stays long.
        let _ = rewrite(path, &entries);
    }
    Ok(entries)
}

/// Replaces the file with `entries`: a new file created exclusively (never
/// through a link) next to it, then renamed over it (a rename replaces the
/// name, never a file a link points to).
fn rewrite(path: &Path, entries: &[String]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.trim_start_matches('.'),
        std::process::id()
    ));
    // A stale temp of an earlier process with this pid (a link is removed,
    // not followed).
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(open_flags())
            .open(&tmp)?;
        let mut text = format!("{V2}\n");
        for entry in entries {
            text.push_str(&escape(entry));
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Appends `entry` to the file at `path`, creating it 0600. Under the lock,
/// the file must still be the one at `path` (a trim may have renamed a new
/// one over it meanwhile); otherwise it is opened again.
fn append_entry(path: &Path, entry: &str) -> Result<(), String> {
    let failed = |e: io::Error| format!("cannot save the input history to {}: {e}", path.display());
    for _ in 0..3 {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .custom_flags(open_flags())
            .open(path)
            .map_err(|e| open_error(path, &e))?;
        check_file(path, &file)?;
        file.lock().map_err(failed)?;
        let meta = check_file(path, &file)?;
        let current = fs::symlink_metadata(path).map_err(failed)?;
        if (current.dev(), current.ino()) != (meta.dev(), meta.ino()) {
            continue;
        }
        if meta.permissions().mode() & 0o077 != 0 {
            // This user's own file, in this user's memory directory.
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
                .map_err(failed)?;
        }
        let mut line = if meta.len() == 0 {
            format!("{V2}\n")
        } else {
            String::new()
        };
        line.push_str(&escape(entry));
        line.push('\n');
        return file.write_all(line.as_bytes()).map_err(failed);
    }
    Err(unusable(path, "it keeps being replaced by another process"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_line_feeds_and_backslashes() {
        for entry in [
            "plain",
            "two\nlines",
            "back\\slash",
            "\\n literally",
            "end\\",
        ] {
            assert_eq!(unescape(&escape(entry)), entry);
            assert!(!escape(entry).contains('\n'));
        }
    }

    #[test]
    fn rustylines_files_are_read_old_and_new() {
        assert_eq!(
            parse("#V2\none\ntwo\\nlines\n", false),
            ["one", "two\nlines"]
        );
        // Before #V2, entries were written as they were.
        assert_eq!(parse("old\\n\n\nsecond\n", false), ["old\\n", "second"]);
        // A read that starts mid-file drops the cut first line.
        assert_eq!(parse("t line\nwhole\n", true), ["whole"]);
    }

    #[test]
    fn the_history_keeps_its_newest_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".input-history");
        let mut text = String::from("#V2\n");
        for i in 0..MAX_ENTRIES + 5 {
            text.push_str(&format!("entry {i}\n"));
        }
        fs::write(&path, text).unwrap();
        let loaded = InputHistory::open(&path);
        assert!(loaded.warning.is_none());
        assert_eq!(loaded.entries.len(), MAX_ENTRIES);
        assert_eq!(loaded.entries[0], "entry 5");
        // The file was trimmed to them, and appends go on after them.
        let mut history = loaded.history;
        history.append("new\none").unwrap();
        let again = InputHistory::open(&path).entries;
        assert_eq!(again.len(), MAX_ENTRIES);
        assert_eq!(again[0], "entry 6");
        assert_eq!(again.last().unwrap(), "new\none");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_link_at_the_path_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "precious\n").unwrap();
        let path = dir.path().join(".input-history");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let mut loaded = InputHistory::open(&path);
        assert!(loaded.entries.is_empty());
        assert!(loaded.warning.unwrap().contains("symbolic link"));
        loaded.history.append("secret").unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "precious\n");
        // A dangling link: nothing is created where it points.
        let missing = dir.path().join("missing");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(&missing, &dangling).unwrap();
        let error = append_entry(&dangling, "secret").unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(!missing.exists());
    }
}
