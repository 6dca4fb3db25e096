//! `memchat repair NAME`: the way out of a corrupt active log. Every line that
//! cannot be read goes, byte for byte, to a quarantine file; every good line
//! is kept; the log is then replaced atomically. Nothing is dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::{self, Header, LineError, Record};
use super::{SessionPaths, StoreError, files};

/// What a repair did.
#[derive(Debug)]
pub struct RepairReport {
    pub kept: usize,
    /// Line numbers (1-based) that were moved out, with the reason.
    pub quarantined: Vec<(usize, String)>,
    pub quarantine_file: Option<PathBuf>,
    pub header_added: bool,
}

/// Repairs the active log of session `name` in `dir`.
pub fn repair(dir: &Path, name: &str, lock_wait: Duration) -> Result<RepairReport, StoreError> {
    let paths = SessionPaths::new(dir, name);
    if !paths.log.exists() {
        return Err(StoreError::NotFound(name.to_string()));
    }
    let _lock = files::lock_exclusive(&paths.lock, name, lock_wait)?;
    let bytes =
        std::fs::read(&paths.log).map_err(|e| StoreError::io("cannot read", &paths.log, e))?;
    let mut header: Option<Header> = None;
    let mut kept: Vec<Record> = Vec::new();
    let mut bad_lines: Vec<u8> = Vec::new();
    let mut quarantined = Vec::new();
    let mut last_seq = 0u64;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let outcome = match format::parse_line(line, header.is_none()) {
            Err(LineError::NotAHeader) => format::parse_line(line, false),
            other => other,
        };
        let reason = match outcome {
            Ok(Record::Header(h)) => {
                header = Some(h);
                continue;
            }
            Ok(record) => match record.seq() {
                Some(seq) if seq <= last_seq => format!("seq {seq} does not rise"),
                seq => {
                    last_seq = seq.unwrap_or(last_seq);
                    kept.push(record);
                    continue;
                }
            },
            Err(LineError::UnsupportedVersion(v)) => {
                // Never rewrite a newer program's file.
                return Err(StoreError::Unsupported {
                    path: paths.log.clone(),
                    reason: LineError::UnsupportedVersion(v).to_string(),
                });
            }
            Err(e) => e.to_string(),
        };
        quarantined.push((i + 1, reason));
        bad_lines.extend_from_slice(line);
        bad_lines.push(b'\n');
    }
    let header_added = header.is_none();
    let mut header = header.unwrap_or_else(|| Header::new(name, format::now()));
    header.last_seq = Some(header.last_seq.unwrap_or(0).max(last_seq));
    let quarantine_file = if quarantined.is_empty() {
        None
    } else {
        let path = paths.quarantine(name);
        files::write_new_private(&path, &bad_lines)?;
        Some(path)
    };
    if quarantine_file.is_some() || header_added {
        files::replace_atomically(&paths.log, &format::log_bytes(&header, &kept))?;
    }
    Ok(RepairReport {
        kept: kept.len(),
        quarantined,
        quarantine_file,
        header_added,
    })
}
