//! The REPL's Tab completion and its Ctrl-X Ctrl-E binding. Tab completes
//! the in-chat commands, model names after `/model` (from the last
//! `memchat models` or `/models` listing), session names after `/session`,
//! role names after `/role`, paths after `/file`, and the words `/edit` and
//! `/code` take. Ctrl-X Ctrl-E (as in bash)
//! accepts the line as a draft for the editor: the REPL then opens
//! `$VISUAL`/`$EDITOR` on it and sends what the editor leaves.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustyline::{Cmd, ConditionalEventHandler, Event, EventContext, KeyEvent, RepeatCount};

use crate::{catalog, commands, memory};

/// The line Ctrl-X Ctrl-E handed to the editor, if it was pressed.
#[derive(Clone, Default)]
pub struct EditRequest(Arc<Mutex<Option<String>>>);

impl EditRequest {
    /// The draft, if Ctrl-X Ctrl-E accepted the last line (and clears it).
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl ConditionalEventHandler for EditRequest {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext<'_>) -> Option<Cmd> {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(ctx.line().to_string());
        }
        Some(Cmd::AcceptLine)
    }
}

/// The key sequence that opens the editor: Ctrl-X Ctrl-E.
pub fn edit_keys() -> Event {
    Event::KeySeq(vec![KeyEvent::ctrl('X'), KeyEvent::ctrl('E')])
}

/// Completion candidates for `line` with the cursor at `pos`: where the
/// replaced word starts, and the words that may replace it.
pub fn candidates(
    line: &str,
    pos: usize,
    memory_dir: &Path,
    roles: &[String],
) -> (usize, Vec<String>) {
    let before = &line[..pos];
    if !before.starts_with('/') || before.starts_with("//") {
        return (pos, Vec::new());
    }
    let Some((command, arg)) = before.split_once(' ') else {
        let prefix = &before[1..];
        let names = commands::COMMANDS
            .iter()
            .map(|c| c.name)
            .filter(|n| n.starts_with(prefix))
            .map(|n| format!("/{n}"))
            .collect();
        return (0, names);
    };
    if arg.contains(' ') {
        return (pos, Vec::new());
    }
    let words: Vec<String> = match command {
        "/model" => catalog::load(memory_dir)
            .map(|l| l.models.into_iter().map(|m| m.id).collect())
            .unwrap_or_default(),
        "/session" => memory::list_session_names(memory_dir).unwrap_or_default(),
        "/role" => roles.to_vec(),
        "/file" => paths(arg),
        "/edit" => vec!["last".to_string()],
        "/code" => vec!["copy".to_string()],
        _ => Vec::new(),
    };
    let start = pos - arg.len();
    (
        start,
        words.into_iter().filter(|w| w.starts_with(arg)).collect(),
    )
}

/// The paths that continue `arg`: the entries of its directory (the
/// working directory when it names none), directories with a `/`, hidden
/// ones only when `arg`'s last part starts with a dot.
fn paths(arg: &str) -> Vec<String> {
    let (dir, prefix) = match arg.rfind('/') {
        Some(at) => (&arg[..=at], &arg[at + 1..]),
        None => ("", arg),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let shown =
                name.starts_with(prefix) && (prefix.starts_with('.') || !name.starts_with('.'));
            let slash = if e.path().is_dir() { "/" } else { "" };
            shown.then(|| format!("{dir}{name}{slash}"))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_their_words_complete() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let (start, words) = candidates("/mo", 3, dir, &[]);
        assert_eq!(start, 0);
        assert_eq!(words, ["/model", "/models"]);
        assert_eq!(
            candidates("/edit l", 7, dir, &[]),
            (6, vec!["last".to_string()])
        );
        assert!(candidates("hello /mo", 9, dir, &[]).1.is_empty());
        assert!(
            candidates("/model x", 8, dir, &[]).1.is_empty(),
            "no listing yet"
        );
        let listing = catalog::Listing {
            server: "s".into(),
            at: "t".into(),
            models: ["llama3", "llava", "qwen"]
                .iter()
                .map(|id| crate::client::listing::ListedModel {
                    id: id.to_string(),
                    window: None,
                })
                .collect(),
        };
        catalog::save(dir, &listing).unwrap();
        assert_eq!(
            candidates("/model ll", 9, dir, &[]),
            (7, vec!["llama3".to_string(), "llava".to_string()])
        );
    }

    #[test]
    fn roles_and_paths_complete() {
        let roles = ["reviewer".to_string(), "terse".to_string()];
        let dir = tempfile::tempdir().unwrap();
        let (start, words) = candidates("/role r", 7, dir.path(), &roles);
        assert_eq!((start, words), (6, vec!["reviewer".to_string()]));
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("notes.md"), "").unwrap();
        std::fs::write(dir.path().join(".hidden"), "").unwrap();
        let base = format!("{}/", dir.path().display());
        let line = format!("/file {base}");
        let (start, words) = candidates(&line, line.len(), dir.path(), &roles);
        assert_eq!(start, 6);
        assert_eq!(words, [format!("{base}notes.md"), format!("{base}src/")]);
        let line = format!("/file {base}.h");
        let (_, words) = candidates(&line, line.len(), dir.path(), &roles);
        assert_eq!(words, [format!("{base}.hidden")]);
    }
}
