//! The in-chat commands of daily use: the server's models (`/models`), what
//! the session used (`/usage`), its title (`/title`), the last reply reused
//! (`/copy`, `/code`), and a message composed in the editor (`/edit`,
//! `/edit last`).

use std::io::Write;

use super::{Command, print};
use crate::catalog;
use crate::chat::{Engine, TurnError, TurnReport};
use crate::clipboard;
use crate::codeblocks;
use crate::config::{Backend, Config};
use crate::editor;
use crate::interrupt::Interrupt;
use crate::memory::format::{Record, Role, SessionSettings};
use crate::render::{self, Output};
use crate::setup;
use crate::usage::UsageTotals;

/// Parses the arguments of `/code`: `[N] [copy]`.
pub fn parse_code(rest: &str) -> Result<Command, String> {
    let mut block = None;
    let mut copy = false;
    for word in rest.split_whitespace() {
        match word {
            "copy" if !copy => copy = true,
            n if block.is_none() && !copy => match n.parse::<usize>() {
                Ok(n) if n > 0 => block = Some(n),
                _ => return Err(format!("/code takes a block number (1, 2, ...), not {n:?}")),
            },
            other => return Err(format!("/code takes [N] [copy], not {other:?}")),
        }
    }
    Ok(Command::Code { block, copy })
}

/// `/models`: asks the server (Ctrl-C stops the wait), keeps the listing
/// for completion and windows, and shows it.
pub async fn models(
    engine: &Engine,
    config: &mut Config,
    out: &mut dyn Write,
    interrupt: &mut Interrupt,
) -> Result<(), TurnError> {
    let listing = tokio::select! {
        listing = setup::list_models(config) => listing?,
        () = interrupt.wait() => {
            return print(out, "models: interrupted\n");
        }
    };
    print(out, &catalog::table(&listing, &engine.model_name()))?;
    if matches!(config.backend, Backend::Mock { .. }) {
        print(out, setup::MOCK_MODELS_NOTE)?;
    }
    Ok(())
}

/// The whole conversation of the engine's session: archive and active log.
fn whole_conversation(engine: &Engine) -> Result<Vec<Record>, TurnError> {
    let session = engine.session();
    let mut records = session.read_archive()?;
    records.extend(session.system().cloned().map(Record::Message));
    records.extend(session.summary().cloned().map(Record::Summary));
    records.extend(session.messages().iter().cloned().map(Record::Message));
    records.sort_by_key(Record::seq);
    records.dedup_by_key(|r| r.seq());
    Ok(records)
}

/// `/usage`: the session's use as the server reported it.
pub fn usage(engine: &Engine, config: &Config, out: &mut dyn Write) -> Result<(), TurnError> {
    let totals = UsageTotals::of(&whole_conversation(engine)?, &config.prices);
    print(
        out,
        &format!(
            "session   {}\n{}",
            engine.session().name(),
            totals.describe()
        ),
    )
}

/// `/title`: the session's title (set, else its first message); `/title
/// TEXT` sets it, durably, in the session's settings record.
pub fn title(
    engine: &mut Engine,
    text: Option<String>,
    out: &mut dyn Write,
) -> Result<(), TurnError> {
    let Some(text) = text else {
        let settings = engine.session().settings().clone();
        let shown = crate::titles::title_of(&settings, &whole_conversation(engine)?);
        let note = if settings.title.is_some() {
            ""
        } else {
            " (its first message; /title TEXT sets one)"
        };
        return print(out, &format!("title: {shown}{note}\n"));
    };
    let title = crate::titles::checked(&text).map_err(TurnError::Refused)?;
    engine.record_settings(&SessionSettings {
        title: Some(title.clone()),
        ..SessionSettings::default()
    })?;
    print(out, &format!("title: {}\n", crate::visible::text(&title)))
}

/// The newest reply of the active history.
fn last_reply(engine: &Engine) -> Result<&str, TurnError> {
    engine
        .session()
        .messages()
        .iter()
        .rev()
        .find(|m| m.role == Role::Assistant)
        .map(|m| m.content.as_str())
        .ok_or_else(|| TurnError::Refused("there is no reply yet".into()))
}

/// Code block `n` (1-based) of the last reply.
fn block(engine: &Engine, n: usize) -> Result<String, TurnError> {
    let blocks = codeblocks::code_blocks(last_reply(engine)?);
    blocks.get(n - 1).map(|b| b.code.clone()).ok_or_else(|| {
        TurnError::Refused(format!(
            "the last reply has {}; /code lists them",
            render::counted(blocks.len() as u64, "code block")
        ))
    })
}

/// `/copy` (`what` is `None`: the whole reply) and `/code [N] copy` (`Some`:
/// block N, or every block).
pub fn copy(
    engine: &Engine,
    what: Option<Option<usize>>,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    let text = match what {
        None => last_reply(engine)?.to_string(),
        Some(Some(n)) => block(engine, n)?,
        Some(None) => {
            let reply = last_reply(engine)?;
            if codeblocks::code_blocks(reply).is_empty() {
                return Err(TurnError::Refused(
                    "the last reply has no code block; /copy copies the whole reply".into(),
                ));
            }
            codeblocks::extract(reply)
        }
    };
    // Flushed first: OSC 52 goes to the terminal after what was printed.
    out.flush().map_err(TurnError::Output)?;
    let copied = clipboard::copy(&text, output.stdout_is_terminal()).map_err(TurnError::Refused)?;
    print(
        out,
        &format!(
            "{copied}: {}\n",
            render::counted(text.chars().count() as u64, "character")
        ),
    )
}

/// `/code`: every block of the last reply, numbered with its language;
/// `/code N`: block N as it is (to pipe or paste).
pub fn show_code(engine: &Engine, n: Option<usize>, out: &mut dyn Write) -> Result<(), TurnError> {
    if let Some(n) = n {
        return print(out, &block(engine, n)?);
    }
    let blocks = codeblocks::code_blocks(last_reply(engine)?);
    if blocks.is_empty() {
        return print(out, "the last reply has no code block\n");
    }
    for (i, b) in blocks.iter().enumerate() {
        print(out, &format!("[{}] {}\n{}", i + 1, b.language, b.code))?;
    }
    Ok(())
}

/// `/edit`: the editor composes the next message, which is sent. `/edit
/// last`: the last user message is edited and sent again; the exchange it
/// began goes to the archive first (as `/undo` moves it). Nothing is sent
/// (and nothing moved) when the editor leaves the text empty or fails.
pub async fn edit(
    engine: &mut Engine,
    last: bool,
    out: &mut dyn Write,
    interrupt: &mut Interrupt,
    output: &Output,
) -> Result<Option<TurnReport>, TurnError> {
    let (initial, edited_seq) = if last {
        let message = engine
            .session()
            .messages()
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .ok_or_else(|| TurnError::Refused("there is no message to edit yet".into()))?;
        (message.content.clone(), Some(message.seq))
    } else {
        (String::new(), None)
    };
    let Some(text) = editor::compose(&initial).map_err(TurnError::Refused)? else {
        print(out, "edit: the message is empty; nothing was sent\n")?;
        return Ok(None);
    };
    if let Some(seq) = edited_seq {
        match engine.undo_if_last(seq)? {
            Some(moved) => output.info(&format!(
                "the edited message replaces the last exchange ({} moved to the archive)",
                render::counted(moved as u64, "message")
            )),
            None => output.warn(
                "the session changed while the message was edited (another memchat wrote to \
                 it): the edited message is sent as a new one, and nothing was moved to the \
                 archive",
            ),
        }
    }
    output.info(&format!("sending: {}", crate::titles::shorten(&text)));
    let report = engine.send(&text, out, interrupt).await?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_arguments_parse() {
        let code = |block, copy| Ok(Command::Code { block, copy });
        assert_eq!(parse_code(""), code(None, false));
        assert_eq!(parse_code("2"), code(Some(2), false));
        assert_eq!(parse_code("2 copy"), code(Some(2), true));
        assert_eq!(parse_code("copy"), code(None, true));
        assert!(parse_code("0").is_err());
        assert!(parse_code("copy 2").is_err());
        assert!(parse_code("x").is_err());
    }
}
