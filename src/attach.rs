//! Attachments: text files sent with a message (`-f FILE`, `/file PATH`).
//!
//! A file is attached whole, as UTF-8 text; a binary file (a NUL byte, or
//! bytes that are not UTF-8) is refused by name, since a model reads text.
//! A directory attaches the text files directly inside it, sorted by name:
//! not its subdirectories (name them to attach them: a recursive walk of a
//! project would attach build output and dependencies), not hidden files,
//! and binary files in it are skipped with a notice rather than refusing the
//! rest. A directory with more than [`MAX_DIR_FILES`] files is refused.
//!
//! The attachments wait ([`Pending`]) and go with the next message, after
//! it, each under a header naming the file and inside a code fence longer
//! than any backtick run in the file. The message with its attachments is
//! one user message: it must fit the one-message cap (4 MiB) and the budget
//! `B`, or it is refused before anything is stored, saying how many tokens
//! each attachment takes and how many fit.

use std::io::Read;
use std::path::Path;

use crate::memory::format::MAX_CONTENT_BYTES;
use crate::tokens::TokenCounter;

/// The most files a directory may attach at once: enough for a module or a
/// folder of notes; past it the user is better served naming what matters.
pub const MAX_DIR_FILES: usize = 100;

/// One attached file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The path as the user gave it (a directory's files under it).
    pub name: String,
    pub text: String,
}

/// What reading a path gave: the attachments, and the files of a directory
/// that were skipped as binary.
#[derive(Debug, Default)]
pub struct Found {
    pub attachments: Vec<Attachment>,
    pub skipped: Vec<String>,
}

/// Reads `path`: a text file, or a directory's text files.
pub fn read(path: &Path) -> Result<Found, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot attach {}: {e}", show(path)))?;
    if !meta.is_dir() {
        return Ok(Found {
            attachments: vec![read_file(path)?],
            skipped: Vec::new(),
        });
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", show(path)))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", show(path)))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    if files.len() > MAX_DIR_FILES {
        return Err(format!(
            "{} holds {} files, more than the {MAX_DIR_FILES} a directory may attach at once; \
             attach the files you need",
            show(path),
            files.len()
        ));
    }
    if files.is_empty() {
        return Err(format!("{} holds no files to attach", show(path)));
    }
    files.sort();
    let mut read = Found::default();
    for file in files {
        match read_file(&file) {
            Ok(attachment) => read.attachments.push(attachment),
            Err(_) if is_binary(&file) => read.skipped.push(show(&file)),
            Err(e) => return Err(e),
        }
    }
    if read.attachments.is_empty() {
        return Err(format!("{} holds no text files", show(path)));
    }
    Ok(read)
}

fn show(path: &Path) -> String {
    crate::visible::text(&path.display().to_string())
}

/// One file as text, read no further than the one-message cap.
fn read_file(path: &Path) -> Result<Attachment, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot attach {}: {e}", show(path)))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONTENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", show(path)))?;
    if bytes.len() > MAX_CONTENT_BYTES {
        return Err(format!(
            "{} is larger than {MAX_CONTENT_BYTES} bytes, the most one message may hold",
            show(path)
        ));
    }
    let text = text_of(bytes).map_err(|why| {
        format!(
            "{} is not a text file ({why}); memchat attaches text only",
            show(path)
        )
    })?;
    Ok(Attachment {
        name: path.display().to_string(),
        text,
    })
}

/// The bytes as text, or why they are not.
fn text_of(bytes: Vec<u8>) -> Result<String, String> {
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(format!("a NUL byte at offset {at}"));
    }
    String::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()))
}

/// Whether a file failed as text because of its bytes (not because it could
/// not be read at all).
fn is_binary(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| text_of(bytes).is_err())
}

/// Attachments waiting for the next message.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    files: Vec<Attachment>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    pub fn files(&self) -> &[Attachment] {
        &self.files
    }
    pub fn add(&mut self, attachments: Vec<Attachment>) {
        self.files.extend(attachments);
    }
    /// Drops the newest `n` (a `/file` that did not fit).
    pub fn drop_newest(&mut self, n: usize) {
        self.files.truncate(self.files.len().saturating_sub(n));
    }
    pub fn clear(&mut self) {
        self.files.clear();
    }

    /// The message with the attachments after it.
    pub fn compose(&self, message: &str) -> String {
        let mut out = message.trim_end().to_string();
        for file in &self.files {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            let fence = "`".repeat(longest_backtick_run(&file.text).max(2) + 1);
            out.push_str(&format!(
                "File `{}`:\n{fence}\n{}\n{fence}",
                file.name,
                file.text.trim_end_matches('\n')
            ));
        }
        out
    }

    /// Each file's tokens as it is sent: header, fence and text.
    pub fn sizes(&self, counter: &TokenCounter) -> Vec<(String, u64)> {
        self.files
            .iter()
            .map(|f| {
                let alone = Pending {
                    files: vec![f.clone()],
                };
                (
                    f.name.clone(),
                    u64::from(counter.count_raw(&alone.compose(""))),
                )
            })
            .collect()
    }

    /// Why a message with these attachments cannot be sent: it needs
    /// `needed` tokens with the system prompt, and `cap` is the most a
    /// request may carry. Counts each attachment, and says how many tokens
    /// of attachments would fit beside the rest.
    pub fn too_large(&self, counter: &TokenCounter, needed: u64, cap: u64) -> String {
        let sizes = self.sizes(counter);
        let attached: u64 = sizes.iter().map(|(_, n)| n).sum();
        let rest = needed.saturating_sub(attached);
        let room = cap.saturating_sub(rest);
        let each = sizes
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "the attachments are {attached} tokens ({each}); with the message and the system \
             prompt the request would need {needed} tokens, but a request may carry at most \
             {cap}, so about {room} tokens of attachments fit; nothing was saved. Attach less \
             (in the chat, /file --clear drops what is attached), or use a model with a larger \
             window"
        )
    }
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> Attachment {
        Attachment {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn files_follow_the_message_each_named_and_fenced_past_its_backticks() {
        let mut pending = Pending::default();
        pending.add(vec![file("a.md", "use ```rust\n"), file("b.txt", "plain")]);
        assert_eq!(
            pending.compose("Review these.\n"),
            "Review these.\n\nFile `a.md`:\n````\nuse ```rust\n````\n\nFile `b.txt`:\n```\nplain\n```"
        );
        pending.drop_newest(1);
        assert_eq!(pending.compose(""), "File `a.md`:\n````\nuse ```rust\n````");
    }

    #[test]
    fn binary_bytes_are_not_text() {
        assert!(
            text_of(b"a\0b".to_vec())
                .unwrap_err()
                .contains("NUL byte at offset 1")
        );
        assert!(
            text_of(vec![b'a', 0xff])
                .unwrap_err()
                .contains("not UTF-8 at byte 1")
        );
        assert_eq!(text_of("é".as_bytes().to_vec()).unwrap(), "é");
    }

    #[test]
    fn a_directory_gives_its_text_files_sorted_and_skips_binaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.txt"), "bee").unwrap();
        std::fs::write(dir.path().join("a.txt"), "ay").unwrap();
        std::fs::write(dir.path().join("c.bin"), [0u8, 1, 2]).unwrap();
        std::fs::write(dir.path().join(".hidden"), "no").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/d.txt"), "not recursive").unwrap();
        let read = read(dir.path()).unwrap();
        let texts: Vec<&str> = read.attachments.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(texts, ["ay", "bee"]);
        assert_eq!(read.skipped.len(), 1);
        assert!(read.skipped[0].ends_with("c.bin"));
        let e = super::read(&dir.path().join("c.bin")).unwrap_err();
        assert!(
            e.contains("is not a text file (a NUL byte at offset 0)"),
            "{e}"
        );
    }
}
