//! File operations with the store's durability and privacy rules built in:
//! private modes (0700 directories, 0600 files), append-then-fsync, atomic
//! replace (temp file, fsync, rename, fsync the directory) and the advisory
//! session lock. Nothing here knows about records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::StoreError;

/// Mode of the memory directory: only the user may list or enter it.
const DIR_MODE: u32 = 0o700;
/// Mode of every file memchat creates.
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700. An existing memory
/// directory that others can read (a fresh git checkout's `memory/` is 0755)
/// is narrowed to 0700: it holds conversations.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o077 != 0 {
                // Not ours to change if it fails (another owner): the files
                // inside are 0600 regardless.
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE));
            }
            return Ok(());
        }
        Ok(_) => {
            return Err(StoreError::io(
                "the memory directory is not a directory:",
                dir,
                io::Error::from(io::ErrorKind::NotADirectory),
            ));
        }
        Err(_) => {}
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| StoreError::io("cannot create the memory directory", dir, e))?;
    // The umask may have narrowed the mode; it cannot have widened it, but be
    // exact so the promise "0700" holds whatever the umask.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| StoreError::io("cannot set the mode of", dir, e))
}

/// Opens `path` for appending, creating it 0600 if needed. Returns the file and
/// whether it was created (the caller then fsyncs the directory).
pub fn open_append(path: &Path) -> Result<(File, bool), StoreError> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| StoreError::io("cannot open", path, e))?;
    Ok((file, !existed))
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

/// Removes temp files a crash left behind mid-rewrite (`.NAME.jsonl.tmp-PID`).
/// Called with the session lock held, so no rewrite is in flight.
pub fn remove_stale_temp_files(dir: &Path, log_file_name: &str) {
    let prefix = format!(".{log_file_name}.tmp-");
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically: a reader (or a crash) sees the old
/// file or the new one, never a mix.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| StoreError::io("cannot create", &tmp, e))?;
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

/// Makes a directory's entries (a new or renamed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("cannot flush the directory", dir, e))
}

/// Writes a new private file in one go (quarantine copies, exports).
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| StoreError::io("cannot create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("cannot write to", path, e))
}

/// Takes the exclusive advisory lock on `path`, waiting up to `wait`.
/// The lock lives as long as the returned file.
pub fn lock_exclusive(path: &Path, session: &str, wait: Duration) -> Result<File, StoreError> {
    let (file, _) = open_append(path)?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
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
    fn an_existing_open_directory_is_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("memory");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_second_lock_waits_then_fails_naming_the_session() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.lock");
        let _held = lock_exclusive(&path, "s", Duration::from_secs(1)).unwrap();
        let err = lock_exclusive(&path, "s", Duration::from_millis(120)).unwrap_err();
        assert!(err.to_string().contains("\"s\" is in use"), "{err}");
    }
}
