//! Composing a message in the user's editor (`/edit`, `/edit last`, Ctrl-X
//! Ctrl-E at the prompt): `$VISUAL`, else `$EDITOR`, else `vi`, run through
//! `sh` as git does (so `EDITOR="code --wait"` works), on a private temporary
//! file (0600, created new, removed afterwards) that starts with the text to
//! edit. What the file holds when the editor exits is the message; an empty
//! file, or an editor that fails, sends nothing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

/// The editor command: `$VISUAL`, `$EDITOR`, `vi`.
pub fn editor_command() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string())
}

/// A temporary file of our own: created new (never an existing file, never
/// through a symlink), readable by the user alone.
fn private_file(initial: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            "memchat-{}-{nanos}-{attempt}.md",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(initial.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create a file in {}: {e}", dir.display())),
        }
    }
    Err(format!("cannot create a file in {}", dir.display()))
}

/// Opens the editor on `initial`; the text it leaves, without trailing
/// blank lines, or `None` when it leaves nothing. An editor that cannot be
/// started or exits with a failure is an error (nothing is sent).
pub fn compose(initial: &str) -> Result<Option<String>, String> {
    let path = private_file(initial)?;
    let editor = editor_command();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(&path)
        .status();
    let text = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return Err(format!(
                "the editor ({editor}) failed ({status}); nothing was sent"
            ));
        }
        Err(e) => return Err(format!("cannot run the editor ({editor}): {e}")),
    }
    let text = text.map_err(|e| format!("cannot read what the editor wrote: {e}"))?;
    let text = String::from_utf8(text)
        .map_err(|_| "the edited text is not UTF-8; nothing was sent".to_string())?;
    let text = text.trim_end();
    Ok((!text.trim().is_empty()).then(|| text.to_string()))
}
