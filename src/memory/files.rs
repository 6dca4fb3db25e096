//! File operations with the store's durability and privacy rules built in:
//! private modes (0700 directories, 0600 files), no symlink ever followed for
//! a session file, the memory directory's owner and mode checked before use,
//! append-then-fsync, atomic replace (temp file, fsync, rename, fsync the
//! directory) and the advisory session lock. Nothing here knows about records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::StoreError;

/// Mode of a memory directory memchat creates: only the user may enter it.
const DIR_MODE: u32 = 0o700;
/// Mode of every file memchat creates.
const FILE_MODE: u32 = 0o600;

/// `O_NOFOLLOW`: opening a symlink fails with `ELOOP` instead of following it.
fn no_follow() -> i32 {
    // The flag is a small positive bit on every Unix; the cast cannot change it.
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// An I/O error on a session file, with a symlink named as such.
pub fn io_error(action: &'static str, path: &Path, e: io::Error) -> StoreError {
    let is_link = e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
        || fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        StoreError::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        StoreError::io(action, path, e)
    }
}

/// The memory directory as found: missing, or usable with these warnings.
#[derive(Debug)]
pub enum DirCheck {
    Missing,
    Usable { warnings: Vec<String> },
}

/// Checks that an existing memory directory is one memchat may use: a
/// directory owned by this user that nobody else can write to. (A directory
/// that others can write to lets them forge the history the model is sent, or
/// plant files memchat would then write into.) One that others can read is
/// used, with a warning: its mode is the user's to change, not memchat's.
pub fn check_dir(dir: &Path) -> Result<DirCheck, StoreError> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DirCheck::Missing),
        Err(e) => {
            return Err(StoreError::io(
                "cannot inspect the memory directory",
                dir,
                e,
            ));
        }
    };
    if !meta.is_dir() {
        return Err(StoreError::io(
            "the memory directory is not a directory:",
            dir,
            io::Error::from(io::ErrorKind::NotADirectory),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(StoreError::NotYours {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StoreError::OpenToOthers {
            path: dir.to_path_buf(),
            mode,
        });
    }
    let mut warnings = Vec::new();
    if mode & 0o055 != 0 {
        warnings.push(format!(
            "the memory directory {} can be listed by other users (mode {mode:04o}); memchat \
             does not change the mode of a directory it did not create (`chmod 700 {}` makes it \
             private; the files in it are 0600 either way)",
            dir.display(),
            dir.display()
        ));
    }
    Ok(DirCheck::Usable { warnings })
}

/// Makes sure the memory directory exists and may be used: a missing one is
/// created (with missing parents) mode 0700; an existing one is checked by
/// [`check_dir`] and never has its mode changed. Returns warnings to show.
pub fn prepare_dir(dir: &Path) -> Result<Vec<String>, StoreError> {
    if let DirCheck::Usable { warnings } = check_dir(dir)? {
        return Ok(warnings);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| StoreError::io("cannot create the memory directory", dir, e))?;
    // The umask may have narrowed the mode; it cannot have widened it, but be
    // exact so the promise "0700" holds whatever the umask. This directory
    // is one memchat just created, so its mode is memchat's to set.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| StoreError::io("cannot set the mode of", dir, e))?;
    match check_dir(dir)? {
        DirCheck::Usable { warnings } => Ok(warnings),
        DirCheck::Missing => Err(StoreError::io(
            "the memory directory vanished after it was created:",
            dir,
            io::Error::from(io::ErrorKind::NotFound),
        )),
    }
}

/// Opens a session file for reading without following a symlink. `None`
/// when it does not exist.
pub fn open_read(path: &Path) -> Result<Option<File>, StoreError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(no_follow())
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read", path, e)),
    }
}

/// Opens `path` for appending, creating it 0600 if needed, never through a
/// symlink. Returns the file and whether it was created (the caller then
/// fsyncs the directory).
pub fn open_append(path: &Path) -> Result<(File, bool), StoreError> {
    let existing = OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(no_follow())
        .open(path);
    match existing {
        Ok(file) => return Ok((file, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot open", path, e)),
    }
    // create_new: a symlink (even a dangling one) planted in between is
    // refused, never followed to create a file elsewhere.
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(no_follow())
        .open(path)
        .map_err(|e| io_error("cannot create", path, e))?;
    Ok((file, true))
}

/// Writes `bytes` with one `write_all` and makes them durable with `sync_data`.
/// If the write fails part-way (disk full, file size limit), the file is cut
/// back to its previous length so it stays as it was.
pub fn append_durably(file: &mut File, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let before = file
        .metadata()
        .map_err(|e| StoreError::io("cannot inspect", path, e))?
        .len();
    if let Err(e) = file.write_all(bytes) {
        let _ = file.set_len(before);
        return Err(StoreError::io("cannot write to", path, e));
    }
    file.sync_data()
        .map_err(|e| StoreError::io("cannot flush to disk", path, e))
}

/// Whether `file_name` is a temp file of [`replace_atomically`] for the file
/// named `target`: `.TARGET.tmp-PID`, nothing else.
fn is_temp_of(file_name: &str, target: &str) -> bool {
    file_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(target))
        .and_then(|rest| rest.strip_prefix(".tmp-"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes temp files a crash left behind mid-rewrite of `target` (a file
/// name in `dir`). Called with the session lock held, so no rewrite is in
/// flight.
pub fn remove_stale_temp_files(dir: &Path, target: &str) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if is_temp_of(&entry.file_name().to_string_lossy(), target) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically: a reader (or a crash) sees the old
/// file or the new one, never a mix. `rename` replaces a symlink at `path`
/// itself, never what it points to.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    // A stale temp of an earlier process with our pid, or a planted link.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(no_follow())
            .open(&tmp)
            .map_err(|e| io_error("cannot create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| StoreError::io("cannot write to", &tmp, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("cannot flush to disk", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StoreError::io("cannot replace", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a directory's entries (a new, renamed or removed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("cannot flush the directory", dir, e))
}

/// Creates a new private file (never through a symlink) and returns it open
/// for writing.
pub fn create_new_private(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(no_follow())
        .open(path)
        .map_err(|e| io_error("cannot create", path, e))
}

/// Writes a new private file in one go (quarantine copies).
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = create_new_private(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("cannot write to", path, e))
}

/// Copies the byte ranges `(offset, len)` of `source` (each followed by a
/// newline if `newline`) into a new private file at `target`, in bounded
/// chunks: a line of any size is quarantined without being read into memory
/// whole.
pub fn copy_ranges_to_new(
    source: &mut File,
    source_path: &Path,
    ranges: &[(u64, u64)],
    target: &Path,
    newline: bool,
) -> Result<(), StoreError> {
    let mut out = create_new_private(target)?;
    for &(offset, len) in ranges {
        source
            .seek(SeekFrom::Start(offset))
            .map_err(|e| StoreError::io("cannot read", source_path, e))?;
        let copied = io::copy(&mut Read::by_ref(source).take(len), &mut out)
            .map_err(|e| StoreError::io("cannot write to", target, e))?;
        if copied != len {
            return Err(StoreError::io(
                "cannot read",
                source_path,
                io::Error::from(io::ErrorKind::UnexpectedEof),
            ));
        }
        if newline {
            out.write_all(b"\n")
                .map_err(|e| StoreError::io("cannot write to", target, e))?;
        }
    }
    out.sync_all()
        .map_err(|e| StoreError::io("cannot flush to disk", target, e))
}

/// Whether the open `file` is still the file at `path` (same device and
/// inode, `path` not a symlink).
fn is_still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Takes the exclusive advisory lock on `path`, waiting up to `wait`.
/// The lock lives as long as the returned file.
///
/// A lock file may be unlinked by its holder (`delete`, `rename`) while
/// others wait on it; whoever then gets that lock holds a lock on a file no
/// new process can find. So after acquiring, the lock is re-validated: if
/// `path` no longer names the locked file, it is dropped and the lock taken
/// again on whatever `path` names now. Two processes can thus never both
/// hold "the" lock of one session.
pub fn lock_exclusive(path: &Path, session: &str, wait: Duration) -> Result<File, StoreError> {
    let start = Instant::now();
    loop {
        let (file, _) = open_append(path)?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        return Err(StoreError::Locked {
                            session: session.to_string(),
                            waited_secs: wait.as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(StoreError::io("cannot lock", path, e));
                }
            }
        }
        if is_still_at(&file, path) {
            return Ok(file);
        }
    }
}

/// Sets `path`'s modification time to `at` (its access time is left as it
/// is), never through a symlink: when a session was last used, carried over
/// by `memchat migrate`.
pub fn set_modified(path: &Path, at: std::time::SystemTime) -> Result<(), StoreError> {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(since.subsec_nanos()),
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_error("cannot set the time of", path, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        prepare_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let log = dir.join("x.jsonl");
        let (mut file, created) = open_append(&log).unwrap();
        assert!(created);
        append_durably(&mut file, &log, b"hello\n").unwrap();
        assert_eq!(
            fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
        replace_atomically(&log, b"new\n").unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"new\n");
        assert_eq!(
            fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn an_existing_directory_keeps_its_mode_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("memory");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let warnings = prepare_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(warnings[0].contains("chmod 700"), "{warnings:?}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let err = prepare_dir(&dir).unwrap_err();
        assert!(err.to_string().contains("other users can write"), "{err}");
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
    }

    #[test]
    fn temp_files_are_recognised_exactly() {
        assert!(is_temp_of(".a.jsonl.tmp-12", "a.jsonl"));
        assert!(!is_temp_of(".a.jsonl.tmp-", "a.jsonl"));
        assert!(!is_temp_of(".a.jsonl.tmp-1.x", "a.jsonl"));
        assert!(!is_temp_of(".a.b.jsonl.tmp-1", "a.jsonl"));
    }

    #[test]
    fn a_second_lock_waits_then_fails_naming_the_session() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.lock");
        let _held = lock_exclusive(&path, "s", Duration::from_secs(1)).unwrap();
        let err = lock_exclusive(&path, "s", Duration::from_millis(120)).unwrap_err();
        assert!(err.to_string().contains("\"s\" is in use"), "{err}");
    }

    #[test]
    fn a_lock_whose_file_was_unlinked_is_taken_again_on_the_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.lock");
        let held = lock_exclusive(&path, "s", Duration::from_secs(1)).unwrap();
        fs::remove_file(&path).unwrap();
        let newcomer = lock_exclusive(&path, "s", Duration::from_secs(1)).unwrap();
        drop(held);
        assert!(is_still_at(&newcomer, &path));
    }
}
