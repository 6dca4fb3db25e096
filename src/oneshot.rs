//! One-shot mode: `memchat "question"` answers once and exits. Piped stdin
//! is attached to the prompt after a blank line (as llm and mods do); the
//! prompt `-` alone means all of stdin is the prompt.

use std::io::{Read, Write};

use anyhow::Context;

use crate::chat::Engine;
use crate::commands;
use crate::config::{Config, UsageError};
use crate::exit::Exit;
use crate::frontend::{self, Handled, report_turn};
use crate::interrupt::Interrupt;
use crate::render::Output;

/// The prompt of a one-shot run, if this is one: the prompt words, with piped
/// stdin attached after a blank line; `-` alone means all of stdin.
pub fn prompt(words: &[String], stdin_is_terminal: bool) -> anyhow::Result<Option<String>> {
    if words.is_empty() {
        return Ok(None);
    }
    if words.len() == 1 && words[0] == "-" {
        if stdin_is_terminal {
            return Err(UsageError(
                "the prompt `-` reads stdin, but stdin is a terminal; pipe the prompt in".into(),
            )
            .into());
        }
        return Ok(Some(
            read_stdin()?.trim_end_matches(['\n', '\r']).to_string(),
        ));
    }
    let mut prompt = words.join(" ");
    if !stdin_is_terminal {
        let attached = read_stdin()?;
        if !attached.trim().is_empty() {
            prompt.push_str("\n\n");
            prompt.push_str(attached.trim_end_matches('\n'));
        }
    }
    Ok(Some(prompt))
}

/// All of stdin, which must be UTF-8 text and fit in one message.
fn read_stdin() -> anyhow::Result<String> {
    let cap = crate::memory::format::MAX_CONTENT_BYTES;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .context("cannot read stdin")?;
    if bytes.len() > cap {
        return Err(UsageError(format!(
            "stdin holds more than {cap} bytes, the most one message may hold; nothing was saved"
        ))
        .into());
    }
    String::from_utf8(bytes).map_err(|e| {
        UsageError(format!(
            "stdin is not UTF-8 text (invalid byte at offset {}); memchat sends text only",
            e.utf8_error().valid_up_to()
        ))
        .into()
    })
}

/// One turn, then exit. A prompt that is an in-chat command (`/retry`,
/// `/tokens`, ...) runs as that command, as a script line would: that is how
/// a failed turn is retried from the shell (`memchat -s NAME /retry`). A
/// prompt that only looks like one (`/usr/bin/env?`, an unknown name) is
/// sent as it is; `//` sends a leading `/` in any case.
pub async fn run(
    engine: &mut Engine,
    config: &mut Config,
    prompt: &str,
    interrupt: &mut Interrupt,
    output: &Output,
) -> anyhow::Result<Exit> {
    let is_command = commands::is_command(prompt) && commands::parse(prompt).is_ok();
    let show_usage = frontend::usage_shown(config);
    if !is_command && config.extract {
        return extract(engine, prompt, interrupt, output, show_usage.as_ref()).await;
    }
    let mut stdout = output.reply_to_stdout(true);
    if !is_command {
        let result = engine
            .send(commands::unescape(prompt), &mut stdout, interrupt)
            .await;
        return Ok(report_turn(
            result,
            &mut stdout,
            output,
            show_usage.as_ref(),
        )?);
    }
    match frontend::handle_line(prompt, engine, config, &mut stdout, interrupt, output).await? {
        Handled::Done | Handled::Exit => Ok(Exit::Success),
        Handled::Turn { exit, .. } => Ok(exit),
        Handled::Refused(reason) => Err(UsageError(reason).into()),
    }
}

/// `-x`: the turn runs as usual (the reply is saved whole) but shows
/// nothing while it streams; then only its code blocks are printed.
async fn extract(
    engine: &mut Engine,
    prompt: &str,
    interrupt: &mut Interrupt,
    output: &Output,
    show_usage: Option<&Option<crate::usage::Price>>,
) -> anyhow::Result<Exit> {
    let mut hidden = output.reply_hidden(true);
    let result = engine
        .send(commands::unescape(prompt), &mut hidden, interrupt)
        .await;
    let code = result
        .as_ref()
        .ok()
        .map(|report| crate::codeblocks::extract(&report.reply));
    let exit = report_turn(result, &mut hidden, output, show_usage)?;
    if let Some(code) = code {
        // Bound for a terminal, the model's control characters are shown.
        let code = if output.stdout_is_terminal() {
            crate::visible::text(&code)
        } else {
            code
        };
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(code.as_bytes())
            .and_then(|()| stdout.flush())
            .context("cannot write the code blocks to stdout")?;
    }
    Ok(exit)
}
